// Bad input: what the client can refuse by itself is refused with a validation code and no request
// is sent (the client points at a server that records every request it gets).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SessionManager, SessiondError } from '../index.js';
import { startRecordingServer } from '../test-helpers/servers.js';

/** @type {Awaited<ReturnType<typeof startRecordingServer>>} */
let recorder;
/** @type {SessionManager} */
let sm;
const WELL_FORMED = `usm_${'A'.repeat(43)}`;

before(async () => {
  recorder = await startRecordingServer();
  sm = new SessionManager({ url: recorder.url });
});

after(async () => {
  await sm?.close();
  await recorder?.close();
});

/** @param {string} code @returns {(err: unknown) => boolean} a validation error with this code */
const refused = (code) => (err) => err instanceof SessiondError && err.code === code && err.status === undefined;

describe('refused without a request', () => {
  test('non-string keys reject with invalid_argument, for every method that takes a key', async () => {
    for (const key of [undefined, null, 42, {}, ['usm_x'], Symbol('k'), 10n]) {
      await assert.rejects(sm.checkSessionStatus(key), refused('invalid_argument'));
      await assert.rejects(sm.restartSessionTimer(key), refused('invalid_argument'));
      await assert.rejects(sm.getSessionDetails(key), refused('invalid_argument'));
      await assert.rejects(sm.getUsernameFromSessionKey(key), refused('invalid_argument'));
      await assert.rejects(sm.deleteSession(key), refused('invalid_argument'));
      await assert.rejects(sm.setSessionData(key, {}), refused('invalid_argument'));
      await assert.rejects(sm.getSessionData(key), refused('invalid_argument'));
      await assert.rejects(sm.validateSession(key), refused('invalid_argument'));
    }
    assert.equal(recorder.requests.length, 0);
  });

  test('strings that are not tokens: false for boolean methods, session_token_malformed otherwise', async () => {
    for (const key of ['', 'abc', `${WELL_FORMED}x`, `usm_${'A'.repeat(42)}\n`, `usm_${'A'.repeat(42)}=`, `USM_${'A'.repeat(43)}`]) {
      assert.equal(await sm.checkSessionStatus(key), false);
      assert.equal(await sm.restartSessionTimer(key), false);
      assert.equal(await sm.getSessionDetails(key), false);
      assert.equal(await sm.getUsernameFromSessionKey(key), false);
      assert.equal(await sm.deleteSession(key), false);
      assert.equal(await sm.rotateSession(key), false);
      await assert.rejects(sm.setSessionData(key, {}), refused('session_token_malformed'));
      await assert.rejects(sm.getSessionData(key), refused('session_token_malformed'));
    }
    assert.equal(recorder.requests.length, 0);
  });

  test('bad usernames reject with invalid_username', async () => {
    for (const username of ['', undefined, null, 7, {}, 'a\nb', 'tab\there', 'x'.repeat(257), 'é'.repeat(129), 'lone\ud800']) {
      await assert.rejects(sm.loadNewSession(username), refused('invalid_username'));
      await assert.rejects(sm.revokeUserSessions(username), refused('invalid_username'));
    }
    assert.equal(recorder.requests.length, 0);
  });

  test('data that is not JSON-serialisable rejects with invalid_data', async () => {
    const cycle = { name: 'loop' };
    cycle.self = cycle;
    const bad = [10n, { big: 1n }, cycle, [cycle], () => 1, Symbol('s')];
    for (const data of bad) {
      await assert.rejects(sm.loadNewSession('ada', { data }), refused('invalid_data'));
      await assert.rejects(sm.setSessionData(WELL_FORMED, data), refused('invalid_data'));
    }
    assert.equal(recorder.requests.length, 0);
  });

  test('bad durations and options reject with invalid_timeout or invalid_argument', async () => {
    for (const idleTimeout of [1, 0, -5, Number.NaN, Infinity, '60', null]) {
      await assert.rejects(sm.loadNewSession('ada', { idleTimeout }), refused('invalid_timeout'));
      await assert.rejects(sm.loadNewSession('ada', { maxLifetime: idleTimeout }), refused('invalid_timeout'));
    }
    await assert.rejects(sm.loadNewSession('ada', 'options'), refused('invalid_argument'));
    for (const pageSize of [0, 1001, 2.5, '10']) {
      await assert.rejects(sm.getLoggedUsers({ pageSize }), refused('invalid_argument'));
    }
    await assert.rejects(sm.revokeSession('not-an-id'), refused('invalid_argument'));
    await assert.rejects(sm.revokeSession(12), refused('invalid_argument'));
    assert.equal(recorder.requests.length, 0);
  });

  test('setSessionTimeOut is false for values the client refuses, without a request', async () => {
    for (const seconds of [1, 0, -1, Number.NaN, Infinity, '60', null, undefined]) {
      assert.equal(await sm.setSessionTimeOut(seconds), false);
    }
    assert.equal(recorder.requests.length, 0);
  });

  test('bad constructor options throw at once', () => {
    const invalid = (err) => err instanceof SessiondError && err.code === 'invalid_argument';
    assert.throws(() => new SessionManager({ url: 'not a url' }), invalid);
    assert.throws(() => new SessionManager({ url: 'ftp://127.0.0.1' }), invalid);
    assert.throws(() => new SessionManager({ url: 'http://127.0.0.1:1/?token=x' }), invalid);
    assert.throws(() => new SessionManager({ apiToken: 'with\nnewline' }), invalid);
    assert.throws(() => new SessionManager({ apiToken: '' }), invalid);
    assert.throws(() => new SessionManager({ adminToken: 'with\nnewline' }), invalid);
    assert.throws(() => new SessionManager({ adminToken: '' }), invalid);
    assert.throws(() => new SessionManager({ timeout: 0 }), invalid);
    assert.throws(() => new SessionManager({ retries: -1 }), invalid);
    assert.throws(() => new SessionManager({ maxSockets: 1.5 }), invalid);
    // sessiond closes connections idle for 30 s: the client must close them first.
    assert.throws(() => new SessionManager({ keepAliveTimeout: 30_000 }), invalid);
    assert.throws(() => new SessionManager({ keepAliveTimeout: 60_000 }), invalid);
    new SessionManager({ keepAliveTimeout: 29_999 }).close();
  });
});

describe('what is sent', () => {
  test('valid input reaches the server with the token in the Session-Token header only', async () => {
    const before = recorder.requests.length;
    // The recording server answers 404 not_found: not a session answer, so the call rejects.
    await assert.rejects(sm.setSessionData(WELL_FORMED, { a: [1, 'two'] }), (err) => err.code === 'not_found' && err.status === 404);
    const sent = recorder.requests.slice(before);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].method, 'PUT');
    assert.equal(sent[0].url, '/v1/session/data');
    assert.equal(sent[0].headers['session-token'], WELL_FORMED);
    assert.equal(sent[0].headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(sent[0].body), { data: { a: [1, 'two'] } });
    assert.equal(sent[0].url.includes(WELL_FORMED), false);
  });
});
