// Node client benchmark, driven by Benchmarks/node/run.sh. sessiond's URL comes from SESSIOND_URL,
// the API token from API_TOKEN and the session tokens file from TOKENS_FILE (as for wrk).
//
//   node bench.js setup N                   creates N sessions with the client, writes their tokens
//   node bench.js throughput PATH SECONDS C  C calls in flight for SECONDS, after 1 s of warm-up;
//                                           prints "req/s p50_ms p99_ms cpu_us" (cpu_us: the Node
//                                           process's CPU time per call, µs). PATH is one of
//       client  SessionManager.checkSessionStatus (the measured client)
//       http    a bare node:http GET on a keep-alive Agent, body read as a string: the floor of any
//               client built on node:http
//       net     a minimal HTTP/1.1 exchange over node:net (request written as one string, answer
//               framed by Content-Length, nothing else): what the Node runtime itself allows
//   node bench.js latency N                 one call in flight: N checkSessionStatus calls
//                                           alternating one by one with N bare node:http GETs and
//                                           N minimal node:net exchanges
// Every path sends GET /v1/session?refresh=false with a random token in Session-Token and the API
// token in Authorization, as Benchmarks/http/validate.lua does for wrk (with VALIDATE_PATH); every path checks the status.
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { SessionManager } from '../../clients/node/index.js';

const url = process.env.SESSIOND_URL;
const apiToken = process.env.API_TOKEN;
const tokensFile = process.env.TOKENS_FILE;
const target = new URL(url);
const CHECK_PATH = '/v1/session?refresh=false';

