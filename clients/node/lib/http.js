/**
 * HTTP transport to sessiond: the client's own HTTP/1.1 keep-alive connection pool
 * (connection-pool.js, on node:net or node:tls), JSON bodies, a deadline per attempt, and retries
 * for reads (GET) only. The API token, the admin token and session tokens travel in headers,
 * never in URLs. The event stream, one long-lived request, goes through node:http (`module`,
 * `streamOptions`).
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { ConnectionPool, POOL_CONNECTION_CLOSED, POOL_TIMEOUT } from './connection-pool.js';
import { SessiondError, closedError, errorFromResponse, transportError } from './errors.js';
import { serializeRequest } from './http1.js';

/**
 * @typedef {object} TransportOptions
 * @property {string} url base URL of sessiond (http or https)
 * @property {string} [apiToken] API token sent as `Authorization: Bearer` on application requests
 *   (and on administrative ones when there is no adminToken)
 * @property {string} [adminToken] admin token sent as `Authorization: Bearer` on administrative
 *   requests (`request(…, { admin: true })`) instead of the API token
 * @property {number} timeout milliseconds an attempt may take, answer body included
 * @property {number} retries extra attempts for GET requests
 * @property {number} retryDelay milliseconds before the first retry (doubled for each next one)
 * @property {number} maxSockets most simultaneous connections
 * @property {number} keepAliveTimeout milliseconds after which an idle pooled connection is closed
 */

/**
 * @typedef {object} Response
 * @property {number} status
 * @property {string} text the body
 * @property {string} [retryAfter] the Retry-After header of a 503 answer
 */

export class HttpTransport {
  #module;
  #pool;
  #hostname;
  /** value of the Host header */
  #host;
  #port;
  #prefix;
  /** `Bearer <apiToken>`, or undefined */
  #authorization;
  /** `Bearer <adminToken>`, else the API token's; for administrative requests */
  #adminAuthorization;
  #timeout;
  #retries;
  #retryDelay;
  #closed = false;
  /** scheme://host:port, for error messages */
  origin;

