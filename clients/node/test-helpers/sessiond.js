/**
 * Test helper: runs a real sessiond on a free loopback port.
 *
 * The binary is `$SESSIOND_BIN`, else the repository's debug build. Each server gets its own
 * temporary directory (its cwd, the API and admin token files with mode 600, the SQLite data
 * directory), is
 * ready once `/readyz` answers 200, and is stopped with SIGTERM, then SIGKILL after 5 s. Every
 * server still running when the test process exits (a failed test included) is killed then.
 *
 * This directory is not named `test`, so `node --test clients/node/test/` does not run it as a test
 * file.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SESSIOND_BIN = process.env.SESSIOND_BIN || path.join(REPO, '.build', 'debug', 'sessiond');

/** Servers not stopped yet, killed when the process exits. */
const running = new Set();
process.on('exit', () => {
  for (const server of running) server.killNow();
});

/** @returns {Promise<number>} a TCP port that was free on 127.0.0.1 a moment ago */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {string} url
 * @returns {Promise<number>} the status of a GET, 0 when the connection failed
 */
function probe(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(1000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export class Sessiond {
  /** @type {import('node:child_process').ChildProcess | null} */
  #child = null;
  #stderr = '';
  #exited = null;

  /**
   * @param {{apiToken?: boolean | string | string[], adminToken?: boolean | string | string[], storage?: string, args?: string[]}} [options]
   *   apiToken: true for a random one, a string for that one, an array for several (one a line of
   *   the file; `apiToken` is then the first); adminToken: the same, for `--admin-token-file`;
   *   storage: memory (default) or sqlite
   */
  constructor(options = {}) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'sessiond-node-test-'));
    this.storage = options.storage ?? 'memory';
    this.args = options.args ?? [];
    /** @type {string[]} */
    this.apiTokens = tokenList(options.apiToken, 'test');
    this.apiToken = this.apiTokens[0];
    this.tokenFile = this.#writeTokens('api-token', this.apiTokens);
    /** @type {string[]} */
    this.adminTokens = tokenList(options.adminToken, 'admin');
    this.adminToken = this.adminTokens[0];
    this.adminTokenFile = this.#writeTokens('admin-token', this.adminTokens);
    this.port = 0;
    this.url = '';
  }

  /** Starts sessiond (again, on the same port and data directory) and waits for /readyz 200. */
  async start() {
    if (this.port === 0) {
      this.port = await freePort();
      this.url = `http://127.0.0.1:${this.port}`;
    }
    const args = ['--host', '127.0.0.1', '--port', String(this.port), '--storage', this.storage, '--log-level', 'warning'];
    if (this.storage === 'sqlite') args.push('--data-dir', path.join(this.dir, 'data'));
    if (this.tokenFile !== undefined) args.push('--api-token-file', this.tokenFile);
    if (this.adminTokenFile !== undefined) args.push('--admin-token-file', this.adminTokenFile);
    args.push(...this.args);
    this.#stderr = '';
    const child = spawn(SESSIOND_BIN, args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    running.add(this);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.#stderr = (this.#stderr + chunk).slice(-8192);
    });
    this.#exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', (err) => resolve({ code: null, signal: null, error: err }));
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const exited = await Promise.race([this.#exited, new Promise((resolve) => setTimeout(resolve, 50, null))]);
      if (exited !== null) {
        running.delete(this);
        throw new Error(`sessiond exited before it was ready (${JSON.stringify(exited)}): ${this.#stderr}`);
      }
      if ((await probe(`${this.url}/readyz`)) === 200) return this;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`sessiond was not ready within 15 s: ${this.#stderr}`);
      }
    }
  }

  /** Stops sessiond: SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async stop() {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    running.delete(this);
  }

  /** Stops sessiond and removes its directory. */
  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILL at once (process exit). */
  killNow() {
    if (this.#child !== null && this.#child.exitCode === null) this.#child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Writes a token file (one token a line, mode 600) in the server's directory.
   * @param {string} name
   * @param {string[]} tokens
   * @returns {string | undefined} its path, undefined when there is no token
   */
  #writeTokens(name, tokens) {
    if (tokens.length === 0) return undefined;
    const file = path.join(this.dir, name);
    writeFileSync(file, tokens.map((token) => `${token}\n`).join(''), { mode: 0o600 });
    chmodSync(file, 0o600);
    return file;
  }

  /** @returns {string} the last 8 KiB of sessiond's stderr */
  get log() {
    return this.#stderr;
  }
}

/**
 * @param {boolean | string | string[] | undefined} option true: one random token; a string: that
 *   token; an array: those tokens
 * @param {string} prefix of a random token
 * @returns {string[]}
 */
function tokenList(option, prefix) {
  if (option === true) return [`${prefix}-${randomBytes(16).toString('hex')}`];
  if (Array.isArray(option)) return [...option];
  return option ? [option] : [];
}

/**
 * Starts a sessiond for a test file.
 * @param {ConstructorParameters<typeof Sessiond>[0]} [options]
 * @returns {Promise<Sessiond>}
 */
export async function startSessiond(options) {
  return new Sessiond(options).start();
}
