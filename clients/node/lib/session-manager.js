/**
 * SessionManager: the API of the Node library `users-session-manager`, each method returning a
 * Promise, answered by sessiond over HTTP; its events come from sessiond's event stream.
 */
import { EventEmitter } from 'node:events';
import { SESSION_TOKEN_CODES, SessiondError, errorFromResponse } from './errors.js';
import { EventStream } from './events.js';
import { HttpTransport, parseJson } from './http.js';
import { createMiddleware } from './middleware.js';
import {
  assertKeyType,
  assertOptionalDuration,
  assertSessionId,
  assertUsername,
  isDuration,
  isWellFormedToken,
  malformedTokenError,
  serializeData,
} from './validate.js';

/** Events whose first listener starts the event stream. */
const STREAM_EVENTS = new Set(['sessionCreated', 'sessionDeleted', 'notifyClientToLogout', 'resync']);
/** End reasons the user did not ask for: they are forwarded as `notifyClientToLogout`. */
const LOGOUT_REASONS = new Set(['idle_timeout', 'absolute_timeout', 'revoked', 'evicted']);
/** keepAliveTimeout must stay below sessiond's default --connection-timeout (30 s). */
const MAX_KEEP_ALIVE_MS = 30_000;
/** Largest page sessiond serves. */
const MAX_PAGE_SIZE = 1000;
/**
 * Request options of an administrative route (scope `admin` in docs/api.md): authorised with the
 * admin token, or the API token when there is none.
 */
const ADMIN = Object.freeze({ admin: true });

/**
 * @typedef {object} SessionManagerOptions
 * @property {string} [url] base URL of sessiond (default `http://127.0.0.1:8080`)
 * @property {string} [apiToken] API token (`Authorization: Bearer`), when sessiond has one: sent
 *   on the application calls (sessions, data, event stream), and on the administrative ones when
 *   there is no adminToken
 * @property {string} [adminToken] admin token (`Authorization: Bearer`), when sessiond has admin
 *   tokens (`--admin-token-file`): sent on the administrative calls only (deleteAllSessions,
 *   getLoggedUsers, setSessionTimeOut, getSessionTimeout, revokeSession, revokeUserSessions)
 * @property {number} [timeout] milliseconds one attempt of a request may take (default 5000)
 * @property {number} [retries] extra attempts of a GET after a transport failure or a 503
 *   (default 2); other methods are never retried
 * @property {number} [retryDelay] milliseconds before the first retry, doubled each time (default 50)
 * @property {number} [maxSockets] most keep-alive connections to sessiond (default 16; sessiond
 *   accepts 64 per client address by default, shared by every process on the same host, and the
 *   event stream takes one more)
 * @property {number} [keepAliveTimeout] milliseconds after which an idle keep-alive connection is
 *   closed by the client (default 15000; must be below 30000, sessiond's default
 *   --connection-timeout)
 * @property {{minDelay?: number, maxDelay?: number, idleTimeout?: number}} [events] event-stream
 *   reconnection: first delay (default 250 ms), longest delay (default 10000 ms), and silence after
 *   which the connection is replaced (default 45000 ms; sessiond sends a keep-alive every 15 s)
 * @property {string} [roomPrefix] prefix of socket.io room names (default `session:`)
 */

export class SessionManager extends EventEmitter {
  #http;
  #events;
  #roomPrefix;
  /** @type {any} */
  #io = null;
  /** default timeout of ready(), milliseconds */
  #readyTimeout;