/** @param {ArrayLike<number>} values @param {number} q @returns {number} the q-quantile */
function quantile(values, q) {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function loadTokens() {
  const tokens = readFileSync(tokensFile, 'utf8').trim().split('\n');
  return () => tokens[(Math.random() * tokens.length) | 0];
}

async function setup(count) {
  const sm = new SessionManager({ url, apiToken, maxSockets: 50 });
  const tokens = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      tokens.push(await sm.loadNewSession(`user-${i % 1000}@example.com`));
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  await sm.close();
  writeFileSync(tokensFile, `${tokens.join('\n')}\n`, { mode: 0o600 });
  console.log(`created ${tokens.length} sessions`);
}

/** A bare node:http GET of the check route; resolves once the whole answer was read. */
function httpCheck(agent, token) {
  return new Promise((resolve, reject) => {
    const headers = { 'session-token': token, authorization: `Bearer ${apiToken}` };
    const req = http.request({ hostname: target.hostname, port: target.port, path: CHECK_PATH, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * One connection of the minimal node:net client: `check(token)` writes a request and resolves with
 * the answer's body once Content-Length bytes of it arrived. One request at a time per connection.
 */
async function netConnection() {
  const socket = net.connect(Number(target.port), target.hostname);
  socket.setNoDelay(true);
  socket.setEncoding('latin1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffer = '';
  let pending = null;
  socket.on('data', (chunk) => {
    buffer += chunk;
    const headEnd = buffer.indexOf('\r\n\r\n');
    if (headEnd === -1) return;
    const head = buffer.slice(0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)[1]);
    if (buffer.length < headEnd + 4 + length) return;
    const ok = head.startsWith('HTTP/1.1 200');
    buffer = buffer.slice(headEnd + 4 + length);
    const settle = pending;
    pending = null;
    if (ok) settle.resolve();
    else settle.reject(new Error(head.split('\r\n')[0]));
  });
  const prefix = `GET ${CHECK_PATH} HTTP/1.1\r\nHost: ${target.host}\r\nAuthorization: Bearer ${apiToken}\r\nSession-Token: `;
  return {
    check(token) {
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        socket.write(`${prefix}${token}\r\n\r\n`);
      });
    },
    close: () => socket.destroy(),
  };
}

async function throughput(path, seconds, concurrency) {
  const pick = loadTokens();
  let call;
  let close;
  if (path === 'client') {
    const sm = new SessionManager({ url, apiToken, maxSockets: concurrency });
    call = async () => {
      if (!(await sm.checkSessionStatus(pick()))) throw new Error('a check answered false');
    };
    close = () => sm.close();
  } else if (path === 'http') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    call = () => httpCheck(agent, pick());
    close = () => agent.destroy();
  } else if (path === 'net') {
    const connections = await Promise.all(Array.from({ length: concurrency }, netConnection));
    const free = [...connections];
    call = async () => {
      const connection = free.pop();
      await connection.check(pick());
      free.push(connection);
    };
    close = () => connections.forEach((c) => c.close());
  } else {
    throw new Error(`unknown path ${path}`);
  }
  let measuring = false;
  let stop = false;
  const latencies = [];
  const worker = async () => {
    while (!stop) {
      const started = performance.now();
      await call();
      if (measuring) latencies.push(performance.now() - started);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // warm-up: connections open, code optimised
  measuring = true;
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const cpu = process.cpuUsage(cpuStart);
  const elapsed = (performance.now() - started) / 1000;
  stop = true;
  await Promise.all(workers);
  await close();
  const rps = latencies.length / elapsed;
  const cpuPerCall = (cpu.user + cpu.system) / latencies.length;
  console.log(`${rps.toFixed(2)} ${quantile(latencies, 0.5).toFixed(3)} ${quantile(latencies, 0.99).toFixed(3)} ${cpuPerCall.toFixed(1)}`);
}

async function latency(rounds) {
  const pick = loadTokens();
  const sm = new SessionManager({ url, apiToken, maxSockets: 1 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const connection = await netConnection();
  const timed = (call) => async () => {
    const started = performance.now();
    await call();
    return performance.now() - started;
  };
  const paths = [
    timed(async () => {
      if (!(await sm.checkSessionStatus(pick()))) throw new Error('a check answered false');
    }),
    timed(() => httpCheck(agent, pick())),
    timed(() => connection.check(pick())),
  ];
  const samples = paths.map(() => new Float64Array(rounds));
  const overHttp = new Float64Array(rounds);
  const overNet = new Float64Array(rounds);
  // Warm-up of the three paths (connections open, code optimised).
  for (let i = 0; i < 3000; i++) for (const path of paths) await path();
  // Calls alternate one by one, in an order that rotates every round, so all paths see the same machine.
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < paths.length; k++) {
      const p = (i + k) % paths.length;
      samples[p][i] = await paths[p]();
    }
    overHttp[i] = samples[0][i] - samples[1][i];
    overNet[i] = samples[0][i] - samples[2][i];
  }
  await sm.close();
  agent.destroy();
  connection.close();
  const us = (ms) => (ms * 1000).toFixed(1);
  const [c50, h50, n50] = samples.map((s) => quantile(s, 0.5));
  const [c99, h99, n99] = samples.map((s) => quantile(s, 0.99));
  console.log(`${rounds} rounds of three calls, one call in flight`);
  console.log(`checkSessionStatus:     p50 ${us(c50)} µs, p99 ${us(c99)} µs`);
  console.log(`bare node:http GET:     p50 ${us(h50)} µs, p99 ${us(h99)} µs`);
  console.log(`minimal node:net:       p50 ${us(n50)} µs, p99 ${us(n99)} µs`);
  console.log(`client - bare node:http: ${us(c50 - h50)} µs (difference of the p50s), ${us(quantile(overHttp, 0.5))} µs (median of the paired differences)`);
  console.log(`client - minimal node:net: ${us(c50 - n50)} µs (difference of the p50s), ${us(quantile(overNet, 0.5))} µs (median of the paired differences)`);
}

const [mode, ...args] = process.argv.slice(2);
switch (mode) {
  case 'setup':
    await setup(Number(args[0]));
    break;
  case 'throughput':
    await throughput(args[0], Number(args[1]), Number(args[2]));
    break;
  case 'latency':
    await latency(Number(args[0]));
    break;
  default:
    console.error('usage: bench.js setup N | throughput client|http|net SECONDS CONCURRENCY | latency N');
    process.exit(2);
}
