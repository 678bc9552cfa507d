#!/usr/bin/env node
/**
 * Open-loop (fixed-rate) HTTP latency probe.
 *
 *   node bench/fixed-rate.mjs <url> [--rate 1000] [--duration 10] [--warmup 1]
 *                                   [--max-sockets 64] [--timeout-ms 5000] [--no-rt] [--mix file.json]
 *
 * With `--mix`, requests cycle through the file's list ({method, path, headers, body}, the `mix`
 * load of bench/lib/mix.mjs) on the url's host and port, instead of GETs of the url.
 *
 * Requests are scheduled on a fixed timeline (request i at t0 + i/rate) whatever happens to the
 * earlier ones, and each latency is measured from its *scheduled* send time to the end of its
 * response, so a stall in the system under test shows up in the latencies of every request that
 * should have been sent during it (no coordinated omission). The first `--warmup` seconds run at
 * the same rate and are not counted.
 *
 * The timeline is kept by a worker thread that sleeps with Atomics.wait (sub-millisecond wake-ups)
 * and wakes the main thread for each due request; plain setTimeout only wakes on whole
 * milliseconds and would add ~0.5 ms (p99 ~1 ms) of generator lateness to every sample. When
 * permitted (root or CAP_SYS_NICE) that one thread gets SCHED_FIFO priority 1 via `chrt`, so it is
 * not kept waiting for a time slice behind the main thread or another process on the same CPU;
 * `--no-rt` turns that off. `send_lag_*` in the output shows how late requests actually left.
 *
 * Prints one JSON object: {sent, ok, errors, p50_ms, p90_ms, p99_ms, max_ms, ...}.
 */
import fs from 'node:fs';
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { percentile, round } from './lib/stats.mjs';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    'max-sockets': { type: 'string', default: '64' },
    'timeout-ms': { type: 'string', default: '5000' },
    'no-rt': { type: 'boolean', default: false },
    mix: { type: 'string' },
  },
});

const url = positionals[0];
if (!url) {
  process.stderr.write('usage: node bench/fixed-rate.mjs <url> [--rate N] [--duration S] [--warmup S] [--max-sockets N] [--timeout-ms MS] [--no-rt]\n');
  process.exit(2);
}
const rate = Number(opts.rate);
const duration = Number(opts.duration);
const warmup = Number(opts.warmup);
const maxSockets = Number(opts['max-sockets']);
const timeoutMs = Number(opts['timeout-ms']);
for (const [k, v] of Object.entries({ rate, duration, warmup, maxSockets, timeoutMs })) {
  if (!Number.isFinite(v) || v < 0 || ((k === 'rate' || k === 'duration' || k === 'maxSockets') && v <= 0)) {
    process.stderr.write(`invalid ${k}: ${v}\n`);
    process.exit(2);
  }
}

const target = new URL(url);
/** The requests to cycle through: the url alone, or the mix. */
const requests = opts.mix
  ? JSON.parse(fs.readFileSync(opts.mix, 'utf8')).map((r) => ({ method: r.method, path: r.path, headers: Object.fromEntries(r.headers), body: r.body }))
  : [{ method: 'GET', path: target.pathname + target.search, headers: undefined, body: null }];
const warmupCount = Math.round(rate * warmup);
const measuredCount = Math.round(rate * duration);
const total = warmupCount + measuredCount;
const intervalMs = 1000 / rate;

const base = process.hrtime.bigint();
const nowMs = () => Number(process.hrtime.bigint() - base) / 1e6;

const agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
const latencies = new Float64Array(measuredCount);
const sendLag = new Float64Array(measuredCount);
let ok = 0;
let errors = 0;
let finished = 0;
let warmupErrors = 0;
const errorSamples = new Map();

/** Start of the timeline (request i is due at t0 + i * intervalMs); set once the metronome is up. */
let t0 = 0;
let sent = 0;

function noteError(kind) {
  errorSamples.set(kind, (errorSamples.get(kind) ?? 0) + 1);
}

