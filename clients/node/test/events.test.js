// Events from sessiond's event stream: sessionCreated / sessionDeleted / notifyClientToLogout with
// the socket.io server, expiry on time, revocation of every session of a user, the rooms, ready()
// and close().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SessionManager } from '../index.js';
import { startSessiond } from '../test-helpers/sessiond.js';
import { recordEvents, sleep } from '../test-helpers/wait.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TOKEN_RE = /usm_[A-Za-z0-9_-]{43}/;

/** A stand-in for a socket.io Server: records `io.to(room).emit(event, payload)`. */
function fakeIo() {
  const emitted = [];
  return {
    emitted,
    to(room) {
      return { emit: (event, payload) => emitted.push({ room, event, payload }) };
    },
  };
}

/** @type {import('../test-helpers/sessiond.js').Sessiond} */
let server;
/** @type {SessionManager} */
let sm;
let io;
let recorder;

before(async () => {
  server = await startSessiond();
  sm = new SessionManager({ url: server.url });
  io = fakeIo();
  assert.equal(sm.initSocketReference(io), true);
  assert.equal(sm.getSocketReference(), io);
  // The Node library README's forwarding: tell the session's browser sockets to log out.
  sm.on('notifyClientToLogout', (ioRef, { room, reason }) => ioRef.to(room).emit('logout', { reason }));
  recorder = recordEvents(sm, ['sessionCreated', 'sessionDeleted', 'notifyClientToLogout', 'resync', 'streamError']);
  await sm.ready();
});

after(async () => {
  await sm?.close();
  await server?.dispose();
});

