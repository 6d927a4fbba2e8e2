/**
 * Checks of arguments the client can refuse by itself, before any request is sent.
 * Every refusal is a SessiondError with a validation code and no `status`.
 */
import { SessiondError } from './errors.js';

/** A session token as sessiond issues it: `usm_` + 43 base64url characters. */
const TOKEN_RE = /^usm_[A-Za-z0-9_-]{43}$/;
/** A public session id: 22 base64url characters. */
const ID_RE = /^[A-Za-z0-9_-]{22}$/;
/** C0 control characters and DEL, which sessiond refuses in usernames. */
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
/** Longest username sessiond accepts, in UTF-8 bytes. */
const MAX_USERNAME_BYTES = 256;
/** Shortest duration sessiond accepts, in seconds. */
export const MIN_DURATION = 2;

/**
 * Throws unless `key` is a string (the session token). Its shape is checked by isWellFormedToken.
 * @param {unknown} key
 */
export function assertKeyType(key) {
  if (typeof key !== 'string') {
    throw new SessiondError('invalid_argument', `the session key must be a string (the session token), got ${describe(key)}`);
  }
}

/**
 * @param {string} key
 * @returns {boolean} whether `key` has the shape of a session token
 */
export function isWellFormedToken(key) {
  return TOKEN_RE.test(key);
}

/** @returns {SessiondError} the refusal of a string key that cannot be a token */
export function malformedTokenError() {
  return new SessiondError('session_token_malformed', 'the session key is not a session token (usm_ + 43 base64url characters)');
}

/**
 * Throws unless `username` is a username sessiond can accept: a non-empty string of at most
 * 256 UTF-8 bytes without control characters.
 * @param {unknown} username
 */
export function assertUsername(username) {
  if (typeof username !== 'string') {
    throw new SessiondError('invalid_username', `the username must be a string, got ${describe(username)}`);
  }
  if (username.length === 0) {
    throw new SessiondError('invalid_username', 'the username must not be empty');
  }
  if (Buffer.byteLength(username, 'utf8') > MAX_USERNAME_BYTES) {
    throw new SessiondError('invalid_username', `the username must be at most ${MAX_USERNAME_BYTES} UTF-8 bytes`);
  }
  if (!username.isWellFormed()) {
    throw new SessiondError('invalid_username', 'the username must be valid Unicode (no lone surrogates)');
  }
  if (CONTROL_RE.test(username)) {
    throw new SessiondError('invalid_username', 'the username must not contain control characters');
  }
}

/**
 * Throws unless `id` has the shape of a public session id.
 * @param {unknown} id
 */
export function assertSessionId(id) {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new SessiondError('invalid_argument', `the session id must be 22 base64url characters, got ${describe(id)}`);
  }
}

/**
 * Serialises session data to JSON. `undefined` gives `undefined` (no data); a value JSON cannot
 * represent (BigInt, a cycle, a function or symbol at the top) is refused.
 * @param {unknown} data
 * @returns {string | undefined}
 */
export function serializeData(data) {
  if (data === undefined) return undefined;
  let json;
  try {
    json = JSON.stringify(data);
  } catch (err) {
    throw new SessiondError('invalid_data', `the session data is not JSON-serialisable: ${err.message}`, { cause: err });
  }
  if (json === undefined) {
    throw new SessiondError('invalid_data', `the session data is not JSON-serialisable (${describe(data)})`);
  }
  return json;
}

/**
 * @param {unknown} seconds
 * @returns {boolean} whether `seconds` is a duration the client lets through to sessiond
 *   (a finite number ≥ 2; sessiond checks the upper bound)
 */
export function isDuration(seconds) {
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= MIN_DURATION;
}

/**
 * Throws `invalid_timeout` unless `seconds` is undefined or a duration (see isDuration).
 * @param {string} name option name, for the message
 * @param {unknown} seconds
 */
export function assertOptionalDuration(name, seconds) {
  if (seconds !== undefined && !isDuration(seconds)) {
    throw new SessiondError('invalid_timeout', `${name} must be a finite number of seconds ≥ ${MIN_DURATION}, got ${describe(seconds)}`);
  }
}

/**
 * Short description of a value for error messages; strings are never quoted in full (they may be
 * tokens).
 * @param {unknown} value
 * @returns {string}
 */
function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'undefined') return String(value);
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  return Array.isArray(value) ? 'an array' : 'an object';
}
