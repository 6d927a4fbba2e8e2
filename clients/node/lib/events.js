/**
 * The subscription to `GET /v1/events`: one long-lived request on its own connection, parsed as
 * Server-Sent Events, reconnected with exponential backoff and `Last-Event-ID` so that no event is
 * lost to a dropped connection (sessiond replays the missed ones, or starts with `event: gap` when
 * it cannot).
 */
import { SessiondError, closedError, errorFromResponse, transportError } from './errors.js';
import { performance } from 'node:perf_hooks';
import { SseParser } from './sse.js';

/**
 * @typedef {object} StreamOptions
 * @property {number} minDelay milliseconds before the first reconnection attempt
 * @property {number} maxDelay longest wait between attempts
 * @property {number} idleTimeout milliseconds without a byte (sessiond sends a keep-alive every
 *   15 s) after which the connection is considered dead and replaced
 */

/**
 * @typedef {object} StreamHandlers
 * @property {(message: import('./sse.js').SseMessage) => void} onMessage
 * @property {(error: SessiondError) => void} onError a connection attempt failed or the stream broke
 * @property {(reason: string) => void} onResync events may have been missed and sessiond cannot
 *   say so itself (a reconnection without a Last-Event-ID after the stream had been open)
 */

/** Event ids that can be sent back in the Last-Event-ID header; others are ignored. */
const SENDABLE_ID = /^[\x20-\x7e]*$/;
/** An open stream that lasted this long resets the reconnection backoff. */
const STABLE_MS = 5000;

/** States of the stream. */
const IDLE = 'idle';
const CONNECTING = 'connecting';
const OPEN = 'open';
const WAITING = 'waiting';
const FAILED = 'failed';
const CLOSED = 'closed';

export class EventStream {
  #transport;
  #options;
  #handlers;
  #state = IDLE;
  /** @type {import('node:http').ClientRequest | null} */
  #request = null;
  /** @type {NodeJS.Timeout | null} */
  #timer = null;
  #failures = 0;
  #lastEventId = '';
  /** whether the stream has been open once (then a reconnection without an event id may miss events) */
  #wasOpen = false;
  /** @type {SessiondError | null} the last failure, for ready()'s timeout */
  #lastError = null;
  /** @type {{resolve: () => void, reject: (err: Error) => void}[]} */
  #waiters = [];

  /**
   * @param {import('./http.js').HttpTransport} transport
   * @param {StreamOptions} options
   * @param {StreamHandlers} handlers
   */
  constructor(transport, options, handlers) {
    this.#transport = transport;
    this.#options = options;
    this.#handlers = handlers;
  }

  /** @returns {string} idle, connecting, open, waiting (to reconnect), failed or closed */
  get state() {
    return this.#state;
  }

  /** @returns {string} the id of the last event received ('' before the first) */
  get lastEventId() {
    return this.#lastEventId;
  }

  /** Starts the subscription unless it runs already (or was closed). */
  start() {
    if (this.#state === IDLE || this.#state === FAILED) this.#tryConnect();
  }

  /**
   * Resolves once the stream is open (starting it if needed); rejects when sessiond refuses the
   * subscription for good (wrong API token) or the stream is closed, or after `timeout` ms without
   * an open stream (`sessiond_unreachable` when the last attempt could not connect, else `timeout`);
   * the reconnection attempts go on, and a later call can still resolve.
   * @param {number} timeout milliseconds
   * @returns {Promise<void>}
   */
  ready(timeout) {
    if (this.#state === CLOSED) return Promise.reject(closedError());
    if (this.#state === OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      /** @type {NodeJS.Timeout | null} */
      let timer = null;
      const waiter = {
        resolve: () => {
          if (timer !== null) clearTimeout(timer);
          resolve();
        },
        reject: (/** @type {Error} */ err) => {
          if (timer !== null) clearTimeout(timer);
          reject(err);
        },
      };
      timer = setTimeout(() => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        const last = this.#lastError;
        const code = last?.code === 'sessiond_unreachable' ? 'sessiond_unreachable' : 'timeout';
        const why = last === null ? '' : ` (last error: ${last.code})`;
        reject(new SessiondError(code, `the event stream from ${this.#transport.origin} did not open within ${timeout} ms${why}`, { cause: last ?? undefined }));
      }, timeout);
      this.#waiters.push(waiter);
      this.start();
    });
  }

  /** Ends the subscription and its connection for good. */
  close() {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const request = this.#request;
    this.#request = null;
    if (request !== null) request.destroy();
    this.#settleWaiters(closedError());
  }

