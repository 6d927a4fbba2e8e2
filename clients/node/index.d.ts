// Type declarations of sessiond-client (the implementation is index.js / lib/*.js).
import { EventEmitter } from 'node:events';

/** Options of `new SessionManager(options)`. */
export interface SessionManagerOptions {
  /** Base URL of sessiond (http or https, optionally with a path prefix). Default `http://127.0.0.1:8080`. */
  url?: string;
  /**
   * API token, sent as `Authorization: Bearer`, when sessiond has one (`--api-token-file`): on the
   * application calls (sessions, data, event stream), and on the administrative ones when
   * `adminToken` is not given.
   */
  apiToken?: string;
  /**
   * Admin token, sent as `Authorization: Bearer` on the administrative calls only (deleteAllSessions,
   * getLoggedUsers, setSessionTimeOut, getSessionTimeout, revokeSession, revokeUserSessions), when
   * sessiond has admin tokens (`--admin-token-file`); there, an API token gets 403
   * `api_token_insufficient_scope`. Default: the API token.
   */
  adminToken?: string;
  /** Milliseconds one attempt of a request may take, answer included. Default 5000. */
  timeout?: number;
  /** Extra attempts of a GET after a transport failure or a 503. Default 2. Writes are never retried. */
  retries?: number;
  /** Milliseconds before the first retry, doubled for each next one. Default 50. */
  retryDelay?: number;
  /** Most keep-alive connections to sessiond. Default 16 (sessiond accepts 64 per client address, shared by every process of the host). */
  maxSockets?: number;
  /** Milliseconds after which an idle keep-alive connection is closed by the client. Default 15000; must be below 30000 (sessiond's default --connection-timeout). */
  keepAliveTimeout?: number;
  /** Reconnection of the event stream. */
  events?: {
    /** Milliseconds before the first reconnection attempt. Default 250. */
    minDelay?: number;
    /** Longest wait between attempts. Default 10000. */
    maxDelay?: number;
    /** Silence (ms) after which the stream's connection is replaced. Default 45000. */
    idleTimeout?: number;
  };
  /** Prefix of the socket.io room of a session. Default `session:`. */
  roomPrefix?: string;
}

/** A session as sessiond returns it (never with its token, except from createSession). */
export interface Session {
  /** Public id: 22 base64url characters. */
  id: string;
  username: string;
  /** RFC 3339 UTC times with milliseconds. */
  createdAt: string;
  lastSeenAt: string;
  idleExpiresAt: string;
  expiresAt: string;
  /** Seconds. */
  idleTimeout: number;
  /** The session's JSON data; absent when it has none. */
  data?: unknown;
}

/** A session with its token: the answer of createSession. */
export interface CreatedSession extends Session {
  /** `usm_` + 43 base64url characters. */
  token: string;
}

/** Options of loadNewSession and createSession. */
export interface NewSessionOptions {
  /** Initial data: any JSON-serialisable value. */
  data?: unknown;
  /** This session's idle timeout, seconds (≥ 2). */
  idleTimeout?: number;
  /** This session's absolute lifetime, seconds (≥ 2). */
  maxLifetime?: number;
}

/** Why a session ended. */
export type EndReason = 'logout' | 'revoked' | 'evicted' | 'idle_timeout' | 'absolute_timeout';

/** Endings the user did not ask for: forwarded as notifyClientToLogout. */
export type LogoutReason = 'revoked' | 'evicted' | 'idle_timeout' | 'absolute_timeout';

/** Payload of `sessionCreated`. */
export interface SessionCreatedEvent {
  id: string;
  username: string;
  createdAt: string;
  /** When the event happened. */
  at: string;
}

/** Payload of `sessionDeleted`. */
export interface SessionDeletedEvent {
  id: string;
  username: string;
  reason: EndReason;
  createdAt: string;
  at: string;
  /** Seconds the session lived. */
  lifetime: number;
}

/** Second argument of `notifyClientToLogout`. */
export interface LogoutNotification {
  id: string;
  username: string;
  reason: LogoutReason;
  /** The session's socket.io room: roomPrefix + id (`session:<id>` by default). */
  room: string;
}

/**
 * Payload of `resync`: events may have been missed while disconnected — sessiond could not replay
 * them (`unknown_id`, `evicted`), or the stream reconnected before any event gave it an id to resume
 * from (`no_event_id`).
 */
export interface ResyncEvent {
  reason: 'unknown_id' | 'evicted' | 'no_event_id' | string;
}

/** Options of the middleware. */
export interface MiddlewareOptions {
  /** Request header holding the session token. Default `session_key`. */
  header?: string;
  /** Slide the session's idle deadline. Default true. */
  refresh?: boolean;
  /** Property of `req` receiving the session. Default `session`. */
  property?: string;
}

/** An Express-style middleware. */
export type Middleware = (req: any, res: any, next: (err?: unknown) => void) => Promise<void>;

