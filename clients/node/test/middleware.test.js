// The Express-style middleware, mounted on a plain node:http server in front of a real sessiond.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { SessionManager, createMiddleware } from '../index.js';
import { freePort, startSessiond } from '../test-helpers/sessiond.js';

/** @type {import('../test-helpers/sessiond.js').Sessiond} */
let server;
/** @type {SessionManager} */
let sm;
const apps = [];

/**
 * An application server: `middleware`, then a handler answering what it got on req.
 * @param {(req: any, res: any, next: () => void) => unknown} middleware
 * @returns {Promise<{url: string, calls: () => number}>}
 */
async function startApp(middleware, property = 'session') {
  let handled = 0;
  const app = http.createServer((req, res) => {
    middleware(req, res, () => {
      handled++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ session: req[property] }));
    });
  });
  await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve));
  apps.push(app);
  return { url: `http://127.0.0.1:${app.address().port}`, calls: () => handled };
}

/**
 * @param {string} url
 * @param {Record<string, string>} [headers]
 * @returns {Promise<{status: number, contentType: string, body: any}>}
 */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, contentType: res.headers['content-type'], body: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
}

before(async () => {
  server = await startSessiond();
  sm = new SessionManager({ url: server.url });
});

after(async () => {
  for (const app of apps) app.close();
  await sm?.close();
  await server?.dispose();
});

describe('middleware', () => {
  test('a valid token in session_key: next() is called with req.session set, and the session slides', async () => {
    const app = await startApp(sm.middleware());
    const created = await sm.createSession('ada', { data: { role: 'admin' } });
    const before = await sm.getSessionDetails(created.token);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const answer = await get(app.url, { session_key: created.token });
    assert.equal(answer.status, 200);
    assert.equal(app.calls(), 1);
    assert.equal(answer.body.session.id, created.id);
    assert.equal(answer.body.session.username, 'ada');
    assert.deepEqual(answer.body.session.data, { role: 'admin' });
    assert.ok(Date.parse(answer.body.session.idleExpiresAt) > Date.parse(before.idleExpiresAt));
  });

  test('missing, malformed, unknown and logged-out tokens: 401 JSON with the code, next() not called', async () => {
    const app = await startApp(sm.middleware());
    const created = await sm.createSession('bea');
    await sm.deleteSession(created.token);
    const cases = [
      [{}, 'session_token_missing'],
      [{ session_key: '' }, 'session_token_missing'],
      [{ session_key: 'garbage' }, 'session_token_malformed'],
      [{ session_key: `usm_AAA${'z'.repeat(40)}` }, 'session_unknown'],
      [{ session_key: created.token }, 'session_unknown'],
      // The token in another header is not looked at.
      [{ 'session-token': created.token }, 'session_token_missing'],
    ];
    for (const [headers, code] of cases) {
      const answer = await get(app.url, headers);
      assert.equal(answer.status, 401, code);
      assert.match(answer.contentType, /^application\/json/);
      assert.equal(answer.body.error.code, code);
      assert.equal(typeof answer.body.error.message, 'string');
    }
    assert.equal(app.calls(), 0);
  });

  test('an expired session: 401 session_expired', async () => {
    const app = await startApp(sm.middleware());
    const created = await sm.createSession('cid', { idleTimeout: 2 });
    await new Promise((resolve) => setTimeout(resolve, 2300));
    const answer = await get(app.url, { session_key: created.token });
    assert.equal(answer.status, 401);
    assert.equal(answer.body.error.code, 'session_expired');
    assert.equal(app.calls(), 0);
  });

  test('a configurable header, property and refresh=false', async () => {
    const app = await startApp(createMiddleware(sm, { header: 'X-Session', property: 'user_session', refresh: false }), 'user_session');
    const created = await sm.createSession('dan');
    const before = await sm.getSessionDetails(created.token);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const answer = await get(app.url, { 'x-session': created.token });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.session.username, 'dan');
    assert.equal(answer.body.session.idleExpiresAt, before.idleExpiresAt);
    const missing = await get(app.url, { session_key: created.token });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, 'session_token_missing');
  });

  test('sessiond unreachable: 503 with sessiond_unreachable, not 401, and no address in the body', async () => {
    const port = await freePort();
    const down = new SessionManager({ url: `http://127.0.0.1:${port}`, retries: 0 });
    try {
      const app = await startApp(down.middleware());
      const answer = await get(app.url, { session_key: `usm_${'C'.repeat(43)}` });
      assert.equal(answer.status, 503);
      assert.equal(answer.body.error.code, 'sessiond_unreachable');
      assert.doesNotMatch(JSON.stringify(answer.body), new RegExp(`127\\.0\\.0\\.1|${port}`));
      assert.equal(app.calls(), 0);
    } finally {
      await down.close();
    }
  });

  test('the returned promise never rejects: next() throwing, headers missing, a response that throws', async () => {
    const rejections = [];
    const onRejection = (reason) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      const created = await sm.createSession('eve');
      const middleware = sm.middleware();
      const res = () => {
        const sent = { status: 0, body: '', headersSent: false };
        return {
          sent,
          get headersSent() {
            return sent.headersSent;
          },
          set statusCode(value) {
            sent.status = value;
          },
          setHeader() {},
          end(body) {
            sent.headersSent = true;
            sent.body = body;
          },
        };
      };
      // next() throws: it is not called again with the error (the handler would run twice); a 500.
      const nextCalls = [];
      const first = res();
      const result = middleware({ headers: { session_key: created.token } }, first, (err) => {
        nextCalls.push(err);
        throw new Error('handler bug');
      });
      assert.equal(await result, undefined);
      assert.deepEqual(nextCalls, [undefined]);
      assert.equal(first.sent.status, 500);
      assert.doesNotMatch(first.sent.body, /handler bug/);

      // No req.headers: a 401; a request whose headers throw: next(err).
      const bare = res();
      await middleware({}, bare, () => assert.fail('next() called without a token'));
      assert.equal(bare.sent.status, 401);
      const errors = [];
      const weird = {
        get headers() {
          throw new Error('bad request object');
        },
      };
      await middleware(weird, res(), (err) => errors.push(err));
      assert.equal(errors.length, 1);
      assert.equal(errors[0].message, 'bad request object');

      // Sending the 401 throws (headers already sent), and next(err) throws too: nothing escapes.
      const broken = {
        headersSent: true,
        setHeader() {
          throw new Error('ERR_HTTP_HEADERS_SENT');
        },
        end() {},
        destroy() {},
      };
      await middleware({ headers: {} }, broken, () => {
        throw new Error('next throws');
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(rejections, []);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });
});
