// The transport against a scripted server: retries for GET only, timeouts, broken connections,
// answers that are not the API's, keep-alive, and where the tokens go.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { SessionManager } from '../index.js';
import { startRecordingServer } from '../test-helpers/servers.js';
import { SAMPLE_SESSION, SAMPLE_TOKEN } from '../test-helpers/fixtures.js';

const TOKEN = SAMPLE_TOKEN;
const SESSION = SAMPLE_SESSION;

/** How the scripted server answers the next requests. */
let mode = 'ok';
/** @type {Awaited<ReturnType<typeof startRecordingServer>>} */
let server;
/** @type {SessionManager} */
let sm;
const remotePorts = [];

before(async () => {
  server = await startRecordingServer((req, res) => {
    remotePorts.push(res.socket?.remotePort);
    switch (mode) {
      case 'ok':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(SESSION));
        return;
      case '503':
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end('{"error":{"code":"storage_unavailable","message":"storage cannot write"}}');
        return;
      case '503-bare':
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"storage_unavailable","message":"storage cannot write"}}');
        return;
      case '500-html':
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<h1>oops</h1>');
        return;
      case 'not-json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id": ');
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'reset-first':
        if (server.requests.length === 1) res.socket?.destroy();
        else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(SESSION));
        }
        return;
      case 'cut-body':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
        res.write('{"id":"');
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      case 'hang':
        return; // never answers
      default:
        throw new Error(`unknown mode ${mode}`);
    }
  });
  sm = new SessionManager({ url: server.url, timeout: 300, retries: 2, retryDelay: 10 });
});

beforeEach(() => {
  server.requests.length = 0;
  remotePorts.length = 0;
  mode = 'ok';
});

after(async () => {
  await sm?.close();
  await server?.close();
});

