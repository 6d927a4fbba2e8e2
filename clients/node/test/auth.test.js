// sessiond with an API token: the right token works (calls and event stream), a wrong or missing
// one rejects every call with sessiond's code (never a plain false), and the token never appears in
// what the client shows.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { startSessiond } from '../test-helpers/sessiond.js';
import { managerPool } from '../test-helpers/fixtures.js';
import { recordEvents } from '../test-helpers/wait.js';

/** @type {import('../test-helpers/sessiond.js').Sessiond} */
let server;
const { manager, closeAll } = managerPool();

before(async () => {
  server = await startSessiond({ apiToken: true });
});

after(async () => {
  await closeAll();
  await server?.dispose();
});

describe('with an API token', () => {
  test('the right token: login, validation, data, events, logout', async () => {
    const sm = manager({ url: server.url, apiToken: server.apiToken });
    const recorder = recordEvents(sm, ['sessionCreated', 'sessionDeleted']);
    await sm.ready();
    const created = await sm.createSession('ada', { data: { n: 1 } });
    assert.equal(await sm.checkSessionStatus(created.token), true);
    assert.deepEqual(await sm.getSessionData(created.token), { n: 1 });
    assert.deepEqual(await sm.getLoggedUsers(), ['ada']);
    assert.equal(await sm.deleteSession(created.token), true);
    await recorder.until(() => recorder.of('sessionDeleted').some((e) => e.id === created.id && e.reason === 'logout'), 5000, 'the logout event');
    assert.ok(recorder.of('sessionCreated').some((e) => e.id === created.id));
  });

  test('a wrong token rejects every method with api_token_invalid (403), booleans included', async () => {
    const good = manager({ url: server.url, apiToken: server.apiToken });
    const key = await good.loadNewSession('bea');
    const sm = manager({ url: server.url, apiToken: 'not-the-token' });
    const isInvalid = (err) => err.code === 'api_token_invalid' && err.status === 403;
    await assert.rejects(sm.checkSessionStatus(key), isInvalid);
    await assert.rejects(sm.restartSessionTimer(key), isInvalid);
    await assert.rejects(sm.getSessionDetails(key), isInvalid);
    await assert.rejects(sm.getUsernameFromSessionKey(key), isInvalid);
    await assert.rejects(sm.deleteSession(key), isInvalid);
    await assert.rejects(sm.loadNewSession('bea'), isInvalid);
    await assert.rejects(sm.setSessionData(key, 1), isInvalid);
    await assert.rejects(sm.getSessionData(key), isInvalid);
    await assert.rejects(sm.getLoggedUsers(), isInvalid);
    await assert.rejects(sm.deleteAllSessions(), isInvalid);
    await assert.rejects(sm.setSessionTimeOut(60), isInvalid);
    await assert.rejects(sm.getSessionTimeout(), isInvalid);
    // Nothing happened to the session.
    assert.equal(await good.checkSessionStatus(key), true);
  });

  test('a wrong token makes ready() reject, and the stream stops retrying', async () => {
    const sm = manager({ url: server.url, apiToken: 'not-the-token', events: { minDelay: 20, maxDelay: 50 } });
    const errors = [];
    sm.on('streamError', (err) => errors.push(err.code));
    sm.on('sessionDeleted', () => {});
    await assert.rejects(sm.ready(), (err) => err.code === 'api_token_invalid' && err.status === 403);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(errors, ['api_token_invalid']);
  });

  test('no token rejects with api_token_missing (401), not false', async () => {
    const good = manager({ url: server.url, apiToken: server.apiToken });
    const key = await good.loadNewSession('cid');
    const sm = manager({ url: server.url });
    await assert.rejects(sm.checkSessionStatus(key), (err) => err.code === 'api_token_missing' && err.status === 401);
    await assert.rejects(sm.deleteSession(key), (err) => err.code === 'api_token_missing');
    await assert.rejects(sm.ready(), (err) => err.code === 'api_token_missing');
    assert.equal(await good.checkSessionStatus(key), true);
  });

  test('the API token and session tokens never show in the client or its errors', async () => {
    const sm = manager({ url: server.url, apiToken: server.apiToken });
    const key = await sm.loadNewSession('dan');
    const shown = inspect(sm, { depth: 10, showHidden: true });
    assert.equal(shown.includes(server.apiToken), false);
    const wrong = manager({ url: server.url, apiToken: 'secret-wrong-token' });
    const err = await wrong.checkSessionStatus(key).catch((e) => e);
    const text = `${err.message} ${inspect(err, { depth: 10 })}`;
    assert.equal(text.includes('secret-wrong-token'), false);
    assert.equal(text.includes(key), false);
  });
});