describe('event stream', () => {
  test('login and logout: sessionCreated and sessionDeleted(logout), no notifyClientToLogout, no token', async () => {
    const created = await sm.createSession('ada');
    await recorder.until(() => recorder.of('sessionCreated').some((e) => e.id === created.id), 5000, 'sessionCreated');
    assert.equal(await sm.deleteSession(created.token), true);
    await recorder.until(() => recorder.of('sessionDeleted').some((e) => e.id === created.id), 5000, 'sessionDeleted');

    const createdEvent = recorder.of('sessionCreated').find((e) => e.id === created.id);
    assert.equal(createdEvent.username, 'ada');
    const deleted = recorder.of('sessionDeleted').find((e) => e.id === created.id);
    assert.deepEqual([deleted.username, deleted.reason], ['ada', 'logout']);
    assert.equal(recorder.of('notifyClientToLogout').some((e) => e.id === created.id), false);
    for (const { args } of recorder.events) assert.doesNotMatch(JSON.stringify(args.at(-1) ?? null), TOKEN_RE);
  });

  test('idle and absolute timeouts end sessions on time and notify the client through io', async () => {
    const idle = await sm.createSession('idle-user', { idleTimeout: 2 });
    const aged = await sm.createSession('aged-user', { idleTimeout: 600, maxLifetime: 2 });
    const started = Date.now();
    const notified = (id) => recorder.of('notifyClientToLogout').some((e) => e.id === id);
    await recorder.until(() => notified(idle.id) && notified(aged.id), 8000, 'two timeouts');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1500, `ended after ${elapsed} ms, before the 2 s timeout`);

    const idleNote = recorder.of('notifyClientToLogout').find((e) => e.id === idle.id);
    assert.deepEqual(idleNote, { id: idle.id, username: 'idle-user', reason: 'idle_timeout', room: `session:${idle.id}` });
    const agedNote = recorder.of('notifyClientToLogout').find((e) => e.id === aged.id);
    assert.equal(agedNote.reason, 'absolute_timeout');
    // The listener received the io given to initSocketReference as first argument.
    const first = recorder.events.find((e) => e.name === 'notifyClientToLogout' && e.args[1].id === idle.id);
    assert.equal(first.args[0], io);
    assert.ok(io.emitted.some((e) => e.room === `session:${idle.id}` && e.event === 'logout' && e.payload.reason === 'idle_timeout'));

    await recorder.until(() => recorder.of('sessionDeleted').some((e) => e.id === idle.id && e.reason === 'idle_timeout'), 3000, 'sessionDeleted(idle_timeout)');
    assert.equal(await sm.checkSessionStatus(idle.token), false);
    await assert.rejects(sm.getSessionData(idle.token), (err) => err.code === 'session_expired');
  });

  test('revoking every session of a user notifies each of them, and only them', async () => {
    const bob = [await sm.createSession('bob'), await sm.createSession('bob'), await sm.createSession('bob')];
    const carol = await sm.createSession('carol');
    assert.equal(await sm.revokeUserSessions('bob'), 3);
    assert.equal(await sm.deleteSession(carol.token), true);
    const bobIds = new Set(bob.map((s) => s.id));
    const notifiedBob = () => recorder.of('notifyClientToLogout').filter((e) => bobIds.has(e.id));
    await recorder.until(
      () => notifiedBob().length === 3 && recorder.of('sessionDeleted').some((e) => e.id === carol.id),
      5000,
      'three revocations and a logout',
    );
    for (const note of notifiedBob()) {
      assert.equal(note.reason, 'revoked');
      assert.equal(note.username, 'bob');
      assert.ok(io.emitted.some((e) => e.room === `session:${note.id}` && e.payload.reason === 'revoked'));
    }
    assert.equal(recorder.of('notifyClientToLogout').some((e) => e.id === carol.id), false, 'a logout is not notified');
    for (const session of bob) assert.equal(await sm.checkSessionStatus(session.token), false);
  });

  test('deleteAllSessions notifies every session', async () => {
    const a = await sm.createSession('dora');
    const b = await sm.createSession('emil');
    const count = await sm.deleteAllSessions();
    assert.ok(count >= 2, `deleted ${count}`);
    await recorder.until(
      () => [a.id, b.id].every((id) => recorder.of('notifyClientToLogout').some((e) => e.id === id && e.reason === 'revoked')),
      5000,
      'revocations of deleteAllSessions',
    );
  });

  test('joinSessionRoom joins a socket to the room that notifications go to', async () => {
    const session = await sm.createSession('frida');
    const joined = [];
    const socket = { join: (room) => joined.push(room) };
    const details = await sm.getSessionDetails(session.token);
    sm.joinSessionRoom(socket, details.id);
    assert.deepEqual(joined, [`session:${session.id}`]);
    assert.equal(sm.roomFor(session.id), `session:${session.id}`);
    assert.throws(() => sm.joinSessionRoom(socket, 'not an id'), (err) => err.code === 'invalid_argument');
    assert.equal(await sm.revokeSession(session.id), true);
    await recorder.until(() => io.emitted.some((e) => e.room === joined[0]), 5000, 'the notification to the joined room');
  });

  test('no stream error while sessiond runs', () => {
    assert.deepEqual(recorder.of('streamError'), []);
    assert.deepEqual(recorder.of('resync'), []);
  });
});

describe('stream lifecycle', () => {
  test('the stream starts with the first event listener, not before', async () => {
    const other = new SessionManager({ url: server.url });
    try {
      assert.equal(await other.checkSessionStatus(`usm_${'A'.repeat(43)}`), false);
      const created = [];
      other.on('sessionCreated', (e) => created.push(e.id));
      await other.ready();
      const session = await sm.createSession('late');
      const deadline = Date.now() + 5000;
      while (!created.includes(session.id) && Date.now() < deadline) await sleep(20);
      assert.ok(created.includes(session.id));
    } finally {
      await other.close();
    }
  });

  test('close() ends the stream and the connections: a process using the client exits by itself', async () => {
    const script = path.join(HERE, '..', 'test-helpers', 'close-exits.js');
    const child = spawn(process.execPath, [script, server.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exit = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running after 5 s');
      }, 5000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(exit, 0, output);
    assert.match(output, /closed: client_closed/);
  });

  test('calls after close() reject with client_closed', async () => {
    const other = new SessionManager({ url: server.url });
    await other.close();
    await assert.rejects(other.getSessionTimeout(), (err) => err.code === 'client_closed');
    await assert.rejects(other.ready(), (err) => err.code === 'client_closed');
  });
});