  /** @param {SessionManagerOptions} [options] */
  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw new SessiondError('invalid_argument', 'the options must be an object');
    }
    const events = options.events ?? {};
    const timeout = positive('timeout', options.timeout, 5000);
    const keepAliveTimeout = positive('keepAliveTimeout', options.keepAliveTimeout, 15_000);
    if (keepAliveTimeout >= MAX_KEEP_ALIVE_MS) {
      throw new SessiondError('invalid_argument', `keepAliveTimeout must be below ${MAX_KEEP_ALIVE_MS} ms (sessiond closes idle connections after 30 s)`);
    }
    this.#readyTimeout = 2 * timeout;
    this.#http = new HttpTransport({
      url: options.url ?? 'http://127.0.0.1:8080',
      apiToken: options.apiToken,
      adminToken: options.adminToken,
      timeout,
      retries: nonNegativeInteger('retries', options.retries, 2),
      retryDelay: positive('retryDelay', options.retryDelay, 50),
      maxSockets: positiveInteger('maxSockets', options.maxSockets, 16),
      keepAliveTimeout,
    });
    this.#events = new EventStream(
      this.#http,
      {
        minDelay: positive('events.minDelay', events.minDelay, 250),
        maxDelay: positive('events.maxDelay', events.maxDelay, 10_000),
        idleTimeout: positive('events.idleTimeout', events.idleTimeout, 45_000),
      },
      {
        onMessage: (message) => this.#dispatch(message),
        onError: (err) => this.#emitSafely('streamError', err),
        onResync: (reason) => this.#emitSafely('resync', { reason }),
      },
    );
    this.#roomPrefix = options.roomPrefix ?? 'session:';
    if (typeof this.#roomPrefix !== 'string') throw new SessiondError('invalid_argument', 'roomPrefix must be a string');
    this.on('newListener', (name) => {
      if (STREAM_EVENTS.has(name)) this.#events.start();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The Node library's methods
  // ---------------------------------------------------------------------------------------------

  /**
   * Opens a session for a user (login): `POST /v1/sessions`.
   * @param {string} username 1 to 256 UTF-8 bytes, no control characters
   * @param {{data?: unknown, idleTimeout?: number, maxLifetime?: number}} [options] initial data
   *   (any JSON value) and this session's own idle timeout and lifetime, in seconds
   * @returns {Promise<string>} the session token (the key of every other call)
   */
  async loadNewSession(username, options = {}) {
    return (await this.createSession(username, options)).token;
  }

  /**
   * Whether the session is valid, without sliding its idle deadline:
   * `GET /v1/session?refresh=false`.
   * @param {string} key the session token
   * @returns {Promise<boolean>} false for a malformed, unknown, ended or expired token
   */
  async checkSessionStatus(key) {
    return this.#isValid(key, false);
  }

  /**
   * Validates the session and slides its idle deadline: `GET /v1/session`.
   * @param {string} key the session token
   * @returns {Promise<boolean>} false when the session is not valid
   */
  async restartSessionTimer(key) {
    return this.#isValid(key, true);
  }

  /**
   * The session (id, username, createdAt, lastSeenAt, idleExpiresAt, expiresAt, idleTimeout and
   * data when it has some), without sliding it: `GET /v1/session?refresh=false`.
   * @param {string} key the session token
   * @returns {Promise<object | false>} false when the session is not valid
   */
  async getSessionDetails(key) {
    return (await this.#lookup(key)) ?? false;
  }

  /**
   * The username of a valid session, without sliding it: `GET /v1/session?refresh=false`.
   * @param {string} key the session token
   * @returns {Promise<string | false>} false when the session is not valid
   */
  async getUsernameFromSessionKey(key) {
    const session = await this.#lookup(key);
    return session === null ? false : session.username;
  }

  /**
   * Replaces the session's data (`null` or `undefined` clear it): `PUT /v1/session/data`.
   * Does not slide the idle deadline.
   * @param {string} key the session token
   * @param {unknown} data any JSON-serialisable value
   * @returns {Promise<true>} rejects with sessiond's code (`session_expired`, `session_unknown`,
   *   `data_too_large`, …) when the data cannot be stored
   */
  async setSessionData(key, data) {
    this.#assertToken(key);
    const json = serializeData(data) ?? 'null';
    await this.#http.json('PUT', '/v1/session/data', { sessionToken: key, body: `{"data":${json}}` });
    return true;
  }

  /**
   * The session's data: `GET /v1/session/data`. Does not slide the idle deadline.
   * @param {string} key the session token
   * @returns {Promise<unknown>} the data, `null` when the session has none; rejects with sessiond's
   *   code (`session_expired`, `session_unknown`, …) for a session that is not valid
   */
  async getSessionData(key) {
    this.#assertToken(key);
    const body = await this.#http.json('GET', '/v1/session/data', { sessionToken: key });
    return body.data ?? null;
  }

  /**
   * Ends the session (logout, reason `logout`): `DELETE /v1/session`.
   * @param {string} key the session token
   * @returns {Promise<boolean>} false when the session was not valid
   */
  async deleteSession(key) {
    assertKeyType(key);
    if (!isWellFormedToken(key)) return false;
    const response = await this.#http.request('DELETE', '/v1/session', { sessionToken: key });
    if (response.status === 204) return true;
    const err = errorFromResponse(response);
    if (response.status === 401 && SESSION_TOKEN_CODES.has(err.code)) return false;
    throw err;
  }

  /**
   * Ends every session (reason `revoked`): `DELETE /v1/sessions?confirm=true`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @returns {Promise<number>} how many sessions ended
   */
  async deleteAllSessions() {
    const body = await this.#http.json('DELETE', '/v1/sessions?confirm=true', ADMIN);
    return body.deleted;
  }

  /**
   * The distinct users with at least one live session, following every page of `GET /v1/users`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @param {{pageSize?: number}} [options] users per request (1 to 1000, default 1000)
   * @returns {Promise<string[]>}
   */
  async getLoggedUsers(options = {}) {
    const pageSize = options?.pageSize ?? MAX_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new SessiondError('invalid_argument', `pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    }
    const users = new Set();
    let cursor = null;
    do {
      const query = cursor === null ? `limit=${pageSize}` : `limit=${pageSize}&cursor=${encodeURIComponent(cursor)}`;
      const page = await this.#http.json('GET', `/v1/users?${query}`, ADMIN);
      for (const user of page.users) users.add(user.username);
      cursor = page.nextCursor ?? null;
    } while (cursor !== null);
    return [...users];
  }

  /**
   * Changes the default idle timeout of new sessions (and of existing sessions without their own
   * timeout, from their next refresh): `PATCH /v1/config`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @param {number} seconds at least 2
   * @returns {Promise<boolean>} false when the value is refused (not a number, below 2, or refused
   *   by sessiond)
   */
  async setSessionTimeOut(seconds) {
    if (!isDuration(seconds)) return false;
    const response = await this.#http.request('PATCH', '/v1/config', { admin: true, body: JSON.stringify({ idleTimeout: seconds }) });
    if (response.status === 200) return true;
    const err = errorFromResponse(response);
    if (err.code === 'invalid_timeout') return false;
    throw err;
  }

  /**
   * The default idle timeout of new sessions: `GET /v1/config`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @returns {Promise<number>} seconds
   */
  async getSessionTimeout() {
    const config = await this.#http.json('GET', '/v1/config', ADMIN);
    return config.idleTimeout;
  }

  /**
   * Keeps the socket.io server that `notifyClientToLogout` listeners receive as first argument.
   * @param {any} io a socket.io `Server`
   * @returns {true}
   */
  initSocketReference(io) {
    this.#io = io;
    return true;
  }

  /** @returns {any} the server given to initSocketReference, or null */
  getSocketReference() {
    return this.#io;
  }

  // ---------------------------------------------------------------------------------------------
  // Beyond the Node library
  // ---------------------------------------------------------------------------------------------

  /**
   * Opens a session and resolves to all of it: `POST /v1/sessions`.
   * @param {string} username
   * @param {{data?: unknown, idleTimeout?: number, maxLifetime?: number}} [options]
   * @returns {Promise<object>} the session with its `token` and public `id`
   */
  async createSession(username, options = {}) {
    assertUsername(username);
    if (options === null || typeof options !== 'object') {
      throw new SessiondError('invalid_argument', 'the options must be an object');
    }
    const { data, idleTimeout, maxLifetime } = options;
    assertOptionalDuration('idleTimeout', idleTimeout);
    assertOptionalDuration('maxLifetime', maxLifetime);
    const json = serializeData(data);
    let body = `{"username":${JSON.stringify(username)}`;
    if (json !== undefined) body += `,"data":${json}`;
    if (idleTimeout !== undefined) body += `,"idleTimeout":${idleTimeout}`;
    if (maxLifetime !== undefined) body += `,"maxLifetime":${maxLifetime}`;
    body += '}';
    return this.#http.json('POST', '/v1/sessions', { body });
  }

  /**
   * Validates a session token and resolves to the session; rejects with sessiond's code
   * (`session_unknown`, `session_expired`, `session_token_malformed`, …) when it is not valid.
   * @param {string} key the session token
   * @param {{refresh?: boolean}} [options] slide the idle deadline (default true)
   * @returns {Promise<object>}
   */
  async validateSession(key, options = {}) {
    return this.#validate(key, options.refresh ?? true);
  }

  /**
   * Issues a new token for the session (same id, data and deadlines; the old token stops working):
   * `POST /v1/session/rotate`.
   * @param {string} key the session token
   * @returns {Promise<string | false>} the new token, false when the session is not valid
   */
  async rotateSession(key) {
    assertKeyType(key);
    if (!isWellFormedToken(key)) return false;
    const response = await this.#http.request('POST', '/v1/session/rotate', { sessionToken: key });
    if (response.status === 200) return parseJson(response).token;
    const err = errorFromResponse(response);
    if (response.status === 401 && SESSION_TOKEN_CODES.has(err.code)) return false;
    throw err;
  }

  /**
   * Revokes one session by its public id (reason `revoked`): `DELETE /v1/sessions/{id}`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @param {string} id the session's public id
   * @returns {Promise<boolean>} false when no live session has this id
   */
  async revokeSession(id) {
    assertSessionId(id);
    const response = await this.#http.request('DELETE', `/v1/sessions/${id}`, ADMIN);
    if (response.status === 204) return true;
    const err = errorFromResponse(response);
    if (err.code === 'session_not_found') return false;
    throw err;
  }

  /**
   * Revokes every session of one user (reason `revoked`): `DELETE /v1/users/{username}/sessions`.
   * Administrative: authorised with `adminToken` (else `apiToken`).
   * @param {string} username
   * @returns {Promise<number>} how many sessions ended
   */
  async revokeUserSessions(username) {
    assertUsername(username);
    // encodeURIComponent leaves dots alone, and a `.` or `..` segment would be resolved away.
    const segment = username === '.' || username === '..' ? username.replaceAll('.', '%2E') : encodeURIComponent(username);
    const body = await this.#http.json('DELETE', `/v1/users/${segment}/sessions`, ADMIN);
    return body.deleted;
  }

  /**
   * The socket.io room of a session: `notifyClientToLogout` listeners emit to it.
   * @param {string} id the session's public id
   * @returns {string} `session:<id>` (with the default roomPrefix)
   */
  roomFor(id) {
    assertSessionId(id);
    return this.#roomPrefix + id;
  }

  /**
   * Joins a socket.io socket to its session's room (see roomFor).
   * @param {{join: (room: string) => unknown}} socket
   * @param {string} id the session's public id (`getSessionDetails(key).id`)
   * @returns {unknown} what `socket.join` returns
   */
  joinSessionRoom(socket, id) {
    return socket.join(this.roomFor(id));
  }

  /**
   * Middleware for Express-style servers: see createMiddleware.
   * @param {import('./middleware.js').MiddlewareOptions} [options]
   */
  middleware(options) {
    return createMiddleware(this, options);
  }

  /**
   * Resolves once the event stream is open (starting it if no listener did); rejects when sessiond
   * refuses the subscription (for example a wrong API token), after close(), or when the stream is
   * not open within `timeout` ms (default twice the manager's `timeout`, 10 s by default) with
   * `sessiond_unreachable` (the last attempt could not connect) or `timeout`; the stream keeps
   * reconnecting, and a later `ready()` can still resolve.
   * @param {{timeout?: number}} [options]
   * @returns {Promise<void>}
   */
  ready(options = {}) {
    let timeout;
    try {
      timeout = positive('timeout', options?.timeout, this.#readyTimeout);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#events.ready(timeout);
  }

  /**
   * Ends the event stream and every connection (the pool's keep-alive connections are destroyed), so the process
   * can exit. Calls made afterwards reject with `client_closed`.
   * @returns {Promise<void>}
   */
  async close() {
    this.#events.close();
    this.#http.close();
  }

  // ---------------------------------------------------------------------------------------------

  /** @param {unknown} key rejects unless key has the shape of a session token */
  #assertToken(key) {
    assertKeyType(key);
    if (!isWellFormedToken(key)) throw malformedTokenError();
  }

  /**
   * @param {unknown} key
   * @param {boolean} refresh
   * @returns {Promise<any>} the session; rejects with the reason it is not valid
   */
  async #validate(key, refresh) {
    this.#assertToken(key);
    const response = await this.#check(/** @type {string} */ (key), refresh);
    if (response.status === 200) return parseJson(response);
    throw errorFromResponse(response);
  }

  /**
   * Whether the token is a valid session's, from the status alone (the body is not parsed).
   * @param {unknown} key
   * @param {boolean} refresh
   * @returns {Promise<boolean>}
   */
  async #isValid(key, refresh) {
    assertKeyType(key);
    if (!isWellFormedToken(key)) return false;
    const response = await this.#check(key, refresh);
    if (response.status === 200) return true;
    const err = errorFromResponse(response);
    if (response.status === 401 && SESSION_TOKEN_CODES.has(err.code)) return false;
    throw err;
  }

  /**
   * `GET /v1/session`, sliding the idle deadline or not.
   * @param {string} key
   * @param {boolean} refresh
   */
  #check(key, refresh) {
    return this.#http.request('GET', refresh ? '/v1/session' : '/v1/session?refresh=false', { sessionToken: key });
  }

  /**
   * The session, without sliding it.
   * @param {unknown} key
   * @returns {Promise<any>} the session, or null when the token is not a valid session's
   */
  async #lookup(key) {
    try {
      return await this.#validate(key, false);
    } catch (err) {
      if (err instanceof SessiondError && SESSION_TOKEN_CODES.has(err.code)) return null;
      throw err;
    }
  }

  /** @param {import('./sse.js').SseMessage} message */
  #dispatch(message) {
    if (message.event === 'gap') {
      let reason = 'unknown';
      try {
        reason = JSON.parse(message.data).reason ?? reason;
      } catch {
        // A gap without a readable reason is still a gap.
      }
      this.#emitSafely('resync', { reason });
      return;
    }
    if (message.event !== 'created' && message.event !== 'ended') return;
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      this.#emitSafely('streamError', new SessiondError('invalid_response', `an ${message.event} event is not JSON`, { cause: err }));
      return;
    }
    if (message.event === 'created') {
      this.#emitSafely('sessionCreated', { id: event.id, username: event.username, createdAt: event.createdAt, at: event.at });
      return;
    }
    const ended = {
      id: event.id,
      username: event.username,
      reason: event.reason,
      createdAt: event.createdAt,
      at: event.at,
      lifetime: event.lifetime,
    };
    this.#emitSafely('sessionDeleted', ended);
    if (LOGOUT_REASONS.has(event.reason)) {
      this.#emitSafely('notifyClientToLogout', this.#io, {
        id: event.id,
        username: event.username,
        reason: event.reason,
        room: this.#roomPrefix + event.id,
      });
    }
  }

  /**
   * Emits an event; an exception thrown by a listener is rethrown on the next tick, so that it
   * surfaces as any listener's exception does without leaving the stream parser half-way.
   * @param {string} name
   * @param {...unknown} args
   */
  #emitSafely(name, ...args) {
    try {
      this.emit(name, ...args);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }
}

/** @returns {number} value, or fallback when undefined; throws unless a positive finite number */
function positive(name, value, fallback) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new SessiondError('invalid_argument', `${name} must be a positive number`);
  }
  return value;
}

/** @returns {number} value, or fallback when undefined; throws unless a positive integer */
function positiveInteger(name, value, fallback) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new SessiondError('invalid_argument', `${name} must be a positive integer`);
  return value;
}

/** @returns {number} value, or fallback when undefined; throws unless an integer ≥ 0 */
function nonNegativeInteger(name, value, fallback) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new SessiondError('invalid_argument', `${name} must be an integer ≥ 0`);
  return value;
}
