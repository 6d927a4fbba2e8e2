/**
 * sessiond client for Node.js: the API of the Node library `users-session-manager`, answered by
 * sessiond over HTTP (every method returns a Promise).
 */
export { SessionManager } from './lib/session-manager.js';
export { SessiondError } from './lib/errors.js';
export { createMiddleware } from './lib/middleware.js';
