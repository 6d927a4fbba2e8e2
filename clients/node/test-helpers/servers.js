/**
 * Test helpers: an HTTP server that records every request it gets (to prove what the client sends,
 * or that it sends nothing), and a TCP proxy that can cut every connection and refuse new ones.
 */
import http from 'node:http';
import net from 'node:net';

/**
 * @typedef {object} RecordedRequest
 * @property {string} method
 * @property {string} url
 * @property {import('node:http').IncomingHttpHeaders} headers
 * @property {string} body
 */

/**
 * Starts a recording server on 127.0.0.1.
 * @param {(req: RecordedRequest, res: import('node:http').ServerResponse) => void} [respond]
 *   answers a request (default: 404 with an API error body)
 * @returns {Promise<{url: string, requests: RecordedRequest[], openConnections: number, close: () => Promise<void>}>}
 */
export async function startRecordingServer(respond) {
  /** @type {RecordedRequest[]} */
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      requests.push(recorded);
      if (respond) {
        respond(recorded, res);
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"not_found","message":"no such route"}}');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** @returns {number} connections open to the server now */
    get openConnections() {
      return sockets.size;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP proxy from a port of 127.0.0.1 to `target`; `cut()` destroys every connection and stops
 * listening, `restore()` listens again on the same port.
 * @param {number} targetPort
 */
export async function startProxy(targetPort) {
  const sockets = new Set();
  let server = null;
  let port = 0;
  const listen = async () => {
    server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      sockets.add(client);
      sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    port = /** @type {net.AddressInfo} */ (server.address()).port;
  };
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    /** @returns {number} connections open through the proxy */
    get connections() {
      return sockets.size / 2;
    },
    async cut() {
      const closing = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closing;
    },
    restore: listen,
    async close() {
      if (server.listening) await this.cut();
    },
  };
}
