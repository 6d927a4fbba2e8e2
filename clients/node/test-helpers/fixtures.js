/**
 * Test helpers: sample sessiond answers for scripted servers, and managers closed together.
 */
import { SessionManager } from '../index.js';

/** A well-formed session token. */
export const SAMPLE_TOKEN = `usm_${'B'.repeat(43)}`;

/** A session as sessiond describes one (`GET /v1/session`). */
export const SAMPLE_SESSION = Object.freeze({
  id: 'A'.repeat(22),
  username: 'ada',
  createdAt: '2026-01-01T00:00:00.000Z',
  lastSeenAt: '2026-01-01T00:00:00.000Z',
  idleExpiresAt: '2026-01-01T01:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
  idleTimeout: 3600,
});

/**
 * Managers a test file creates, closed together in its `after` hook.
 * @returns {{manager: (options: ConstructorParameters<typeof SessionManager>[0]) => SessionManager, closeAll: () => Promise<void>}}
 */
export function managerPool() {
  /** @type {SessionManager[]} */
  const managers = [];
  return {
    manager(options) {
      const sm = new SessionManager(options);
      managers.push(sm);
      return sm;
    },
    async closeAll() {
      for (const sm of managers.splice(0)) await sm.close();
    },
  };
}