/** Error of every rejected call: `code` says what happened, `status` is sessiond's HTTP status. */
export class SessiondError extends Error {
  constructor(code: string, message: string, details?: { status?: number; retryAfter?: number; cause?: unknown });
  name: 'SessiondError';
  /**
   * sessiond's code (`session_expired`, `api_token_invalid`, `api_token_insufficient_scope`,
   * `storage_unavailable`, …), a transport
   * code (`sessiond_unreachable`, `connection_lost`, `timeout`, `invalid_response`, `server_error`,
   * `client_closed`) or a validation code (`invalid_argument`, `invalid_username`, `invalid_data`,
   * `invalid_timeout`, `session_token_malformed`).
   */
  code: string;
  /** HTTP status of sessiond's answer; undefined when the call got no answer or was refused locally. */
  status: number | undefined;
  /** Seconds sessiond asked to wait (Retry-After), on 503 answers. */
  retryAfter?: number;
}

/** The users-session-manager API over sessiond: every call returns a Promise. */
export class SessionManager extends EventEmitter {
  constructor(options?: SessionManagerOptions);

  // The Node library's methods.
  /** Login: opens a session, resolves to its token. `POST /v1/sessions`. */
  loadNewSession(username: string, options?: NewSessionOptions): Promise<string>;
  /** Whether the session is valid, without sliding it. `GET /v1/session?refresh=false`. */
  checkSessionStatus(key: string): Promise<boolean>;
  /** Validates and slides the idle deadline. `GET /v1/session`. */
  restartSessionTimer(key: string): Promise<boolean>;
  /** The session, or false when it is not valid (does not slide). */
  getSessionDetails(key: string): Promise<Session | false>;
  /** The username, or false when the session is not valid (does not slide). */
  getUsernameFromSessionKey(key: string): Promise<string | false>;
  /** Replaces the session's data (null or undefined clear it). Rejects with sessiond's code for an invalid session. */
  setSessionData(key: string, data: unknown): Promise<true>;
  /** The session's data, null when none. Rejects with sessiond's code for an invalid session. */
  getSessionData(key: string): Promise<unknown>;
  /** Logout. `DELETE /v1/session`. False when the session was not valid. */
  deleteSession(key: string): Promise<boolean>;
  /** Ends every session (reason `revoked`); resolves to how many ended. Administrative (adminToken). */
  deleteAllSessions(): Promise<number>;
  /** Distinct usernames with a live session, over every page of `GET /v1/users`. Administrative (adminToken). */
  getLoggedUsers(options?: { pageSize?: number }): Promise<string[]>;
  /** Changes the default idle timeout (seconds ≥ 2); false when the value is refused. Administrative (adminToken). */
  setSessionTimeOut(seconds: number): Promise<boolean>;
  /** The default idle timeout, seconds. Administrative (adminToken). */
  getSessionTimeout(): Promise<number>;
  /** Keeps the socket.io server passed to `notifyClientToLogout` listeners. */
  initSocketReference(io: unknown): true;
  /** The server given to initSocketReference, or null. */
  getSocketReference(): any;

  // Beyond the Node library.
  /** Opens a session and resolves to all of it, token and id included. */
  createSession(username: string, options?: NewSessionOptions): Promise<CreatedSession>;
  /** Resolves to the session; rejects with sessiond's code when it is not valid. */
  validateSession(key: string, options?: { refresh?: boolean }): Promise<Session>;
  /** New token for the same session; false when the session is not valid. */
  rotateSession(key: string): Promise<string | false>;
  /** Revokes one session by public id; false when no live session has it. Administrative (adminToken). */
  revokeSession(id: string): Promise<boolean>;
  /** Revokes every session of a user; resolves to how many ended. Administrative (adminToken). */
  revokeUserSessions(username: string): Promise<number>;
  /** The socket.io room of a session: roomPrefix + id. */
  roomFor(id: string): string;
  /** Joins a socket.io socket to its session's room. */
  joinSessionRoom<R>(socket: { join(room: string): R }, id: string): R;
  /** Express-style middleware validating the token of a request header. */
  middleware(options?: MiddlewareOptions): Middleware;
  /**
   * Resolves once the event stream is open (starting it); rejects when sessiond refuses it, after
   * close(), or after `timeout` ms (default twice the manager's timeout: 10 s) with
   * `sessiond_unreachable` or `timeout` (the stream keeps reconnecting; call ready() again).
   */
  ready(options?: { timeout?: number }): Promise<void>;
  /** Ends the event stream and every connection. */
  close(): Promise<void>;

  on(event: 'sessionCreated', listener: (event: SessionCreatedEvent) => void): this;
  on(event: 'sessionDeleted', listener: (event: SessionDeletedEvent) => void): this;
  on(event: 'notifyClientToLogout', listener: (io: any, notification: LogoutNotification) => void): this;
  on(event: 'resync', listener: (event: ResyncEvent) => void): this;
  on(event: 'streamError', listener: (error: SessiondError) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'sessionCreated', listener: (event: SessionCreatedEvent) => void): this;
  once(event: 'sessionDeleted', listener: (event: SessionDeletedEvent) => void): this;
  once(event: 'notifyClientToLogout', listener: (io: any, notification: LogoutNotification) => void): this;
  once(event: 'resync', listener: (event: ResyncEvent) => void): this;
  once(event: 'streamError', listener: (error: SessiondError) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Creates the Express-style middleware of a SessionManager. */
export function createMiddleware(manager: SessionManager, options?: MiddlewareOptions): Middleware;
