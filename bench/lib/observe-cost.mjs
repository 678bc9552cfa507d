#!/usr/bin/env node
/**
 * What one observation costs on the sidecar's histogram, classic buckets only and with native
 * buckets beside them (the RED histogram's default: factor 1.1 = schema 3, at most 160 buckets),
 * and with an exemplar (a sampled request), in one process: bench:render runs it as a child
 * pinned to a CPU (`node --expose-gc bench/lib/observe-cost.mjs <dist dir>`) and prints its
 * JSON line (OBSERVE_RESULT {...}).
 *
 * The values are request durations as the proxy sees them: log-uniform from 0.5 ms to 20 s, drawn
 * once from a fixed seed and replayed for every variant over 1,000 series (path × method × status
 * of one family), so the native buckets populated are those of a real latency spread (~100 per
 * series). Variants run interleaved, BENCH_OBSERVE_ROUNDS rounds (default 15) of 2,000,000
 * observations each, after a warm-up round; the figure is the median ns per observation and the
 * difference to classic is the cost of a native observation. Two more variants time a request's
 * whole RED recording (duration and request counter) with exemplars off and on, the header read
 * as the forwarder reads it: their difference is what EXEMPLARS=true costs a request.
 */
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dist = path.resolve(process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'dist'));
const { Histogram, Counter } = require(path.join(dist, 'metrics', 'registry.js'));
const tp = require(path.join(dist, 'proxy', 'traceparent.js'));
// The forwarder's entry point (flags read first); an older build has only the full parse.
const sampledTrace =
  tp.parseSampledTraceparent ??
  ((h) => {
    const t = tp.parseTraceparent(h);
    return t !== undefined && t.sampled ? t : undefined;
  });

const ROUNDS = Number(process.env.BENCH_OBSERVE_ROUNDS || 15);
const PER_ROUND = 2_000_000;
const SERIES = 1000;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// Fixed-seed values (mulberry32), log-uniform over [0.5 ms, 20 s].
let seed = 0x5eed;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const VALUES = new Float64Array(1 << 16);
for (let i = 0; i < VALUES.length; i++) VALUES[i] = 0.0005 * Math.exp(rand() * Math.log(20 / 0.0005));

function family(native) {
  const h = new Histogram({
    name: 'bench_request_duration_seconds',
    help: 'bench',
    labelNames: ['path', 'method', 'status'],
    buckets: BUCKETS,
    maxSeries: Infinity,
    ...(native ? { native: { bucketFactor: 1.1, maxBuckets: 160 } } : {}),
  });
  const series = [];
  for (let i = 0; i < SERIES; i++) series.push(h.child([`/p${i % 100}`, i % 2 ? 'GET' : 'POST', String(200 + (i % 5))]));
  return { h, series };
}

const variants = {
  classic: family(false),
  native: family(true),
  'native+exemplar': family(true),
};
const exemplar = {
  labels: [
    ['trace_id', '0af7651916cd43dd8448eb211c80319c'],
    ['span_id', 'b7ad6b7169203331'],
  ],
  value: 0.042,
  timestampMs: Date.now(),
};

// What EXEMPLARS=true adds to a request, as the forwarder and the RED recorder do it: every
// request's traceparent parsed (bench:proxy's mix sends one on every request, one in eight
// sampled), and for a sampled one the ids, a timestamp and two exemplars (bucket and counter).
// `red-exemplars-off` is the same recording with EXEMPLARS=false: the header is not read.
const HEADERS = Array.from({ length: 8 }, (_, i) => {
  const hex = (n, len) => n.toString(16).repeat(len).slice(0, len);
  return `00-${hex(0xa1b2c3 + i, 32)}-${hex(0x51d2 + i, 16)}-${i === 0 ? '01' : '00'}`;
});
const totals = new Counter({ name: 'bench_requests_total', help: 'bench', labelNames: ['path', 'method', 'status'], maxSeries: Infinity });
const totalSeries = variants.native.series.map((_, i) => totals.child([`/p${i % 100}`, i % 2 ? 'GET' : 'POST', String(200 + (i % 5))]));
function red(withExemplars) {
  const { h, series } = variants.native;
  const mask = VALUES.length - 1;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) {
    const s = series[i % SERIES];
    const c = totalSeries[i % SERIES];
    const v = VALUES[i & mask];
    const t = withExemplars ? sampledTrace(HEADERS[i & 7]) : undefined;
    if (t !== undefined) {
      const labels = [
        ['trace_id', t.traceId],
        ['span_id', t.spanId],
      ];
      const timestampMs = Date.now();
      h.observeWithExemplar(s, v, { labels, value: v, timestampMs });
      totals.incWithExemplar(c, { labels, value: 1, timestampMs });
    } else {
      h.observeOn(s, v);
      c.value++;
    }
  }
  return Number(process.hrtime.bigint() - t0) / PER_ROUND;
}

function run(name) {
  if (name === 'red-exemplars-on') return red(true);
  if (name === 'red-exemplars-off') return red(false);
  const { h, series } = variants[name];
  const ex = name === 'native+exemplar';
  const mask = VALUES.length - 1;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) {
    const s = series[i % SERIES];
    const v = VALUES[i & mask];
    // One in eight with an exemplar: the bench:proxy mix's share of sampled traceparents.
    if (ex && (i & 7) === 0) h.observeWithExemplar(s, v, exemplar);
    else h.observeOn(s, v);
  }
  return Number(process.hrtime.bigint() - t0) / PER_ROUND;
}

const names = [...Object.keys(variants), 'red-exemplars-off', 'red-exemplars-on'];
for (const n of names) run(n); // warm-up: every series' native buckets populated, JIT settled
const samples = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  // Rotate the order so that a drift of the machine hits every variant alike.
  for (let k = 0; k < names.length; k++) {
    const n = names[(r + k) % names.length];
    samples[n].push(run(n));
  }
}
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const nativeBuckets = variants.native.series.reduce((n, s) => n + (s.nh ? s.nh.bucketCount() : 0), 0) / SERIES;
const out = {
  rounds: ROUNDS,
  observations_per_round: PER_ROUND,
  series: SERIES,
  native_buckets_per_series: Math.round(nativeBuckets),
  ns_per_observation: Object.fromEntries(
    names.map((n) => [n, { median: median(samples[n]), min: Math.min(...samples[n]), max: Math.max(...samples[n]), samples: samples[n] }]),
  ),
};
// The native buckets' own cost: the per-round difference to the classic run beside it.
const diff = samples.native.map((v, i) => v - samples.classic[i]);
out.native_cost_ns = { median: median(diff), min: Math.min(...diff), max: Math.max(...diff) };
const exDiff = samples['red-exemplars-on'].map((v, i) => v - samples['red-exemplars-off'][i]);
out.exemplars_cost_ns_per_request = { median: median(exDiff), min: Math.min(...exDiff), max: Math.max(...exDiff) };
process.stdout.write(`OBSERVE_RESULT ${JSON.stringify(out)}\n`);
