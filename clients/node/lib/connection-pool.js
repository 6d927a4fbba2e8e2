/**
 * A pool of HTTP/1.1 keep-alive connections to one server, on node:net (node:tls for https): one
 * request at a time per connection, at most `maxSockets` connections, further requests waiting in
 * a FIFO queue, idle connections closed after `keepAliveTimeout`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ResponseParser } from './http1.js';

/** Idle connections are looked at every third of keepAliveTimeout, at most every 5 s. */
const IDLE_CHECK_MAX_MS = 5_000;

/**
 * @typedef {object} PoolOptions
 * @property {string} host host name or IP address
 * @property {number} port
 * @property {boolean} [tls] connect with TLS (certificates checked as node:https does)
 * @property {number} maxSockets most simultaneous connections
 * @property {number} keepAliveTimeout milliseconds after which an idle connection is closed
 * @property {number} [maxHeaderBytes] longest response head accepted
 * @property {number} [maxBodyBytes] longest response body accepted
 */

/**
 * @typedef {object} PoolResponse
 * @property {number} status
 * @property {string} text the body, decoded as UTF-8
 * @property {string} [retryAfter] the Retry-After header
 */

/**
 * Error codes of the pool's rejections besides socket errors (ECONNREFUSED, ECONNRESET, …) and
 * the `invalid_response` SessiondError of the parser.
 */
export const POOL_TIMEOUT = 'POOL_TIMEOUT';
export const POOL_CLOSED = 'POOL_CLOSED';
export const POOL_CONNECTION_CLOSED = 'POOL_CONNECTION_CLOSED';

/** @param {string} code @param {string} message */
function poolError(code, message) {
  const err = new Error(message);
  /** @type {any} */ (err).code = code;
  return err;
}

/** One request: its serialised bytes and how it ends. */
class Pending {
  /**
   * @param {string} payload
   * @param {boolean} idempotent
   * @param {(response: PoolResponse) => void} resolve
   * @param {(err: Error) => void} reject
   */
  constructor(payload, idempotent, resolve, reject) {
    this.payload = payload;
    this.idempotent = idempotent;
    this.resolve = resolve;
    this.reject = reject;
    this.settled = false;
    /** whether it was already sent again after a reused connection closed under it */
    this.resent = false;
    /** @type {Connection | null} */
    this.connection = null;
    /** @type {NodeJS.Timeout | undefined} */
    this.timer = undefined;
  }
}

/** One socket and the parser of its current response. */
class Connection {
  /** @param {net.Socket} socket @param {ResponseParser} parser */
  constructor(socket, parser) {
    this.socket = socket;
    this.parser = parser;
    /** @type {Pending | null} the request in flight */
    this.current = null;
    /** whether a response was already read on it (a request on it reuses it) */
    this.used = false;
    /** whether a byte of the current response arrived */
    this.answered = false;
    /** whether it was removed from the pool */
    this.dead = false;
    /** performance.now() when it became idle */
    this.idleSince = 0;
    /** @type {Error | undefined} the socket's error, reported when it closes */
    this.error = undefined;
  }
}

/** HTTP/1.1 keep-alive connections to one server. */
export class ConnectionPool {
  #options;
  /** @type {Connection[]} idle connections; the most recently used last */
  #idle = [];
  /** @type {Set<Connection>} */
  #all = new Set();
  /** @type {Pending[]} requests waiting for a connection, oldest first */
  #queue = [];
  #closed = false;
  /** @type {NodeJS.Timeout} */
  #reaper;

  /** @param {PoolOptions} options */
  constructor(options) {
    this.#options = options;
    this.#reaper = setInterval(() => this.#closeIdle(), Math.max(10, Math.min(IDLE_CHECK_MAX_MS, options.keepAliveTimeout / 3)));
    this.#reaper.unref();
  }

  /** @returns {number} connections open or opening */
  get size() {
    return this.#all.size;
  }

