/**
 * StatsD traffic for the benchmarks: multi-line DogStatsD packets of a realistic mix (counters,
 * timers, histograms, a few gauges, tags, some sample rates), packets that load N distinct gauge
 * series, and a paced UDP sender.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** mulberry32: a small deterministic PRNG. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (rnd, list) => list[Math.floor(rnd() * list.length)];
const range = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/**
 * The mix: [weight, distinct series, line(rnd)]. About 260 distinct series in total, the four
 * maintained application families among them (graphql_requests, github_api_call_latency,
 * github_webhook_latency) plus unmapped ones (sanitised names).
 */
const OPERATIONS = range('op', 20);
const ENDPOINTS = range('/repos/{owner}/{repo}/e', 15);
const EVENTS = ['push', 'pull_request', 'issues', 'issue_comment', 'check_run', 'check_suite', 'release', 'workflow_run'];
const ROUTES = range('/api/v2/r', 30);
const TABLES = range('t_', 20);
const QUEUES = range('q', 10);
const latencyMs = (rnd) => (rnd() ** 3 * 2000).toFixed(2);
const MIX = [
  [20, 40, (rnd) => `graphql_requests:1|c|#operation:${pick(rnd, OPERATIONS)},status:${rnd() < 0.95 ? 'ok' : 'error'}`],
  [20, 45, (rnd) => `github_api_call_latency:${latencyMs(rnd)}|ms|#endpoint:${pick(rnd, ENDPOINTS)},status:${pick(rnd, ['200', '404', '500'])}`],
  [15, 8, (rnd) => `github_webhook_latency:${(rnd() ** 2 * 3).toFixed(4)}|h|#event:${pick(rnd, EVENTS)}`],
  [20, 120, (rnd) => `app.http.requests:1|c|@0.5|#route:${pick(rnd, ROUTES)},method:${pick(rnd, ['GET', 'POST'])},status:${rnd() < 0.97 ? '200' : '500'}`],
  [20, 40, (rnd) => `app.db.query:${latencyMs(rnd)}|ms|#table:${pick(rnd, TABLES)},op:${pick(rnd, ['select', 'insert'])}`],
  [5, 10, (rnd) => `app.queue.depth:${Math.floor(rnd() * 500)}|g|#queue:${pick(rnd, QUEUES)}`],
];
export const MIX_DISTINCT_SERIES = MIX.reduce((a, m) => a + m[1], 0);
export const MIX_DESCRIPTION = 'c 40% (half with @0.5), ms 40%, h 15%, g 5%; DogStatsD tags; ~260 distinct series';

/** One line of the mix. */
export function mixLine(rnd) {
  const total = MIX.reduce((a, m) => a + m[0], 0);
  let r = rnd() * total;
  for (const [w, , line] of MIX) {
    if ((r -= w) < 0) return line(rnd);
  }
  return MIX[0][2](rnd);
}

/**
 * `count` distinct multi-line packets of the mix, each as full as fits in `maxBytes` (lines
 * joined by '\n', no trailing newline). Returns {packets: Buffer[], lines: number[] (per packet),
 * avgLines, avgBytes}.
 */
export function mixPackets(count, maxBytes = 1400, seed = 42) {
  const rnd = prng(seed);
  const packets = [];
  const lines = [];
  let pending = mixLine(rnd);
  for (let p = 0; p < count; p++) {
    let text = pending;
    let n = 1;
    for (;;) {
      pending = mixLine(rnd);
      if (Buffer.byteLength(text) + 1 + Buffer.byteLength(pending) > maxBytes) break;
      text += `\n${pending}`;
      n++;
    }
    packets.push(Buffer.from(text));
    lines.push(n);
  }
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return { packets, lines, avgLines: sum(lines) / count, avgBytes: sum(packets.map((b) => b.length)) / count };
}

/** Packs lines into datagrams of at most `maxBytes` (newline-separated). */
export function packLines(lines, maxBytes = 8192) {
  const out = [];
  let cur = [];
  let size = 0;
  for (const l of lines) {
    const add = Buffer.byteLength(l) + (cur.length ? 1 : 0);
    if (cur.length && size + add > maxBytes) {
      out.push(Buffer.from(cur.join('\n')));
      cur = [];
      size = 0;
    }
    size += Buffer.byteLength(l) + (cur.length ? 1 : 0);
    cur.push(l);
  }
  if (cur.length) out.push(Buffer.from(cur.join('\n')));
  return out;
}

/**
 * Lines that create `n` distinct gauge series: `<prefix>_<i % families>:<value>|g|#id:<i>,shard:<i % 16>`
 * (so `families` families of n/families series, 2 labels each).
 */
export function seriesLines(n, { prefix = 'bench_series', families = 10 } = {}) {
  const lines = new Array(n);
  for (let i = 0; i < n; i++) lines[i] = `${prefix}_${i % families}:${((i * 7919) % 100000) / 100}|g|#id:${i},shard:${i % 16}`;
  return lines;
}

/** A UDP socket connected to 127.0.0.1:`port` (send(buf) without an address). */
export async function udpClient(port, { sendBufferSize = 4 * 1024 * 1024 } = {}) {
  const sock = dgram.createSocket({ type: 'udp4', sendBufferSize });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(port, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return sock;
}

/** Sends `packets` over a connected socket at about `packetsPerSecond`, in small bursts. */
export async function sendPaced(sock, packets, packetsPerSecond) {
  const burst = Math.max(1, Math.round(packetsPerSecond / 200)); // a burst every 5 ms
  const t0 = performance.now();
  for (let i = 0; i < packets.length; i += burst) {
    const slice = packets.slice(i, i + burst);
    await Promise.all(slice.map((b) => new Promise((resolve, reject) => sock.send(b, (err) => (err ? reject(err) : resolve())))));
    const due = t0 + ((i + burst) / packetsPerSecond) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

/** Kernel UDP counters (/proc/net/snmp `Udp:`): InDatagrams, RcvbufErrors, InErrors, ...; null if unreadable. */
export function udpSnmp() {
  try {
    const lines = fs
      .readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    if (lines.length < 2) return null;
    const names = lines[0].split(/\s+/).slice(1);
    const values = lines[1].split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(names.map((n, i) => [n, values[i]]));
  } catch {
    return null;
  }
}