  /** Connects; a synchronous failure (refused request options) falls back to the reconnection schedule. */
  #tryConnect() {
    try {
      this.#connect();
    } catch (err) {
      const request = this.#request;
      this.#request = null;
      if (request !== null) request.destroy();
      if (this.#state === CLOSED) return;
      const error = err instanceof SessiondError ? err : new SessiondError('invalid_argument', `the event stream request could not be sent: ${/** @type {Error} */ (err)?.message}`, { cause: err });
      this.#lastError = error;
      this.#scheduleReconnect();
      this.#handlers.onError(error);
    }
  }

  /** @param {string} id keeps id as the last event id if it can be sent back in a header */
  #keepId(id) {
    if (SENDABLE_ID.test(id)) this.#lastEventId = id;
  }

  #connect() {
    this.#state = CONNECTING;
    this.#request = null;
    /** @type {Record<string, string>} */
    const headers = { accept: 'text/event-stream' };
    if (this.#lastEventId !== '') headers['last-event-id'] = this.#lastEventId;
    const request = this.#transport.module.request(this.#transport.streamOptions('/v1/events', headers));
    this.#request = request;
    let finished = false;
    /** @type {SseParser | null} */
    let parser = null;
    /** @type {number | null} when the stream opened */
    let openedAt = null;

    // Ends this connection once: records how far it got, then reconnects or gives up.
    const finish = (/** @type {SessiondError} */ err, fatal) => {
      if (finished) return;
      finished = true;
      if (parser !== null) this.#keepId(parser.lastEventId);
      if (this.#request === request) this.#request = null;
      request.destroy();
      if (this.#state === CLOSED) return;
      this.#lastError = err;
      if (openedAt !== null && performance.now() - openedAt >= STABLE_MS) this.#failures = 0;
      if (fatal) {
        this.#state = FAILED;
        this.#settleWaiters(err);
      } else {
        this.#scheduleReconnect();
      }
      this.#handlers.onError(err);
    };

    request.setTimeout(this.#options.idleTimeout, () => {
      finish(new SessiondError('timeout', `the event stream from ${this.#transport.origin} was silent for ${this.#options.idleTimeout} ms`), false);
    });
    request.on('error', (err) => finish(transportError(err, this.#transport.origin), false));
    request.on('response', (response) => {
      response.setEncoding('utf8');
      if (response.statusCode !== 200) {
        let text = '';
        response.on('data', (chunk) => {
          text += chunk;
        });
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          // 4xx answers other than 408 and 429 (too many subscribers) will not change by retrying.
          const fatal = status >= 400 && status < 500 && status !== 408 && status !== 429;
          const retryAfter = response.headers['retry-after'];
          finish(errorFromResponse({ status, text, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined }), fatal);
        });
        response.on('error', (err) => finish(transportError(err, this.#transport.origin), false));
        return;
      }
      const contentType = String(response.headers['content-type'] ?? '');
      if (!/^text\/event-stream\s*(;|$)/i.test(contentType)) {
        response.resume();
        finish(new SessiondError('invalid_response', `sessiond at ${this.#transport.origin} answered the event stream with content-type ${JSON.stringify(contentType)}`, { status: 200 }), false);
        return;
      }
      parser = new SseParser((message) => {
        this.#keepId(message.lastEventId);
        this.#failures = 0;
        this.#handlers.onMessage(message);
      }, this.#lastEventId);
      const streamParser = parser;
      response.on('data', (chunk) => {
        if (finished) return;
        // sessiond writes `: connected` once the subscription is registered: from then on, no
        // event is missed.
        if (this.#state === CONNECTING) {
          this.#state = OPEN;
          openedAt = performance.now();
          this.#lastError = null;
          // Without an event id sessiond neither replays nor sends a gap: say events may be lost.
          const resync = this.#wasOpen && this.#lastEventId === '';
          this.#wasOpen = true;
          this.#settleWaiters(null);
          if (resync) this.#handlers.onResync('no_event_id');
          if (finished || this.#state !== OPEN) return;
        }
        streamParser.feed(chunk);
      });
      response.on('end', () => {
        finish(new SessiondError('connection_lost', `sessiond at ${this.#transport.origin} ended the event stream`), false);
      });
      response.on('error', (err) => finish(transportError(err, this.#transport.origin), false));
      response.on('close', () => {
        finish(new SessiondError('connection_lost', `the event stream from ${this.#transport.origin} broke`), false);
      });
    });
    request.end();
  }

  #scheduleReconnect() {
    this.#state = WAITING;
    const { minDelay, maxDelay } = this.#options;
    const ceiling = Math.min(maxDelay, minDelay * 2 ** this.#failures);
    this.#failures = Math.min(this.#failures + 1, 30);
    // Jitter spreads the reconnections of many clients after a restart of sessiond.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#state === WAITING) this.#tryConnect();
    }, delay);
  }

  /** @param {Error | null} err resolve every waiter (null) or reject them with err */
  #settleWaiters(err) {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      if (err === null) waiter.resolve();
      else waiter.reject(err);
    }
  }
}