function fire(i) {
  const scheduled = t0 + i * intervalMs;
  const measured = i >= warmupCount;
  const slot = i - warmupCount;
  if (measured) sendLag[slot] = nowMs() - scheduled;
  let done = false;
  const finish = (status, err) => {
    if (done) return;
    done = true;
    const end = nowMs();
    finished++;
    const good = err === undefined && status >= 200 && status < 300;
    if (measured) {
      if (good) latencies[ok++] = end - scheduled;
      else {
        errors++;
        noteError(err ? `${err.code ?? ''} ${err.message}`.trim() : `HTTP ${status}`);
      }
    } else if (!good) warmupErrors++;
    if (finished === total) complete();
  };
  const r = requests[i % requests.length];
  const req = http.request({ agent, host: target.hostname, port: target.port || 80, path: r.path, method: r.method, headers: r.headers }, (res) => {
    res.on('error', (err) => finish(res.statusCode, err));
    res.on('end', () => finish(res.statusCode));
    res.resume();
  });
  req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
  req.on('error', (err) => finish(0, err));
  req.end(r.body ?? undefined);
}

// The metronome: a worker thread that sleeps with Atomics.wait (sub-millisecond wake-ups) and posts
// the index of each request as it falls due. It first reports its thread id and waits for t0.
const shared = new SharedArrayBuffer(16);
const startCell = new Int32Array(shared, 0, 1);
const t0Cell = new Float64Array(shared, 8, 1);
const metronome = new Worker(
  `
  const { parentPort, workerData } = require('node:worker_threads');
  const fs = require('node:fs');
  const { base, intervalMs, total, shared } = workerData;
  const nowMs = () => Number(process.hrtime.bigint() - base) / 1e6;
  const startCell = new Int32Array(shared, 0, 1);
  const t0 = new Float64Array(shared, 8, 1);
  let tid = null;
  try { tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop()); } catch {}
  parentPort.postMessage({ tid });
  while (Atomics.load(startCell, 0) === 0) Atomics.wait(startCell, 0, 0, 1000);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < total; i++) {
    const wait = t0[0] + i * intervalMs - nowMs();
    if (wait > 0) Atomics.wait(cell, 0, 0, wait);
    parentPort.postMessage(i);
  }
  `,
  { eval: true, workerData: { base, intervalMs, total, shared } },
);
let metronomeRealtime = false;
metronome.on('message', (msg) => {
  if (typeof msg === 'number') {
    while (sent <= msg) fire(sent++);
    return;
  }
  // Realtime priority for the metronome thread only (it sleeps between ticks, so it cannot starve
  // anything): under the fair scheduler it would otherwise wait up to a time slice (~1 ms) behind
  // this process's main thread or the upstream on the same CPU before it could post a tick.
  if (msg.tid && !opts['no-rt']) {
    try {
      execFileSync('chrt', ['-f', '-p', '1', String(msg.tid)], { stdio: 'ignore' });
      metronomeRealtime = true;
    } catch {
      /* not permitted (needs root or CAP_SYS_NICE): keep the default scheduler */
    }
  }
  t0 = nowMs() + 20;
  t0Cell[0] = t0;
  Atomics.store(startCell, 0, 1);
  Atomics.notify(startCell, 0);
});
// Hard bound: the run plus the per-request timeout plus slack.
const hardStop = setTimeout(
  () => {
    process.stderr.write(`fixed-rate: ${total - finished} requests still open at the deadline\n`);
    errors += total - finished;
    noteError('unfinished at deadline');
    report();
    process.exit(1);
  },
  (warmup + duration) * 1000 + timeoutMs + 5000,
);
hardStop.unref();

function complete() {
  clearTimeout(hardStop);
  report();
  agent.destroy();
  metronome.terminate();
}

function report() {
  const lat = Array.from(latencies.subarray(0, ok)).sort((a, b) => a - b);
  const lag = Array.from(sendLag).sort((a, b) => a - b);
  const out = {
    url,
    rate,
    duration_s: duration,
    warmup_s: warmup,
    sent: measuredCount,
    ok,
    errors,
    p50_ms: round(percentile(lat, 0.5), 4),
    p90_ms: round(percentile(lat, 0.9), 4),
    p99_ms: round(percentile(lat, 0.99), 4),
    p999_ms: round(percentile(lat, 0.999), 4),
    max_ms: round(lat.length ? lat[lat.length - 1] : null, 4),
    // How late the generator itself sent (included in the latencies above).
    send_lag_p50_ms: round(percentile(lag, 0.5), 4),
    send_lag_p99_ms: round(percentile(lag, 0.99), 4),
    metronome_realtime: metronomeRealtime,
    warmup_errors: warmupErrors,
    error_kinds: Object.fromEntries(errorSamples),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
