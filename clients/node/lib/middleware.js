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
 *   the user's session is not known to be invalid, so this is not a 401.
 *
 * @param {import('./session-manager.js').SessionManager} manager
 * @param {MiddlewareOptions} [options]
 * @returns {(req: any, res: any, next: (err?: unknown) => void) => Promise<void>}
 */
export function createMiddleware(manager, options = {}) {
  const header = (options.header ?? 'session_key').toLowerCase();
  const refresh = options.refresh ?? true;
  const property = options.property ?? 'session';

  return async function sessiondMiddleware(req, res, next) {
    const token = req.headers[header];
    if (token === undefined || token === '') {
      sendError(res, 401, 'session_token_missing', `the ${header} header is missing`);
      return;
    }
    if (typeof token !== 'string') {
      sendError(res, 401, 'session_token_malformed', `the ${header} header is not one session token`);
      return;
    }
    let session;
    try {
      session = await manager.validateSession(token, { refresh });
    } catch (err) {
      const code = typeof err?.code === 'string' ? err.code : 'internal_error';
      if (SESSION_TOKEN_CODES.has(code)) sendError(res, 401, code, err.message);
      else sendError(res, 503, code, err.message ?? 'session validation failed');
      return;
    }
    req[property] = session;
    next();
  };
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
