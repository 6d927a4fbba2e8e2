/**
 * Errors of the client: one class, `SessiondError`, whose `code` says what happened.
 *
 * - sessiond's own codes (`session_expired`, `api_token_invalid`, `api_token_insufficient_scope`,
 *   `storage_unavailable`, …) with the HTTP `status` sessiond answered;
 * - transport codes, with no `status`: `sessiond_unreachable` (connection refused, unknown host,
 *   no route), `connection_lost` (the connection broke before the answer was complete), `timeout`
 *   (no complete answer within the client's `timeout`), `invalid_response` (an answer that is not
 *   the API's), `client_closed` (after `close()`);
 * - validation codes for what the client refuses before sending anything, with no `status`:
 *   `invalid_argument`, `invalid_username`, `invalid_data`, `invalid_timeout`,
 *   `session_token_malformed`.
 */

/** An error of the sessiond client. */
export class SessiondError extends Error {
  /**
   * @param {string} code stable machine-readable code
   * @param {string} message human-readable description (never contains a token)
   * @param {{status?: number, retryAfter?: number, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SessiondError';
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} HTTP status sessiond answered; undefined when no answer was used */
    this.status = details.status;
    if (details.retryAfter !== undefined) {
      /** @type {number | undefined} seconds sessiond asked to wait (Retry-After) */
      this.retryAfter = details.retryAfter;
    }
  }
}

/** The 401 codes that mean "this session token is not valid": a boolean method answers false. */
export const SESSION_TOKEN_CODES = new Set([
  'session_token_missing',
  'session_token_malformed',
  'session_unknown',
  'session_expired',
]);

/** Node socket error codes that mean the server could not be reached at all. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

/**
 * Maps a Node transport error to a SessiondError.
 * @param {any} err the socket's error (or node:http's, for the event stream)
 * @param {string} origin scheme://host:port of sessiond, for the message
 * @returns {SessiondError}
 */
export function transportError(err, origin) {
  if (err instanceof SessiondError) return err;
  const sysCode = err && typeof err.code === 'string' ? err.code : undefined;
  if (sysCode !== undefined && UNREACHABLE.has(sysCode)) {
    return new SessiondError('sessiond_unreachable', `sessiond cannot be reached at ${origin} (${sysCode})`, {
      cause: err,
    });
  }
  const detail = sysCode ?? (err && err.message) ?? String(err);
  return new SessiondError('connection_lost', `the connection to sessiond at ${origin} broke (${detail})`, {
    cause: err,
  });
}

/**
 * Builds the error for a non-2xx answer of sessiond, from its `{"error": {code, message}}` body.
 * @param {{status: number, text: string, retryAfter?: string}} response status, body and
 *   Retry-After header of the answer
 * @returns {SessiondError}
 */
export function errorFromResponse({ status, text, retryAfter: retryHeader }) {
  let code;
  let message;
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.code === 'string') {
      code = body.error.code;
      message = typeof body.error.message === 'string' ? body.error.message : code;
    }
  } catch {
    // Not the API's error shape (for example libmicrohttpd's own 431 page): handled below.
  }
  if (code === undefined) {
    code = status >= 500 ? 'server_error' : 'invalid_response';
    message = `sessiond answered HTTP ${status} without an API error body`;
  }
  const retryAfter = typeof retryHeader === 'string' && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
  return new SessiondError(code, message, { status, retryAfter });
}

/** @returns {SessiondError} the error of every call made after close() */
export function closedError() {
  return new SessiondError('client_closed', 'the SessionManager was closed');
}
