/**
 * Incremental parser of a Server-Sent-Events stream (the WHATWG event-stream format): lines end
 * with CRLF, LF or CR; `event`, `data` and `id` fields; comments (`:`) ignored; a blank line
 * dispatches the event. `retry` fields are ignored (the client has its own backoff).
 */

/**
 * @typedef {object} SseMessage
 * @property {string} event event type (`message` when the stream names none)
 * @property {string} data data lines joined with `\n`
 * @property {string} lastEventId the stream's last event id after this message
 */

export class SseParser {
  #buffer = '';
  #event = '';
  #data = '';
  #hasData = false;
  #idBuffer;
  #lastEventId;
  #onMessage;
  #atStart = true;
  #skipLineFeed = false;

  /**
   * @param {(message: SseMessage) => void} onMessage called for every dispatched event
   * @param {string} [lastEventId] the id the stream resumes after
   */
  constructor(onMessage, lastEventId = '') {
    this.#onMessage = onMessage;
    this.#idBuffer = lastEventId;
    this.#lastEventId = lastEventId;
  }

  /** @returns {string} the id of the last event dispatched (or given to the constructor); an
   * `id:` line counts only once the blank line that ends its event has arrived */
  get lastEventId() {
    return this.#lastEventId;
  }

  /**
   * Feeds decoded text; complete lines are processed at once, a partial line waits for the rest.
   * @param {string} chunk
   */
  feed(chunk) {
    let text = chunk;
    if (this.#skipLineFeed && text.length > 0) {
      // The previous chunk ended with a CR: an LF starting this one belongs to that line end.
      this.#skipLineFeed = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    text = this.#buffer + text;
    if (this.#atStart && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.#atStart = false;
    }
    let start = 0;
    for (;;) {
      let end = start;
      while (end < text.length) {
        const c = text.charCodeAt(end);
        if (c === 10 || c === 13) break;
        end++;
      }
      if (end === text.length) break;
      this.#line(text.slice(start, end));
      if (text.charCodeAt(end) === 13) {
        if (end + 1 === text.length) this.#skipLineFeed = true;
        else if (text.charCodeAt(end + 1) === 10) end++;
      }
      start = end + 1;
    }
    this.#buffer = text.slice(start);
  }

  /** @param {string} line */
  #line(line) {
    if (line === '') {
      this.#dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' comment (sessiond's `: connected`, `: keep-alive`)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data += this.#hasData ? `\n${value}` : value;
        this.#hasData = true;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.#idBuffer = value;
        break;
      default:
        break;
    }
  }

  #dispatch() {
    const event = this.#event === '' ? 'message' : this.#event;
    const data = this.#data;
    const hasData = this.#hasData;
    this.#event = '';
    this.#data = '';
    this.#hasData = false;
    this.#lastEventId = this.#idBuffer;
    if (!hasData) return;
    this.#onMessage({ event, data, lastEventId: this.#lastEventId });
  }
}
