// sessiond with API tokens and admin tokens (--api-token-file and --admin-token-file): the client
// sends `adminToken` on the administrative calls and `apiToken` on the application calls. With the
// admin token every administrative method works; with the API token alone they reject with
// api_token_insufficient_scope (403), booleans included, and nothing happens; the application
// methods need only the API token; the admin token never shows in errors or in the client. Against
// a recording server: which Authorization header each call carries.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { SessionManager, SessiondError, createMiddleware } from '../index.js';
import { freePort, startSessiond } from '../test-helpers/sessiond.js';
import { managerPool, SAMPLE_SESSION, SAMPLE_TOKEN } from '../test-helpers/fixtures.js';
import { startRecordingServer } from '../test-helpers/servers.js';
import { recordEvents } from '../test-helpers/wait.js';

/** Two API tokens in the API token file (several may be valid at once), one admin token. */
const API_TOKENS = ['api-token-one-0123456789abcdef', 'api-token-two-0123456789abcdef'];

/** @type {import('../test-helpers/sessiond.js').Sessiond} */
let server;
const { manager, closeAll } = managerPool();

/** The client's administrative methods, each called as a test would (`ids`: live sessions to revoke). */
const ADMIN_CALLS = {
  getLoggedUsers: (sm) => sm.getLoggedUsers(),
  getSessionTimeout: (sm) => sm.getSessionTimeout(),
  setSessionTimeOut: (sm) => sm.setSessionTimeOut(1200),
  revokeSession: (sm, ids) => sm.revokeSession(ids.revoke),
  revokeUserSessions: (sm) => sm.revokeUserSessions('scope-user'),
  deleteAllSessions: (sm) => sm.deleteAllSessions(),
};

/** @param {unknown} err */
const insufficientScope = (err) => err instanceof SessiondError && err.code === 'api_token_insufficient_scope' && err.status === 403;

before(async () => {
  server = await startSessiond({ apiToken: API_TOKENS, adminToken: true });
});

after(async () => {
  await closeAll();
  await server?.dispose();
});