  /**
   * Sends a serialised request on a connection of the pool and resolves to the response. When a
   * reused connection closes before any byte of the response, an idempotent request is sent once
   * more on a new connection; another one rejects (it may have been carried out).
   * @param {string} payload the whole request (head and body)
   * @param {{idempotent: boolean, timeout: number}} options `timeout`: milliseconds from now
   *   (waiting for a connection included) after which the request rejects with POOL_TIMEOUT and
   *   its connection is destroyed
   * @returns {Promise<PoolResponse>}
   */
  request(payload, options) {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(poolError(POOL_CLOSED, 'the pool is closed'));
        return;
      }
      const pending = new Pending(payload, options.idempotent, resolve, reject);
      pending.timer = setTimeout(() => this.#timeOut(pending), options.timeout);
      const idle = this.#takeIdle();
      if (idle !== undefined) this.#send(idle, pending);
      else if (this.#all.size < this.#options.maxSockets) this.#send(this.#open(), pending);
      else this.#queue.push(pending);
    });
  }

  /** Destroys every connection and rejects every request in flight or waiting. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reaper);
    const queued = this.#queue;
    this.#queue = [];
    for (const pending of queued) this.#reject(pending, poolError(POOL_CLOSED, 'the pool is closed'));
    for (const connection of [...this.#all]) this.#fail(connection, poolError(POOL_CLOSED, 'the pool is closed'));
  }

  /** @returns {Connection} a new connection, counted in the pool */
  #open() {
    const { host, port } = this.#options;
    /** @type {net.Socket} */
    let socket;
    if (this.#options.tls) {
      socket = tls.connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'] });
    } else {
      socket = net.connect({ host, port });
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    const connection = new Connection(socket, new ResponseParser(this.#options));
    this.#all.add(connection);
    socket.on('data', (chunk) => this.#onData(connection, chunk));
    socket.on('end', () => this.#onEnd(connection));
    socket.on('error', (err) => {
      connection.error ??= err;
    });
    socket.on('close', () => this.#fail(connection, connection.error ?? poolError(POOL_CONNECTION_CLOSED, 'the server closed the connection')));
    return connection;
  }

  /** @param {Connection} connection @param {Pending} pending */
  #send(connection, pending) {
    connection.current = pending;
    connection.answered = false;
    connection.parser.reset();
    pending.connection = connection;
    if (connection.used) connection.socket.ref();
    connection.socket.write(pending.payload);
  }

  /** @param {Connection} connection @param {Buffer} chunk */
  #onData(connection, chunk) {
    const pending = connection.current;
    if (pending === null) {
      // Bytes nobody asked for: the connection's state is unknown.
      this.#fail(connection, poolError(POOL_CONNECTION_CLOSED, 'bytes arrived on an idle connection'));
      return;
    }
    connection.answered = true;
    let complete;
    try {
      complete = connection.parser.push(chunk);
    } catch (err) {
      this.#fail(connection, /** @type {Error} */ (err));
      return;
    }
    if (complete) this.#finish(connection, pending);
  }

  /** @param {Connection} connection */
  #onEnd(connection) {
    const pending = connection.current;
    if (pending !== null && connection.parser.end()) {
      this.#finish(connection, pending);
      return;
    }
    this.#fail(connection, poolError(POOL_CONNECTION_CLOSED, 'the server closed the connection'));
  }

  /** Resolves the request whose response is complete and frees its connection. */
  #finish(/** @type {Connection} */ connection, /** @type {Pending} */ pending) {
    const parser = connection.parser;
    const response = { status: parser.status, text: parser.text, retryAfter: parser.retryAfter };
    connection.current = null;
    pending.connection = null;
    connection.used = true;
    if (!parser.keepAlive || parser.trailingBytes) {
      this.#discard(connection);
      this.#openForQueue();
    } else {
      this.#release(connection);
    }
    if (!pending.settled) {
      pending.settled = true;
      clearTimeout(pending.timer);
      pending.resolve(response);
    }
  }

  /** Hands a free connection to the oldest waiting request, or keeps it idle. @param {Connection} connection */
  #release(connection) {
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#send(connection, next);
      return;
    }
    connection.idleSince = performance.now();
    connection.socket.unref();
    this.#idle.push(connection);
  }

  /**
   * Removes a connection from the pool and destroys its socket; the request on it, if any, is sent
   * again on a new connection (idempotent, reused connection, no byte of response) or rejected.
   * @param {Connection} connection
   * @param {Error} err
   */
  #fail(connection, err) {
    const pending = connection.current;
    connection.current = null;
    const stale = connection.used && !connection.answered;
    this.#discard(connection);
    if (pending === null || pending.settled) {
      this.#openForQueue();
      return;
    }
    pending.connection = null;
    if (stale && pending.idempotent && !pending.resent && !this.#closed) {
      pending.resent = true;
      this.#send(this.#open(), pending);
      return;
    }
    this.#reject(pending, err);
    this.#openForQueue();
  }

  /**
   * The most recently used idle connection that has not been idle for keepAliveTimeout (the reaper
   * runs only every few seconds): older ones are destroyed, as the server may be closing them.
   * @returns {Connection | undefined}
   */
  #takeIdle() {
    const limit = performance.now() - this.#options.keepAliveTimeout;
    for (;;) {
      const connection = this.#idle.pop();
      if (connection === undefined || connection.idleSince > limit) return connection;
      this.#discard(connection);
    }
  }

  /**
   * Takes a connection out of the pool and destroys its socket (the caller then lets a waiting
   * request have the freed room).
   * @param {Connection} connection
   */
  #discard(connection) {
    if (connection.dead) return;
    connection.dead = true;
    this.#all.delete(connection);
    const index = this.#idle.indexOf(connection);
    if (index !== -1) this.#idle.splice(index, 1);
    connection.socket.destroy();
  }

  /** Opens a connection for the oldest waiting request when the pool has room. */
  #openForQueue() {
    if (this.#closed || this.#queue.length === 0 || this.#all.size >= this.#options.maxSockets) return;
    this.#send(this.#open(), /** @type {Pending} */ (this.#queue.shift()));
  }

  /** @param {Pending} pending @param {Error} err */
  #reject(pending, err) {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  /** @param {Pending} pending */
  #timeOut(pending) {
    if (pending.settled) return;
    const err = poolError(POOL_TIMEOUT, 'no complete response in time');
    const connection = pending.connection;
    if (connection !== null) {
      this.#reject(pending, err);
      this.#fail(connection, err);
      return;
    }
    const index = this.#queue.indexOf(pending);
    if (index !== -1) this.#queue.splice(index, 1);
    this.#reject(pending, err);
  }

  /** Destroys the connections idle for keepAliveTimeout ms or more. */
  #closeIdle() {
    const limit = performance.now() - this.#options.keepAliveTimeout;
    for (const connection of [...this.#idle]) {
      if (connection.idleSince <= limit) this.#discard(connection);
    }
  }
}