describe('retries', () => {
  test('a GET answered 503 is tried 1 + retries times, then rejects with sessiond\'s code', async () => {
    mode = '503-bare';
    await assert.rejects(sm.checkSessionStatus(TOKEN), (err) => err.code === 'storage_unavailable' && err.status === 503);
    assert.equal(server.requests.length, 3);
    assert.ok(server.requests.every((r) => r.method === 'GET'));
  });

  test('a GET answered 503 with a Retry-After beyond its time budget is not retried', async () => {
    // timeout 300 ms, retries 2: a budget of 900 ms, and Retry-After asks for 1 s.
    mode = '503';
    const started = Date.now();
    await assert.rejects(sm.checkSessionStatus(TOKEN), (err) => err.code === 'storage_unavailable' && err.status === 503 && err.retryAfter === 1);
    assert.equal(server.requests.length, 1);
    assert.ok(Date.now() - started < 500);
  });

  test('a GET answered 503 with a Retry-After within its time budget waits that long', async () => {
    mode = '503';
    const patient = new SessionManager({ url: server.url, timeout: 1000, retries: 1, retryDelay: 10 });
    try {
      const started = Date.now();
      await assert.rejects(patient.checkSessionStatus(TOKEN), (err) => err.code === 'storage_unavailable' && err.retryAfter === 1);
      assert.equal(server.requests.length, 2);
      assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms`);
    } finally {
      await patient.close();
    }
  });

  test('writes answered 503 are sent once', async () => {
    mode = '503';
    await assert.rejects(sm.loadNewSession('ada'), (err) => err.code === 'storage_unavailable');
    await assert.rejects(sm.setSessionData(TOKEN, { a: 1 }), (err) => err.code === 'storage_unavailable');
    await assert.rejects(sm.deleteSession(TOKEN), (err) => err.code === 'storage_unavailable');
    await assert.rejects(sm.setSessionTimeOut(60), (err) => err.code === 'storage_unavailable');
    await assert.rejects(sm.deleteAllSessions(), (err) => err.code === 'storage_unavailable');
    assert.deepEqual(
      server.requests.map((r) => r.method),
      ['POST', 'PUT', 'DELETE', 'PATCH', 'DELETE'],
    );
  });

  test('a connection broken before the answer: GET retried, writes not, code connection_lost', async () => {
    // A new client, so that the first attempt opens a new connection: on a reused one, a GET whose
    // connection closes before any byte of the answer is also sent once more at once (see
    // connection-pool.test.js), which would add a request here.
    const fresh = new SessionManager({ url: server.url, timeout: 300, retries: 2, retryDelay: 10 });
    try {
      mode = 'reset';
      await assert.rejects(fresh.getSessionDetails(TOKEN), (err) => err.code === 'connection_lost');
      assert.equal(server.requests.length, 3);
      server.requests.length = 0;
      await assert.rejects(fresh.loadNewSession('ada'), (err) => err.code === 'connection_lost');
      assert.equal(server.requests.length, 1);
    } finally {
      await fresh.close();
    }
  });

  test('a GET that recovers on a retry succeeds', async () => {
    mode = 'reset-first';
    assert.equal(await sm.getUsernameFromSessionKey(TOKEN), 'ada');
    assert.equal(server.requests.length, 2);
  });
});

describe('failures', () => {
  test('no answer within the timeout rejects with timeout, without retrying', async () => {
    mode = 'hang';
    const started = Date.now();
    await assert.rejects(sm.checkSessionStatus(TOKEN), (err) => err.code === 'timeout' && /within 300 ms/.test(err.message));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 280 && elapsed < 1500, `took ${elapsed} ms`);
    assert.equal(server.requests.length, 1);
  });

  test('an answer cut in the middle rejects with connection_lost', async () => {
    mode = 'cut-body';
    await assert.rejects(sm.loadNewSession('ada'), (err) => err.code === 'connection_lost');
  });

  test('a 5xx without the API error shape rejects with server_error and the status', async () => {
    mode = '500-html';
    await assert.rejects(sm.getSessionTimeout(), (err) => err.code === 'server_error' && err.status === 500);
    await assert.rejects(sm.checkSessionStatus(TOKEN), (err) => err.code === 'server_error');
  });

  test('a 2xx body that is not JSON rejects with invalid_response', async () => {
    mode = 'not-json';
    await assert.rejects(sm.getSessionDetails(TOKEN), (err) => err.code === 'invalid_response' && err.status === 200);
  });
});

describe('connections and headers', () => {
  test('sequential calls reuse one keep-alive connection', async () => {
    for (let i = 0; i < 5; i++) assert.equal(await sm.checkSessionStatus(TOKEN), true);
    assert.equal(new Set(remotePorts).size, 1);
    assert.match(server.requests[0].headers.connection ?? '', /keep-alive/i);
  });

  test('close() closes every pooled connection', async () => {
    const pooled = new SessionManager({ url: server.url });
    const baseline = server.openConnections;
    await Promise.all(Array.from({ length: 4 }, () => pooled.checkSessionStatus(TOKEN)));
    assert.ok(server.openConnections >= baseline + 2, `${server.openConnections} open after concurrent calls`);
    await pooled.close();
    const deadline = Date.now() + 2000;
    while (server.openConnections > baseline && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(server.openConnections, baseline);
  });

  test('an idle keep-alive connection is closed after keepAliveTimeout', async () => {
    const idle = new SessionManager({ url: server.url, keepAliveTimeout: 200 });
    try {
      const baseline = server.openConnections;
      assert.equal(await idle.checkSessionStatus(TOKEN), true);
      assert.equal(server.openConnections, baseline + 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(server.openConnections, baseline + 1, 'still open before the timeout');
      const deadline = Date.now() + 2000;
      while (server.openConnections > baseline && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(server.openConnections, baseline, 'closed after the timeout');
      assert.equal(await idle.checkSessionStatus(TOKEN), true, 'a new connection is opened');
    } finally {
      await idle.close();
    }
  });

  test('session tokens go in Session-Token, the API token in Authorization, neither in the URL', async () => {
    const withToken = new SessionManager({ url: server.url, apiToken: 'api-secret' });
    try {
      assert.equal(await withToken.checkSessionStatus(TOKEN), true);
      assert.equal(await withToken.restartSessionTimer(TOKEN), true);
    } finally {
      await withToken.close();
    }
    assert.equal(server.requests.length, 2);
    const [check, refresh] = server.requests;
    assert.equal(check.url, '/v1/session?refresh=false');
    assert.equal(refresh.url, '/v1/session');
    for (const request of server.requests) {
      assert.equal(request.headers['session-token'], TOKEN);
      assert.equal(request.headers.authorization, 'Bearer api-secret');
      assert.equal(request.url.includes(TOKEN) || request.url.includes('api-secret'), false);
    }
  });

  test('a url with a path prefix is kept in front of every route', async () => {
    const prefixed = new SessionManager({ url: `${server.url}/sessiond/` });
    try {
      assert.equal(await prefixed.checkSessionStatus(TOKEN), true);
    } finally {
      await prefixed.close();
    }
    assert.equal(server.requests[0].url, '/sessiond/v1/session?refresh=false');
  });
});
