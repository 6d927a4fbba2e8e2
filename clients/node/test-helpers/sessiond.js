/**
 * Test helper: runs a real sessiond on a free loopback port.
 *
 * The binary is `$SESSIOND_BIN`, else the repository's debug build. Each server gets its own
 * temporary directory (its cwd, the API token file with mode 600, the SQLite data directory), is
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
   * @param {{apiToken?: boolean | string, storage?: string, args?: string[]}} [options]
   *   apiToken: true for a random one, a string for that one; storage: memory (default) or sqlite
   */
  constructor(options = {}) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'sessiond-node-test-'));
    this.storage = options.storage ?? 'memory';
    this.args = options.args ?? [];
    this.apiToken = options.apiToken === true ? `test-${randomBytes(16).toString('hex')}` : options.apiToken || undefined;
    this.tokenFile = undefined;
    if (this.apiToken !== undefined) {
      this.tokenFile = path.join(this.dir, 'api-token');
      writeFileSync(this.tokenFile, `${this.apiToken}\n`, { mode: 0o600 });
      chmodSync(this.tokenFile, 0o600);
    }
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

  /** @returns {string} the last 8 KiB of sessiond's stderr */
  get log() {
    return this.#stderr;
  }
}

/**
 * Starts a sessiond for a test file.
 * @param {ConstructorParameters<typeof Sessiond>[0]} [options]
 * @returns {Promise<Sessiond>}
 */
export async function startSessiond(options) {
  return new Sessiond(options).start();
}
