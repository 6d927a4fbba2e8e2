// sessiond unreachable, stopped and started again: calls reject with a clear code while it is down
// and work again after; the event stream reconnects with Last-Event-ID and loses no event, and
// reports a `resync` when sessiond cannot replay (a restart).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SessionManager } from '../index.js';
import { freePort, startSessiond } from '../test-helpers/sessiond.js';
import { startProxy } from '../test-helpers/servers.js';
import { recordEvents, sleep } from '../test-helpers/wait.js';

const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const FAST_RECONNECT = { minDelay: 50, maxDelay: 300 };

describe('sessiond unreachable', () => {
  test('a closed port rejects at once with sessiond_unreachable, naming the address', async () => {
    const port = await freePort();
    const sm = new SessionManager({ url: `http://127.0.0.1:${port}` });
    cleanups.push(() => sm.close());
    const unreachable = (err) => err.code === 'sessiond_unreachable' && err.status === undefined && err.message.includes(`127.0.0.1:${port}`);
    await assert.rejects(sm.checkSessionStatus(`usm_${'A'.repeat(43)}`), unreachable);
    await assert.rejects(sm.loadNewSession('ada'), unreachable);
    await assert.rejects(sm.getLoggedUsers(), unreachable);
  });
});

describe('the event stream resumes after a dropped connection', () => {
  test('events that happen while the connection is down arrive after it, in order, without resync', async () => {
    const server = await startSessiond();
    cleanups.push(() => server.dispose());
    const proxy = await startProxy(server.port);
    cleanups.push(() => proxy.close());
    const watcher = new SessionManager({ url: proxy.url, events: FAST_RECONNECT });
    const direct = new SessionManager({ url: server.url });
    cleanups.push(() => watcher.close(), () => direct.close());
    const recorder = recordEvents(watcher, ['sessionCreated', 'sessionDeleted', 'resync', 'streamError']);
    await watcher.ready();

    const first = await direct.createSession('before-cut');
    await recorder.until(() => recorder.of('sessionCreated').some((e) => e.id === first.id), 5000, 'the first event');

    await proxy.cut();
    await recorder.until(() => recorder.of('streamError').length > 0, 5000, 'the stream to notice the cut');
    // While the watcher cannot reach sessiond:
    const during = [await direct.createSession('during-1'), await direct.createSession('during-2'), await direct.createSession('during-3')];
    assert.equal(await direct.deleteSession(during[1].token), true);
    await sleep(200);
    await proxy.restore();

    await recorder.until(() => recorder.of('sessionDeleted').some((e) => e.id === during[1].id), 8000, 'the missed events');
    const seen = recorder.events
      .filter((e) => e.name === 'sessionCreated' || e.name === 'sessionDeleted')
      .map((e) => `${e.name}:${e.args[0].username}`);
    assert.deepEqual(seen, [
      'sessionCreated:before-cut',
      'sessionCreated:during-1',
      'sessionCreated:during-2',
      'sessionCreated:during-3',
      'sessionDeleted:during-2',
    ]);
    assert.deepEqual(recorder.of('resync'), []);
  });
});

describe('sessiond stopped and started again (SQLite keeps the sessions)', () => {
  test('calls reject with sessiond_unreachable while it is down, then work; the stream resumes with resync', async () => {
    const server = await startSessiond({ storage: 'sqlite', apiToken: true });
    cleanups.push(() => server.dispose());
    const sm = new SessionManager({ url: server.url, apiToken: server.apiToken, events: FAST_RECONNECT, retryDelay: 20 });
    cleanups.push(() => sm.close());
    const recorder = recordEvents(sm, ['sessionCreated', 'sessionDeleted', 'resync', 'streamError']);
    await sm.ready();
    const kept = await sm.createSession('kept', { data: { cart: [1] } });
    const ended = await sm.createSession('ended');
    await recorder.until(() => recorder.of('sessionCreated').length === 2, 5000, 'two sessionCreated');

    await server.stop();
    await recorder.until(() => recorder.of('streamError').length > 0, 5000, 'the stream to notice the stop');
    const unreachable = (err) => err.code === 'sessiond_unreachable';
    await assert.rejects(sm.checkSessionStatus(kept.token), unreachable);
    await assert.rejects(sm.getSessionData(kept.token), unreachable);
    await assert.rejects(sm.setSessionData(kept.token, {}), unreachable);
    await assert.rejects(sm.loadNewSession('while-down'), unreachable);
    await assert.rejects(sm.deleteSession(ended.token), unreachable);

    await server.start();
    // The new run cannot replay from an id of the previous one: the stream says so.
    await recorder.until(() => recorder.of('resync').length === 1, 8000, 'resync after the restart');
    assert.deepEqual(recorder.of('resync'), [{ reason: 'unknown_id' }]);

    assert.equal(await sm.checkSessionStatus(kept.token), true);
    assert.deepEqual(await sm.getSessionData(kept.token), { cart: [1] });
    assert.equal(await sm.deleteSession(ended.token), true);
    const later = await sm.createSession('after-restart');
    await recorder.until(
      () => recorder.of('sessionDeleted').some((e) => e.id === ended.id) && recorder.of('sessionCreated').some((e) => e.id === later.id),
      5000,
      'events after the restart',
    );
    assert.equal(recorder.of('sessionDeleted').find((e) => e.id === ended.id).reason, 'logout');
    assert.deepEqual(recorder.of('resync').length, 1);
  });
});
