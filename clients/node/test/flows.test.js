// The Node library's README flows against a real sessiond (no API token): login, validate before
// every call, session data, logout; the configuration; getLoggedUsers over several pages.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SessionManager, SessiondError } from '../index.js';
import { startSessiond } from '../test-helpers/sessiond.js';
import { startRecordingServer } from '../test-helpers/servers.js';

/** @type {import('../test-helpers/sessiond.js').Sessiond} */
let server;
/** @type {SessionManager} */
let sm;

before(async () => {
  server = await startSessiond();
  sm = new SessionManager({ url: server.url });
});

after(async () => {
  await sm?.close();
  await server?.dispose();
});

describe('login, validate, data, logout', () => {
  test('a session lives from loadNewSession to deleteSession', async () => {
    const key = await sm.loadNewSession('Luca', { data: { theme: 'dark' } });
    assert.match(key, /^usm_[A-Za-z0-9_-]{43}$/);

    // Validate before every call.
    assert.equal(await sm.checkSessionStatus(key), true);
    assert.equal(await sm.getUsernameFromSessionKey(key), 'Luca');
    const details = await sm.getSessionDetails(key);
    assert.equal(details.username, 'Luca');
    assert.match(details.id, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(details.data, { theme: 'dark' });
    assert.equal('token' in details, false);

    // Data.
    assert.deepEqual(await sm.getSessionData(key), { theme: 'dark' });
    assert.equal(await sm.setSessionData(key, { actions: ['logged in', 'opened table'] }), true);
    assert.deepEqual(await sm.getSessionData(key), { actions: ['logged in', 'opened table'] });
    assert.equal(await sm.setSessionData(key, null), true);
    assert.equal(await sm.getSessionData(key), null);
    assert.equal(await sm.setSessionData(key, undefined), true);
    assert.equal(await sm.getSessionData(key), null);

    // Logout.
    assert.equal(await sm.deleteSession(key), true);
    assert.equal(await sm.deleteSession(key), false);
    assert.equal(await sm.checkSessionStatus(key), false);
    assert.equal(await sm.restartSessionTimer(key), false);
    assert.equal(await sm.getSessionDetails(key), false);
    assert.equal(await sm.getUsernameFromSessionKey(key), false);
    await assert.rejects(sm.getSessionData(key), (err) => err instanceof SessiondError && err.code === 'session_unknown' && err.status === 401);
    await assert.rejects(sm.setSessionData(key, { a: 1 }), (err) => err.code === 'session_unknown' && err.status === 401);
  });

  test('checkSessionStatus does not slide the idle deadline; restartSessionTimer does', async () => {
    const key = await sm.loadNewSession('Fabio', { idleTimeout: 60 });
    const first = await sm.getSessionDetails(key);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(await sm.checkSessionStatus(key), true);
    const checked = await sm.getSessionDetails(key);
    assert.equal(checked.idleExpiresAt, first.idleExpiresAt);
    assert.equal(checked.lastSeenAt, first.lastSeenAt);
    assert.equal(await sm.restartSessionTimer(key), true);
    const slid = await sm.getSessionDetails(key);
    assert.ok(Date.parse(slid.idleExpiresAt) > Date.parse(first.idleExpiresAt), 'restartSessionTimer slid the deadline');
    assert.equal(slid.idleTimeout, 60);
    await sm.deleteSession(key);
  });

  test('an unknown, well-formed token is false for every boolean method and never throws', async () => {
    const unknown = `usm_AAA${'x'.repeat(40)}`;
    assert.equal(await sm.checkSessionStatus(unknown), false);
    assert.equal(await sm.restartSessionTimer(unknown), false);
    assert.equal(await sm.getSessionDetails(unknown), false);
    assert.equal(await sm.getUsernameFromSessionKey(unknown), false);
    assert.equal(await sm.deleteSession(unknown), false);
    assert.equal(await sm.rotateSession(unknown), false);
  });

  test('rotateSession issues a new token for the same session', async () => {
    const key = await sm.loadNewSession('Rita', { data: [1, 2] });
    const { id } = await sm.getSessionDetails(key);
    const rotated = await sm.rotateSession(key);
    assert.match(rotated, /^usm_/);
    assert.notEqual(rotated, key);
    assert.equal(await sm.checkSessionStatus(key), false);
    const details = await sm.getSessionDetails(rotated);
    assert.equal(details.id, id);
    assert.deepEqual(details.data, [1, 2]);
    assert.equal(await sm.revokeSession(id), true);
    assert.equal(await sm.revokeSession(id), false);
  });

  test('data above sessiond\'s cap is refused with its code', async () => {
    const key = await sm.loadNewSession('Big');
    await assert.rejects(sm.setSessionData(key, 'x'.repeat(20_000)), (err) => err.code === 'data_too_large' && err.status === 413);
    await sm.deleteSession(key);
  });
});

describe('configuration', () => {
  test('setSessionTimeOut changes getSessionTimeout and the idle timeout of new sessions', async () => {
    const before = await sm.getSessionTimeout();
    assert.equal(typeof before, 'number');
    assert.equal(await sm.setSessionTimeOut(123), true);
    assert.equal(await sm.getSessionTimeout(), 123);
    const key = await sm.loadNewSession('Gino');
    assert.equal((await sm.getSessionDetails(key)).idleTimeout, 123);
    assert.equal(await sm.setSessionTimeOut(before), true);
    assert.equal(await sm.getSessionTimeout(), before);
    await sm.deleteSession(key);
  });

  test('setSessionTimeOut is false for a value sessiond refuses, and changes nothing', async () => {
    const current = await sm.getSessionTimeout();
    // Above sessiond's 10-year bound: the client lets it through, sessiond answers invalid_timeout.
    assert.equal(await sm.setSessionTimeOut(400_000_000), false);
    assert.equal(await sm.setSessionTimeOut(1), false);
    assert.equal(await sm.setSessionTimeOut('600'), false);
    assert.equal(await sm.getSessionTimeout(), current);
  });
});

describe('users', () => {
  test('getLoggedUsers follows every page and lists each user once', async () => {
    assert.equal(typeof (await sm.deleteAllSessions()), 'number');
    const names = Array.from({ length: 25 }, (_, i) => `user-${String(i).padStart(2, '0')}@example.com`);
    const keys = [];
    for (const name of names) keys.push(await sm.loadNewSession(name));
    // Second sessions for some users: still one entry each.
    for (const name of names.slice(0, 5)) keys.push(await sm.loadNewSession(name));

    const paged = await sm.getLoggedUsers({ pageSize: 10 }); // 3 pages
    assert.equal(paged.length, 25);
    assert.deepEqual([...paged].sort(), names);
    const whole = await sm.getLoggedUsers();
    assert.deepEqual([...whole].sort(), names);

    assert.equal(await sm.revokeUserSessions(names[0]), 2);
    assert.equal((await sm.getLoggedUsers({ pageSize: 7 })).length, 24);

    assert.equal(await sm.deleteAllSessions(), keys.length - 2);
    assert.deepEqual(await sm.getLoggedUsers(), []);
    assert.equal(await sm.checkSessionStatus(keys[3]), false);
  });

  test('revokeUserSessions of the users "." and "..": dots percent-encoded, the user route is hit', async () => {
    const dot = await sm.loadNewSession('.');
    const dotDot = [await sm.loadNewSession('..'), await sm.loadNewSession('..')];
    const other = await sm.loadNewSession('other');
    assert.equal(await sm.revokeUserSessions('..'), 2);
    assert.equal(await sm.checkSessionStatus(dotDot[0]), false);
    assert.equal(await sm.checkSessionStatus(dot), true);
    assert.equal(await sm.revokeUserSessions('.'), 1);
    assert.equal(await sm.checkSessionStatus(dot), false);
    assert.equal(await sm.checkSessionStatus(other), true);
    assert.equal(await sm.revokeUserSessions('..'), 0);
    // What goes on the wire: no dot segment that a proxy or URL normaliser would resolve away.
    const recorder = await startRecordingServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"deleted":0}');
    });
    const spy = new SessionManager({ url: recorder.url });
    try {
      await spy.revokeUserSessions('..');
      await spy.revokeUserSessions('.');
      await spy.revokeUserSessions('a.b');
      assert.deepEqual(recorder.requests.map((r) => r.url), ['/v1/users/%2E%2E/sessions', '/v1/users/%2E/sessions', '/v1/users/a.b/sessions']);
    } finally {
      await spy.close();
      await recorder.close();
    }
  });
});
