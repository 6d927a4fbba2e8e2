// The HTTP/1.1 response parser and the keep-alive connection pool, against scripted node:net
// servers that write exactly the bytes each test needs: responses split anywhere, chunked bodies,
// interim responses, Connection: close, connections closed under the client, malformed and
// oversized answers, and many concurrent requests over few connections.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { ConnectionPool, POOL_TIMEOUT } from '../lib/connection-pool.js';
import { HttpTransport } from '../lib/http.js';
import { ResponseParser, serializeRequest } from '../lib/http1.js';

/**
 * @typedef {object} RawRequest
 * @property {string} method
 * @property {string} path
 * @property {Record<string, string>} headers lower-case names
 * @property {string} body
 * @property {number} connection index of the connection it came on (0 for the first)
 */

/** Servers to close after the tests. */
const servers = [];
after(() => Promise.all(servers.map((s) => s.close())));

/**
 * Starts a node:net server on 127.0.0.1 that reads HTTP/1.1 requests (Content-Length bodies) and
 * hands each to `respond`, which writes whatever bytes it wants on the socket.
 * @param {(req: RawRequest, socket: net.Socket) => void} respond
 */
async function startRawServer(respond) {
  /** @type {RawRequest[]} */
  const requests = [];
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((socket) => {
    const index = connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      buffer += chunk;
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const [line, ...lines] = buffer.slice(0, end).split('\r\n');
        const headers = {};
        for (const header of lines) {
          const colon = header.indexOf(':');
          headers[header.slice(0, colon).toLowerCase()] = header.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length'] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const [method, path] = line.split(' ');
        const req = { method, path, headers, body: buffer.slice(end + 4, end + 4 + length), connection: index };
        buffer = buffer.slice(end + 4 + length);
        requests.push(req);
        respond(req, socket);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  const handle = {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    /** @returns {number} connections accepted so far */
    get connections() {
      return connections;
    },
    /** @returns {number} connections open now */
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(handle);
  return handle;
}

/** @param {string} body @param {string} [extra] extra header lines, each ending in CRLF */
function ok(body, extra = '') {
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** @param {number} port @param {Partial<import('../lib/connection-pool.js').PoolOptions>} [options] */
function pool(port, options = {}) {
  return new ConnectionPool({ host: '127.0.0.1', port, maxSockets: 50, keepAliveTimeout: 15_000, ...options });
}

/** @param {string} url @param {Partial<import('../lib/http.js').TransportOptions>} [options] */
function transport(url, options = {}) {
  return new HttpTransport({ url, timeout: 1000, retries: 0, retryDelay: 10, maxSockets: 50, keepAliveTimeout: 15_000, ...options });
}

const GET = 'GET /x HTTP/1.1\r\nHost: t\r\n\r\n';
const REQUEST = { idempotent: true, timeout: 2000 };

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {number} timeout @param {() => boolean} condition */
async function waitFor(condition, timeout = 2000) {
  const deadline = Date.now() + timeout;
  while (!condition() && Date.now() < deadline) await sleep(5);
  return condition();
}

describe('response parser', () => {
  test('a response fed one byte at a time, UTF-8 body split inside a character', () => {
    const body = '{"name":"Zoë ✓"}';
    const bytes = Buffer.from(ok(body, 'Retry-After: 7\r\n'));
    const parser = new ResponseParser();
    for (let i = 0; i < bytes.length - 1; i++) assert.equal(parser.push(bytes.subarray(i, i + 1)), false, `complete after byte ${i}`);
    assert.equal(parser.push(bytes.subarray(bytes.length - 1)), true);
    assert.equal(parser.status, 200);
    assert.equal(parser.text, body);
    assert.equal(parser.retryAfter, '7');
    assert.equal(parser.keepAlive, true);
    assert.equal(parser.trailingBytes, false);
  });

  test('chunked body with chunk extensions and trailers, split at every position', () => {
    const wire = Buffer.from(
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' +
        '5;name=value\r\nhello\r\n' +
        '1;a="b;c"\r\n \r\n' +
        'A\r\n0123456789\r\n' +
        '0;last\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n',
    );
    for (let split = 1; split < wire.length; split++) {
      const parser = new ResponseParser();
      assert.equal(parser.push(wire.subarray(0, split)), false, `complete at split ${split}`);
      assert.equal(parser.push(wire.subarray(split)), true, `incomplete at split ${split}`);
      assert.equal(parser.text, 'hello 0123456789', `body at split ${split}`);
      assert.equal(parser.keepAlive, true);
    }
  });

  test('interim 1xx responses are skipped; header names are case-insensitive', () => {
    const parser = new ResponseParser();
    const wire = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 503 Busy\r\nCONTENT-length: 2\r\nrEtRy-AfTeR: 3\r\nConnection: Close\r\n\r\n{}';
    assert.equal(parser.push(Buffer.from(wire)), true);
    assert.equal(parser.status, 503);
    assert.equal(parser.text, '{}');
    assert.equal(parser.retryAfter, '3');
    assert.equal(parser.keepAlive, false);
  });

  test('a body without Content-Length or chunked ends with the connection, which is not reused', () => {
    const parser = new ResponseParser();
    assert.equal(parser.push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n{"a":')), false);
    assert.equal(parser.push(Buffer.from('1}')), false);
    assert.equal(parser.end(), true);
    assert.equal(parser.text, '{"a":1}');
    assert.equal(parser.keepAlive, false);
  });

  test('a Content-Length body cut by the end of the connection is not complete', () => {
    const parser = new ResponseParser();
    assert.equal(parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a"')), false);
    assert.equal(parser.end(), false);
  });

  test('bytes after the response are reported', () => {
    const parser = new ResponseParser();
    assert.equal(parser.push(Buffer.from(`${ok('{}')}HTTP/1.1 200 OK\r\n`)), true);
    assert.equal(parser.trailingBytes, true);
  });

  for (const [name, wire] of [
    ['a malformed status line', 'HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n'],
    ['a status line of another protocol', 'ICY 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n'],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['conflicting Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n'],
    ['a 101 answer', 'HTTP/1.1 101 Switching Protocols\r\n\r\n'],
  ]) {
    test(`${name} throws invalid_response`, () => {
      const parser = new ResponseParser();
      assert.throws(() => parser.push(Buffer.from(wire)), (err) => err.code === 'invalid_response');
    });
  }

  test('limits: a head over maxHeaderBytes, a body over maxBodyBytes (Content-Length, chunked, until close)', () => {
    const limits = { maxHeaderBytes: 1024, maxBodyBytes: 100 };
    const longHeader = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(1100)}\r\nContent-Length: 0\r\n\r\n`;
    assert.throws(() => new ResponseParser(limits).push(Buffer.from(longHeader)), (err) => err.code === 'invalid_response' && /head longer/.test(err.message));
    // The same head under the limit is accepted: the limit is what fails above.
    assert.equal(new ResponseParser({ maxHeaderBytes: 2048 }).push(Buffer.from(longHeader)), true);
    // At the boundary: a head of exactly maxHeaderBytes is accepted, one byte more is not.
    const headOf = (n) => {
      const start = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-P: ';
      return Buffer.from(`${start}${'p'.repeat(n - start.length)}\r\n\r\n`);
    };
    assert.equal(new ResponseParser(limits).push(headOf(1024)), true);
    assert.throws(() => new ResponseParser(limits).push(headOf(1025)), (err) => err.code === 'invalid_response');
    // A head that never ends, in small pieces.
    const endless = new ResponseParser(limits);
    assert.throws(() => {
      endless.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
      for (let i = 0; i < 100; i++) endless.push(Buffer.from('X-A: bbbbbbbbbbbb\r\n'));
    }, (err) => err.code === 'invalid_response');
    assert.throws(() => new ResponseParser(limits).push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n')), (err) => err.code === 'invalid_response');
    assert.equal(new ResponseParser(limits).push(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${'x'.repeat(100)}`)), true);
    const chunked = new ResponseParser(limits);
    assert.throws(() => chunked.push(Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n${'x'.repeat(64)}\r\n40\r\n`)), (err) => err.code === 'invalid_response');
    const untilClose = new ResponseParser(limits);
    untilClose.push(Buffer.from(`HTTP/1.1 200 OK\r\n\r\n${'x'.repeat(60)}`));
    assert.throws(() => untilClose.push(Buffer.from('x'.repeat(60))), (err) => err.code === 'invalid_response');
  });
});

describe('request serialisation', () => {
  test('one string: request line, Host, headers, Content-Length and body', () => {
    const text = serializeRequest('POST', '/v1/x?a=1', 'h:1', [['Session-Token', 't']], '{"é":1}');
    assert.equal(text, 'POST /v1/x?a=1 HTTP/1.1\r\nHost: h:1\r\nSession-Token: t\r\nContent-Length: 8\r\n\r\n{"é":1}');
  });

  test('header values with CR, LF or NUL and targets with spaces or controls are refused', () => {
    for (const value of ['a\r\nX-Injected: 1', 'a\nb', 'a\rb', 'a\0b']) {
      assert.throws(() => serializeRequest('GET', '/', 'h', [['Session-Token', value]]), (err) => err.code === 'invalid_argument');
    }
    for (const target of ['/a b', '/a\r\nX: 1', '/a\tb']) {
      assert.throws(() => serializeRequest('GET', target, 'h', []), (err) => err.code === 'invalid_argument');
    }
  });

  test('the transport sends nothing for a session token that would inject a header', async () => {
    const server = await startRawServer((req, socket) => socket.write(ok('{}')));
    const t = transport(server.url);
    try {
      await assert.rejects(t.request('GET', '/v1/session', { sessionToken: 'x\r\nX-Injected: 1' }), (err) => err.code === 'invalid_argument');
      assert.equal(server.requests.length, 0);
      const response = await t.request('GET', '/v1/session', { sessionToken: 'x' });
      assert.equal(response.status, 200);
      assert.equal(server.requests[0].headers['session-token'], 'x');
      assert.equal(server.requests[0].headers.host, `127.0.0.1:${server.port}`);
      assert.equal(server.requests[0].headers.accept, 'application/json');
    } finally {
      t.close();
    }
  });
});

describe('connection pool', () => {
  test('a response written one byte at a time, and a chunked one with trailers, on one connection', async () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n';
    const server = await startRawServer(async (req, socket) => {
      const wire = req.path === '/bytes' ? ok('{"split":"every byte"}') : chunked;
      for (const byte of Buffer.from(wire)) {
        socket.write(Buffer.from([byte]));
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    const p = pool(server.port);
    try {
      const first = await p.request('GET /bytes HTTP/1.1\r\nHost: t\r\n\r\n', REQUEST);
      assert.deepEqual(first, { status: 200, text: '{"split":"every byte"}', retryAfter: undefined });
      const second = await p.request('GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n', REQUEST);
      assert.equal(second.text, 'abc');
      assert.equal(server.connections, 1, 'both on one keep-alive connection');
    } finally {
      p.close();
    }
  });

  test('a 100 Continue before the real answer', async () => {
    const server = await startRawServer((req, socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => socket.write(ok('{"real":true}')), 20);
    });
    const p = pool(server.port);
    try {
      const response = await p.request(GET, REQUEST);
      assert.equal(response.status, 200);
      assert.equal(response.text, '{"real":true}');
    } finally {
      p.close();
    }
  });

  test('Connection: close from the server: the connection is not reused', async () => {
    const server = await startRawServer((req, socket) => socket.write(ok('{}', req.path === '/close' ? 'Connection: close\r\n' : '')));
    const p = pool(server.port);
    try {
      await p.request('GET /close HTTP/1.1\r\nHost: t\r\n\r\n', REQUEST);
      await p.request('GET /keep HTTP/1.1\r\nHost: t\r\n\r\n', REQUEST);
      await p.request('GET /keep HTTP/1.1\r\nHost: t\r\n\r\n', REQUEST);
      assert.deepEqual(server.requests.map((r) => r.connection), [0, 1, 1]);
    } finally {
      p.close();
    }
  });

  test('an idle connection older than keepAliveTimeout is not reused, even before the reaper runs', async () => {
    const server = await startRawServer((req, socket) => socket.write(ok('{}')));
    // The reaper looks every 5 s at most; the clock is moved forward instead of waiting.
    const p = pool(server.port, { keepAliveTimeout: 15_000 });
    const realNow = performance.now.bind(performance);
    let shift = 0;
    performance.now = () => realNow() + shift;
    try {
      assert.equal((await p.request(GET, REQUEST)).status, 200);
      assert.equal((await p.request(GET, REQUEST)).status, 200);
      assert.equal(server.connections, 1, 'a fresh idle connection is reused');
      shift = 15_000;
      assert.equal((await p.request(GET, REQUEST)).status, 200);
      assert.equal(server.connections, 2, 'an idle connection as old as keepAliveTimeout is replaced');
      assert.equal(p.size, 1);
    } finally {
      delete performance.now;
      p.close();
    }
  });

  test('a body framed by the end of the connection', async () => {
    const server = await startRawServer((req, socket) => socket.end('HTTP/1.1 200 OK\r\n\r\n{"until":"close"}'));
    const p = pool(server.port);
    try {
      assert.equal((await p.request(GET, REQUEST)).text, '{"until":"close"}');
      assert.equal((await p.request(GET, REQUEST)).text, '{"until":"close"}');
      assert.equal(server.connections, 2);
    } finally {
      p.close();
    }
  });

  test('a connection the server closed while idle is dropped; the next request opens a new one', async () => {
    const server = await startRawServer((req, socket) => {
      socket.write(ok('{}'));
      setTimeout(() => socket.end(), 10);
    });
    const t = transport(server.url);
    try {
      assert.equal((await t.request('GET', '/a')).status, 200);
      await sleep(60);
      assert.equal((await t.request('POST', '/b', { body: '{}' })).status, 200);
      assert.deepEqual(server.requests.map((r) => `${r.method} ${r.connection}`), ['GET 0', 'POST 1']);
    } finally {
      t.close();
    }
  });

  test('a reused connection closed before any byte of the answer: a GET is sent again at once, a POST is not', async () => {
    // Every second request on a connection is read, then the connection is closed without an
    // answer: the keep-alive race where the server closes a connection the client just reused.
    const server = await startRawServer((req, socket) => {
      const onThisConnection = server.requests.filter((r) => r.connection === req.connection).length;
      if (onThisConnection === 2) socket.destroy();
      else socket.write(ok(`{"n":${server.requests.length}}`));
    });
    const t = transport(server.url, { retries: 0 });
    try {
      assert.equal((await t.request('GET', '/a')).text, '{"n":1}');
      // Reused connection closed under it: sent again on a new connection, with retries: 0.
      assert.equal((await t.request('GET', '/b')).text, '{"n":3}');
      assert.deepEqual(server.requests.map((r) => `${r.path} ${r.connection}`), ['/a 0', '/b 0', '/b 1']);
      // The POST goes on connection 1, now reused: it is closed under it, and not sent again.
      await assert.rejects(t.request('POST', '/c', { body: '{"x":1}' }), (err) => err.code === 'connection_lost');
      await sleep(50);
      assert.deepEqual(server.requests.map((r) => `${r.method} ${r.path} ${r.connection}`), ['GET /a 0', 'GET /b 0', 'GET /b 1', 'POST /c 1']);
    } finally {
      t.close();
    }
  });

  test('a GET whose reused connection breaks after the answer started is not sent again', async () => {
    const server = await startRawServer((req, socket) => {
      if (server.requests.length === 1) socket.write(ok('{}'));
      else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"cut');
    });
    const t = transport(server.url, { retries: 0 });
    try {
      await t.request('GET', '/a');
      await assert.rejects(t.request('GET', '/b'), (err) => err.code === 'connection_lost');
      assert.equal(server.requests.length, 2);
    } finally {
      t.close();
    }
  });

  test('a malformed status line rejects with invalid_response and destroys the connection', async () => {
    const server = await startRawServer((req, socket) => socket.write('HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}'));
    const t = transport(server.url);
    try {
      await assert.rejects(t.request('GET', '/a'), (err) => err.code === 'invalid_response');
      assert.ok(await waitFor(() => server.open === 0), 'the connection was closed by the client');
    } finally {
      t.close();
    }
  });

  test('an oversized header and a body over the limit reject with invalid_response', async () => {
    const server = await startRawServer((req, socket) => {
      if (req.path === '/header') socket.write(`HTTP/1.1 200 OK\r\nX-Big: ${'h'.repeat(70 * 1024)}\r\nContent-Length: 2\r\n\r\n{}`);
      else if (req.path === '/length') socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${16 * 1024 * 1024 + 1}\r\n\r\n`);
      else {
        // 17 MiB of chunks: over the 16 MiB default limit.
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const chunk = `100000\r\n${'b'.repeat(0x100000)}\r\n`;
        for (let i = 0; i < 17; i++) socket.write(chunk);
        socket.write('0\r\n\r\n');
      }
    });
    const t = transport(server.url, { timeout: 5000 });
    try {
      await assert.rejects(t.request('GET', '/header'), (err) => err.code === 'invalid_response' && /head longer than 65536/.test(err.message));
      await assert.rejects(t.request('GET', '/length'), (err) => err.code === 'invalid_response' && /body longer/.test(err.message));
      await assert.rejects(t.request('GET', '/chunked'), (err) => err.code === 'invalid_response' && /body longer/.test(err.message));
    } finally {
      t.close();
    }
  });

  test('bytes arriving on an idle connection: it is destroyed, the next request uses a new one', async () => {
    const server = await startRawServer((req, socket) => {
      socket.write(ok('{}'));
      if (req.connection === 0) setTimeout(() => socket.write('garbage'), 10);
    });
    const p = pool(server.port);
    try {
      await p.request(GET, REQUEST);
      assert.ok(await waitFor(() => server.open === 0), 'the client closed the connection');
      assert.equal(p.size, 0);
      assert.equal((await p.request(GET, REQUEST)).status, 200);
      assert.deepEqual(server.requests.map((r) => r.connection), [0, 1]);
    } finally {
      p.close();
    }
  });

  test('50 concurrent requests over maxSockets=4: each gets its own answer, at most 4 connections', async () => {
    let open = 0;
    let maxOpen = 0;
    const server = await startRawServer((req, socket) => {
      // Answers after a random delay, split in two writes, so answers interleave across connections.
      const body = JSON.stringify({ path: req.path, token: req.headers['session-token'] });
      const wire = ok(body);
      const cut = 1 + Math.floor(Math.random() * (wire.length - 1));
      setTimeout(() => {
        socket.write(wire.slice(0, cut));
        setTimeout(() => socket.write(wire.slice(cut)), Math.random() * 3);
      }, Math.random() * 5);
    });
    const netServer = /** @type {any} */ (server);
    const t = transport(server.url, { maxSockets: 4 });
    const counter = setInterval(() => {
      open = netServer.open;
      maxOpen = Math.max(maxOpen, open);
    }, 1);
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => t.request('GET', `/item/${i}`, { sessionToken: `token-${i}` })),
      );
      results.forEach((response, i) => {
        assert.equal(response.status, 200);
        assert.deepEqual(JSON.parse(response.text), { path: `/item/${i}`, token: `token-${i}` });
      });
      assert.equal(server.requests.length, 50);
      assert.ok(server.connections <= 4, `${server.connections} connections`);
      assert.ok(server.connections >= 2, `${server.connections} connection(s): the pool did not run requests in parallel`);
      assert.ok(maxOpen <= 4);
    } finally {
      clearInterval(counter);
      t.close();
    }
  });

  test('requests beyond maxSockets wait in FIFO order', async () => {
    const server = await startRawServer((req, socket) => setTimeout(() => socket.write(ok(`"${req.path}"`)), 2));
    const p = pool(server.port, { maxSockets: 1 });
    try {
      const order = [];
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => p.request(`GET /${i} HTTP/1.1\r\nHost: t\r\n\r\n`, REQUEST).then((r) => order.push(r.text))),
      );
      assert.deepEqual(server.requests.map((r) => r.path), Array.from({ length: 10 }, (_, i) => `/${i}`));
      assert.equal(server.connections, 1);
      assert.equal(order.length, 10);
    } finally {
      p.close();
    }
  });

  test('a timed-out request destroys its connection; a queued one times out too', async () => {
    const server = await startRawServer(() => {}); // never answers
    const p = pool(server.port, { maxSockets: 1 });
    try {
      const started = Date.now();
      const results = await Promise.allSettled([p.request(GET, { idempotent: true, timeout: 100 }), p.request(GET, { idempotent: true, timeout: 150 })]);
      assert.ok(results.every((r) => r.status === 'rejected' && r.reason.code === POOL_TIMEOUT));
      assert.ok(Date.now() - started < 1000);
      assert.ok(await waitFor(() => server.open === 0), 'timed-out connections closed');
      assert.equal(p.size, 0);
    } finally {
      p.close();
    }
  });

  test('close() rejects requests in flight and waiting, and destroys every connection', async () => {
    const server = await startRawServer(() => {});
    const p = pool(server.port, { maxSockets: 2 });
    const requests = Array.from({ length: 4 }, () => p.request(GET, REQUEST));
    assert.ok(await waitFor(() => server.requests.length === 2));
    p.close();
    const results = await Promise.allSettled(requests);
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.ok(await waitFor(() => server.open === 0));
    await assert.rejects(p.request(GET, REQUEST));
  });

  test('a refused connection rejects with sessiond_unreachable', async () => {
    const server = await startRawServer(() => {});
    const { port } = server;
    await server.close();
    const t = transport(`http://127.0.0.1:${port}`, { retries: 1 });
    try {
      await assert.rejects(t.request('GET', '/a'), (err) => err.code === 'sessiond_unreachable' && err.message.includes(`127.0.0.1:${port}`));
    } finally {
      t.close();
    }
  });
});
