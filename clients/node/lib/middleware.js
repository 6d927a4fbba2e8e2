/**
 * Middleware for Express-style `(req, res, next)` servers (Express, Connect, plain node:http):
 * validates the session token from a request header, puts the session on `req.session`, and
 * answers 401 with sessiond's error code otherwise.
 */
import { SESSION_TOKEN_CODES } from './errors.js';

/**
 * @typedef {object} MiddlewareOptions
 * @property {string} [header] request header holding the session token (default `session_key`,
 *   as in the Node library's README); matched case-insensitively
 * @property {boolean} [refresh] slide the session's idle deadline (default true: a request is
 *   activity)
 * @property {string} [property] property of `req` that receives the session (default `session`)
 */

/**
 * Creates the middleware.
 *
 * - Valid token: `req[property]` is the session (id, username, deadlines, data) and `next()` is
 *   called.
 * - Missing, malformed, unknown or expired token: 401 with
 *   `{"error": {"code": "session_…", "message": "…"}}`; `next` is not called.
 * - sessiond unreachable, timing out or failing (5xx), or refusing the API token: 503 with the
 *   error's code (`sessiond_unreachable`, `timeout`, `storage_unavailable`, `api_token_invalid`, …):
 *   the user's session is not known to be invalid, so this is not a 401. The message is generic:
 *   the error's own message may name sessiond's address.
 * - Anything unexpected (a request that cannot be read): `next(err)`. When `next()` itself throws,
 *   it is not called again: a 500 if nothing was sent yet. The returned promise never rejects.
 *
 * @param {import('./session-manager.js').SessionManager} manager
 * @param {MiddlewareOptions} [options]
 * @returns {(req: any, res: any, next: (err?: unknown) => void) => Promise<void>}
 */
export function createMiddleware(manager, options = {}) {
  const header = (options.header ?? 'session_key').toLowerCase();
  const refresh = options.refresh ?? true;
  const property = options.property ?? 'session';

  // The returned promise never rejects: Express 4 and node:http ignore it, so a rejection would be
  // an unhandled one (which ends the process).
  return async function sessiondMiddleware(req, res, next) {
    let session;
    try {
      const token = req?.headers?.[header];
      if (token === undefined || token === '') {
        sendError(res, 401, 'session_token_missing', `the ${header} header is missing`);
        return;
      }
      if (typeof token !== 'string') {
        sendError(res, 401, 'session_token_malformed', `the ${header} header is not one session token`);
        return;
      }
      try {
        session = await manager.validateSession(token, { refresh });
      } catch (err) {
        const code = typeof err?.code === 'string' ? err.code : 'internal_error';
        if (SESSION_TOKEN_CODES.has(code)) sendError(res, 401, code, err.message);
        // The message of a transport error names sessiond's address: it stays on this side.
        else sendError(res, 503, code, 'the session could not be validated: the session service is unavailable');
        return;
      }
      req[property] = session;
    } catch (err) {
      fail(res, next, err);
      return;
    }
    try {
      next();
    } catch (err) {
      fail(res, next, err, true);
    }
  };
}

/**
 * Reports an unexpected error without throwing: to `next(err)` (Express's error handlers), or as a
 * 500 when headers were not sent yet; an error thrown by next() itself is not handed to it again.
 * @param {any} res
 * @param {unknown} next
 * @param {unknown} err
 * @param {boolean} [fromNext] err was thrown by next()
 */
function fail(res, next, err, fromNext = false) {
  if (!fromNext && typeof next === 'function') {
    try {
      next(err);
      return;
    } catch {
      // Fall through to the 500.
    }
  }
  try {
    if (res && !res.headersSent) sendError(res, 500, 'internal_error', 'internal error');
    else if (res && typeof res.destroy === 'function') res.destroy();
  } catch {
    // Nothing more can be done for this request.
  }
}

/**
 * Answers with the API's error shape.
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {string} code
 * @param {string} message
 */
function sendError(res, status, code, message) {
  const body = JSON.stringify({ error: { code, message } });
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