describe('with --api-token-file and --admin-token-file', () => {
  test('with adminToken, every administrative method works', async () => {
    const sm = manager({ url: server.url, apiToken: server.apiToken, adminToken: server.adminToken });
    const a = await sm.createSession('admin-a');
    const b = await sm.createSession('admin-b');
    const c1 = await sm.loadNewSession('admin-c');
    const c2 = await sm.loadNewSession('admin-c');
    const d = await sm.loadNewSession('admin-d');

    assert.deepEqual((await sm.getLoggedUsers()).sort(), ['admin-a', 'admin-b', 'admin-c', 'admin-d']);
    assert.deepEqual((await sm.getLoggedUsers({ pageSize: 1 })).sort(), ['admin-a', 'admin-b', 'admin-c', 'admin-d']);

    const before = await sm.getSessionTimeout();
    assert.equal(typeof before, 'number');
    assert.equal(await sm.setSessionTimeOut(900), true);
    assert.equal(await sm.getSessionTimeout(), 900);
    assert.equal(await sm.setSessionTimeOut(before), true);
    assert.equal(await sm.getSessionTimeout(), before);

    assert.equal(await sm.revokeSession(a.id), true);
    assert.equal(await sm.checkSessionStatus(a.token), false);
    assert.equal(await sm.revokeSession(a.id), false, 'no live session has this id any more');
    assert.equal(await sm.checkSessionStatus(b.token), true);

    assert.equal(await sm.revokeUserSessions('admin-c'), 2);
    assert.equal(await sm.checkSessionStatus(c1), false);
    assert.equal(await sm.checkSessionStatus(c2), false);
    assert.equal(await sm.revokeUserSessions('admin-c'), 0);

    assert.equal(await sm.deleteAllSessions(), 2);
    assert.equal(await sm.checkSessionStatus(b.token), false);
    assert.equal(await sm.checkSessionStatus(d), false);
    assert.deepEqual(await sm.getLoggedUsers(), []);
  });

  test('with the API token only, every administrative method rejects with api_token_insufficient_scope, and nothing happens', async () => {
    const admin = manager({ url: server.url, apiToken: server.apiToken, adminToken: server.adminToken });
    const timeout = await admin.getSessionTimeout();
    const target = await admin.createSession('scope-target');
    const other = await admin.createSession('scope-user');
    const ids = { revoke: target.id };

    for (const apiToken of API_TOKENS) {
      const sm = manager({ url: server.url, apiToken });
      // setSessionTimeOut and revokeSession reject too, not false: "not allowed" is neither a
      // refused value nor "no such session".
      for (const [name, call] of Object.entries(ADMIN_CALLS)) {
        await assert.rejects(call(sm, ids), insufficientScope, `${name} with an API token`);
      }
    }

    // Nothing happened: the sessions live, the timeout is unchanged.
    assert.equal(await admin.checkSessionStatus(target.token), true);
    assert.equal(await admin.checkSessionStatus(other.token), true);
    assert.equal(await admin.getSessionTimeout(), timeout);
    assert.deepEqual((await admin.getLoggedUsers()).sort(), ['scope-target', 'scope-user']);
    assert.equal(await admin.deleteAllSessions(), 2);
  });

  test('the application methods and the event stream work with the API token only', async () => {
    for (const apiToken of API_TOKENS) {
      const sm = manager({ url: server.url, apiToken });
      const recorder = recordEvents(sm, ['sessionCreated', 'sessionDeleted']);
      await sm.ready();

      const key = await sm.loadNewSession('app-user', { data: { n: 1 } });
      const created = await sm.createSession('app-user', { idleTimeout: 60 });
      assert.equal(await sm.checkSessionStatus(key), true);
      assert.equal(await sm.restartSessionTimer(key), true);
      assert.equal((await sm.getSessionDetails(key)).username, 'app-user');
      assert.equal(await sm.getUsernameFromSessionKey(key), 'app-user');
      assert.deepEqual(await sm.getSessionData(key), { n: 1 });
      assert.equal(await sm.setSessionData(key, { n: 2 }), true);
      assert.deepEqual(await sm.getSessionData(key), { n: 2 });
      assert.equal((await sm.validateSession(created.token, { refresh: false })).id, created.id);
      const rotated = await sm.rotateSession(created.token);
      assert.match(/** @type {string} */ (rotated), /^usm_/);
      assert.equal(await sm.checkSessionStatus(created.token), false);

      // The middleware validates with the API token.
      const req = { headers: { session_key: key } };
      const outcome = await new Promise((resolve) => {
        const res = { statusCode: 0, headersSent: false, setHeader() {}, end: () => resolve('answered') };
        createMiddleware(sm)(req, res, () => resolve('next'));
      });
      assert.equal(outcome, 'next');
      assert.equal(/** @type {any} */ (req).session.username, 'app-user');

      assert.equal(await sm.deleteSession(key), true);
      assert.equal(await sm.deleteSession(/** @type {string} */ (rotated)), true);
      await recorder.until(
        () => recorder.of('sessionDeleted').filter((e) => e.username === 'app-user' && e.reason === 'logout').length === 2,
        5000,
        'the two logout events',
      );
      assert.equal(recorder.of('sessionCreated').filter((e) => e.username === 'app-user').length, 2);
      await sm.close();
    }
  });

  test('a wrong admin token rejects the administrative methods with api_token_invalid; the application methods still work', async () => {
    const sm = manager({ url: server.url, apiToken: server.apiToken, adminToken: 'wrong-admin-token-0123456789' });
    const created = await sm.createSession('wrong-admin');
    const ids = { revoke: created.id };
    for (const [name, call] of Object.entries(ADMIN_CALLS)) {
      await assert.rejects(call(sm, ids), (err) => err.code === 'api_token_invalid' && err.status === 403, name);
    }
    assert.equal(await sm.checkSessionStatus(created.token), true);
    assert.equal(await sm.deleteSession(created.token), true);
  });

  test('the admin token is never in an error message, in an error, or in the client', async () => {
    const sm = manager({ url: server.url, apiToken: server.apiToken, adminToken: server.adminToken });
    const key = await sm.loadNewSession('secret-check');
    /** @type {unknown[]} */
    const errors = [];
    const collect = (promise) => promise.then(
      (value) => assert.fail(`resolved to ${inspect(value)}`),
      (err) => errors.push(err),
    );

    // Errors of sessiond on administrative routes called with the admin token.
    await collect(sm.revokeUserSessions('x'.repeat(300)));                       // invalid_username (client)
    await collect(sm.getLoggedUsers({ pageSize: 0 }));                          // invalid_argument (client)
    // Errors of the application routes of the same manager.
    await sm.deleteSession(key);
    await collect(sm.getSessionData(key));                                      // session_unknown (sessiond)
    // A wrong admin token, and a wrong API token alongside the right admin token.
    const wrongAdmin = manager({ url: server.url, apiToken: server.apiToken, adminToken: `${server.adminToken}-wrong` });
    await collect(wrongAdmin.getSessionTimeout());                              // api_token_invalid
    await collect(wrongAdmin.deleteAllSessions());
    const wrongApi = manager({ url: server.url, apiToken: 'wrong-api-token-0123456789', adminToken: server.adminToken });
    await collect(wrongApi.loadNewSession('x'));                                // api_token_invalid
    await collect(wrongApi.ready({ timeout: 3000 }));
    // Transport errors: nothing listens there.
    const unreachable = manager({ url: `http://127.0.0.1:${await freePort()}`, adminToken: server.adminToken, retries: 0 });
    await collect(unreachable.getLoggedUsers());                                // sessiond_unreachable
    await collect(unreachable.revokeSession('A'.repeat(22)));
    // Refused options: the message names the option, never the value.
    for (const adminToken of [`${server.adminToken} with space`, `${server.adminToken}\n`]) {
      try {
        new SessionManager({ url: server.url, adminToken });
        assert.fail('accepted');
      } catch (err) {
        assert.equal(/** @type {any} */ (err).code, 'invalid_argument');
        errors.push(err);
      }
    }

    const codes = errors.map((err) => /** @type {any} */ (err).code);
    for (const code of ['invalid_username', 'invalid_argument', 'session_unknown', 'api_token_invalid', 'sessiond_unreachable']) {
      assert.ok(codes.includes(code), `got a ${code} error (${codes.join(', ')})`);
    }
    for (const err of errors) {
      const text = `${/** @type {Error} */ (err).message} ${String(err)} ${inspect(err, { depth: 10, showHidden: true })} ${JSON.stringify(err)}`;
      assert.equal(text.includes(server.adminToken), false, `the admin token is in ${inspect(err)}`);
      assert.equal(text.includes(server.apiToken), false, `the API token is in ${inspect(err)}`);
    }
    for (const client of [sm, wrongAdmin, wrongApi, unreachable]) {
      const shown = inspect(client, { depth: 10, showHidden: true });
      assert.equal(shown.includes(server.adminToken), false);
      assert.equal(JSON.stringify(client).includes(server.adminToken), false);
    }
  });
});