  /** @param {TransportOptions} options */
  constructor(options) {
    let base;
    try {
      base = new URL(options.url);
    } catch (err) {
      throw new SessiondError('invalid_argument', `url is not a valid URL: ${options.url}`, { cause: err });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new SessiondError('invalid_argument', `url must be http: or https:, got ${base.protocol}`);
    }
    if (base.username || base.password || base.search || base.hash) {
      throw new SessiondError('invalid_argument', 'url must not carry credentials, a query or a fragment');
    }
    const apiAuthorization = bearer('apiToken', options.apiToken);
    const adminAuthorization = bearer('adminToken', options.adminToken);
    this.#module = base.protocol === 'https:' ? https : http;
    this.#hostname = base.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#port = base.port === '' ? (base.protocol === 'https:' ? 443 : 80) : Number(base.port);
    this.#prefix = base.pathname.replace(/\/+$/, '');
    this.origin = `${base.protocol}//${base.host}`;
    this.#authorization = apiAuthorization;
    this.#adminAuthorization = adminAuthorization ?? apiAuthorization;
    this.#timeout = options.timeout;
    this.#retries = options.retries;
    this.#retryDelay = options.retryDelay;
    this.#host = base.host;
    this.#pool = new ConnectionPool({
      host: this.#hostname,
      port: this.#port,
      tls: base.protocol === 'https:',
      maxSockets: options.maxSockets,
      keepAliveTimeout: options.keepAliveTimeout,
    });
  }

  /** @returns {boolean} whether close() was called */
  get closed() {
    return this.#closed;
  }

  /**
   * Sends a request and resolves to sessiond's answer, whatever its status. GET requests are
   * retried on transport failures and 503 answers; other methods are sent exactly once. After a 503
   * with `Retry-After: n`, the retry waits at least n seconds, if that wait ends within the GET's
   * time budget (`timeout` × (1 + `retries`) from the call); otherwise the 503 is the answer.
   * @param {string} method
   * @param {string} path path and query, starting with `/` (never holds a token)
   * @param {{sessionToken?: string, body?: string, admin?: boolean}} [options] `admin`: an
   *   administrative route, authorised with the admin token (the API token when there is none)
   * @returns {Promise<Response>}
   */
  async request(method, path, options = {}) {
    const retriable = method === 'GET';
    const authorization = options.admin === true ? this.#adminAuthorization : this.#authorization;
    const payload = this.#serialize(method, path, authorization, options.sessionToken, options.body);
    const deadline = performance.now() + this.#timeout * (1 + this.#retries);
    for (let attempt = 0; ; attempt++) {
      const last = !retriable || attempt >= this.#retries;
      let response;
      try {
        response = await this.#attempt(method, path, payload);
      } catch (err) {
        if (last || this.#closed || err.code === 'timeout' || err.code === 'client_closed') throw err;
        await this.#pause(attempt);
        continue;
      }
      if (response.status === 503 && !last) {
        let delay = this.#retryDelay * 2 ** attempt;
        const retryAfter = typeof response.retryAfter === 'string' && /^\d+$/.test(response.retryAfter) ? Number(response.retryAfter) : undefined;
        if (retryAfter !== undefined) {
          delay = Math.max(delay, retryAfter * 1000);
          if (performance.now() + delay > deadline) return response;
        }
        if (this.#closed) return response;
        await new Promise((resolve) => setTimeout(resolve, delay));
        continue;
      }
      return response;
    }
  }

  /**
   * Sends a request and resolves to the parsed JSON body of a 2xx answer (`null` when empty);
   * rejects with sessiond's error otherwise.
   * @param {string} method
   * @param {string} path
   * @param {{sessionToken?: string, body?: string, admin?: boolean}} [options]
   * @returns {Promise<any>}
   */
  async json(method, path, options) {
    const response = await this.request(method, path, options);
    if (response.status < 200 || response.status > 299) throw errorFromResponse(response);
    return parseJson(response);
  }

  /**
   * Options for node:http `request` of a long-lived request (the event stream), which gets its
   * own connection instead of one of the pool's.
   * @param {string} path
   * @param {Record<string, string>} headers extra headers
   */
  streamOptions(path, headers) {
    return {
      hostname: this.#hostname,
      port: this.#port,
      method: 'GET',
      path: this.#prefix + path,
      headers: this.#headers(headers),
      agent: false,
    };
  }

  /** @returns {typeof http | typeof https} the node module the event stream goes through */
  get module() {
    return this.#module;
  }

  /** Destroys every connection; later requests, and those in flight, reject with `client_closed`. */
  close() {
    this.#closed = true;
    this.#pool.close();
  }

  /**
   * Headers of the event stream, an application route: the API token's authorization.
   * @param {Record<string, string | number>} [extra]
   */
  #headers(extra) {
    const headers = { ...extra };
    if (this.#authorization !== undefined) headers.authorization = this.#authorization;
    return headers;
  }

  /** @param {number} attempt */
  #pause(attempt) {
    const delay = this.#retryDelay * 2 ** attempt;
    return new Promise((resolve) => setTimeout(resolve, delay));
  }

  /**
   * Serialises a request into the one string written for each attempt.
   * @param {string} method
   * @param {string} path
   * @param {string | undefined} authorization the Authorization header's value, if any
   * @param {string | undefined} sessionToken
   * @param {string | undefined} body
   * @returns {string}
   * @throws {SessiondError} `invalid_argument` when a header value would break its line
   */
  #serialize(method, path, authorization, sessionToken, body) {
    /** @type {[string, string][]} */
    const headers = [
      ['Connection', 'keep-alive'],
      ['Accept', 'application/json'],
    ];
    if (authorization !== undefined) headers.push(['Authorization', authorization]);
    if (sessionToken !== undefined) headers.push(['Session-Token', sessionToken]);
    if (body !== undefined) headers.push(['Content-Type', 'application/json']);
    return serializeRequest(method, this.#prefix + path, this.#host, headers, body);
  }

  /**
   * One attempt: resolves to the complete answer, rejects with a transport SessiondError.
   * @param {string} method
   * @param {string} path for error messages
   * @param {string} payload the serialised request
   * @returns {Promise<Response>}
   */
  async #attempt(method, path, payload) {
    if (this.#closed) throw closedError();
    try {
      const response = await this.#pool.request(payload, { idempotent: method === 'GET', timeout: this.#timeout });
      if (response.status !== 503) response.retryAfter = undefined;
      return response;
    } catch (err) {
      if (/** @type {any} */ (err).code === POOL_TIMEOUT) {
        throw new SessiondError('timeout', `sessiond at ${this.origin} did not answer ${method} ${path} within ${this.#timeout} ms`);
      }
      if (this.#closed) throw closedError();
      if (/** @type {any} */ (err).code === POOL_CONNECTION_CLOSED) {
        throw new SessiondError('connection_lost', `the connection to sessiond at ${this.origin} broke (${/** @type {Error} */ (err).message})`, { cause: err });
      }
      throw transportError(err, this.origin);
    }
  }
}

/**
 * Checks a bearer token option (never echoing its value).
 * @param {string} name the option's name, for the message
 * @param {unknown} token
 * @returns {string | undefined} `Bearer <token>`, undefined when the option is not given
 * @throws {SessiondError} `invalid_argument` unless a non-empty string of printable ASCII
 */
function bearer(name, token) {
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new SessiondError('invalid_argument', `${name} must be a non-empty string of printable ASCII characters`);
  }
  return `Bearer ${token}`;
}

/**
 * @param {Response} response
 * @returns {any} the parsed JSON body, `null` when the body is empty
 */
export function parseJson(response) {
  if (response.text === '') return null;
  try {
    return JSON.parse(response.text);
  } catch (err) {
    throw new SessiondError('invalid_response', `sessiond answered HTTP ${response.status} with a body that is not JSON`, {
      status: response.status,
      cause: err,
    });
  }
}
