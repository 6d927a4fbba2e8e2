/**
 * HTTP/1.1 on a byte stream: serialisation of one request into one string, and an incremental
 * parser of one response (status line, headers, body framed by Content-Length, chunked transfer
 * coding, or the end of the connection), with limits on the head and body sizes.
 */
import { SessiondError } from './errors.js';

/** Longest response head (status line + headers, or trailers) accepted, in bytes. */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Longest response body accepted, in bytes. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Characters a header value or a request target must not hold: they would end the line. */
const LINE_BREAKING = /[\r\n\0]/;
/** Characters a request target must not hold: controls, space and DEL. */
const TARGET_FORBIDDEN = /[\x00-\x20\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/;

/** Parser states. */
const HEAD = 0;
const BODY_LENGTH = 1;
const CHUNK_LINE = 2;
const CHUNK_DATA = 3;
const CHUNK_DATA_END = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

/**
 * Serialises a request head and body into one string.
 * @param {string} method
 * @param {string} target path and query, starting with `/`
 * @param {string} host value of the Host header
 * @param {[string, string][]} headers name and value of each further header
 * @param {string} [body] the body (a Content-Length is added for it)
 * @returns {string}
 * @throws {SessiondError} `invalid_argument` when the target or a header value holds a character
 *   that would end its line (header injection)
 */
export function serializeRequest(method, target, host, headers, body) {
  if (TARGET_FORBIDDEN.test(target)) {
    throw new SessiondError('invalid_argument', 'the request path holds a control character or a space');
  }
  let text = `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [name, value] of headers) {
    if (LINE_BREAKING.test(value)) {
      throw new SessiondError('invalid_argument', `the ${name} header value holds CR, LF or NUL`);
    }
    text += `${name}: ${value}\r\n`;
  }
  if (body !== undefined) text += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  else text += '\r\n';
  return text;
}

/** @param {string} message @returns {SessiondError} */
function invalid(message) {
  return new SessiondError('invalid_response', `sessiond's answer is not valid HTTP/1.1: ${message}`);
}

/**
 * Incremental parser of one HTTP/1.1 response to a request that is not HEAD. Feed it the bytes of
 * the connection with `push`; it reports when the response is complete. 1xx interim responses are
 * skipped. Call `reset` before parsing the next response of the same connection.
 */
export class ResponseParser {
  #maxHeaderBytes;
  #maxBodyBytes;
  #state = HEAD;
  /** Head (or chunk-size line, or trailers) read so far, as latin1 text (one char per byte). */
  #text = '';
  /** @type {Buffer[]} */
  #body = [];
  #bodyBytes = 0;
  /** Bytes left in the current Content-Length body or chunk. */
  #remaining = 0;
  /** Trailer bytes read so far. */
  #trailerBytes = 0;

  /** @type {number} status code of the final response (0 until its head is read) */
  status = 0;
  /** @type {string | undefined} the Retry-After header, if any */
  retryAfter;
  /** @type {boolean} whether the connection may carry another request after this response */
  keepAlive = true;
  /** @type {boolean} whether bytes followed the end of the response in the last pushed chunk */
  trailingBytes = false;

  /**
   * @param {{maxHeaderBytes?: number, maxBodyBytes?: number}} [limits]
   */
  constructor(limits = {}) {
    this.#maxHeaderBytes = limits.maxHeaderBytes ?? MAX_HEADER_BYTES;
    this.#maxBodyBytes = limits.maxBodyBytes ?? MAX_BODY_BYTES;
  }

  /** Prepares the parser for the next response. */
  reset() {
    this.#state = HEAD;
    this.#text = '';
    this.#body = [];
    this.#bodyBytes = 0;
    this.#remaining = 0;
    this.#trailerBytes = 0;
    this.status = 0;
    this.retryAfter = undefined;
    this.keepAlive = true;
    this.trailingBytes = false;
  }

  /** @returns {boolean} whether the whole response was read */
  get complete() {
    return this.#state === DONE;
  }

  /** @returns {string} the body, decoded as UTF-8 */
  get text() {
    if (this.#body.length === 1) return this.#body[0].toString('utf8');
    return Buffer.concat(this.#body, this.#bodyBytes).toString('utf8');
  }

  /**
   * Consumes bytes of the connection.
   * @param {Buffer} chunk
   * @returns {boolean} whether the response is now complete
   * @throws {SessiondError} `invalid_response` for a malformed response or one over a limit
   */
  push(chunk) {
    let i = 0;
    const length = chunk.length;
    while (i < length) {
      switch (this.#state) {
        case HEAD: {
          const before = this.#text.length;
          // Takes at most maxHeaderBytes + 4 bytes of head in all (a head at the limit and its
          // CRLFCRLF), and searches from 3 chars before the new bytes, for a CRLFCRLF split
          // across chunks.
          this.#text += chunk.toString('latin1', i, Math.min(length, i + this.#maxHeaderBytes + 4 - before));
          const end = this.#text.indexOf('\r\n\r\n', Math.max(0, before - 3));
          if (end === -1) {
            if (this.#text.length > this.#maxHeaderBytes) throw invalid(`a head longer than ${this.#maxHeaderBytes} bytes`);
            return false;
          }
          i += end + 4 - before;
          const head = this.#text.slice(0, end);
          this.#text = '';
          this.#readHead(head);
          break;
        }
        case BODY_LENGTH: {
          const n = Math.min(this.#remaining, length - i);
          this.#addBody(chunk.subarray(i, i + n));
          i += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = DONE;
          break;
        }
        case CHUNK_LINE: {
          const end = this.#readLine(chunk, i, 'a chunk-size line');
          if (end === -1) return false;
          i = end;
          const line = this.#text;
          this.#text = '';
          const match = CHUNK_SIZE.exec(line);
          if (match === null) throw invalid('a malformed chunk-size line');
          const size = parseInt(match[1], 16);
          if (size === 0) {
            this.#state = TRAILERS;
          } else {
            if (this.#bodyBytes + size > this.#maxBodyBytes) throw invalid(`a body longer than ${this.#maxBodyBytes} bytes`);
            this.#remaining = size;
            this.#state = CHUNK_DATA;
          }
          break;
        }
        case CHUNK_DATA: {
          const n = Math.min(this.#remaining, length - i);
          this.#addBody(chunk.subarray(i, i + n));
          i += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = CHUNK_DATA_END;
          break;
        }
        case CHUNK_DATA_END: {
          const end = this.#readLine(chunk, i, 'the end of a chunk');
          if (end === -1) return false;
          i = end;
          if (this.#text !== '') throw invalid('chunk data longer than its size');
          this.#state = CHUNK_LINE;
          break;
        }
        case TRAILERS: {
          const end = this.#readLine(chunk, i, 'a trailer line');
          if (end === -1) return false;
          this.#trailerBytes += end - i;
          if (this.#trailerBytes > this.#maxHeaderBytes) throw invalid(`trailers longer than ${this.#maxHeaderBytes} bytes`);
          i = end;
          const line = this.#text;
          this.#text = '';
          if (line === '') this.#state = DONE;
          else if (line.indexOf(':') <= 0) throw invalid('a malformed trailer line');
          break;
        }
        case UNTIL_CLOSE: {
          this.#addBody(chunk.subarray(i));
          i = length;
          break;
        }
        case DONE:
          this.trailingBytes = true;
          return true;
      }
    }
    return this.#state === DONE;
  }

  /**
   * Reports the end of the connection.
   * @returns {boolean} whether the response is complete (a body framed by the end of the connection)
   */
  end() {
    if (this.#state === UNTIL_CLOSE) {
      this.#state = DONE;
      return true;
    }
    return this.#state === DONE;
  }

  /** @param {Buffer} piece */
  #addBody(piece) {
    if (piece.length === 0) return;
    this.#bodyBytes += piece.length;
    if (this.#bodyBytes > this.#maxBodyBytes) throw invalid(`a body longer than ${this.#maxBodyBytes} bytes`);
    this.#body.push(piece);
  }

  /**
   * Appends bytes up to the next CRLF to #text (without the CRLF).
   * @param {Buffer} chunk
   * @param {number} from
   * @param {string} what for the error message
   * @returns {number} the index after the CRLF, or -1 when the line goes on in the next chunk
   */
  #readLine(chunk, from, what) {
    const lf = chunk.indexOf(10, from);
    const stop = lf === -1 ? chunk.length : lf + 1;
    this.#text += chunk.toString('latin1', from, stop);
    if (this.#text.length > this.#maxHeaderBytes) throw invalid(`${what} longer than ${this.#maxHeaderBytes} bytes`);
    if (lf === -1) return -1;
    if (this.#text.length < 2 || this.#text.charCodeAt(this.#text.length - 2) !== 13) throw invalid(`${what} not ended by CRLF`);
    this.#text = this.#text.slice(0, -2);
    return stop;
  }

  /** Reads a status line and headers, and picks how the body is framed. @param {string} head */
  #readHead(head) {
    const lines = head.split('\r\n');
    const status = STATUS_LINE.exec(lines[0]);
    if (status === null) throw invalid('a malformed status line');
    const code = Number(status[2]);
    const http10 = status[1] === '0';
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let connection = '';
    let retryAfter;
    for (let l = 1; l < lines.length; l++) {
      const line = lines[l];
      const colon = line.indexOf(':');
      if (colon <= 0) throw invalid('a header line without a name');
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) throw invalid('a malformed header name');
      const value = line.slice(colon + 1).trim();
      if (LINE_BREAKING.test(value)) throw invalid('a header value holding CR, LF or NUL');
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === 'connection') connection += `,${value.toLowerCase()}`;
          break;
        case 11:
          if (name.toLowerCase() === 'retry-after') retryAfter = value;
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            if (!/^\d{1,15}$/.test(value)) throw invalid('a malformed Content-Length');
            const n = Number(value);
            if (contentLength !== -1 && contentLength !== n) throw invalid('conflicting Content-Length headers');
            contentLength = n;
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') {
            transferEncoding = true;
            const codings = value.toLowerCase().split(',');
            chunked = codings[codings.length - 1].trim() === 'chunked';
          }
          break;
      }
    }
    if (code < 200) {
      // An interim answer (100 Continue, 102, 103): the final one follows. 101 would switch protocols.
      if (code === 101) throw invalid('an unexpected 101 Switching Protocols');
      return;
    }
    this.status = code;
    this.retryAfter = retryAfter;
    const tokens = connection.split(',').map((t) => t.trim());
    this.keepAlive = http10 ? tokens.includes('keep-alive') : !tokens.includes('close');
    if (code === 204 || code === 304) {
      this.#state = DONE;
    } else if (transferEncoding) {
      // A Transfer-Encoding overrides a Content-Length; a response that has both is not reused.
      if (contentLength !== -1) this.keepAlive = false;
      if (chunked) {
        this.#state = CHUNK_LINE;
      } else {
        this.keepAlive = false;
        this.#state = UNTIL_CLOSE;
      }
    } else if (contentLength !== -1) {
      if (contentLength > this.#maxBodyBytes) throw invalid(`a body longer than ${this.#maxBodyBytes} bytes`);
      this.#remaining = contentLength;
      this.#state = contentLength === 0 ? DONE : BODY_LENGTH;
    } else {
      this.keepAlive = false;
      this.#state = UNTIL_CLOSE;
    }
  }
}