describe('which token each call carries', () => {
  /** @type {Awaited<ReturnType<typeof startRecordingServer>>} */
  let recorder;
  const TOKEN = SAMPLE_TOKEN;
  const ID = SAMPLE_SESSION.id;
  const SESSION = SAMPLE_SESSION;

  before(async () => {
    recorder = await startRecordingServer((req, res) => {
      const route = `${req.method} ${req.url.replace(/\?.*/, '')}`;
      const json = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      switch (route) {
        case 'GET /v1/events':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(': open\n\n');
          return;
        case 'POST /v1/sessions':
          return json(201, { ...SESSION, token: TOKEN });
        case 'GET /v1/session':
        case 'GET /v1/session/data':
        case 'PUT /v1/session/data':
          return json(200, route === 'GET /v1/session' ? SESSION : { data: null });
        case 'POST /v1/session/rotate':
          return json(200, { token: TOKEN });
        case 'DELETE /v1/session':
        case `DELETE /v1/sessions/${ID}`:
          res.writeHead(204);
          res.end();
          return;
        case 'GET /v1/users':
          return json(200, { users: [{ username: 'ada', sessions: 1 }], nextCursor: null });
        case 'GET /v1/config':
        case 'PATCH /v1/config':
          return json(200, { idleTimeout: 60 });
        case 'DELETE /v1/sessions':
        case 'DELETE /v1/users/ada/sessions':
          return json(200, { deleted: 1 });
        default:
          return json(404, { error: { code: 'not_found', message: 'no such route' } });
      }
    });
  });

  after(async () => {
    await recorder?.close();
  });

  /**
   * Calls every method of the client once (and opens the event stream), and resolves to the
   * Authorization header of each request, keyed by `METHOD /path`.
   * @param {ConstructorParameters<typeof SessionManager>[0]} options
   */
  async function authorizationOfEachRoute(options) {
    const from = recorder.requests.length;
    const sm = new SessionManager({ url: recorder.url, ...options });
    try {
      await sm.ready();
      await sm.createSession('ada');
      await sm.checkSessionStatus(TOKEN);
      await sm.getSessionData(TOKEN);
      await sm.setSessionData(TOKEN, null);
      await sm.rotateSession(TOKEN);
      await sm.deleteSession(TOKEN);
      await sm.getLoggedUsers();
      await sm.getSessionTimeout();
      await sm.setSessionTimeOut(60);
      await sm.revokeSession(ID);
      await sm.revokeUserSessions('ada');
      await sm.deleteAllSessions();
    } finally {
      await sm.close();
    }
    /** @type {Record<string, string | undefined>} */
    const seen = {};
    for (const request of recorder.requests.slice(from)) {
      const route = `${request.method} ${request.url.replace(/\?.*/, '')}`;
      assert.ok(!(route in seen) || seen[route] === request.headers.authorization, `one Authorization per route (${route})`);
      seen[route] = request.headers.authorization;
    }
    return seen;
  }

  const APPLICATION_ROUTES = ['GET /v1/events', 'POST /v1/sessions', 'GET /v1/session', 'GET /v1/session/data', 'PUT /v1/session/data', 'POST /v1/session/rotate', 'DELETE /v1/session'];
  const ADMIN_ROUTES = ['GET /v1/users', 'GET /v1/config', 'PATCH /v1/config', `DELETE /v1/sessions/${ID}`, 'DELETE /v1/users/ada/sessions', 'DELETE /v1/sessions'];

  test('adminToken on the administrative routes, apiToken on the application routes and the event stream', async () => {
    const seen = await authorizationOfEachRoute({ apiToken: 'the-api-token', adminToken: 'the-admin-token' });
    assert.deepEqual(Object.keys(seen).sort(), [...APPLICATION_ROUTES, ...ADMIN_ROUTES].sort());
    for (const route of APPLICATION_ROUTES) assert.equal(seen[route], 'Bearer the-api-token', route);
    for (const route of ADMIN_ROUTES) assert.equal(seen[route], 'Bearer the-admin-token', route);
  });

  test('without adminToken, the administrative routes carry apiToken', async () => {
    const seen = await authorizationOfEachRoute({ apiToken: 'the-api-token' });
    for (const route of [...APPLICATION_ROUTES, ...ADMIN_ROUTES]) assert.equal(seen[route], 'Bearer the-api-token', route);
  });

  test('with adminToken alone, the application routes carry no token (the admin token stays on the administrative routes)', async () => {
    const seen = await authorizationOfEachRoute({ adminToken: 'the-admin-token' });
    for (const route of APPLICATION_ROUTES) assert.equal(seen[route], undefined, route);
    for (const route of ADMIN_ROUTES) assert.equal(seen[route], 'Bearer the-admin-token', route);
  });

  test('adminToken is checked like apiToken, before anything is sent', () => {
    const from = recorder.requests.length;
    const invalid = (err) => err instanceof SessiondError && err.code === 'invalid_argument' && /^adminToken /.test(err.message);
    for (const adminToken of ['', 'with space', 'with\nnewline', 'naïve', 42, null, ['token']]) {
      assert.throws(() => new SessionManager({ url: recorder.url, adminToken }), invalid, inspect(adminToken));
    }
    assert.equal(recorder.requests.length, from);
  });
});
