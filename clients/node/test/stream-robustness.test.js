// Robustness of the event stream: resync after a reconnection without an event id, ready() with a
// timeout while sessiond is unreachable, event ids that cannot be sent back, and 200 answers that
// are not an event stream.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SessionManager } from '../index.js';
import { freePort, startSessiond } from '../test-helpers/sessiond.js';
import { startProxy, startRecordingServer } from '../test-helpers/servers.js';
import { recordEvents, sleep } from '../test-helpers/wait.js';

const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const FAST_RECONNECT = { minDelay: 50, maxDelay: 300 };

describe('event stream robustness', () => {
  test('a drop before the first event: the reconnection emits resync(no_event_id)', { timeout: 15_000 }, async () => {
    const server = await startSessiond();
    cleanups.push(() => server.dispose());
    const proxy = await startProxy(server.port);
    cleanups.push(() => proxy.close());
    const watcher = new SessionManager({ url: proxy.url, events: FAST_RECONNECT });
    cleanups.push(() => watcher.close());
    const recorder = recordEvents(watcher, ['sessionCreated', 'resync', 'streamError']);
    await watcher.ready();
    assert.equal(recorder.of('resync').length, 0);

    await proxy.cut();
    await recorder.until(() => recorder.of('streamError').length > 0, 5000, 'the stream to notice the cut');
    await proxy.restore();
    await recorder.until(() => recorder.of('resync').length > 0, 8000, 'resync');
    assert.deepEqual(recorder.of('resync'), [{ reason: 'no_event_id' }]);
    await watcher.ready();
  });

  test('ready({ timeout }) rejects while sessiond is unreachable; a later ready() resolves', { timeout: 15_000 }, async () => {
    const port = await freePort();
    const sm = new SessionManager({ url: `http://127.0.0.1:${port}`, events: FAST_RECONNECT });
    cleanups.push(() => sm.close());
    sm.on('streamError', () => {});
    const started = Date.now();
    await assert.rejects(sm.ready({ timeout: 300 }), (err) => err.code === 'sessiond_unreachable');
    assert.ok(Date.now() - started < 3000);
    await assert.rejects(sm.ready({ timeout: 0 }), (err) => err.code === 'invalid_argument');

    const server = await startSessiond();
    cleanups.push(() => server.dispose());
    const proxy = await startProxy(server.port);
    cleanups.push(() => proxy.close());
    await proxy.cut();
    const late = new SessionManager({ url: proxy.url, events: FAST_RECONNECT });
    cleanups.push(() => late.close());
    late.on('streamError', () => {});
    await assert.rejects(late.ready({ timeout: 300 }), (err) => err.code === 'sessiond_unreachable');
    await proxy.restore();
    await late.ready({ timeout: 5000 });
  });

  test('event ids that cannot go back in Last-Event-ID are ignored, without an uncaught exception', { timeout: 15_000 }, async () => {
    let connections = 0;
    const fake = await startRecordingServer((req, res) => {
      connections += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (connections === 1) {
        res.end(
          ': connected\n\n' +
            'id: good-1\nevent: created\ndata: {"id":"a","username":"u1"}\n\n' +
            'id: bad\u0001id\nevent: created\ndata: {"id":"b","username":"u2"}\n\n' +
            'id: euro\u20ac\nevent: created\ndata: {"id":"c","username":"u3"}\n\n',
        );
      } else {
        res.write(': connected\n\n');
      }
    });
    cleanups.push(() => fake.close());
    const sm = new SessionManager({ url: fake.url, events: FAST_RECONNECT });
    cleanups.push(() => sm.close());
    const recorder = recordEvents(sm, ['sessionCreated', 'streamError', 'resync']);
    await sm.ready();
    for (let i = 0; i < 100 && fake.requests.length < 2; i++) await sleep(50);
    await sleep(100);
    assert.ok(fake.requests.length >= 2, 'it reconnected');
    assert.equal(recorder.of('sessionCreated').length, 3);
    assert.equal(fake.requests[0].headers['last-event-id'], undefined);
    assert.equal(fake.requests[1].headers['last-event-id'], 'good-1');
    assert.equal(recorder.of('resync').length, 0);
  });

  test('a 200 answer that is not text/event-stream does not open the stream', { timeout: 15_000 }, async () => {
    let good = false;
    const fake = await startRecordingServer((req, res) => {
      if (!good) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"hello":"proxy"}\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      res.write(': connected\n\n');
    });
    cleanups.push(() => fake.close());
    const sm = new SessionManager({ url: fake.url, events: FAST_RECONNECT });
    cleanups.push(() => sm.close());
    const recorder = recordEvents(sm, ['streamError']);
    await assert.rejects(sm.ready({ timeout: 500 }), (err) => err.code === 'timeout' && err.cause?.code === 'invalid_response');
    assert.ok(recorder.of('streamError').some((e) => e.code === 'invalid_response'));
    assert.ok(fake.requests.length >= 2, 'it reconnected');
    good = true;
    await sm.ready({ timeout: 5000 });
  });

  test('a stream that opens and drops at once, without an event, keeps backing off', { timeout: 15_000 }, async () => {
    const fake = await startRecordingServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(': connected\n\n');
    });
    cleanups.push(() => fake.close());
    const sm = new SessionManager({ url: fake.url, events: { minDelay: 50, maxDelay: 5000 } });
    cleanups.push(() => sm.close());
    sm.on('streamError', () => {});
    sm.on('resync', () => {});
    await sm.ready();
    await sleep(1500);
    // Backing off: 25-50, 50-100, 100-200, 200-400, 400-800 ms… at most 7 connections in 1.5 s;
    // a backoff reset on every open would reconnect every 25-50 ms (30 or more).
    assert.ok(fake.requests.length <= 8, `${fake.requests.length} connections in 1.5 s`);
    assert.ok(fake.requests.length >= 3, `${fake.requests.length} connections in 1.5 s`);
  });
});
