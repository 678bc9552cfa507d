#!/usr/bin/env node
/**
 * Status benchmark: how much event-loop time does building `status.json` take, at the default
 * limits (METRICS_MAX_SERIES_PER_FAMILY=2000), with 10,000 and 100,000 series in the store?
 * Run with `npm run bench:status` (builds first); about ten seconds.
 *
 * In this process, from dist/: the sidecar's registry with its RED families, the RED duration
 * histogram filled to its cap (2,000 series: 1,000 routes × 2 statuses, the worst case for the
 * per-route aggregation), and StatsD-like families of 2,000 series each (counters and
 * histograms, some at their cap) up to the total. The sampler then gets 15 minutes of history on a
 * fake clock (a tick every 10 s, traffic on every route in between), so every window and
 * sparkline has its full set of points. Timed, each a synchronous, uninterrupted stretch of the
 * event loop:
 *   build  StatusService.json(): snapshot of the RED histogram, windows, percentiles, sparklines,
 *          cardinality, JSON.stringify and the secret scrub (what GET /status.json costs);
 *   page   the same plus the server-rendered HTML (what GET / costs);
 *   tick   one sampler step (every 10 s while someone is looking).
 *
 * Target: build well under 1 ms at the default limits (issue 13), judged on the CPU time of the
 * build (the wall time is printed too; on a shared machine it also counts waiting for a CPU). Results: a table on stdout and
 * bench/results/status.json. A missed target is not a failure (exit 0).
 * Knobs: BENCH_STATUS_RUNS (200 timed builds per size), BENCH_STATUS_SIZES (10000,100000).
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { ROOT, atMost, baseMeta, envNum, fmt, fmtInt, logger, preflight, table, targetLine, writeResults } from './lib/report.mjs';
import { percentile } from './lib/stats.mjs';

const log = logger('status');
const require = createRequire(import.meta.url);
const TARGET_MS = 1;
const RUNS = envNum('BENCH_STATUS_RUNS', 200);
const SIZES = (process.env.BENCH_STATUS_SIZES ?? '10000,100000').split(',').map(Number);

const env = preflight({ needFiles: ['dist/status/service.js'], script: 'bench:status' });
const meta = baseMeta(env);
const { loadConfig } = require(`${ROOT}/dist/config/index.js`);
const { createSidecarMetrics } = require(`${ROOT}/dist/metrics/sidecar.js`);
const { RedRecorder } = require(`${ROOT}/dist/proxy/red.js`);
const { Counter, Histogram } = require(`${ROOT}/dist/metrics/registry.js`);
const { StatusService } = require(`${ROOT}/dist/status/service.js`);
const { renderPage } = require(`${ROOT}/dist/status/page.js`);

function scenario(totalSeries) {
  const config = loadConfig({
    LISTEN_PORT: '8080',
    STATSD_PORT: '0',
    METRICS_BASIC_AUTH_USERNAME: 'prometheus',
    METRICS_BASIC_AUTH_PASSWORD: 'bench-password-1',
    // The default total budget (20k) would stop the 100k scenario at 20k series; everything else stays default.
    METRICS_MAX_SERIES_TOTAL: String(Math.max(20_000, totalSeries * 2)),
  });
  const cap = config.http.maxSeriesPerFamily;
  const metrics = createSidecarMetrics(config);
  const red = new RedRecorder(metrics.registry, config.http);
  let clock = Date.now();
  const status = new StatusService({
    config,
    registry: metrics.registry,
    lifecycle: { ready: () => true, draining: () => false },
    accessOpen: false,
    now: () => clock,
  });

  const routes = Array.from({ length: cap / 2 }, (_, i) => `/api/v1/resource-${i}/:id`);
  const traffic = (n) => {
    for (let i = 0; i < n; i++) {
      const r = routes[i % routes.length];
      red.record('GET', r, i % 10 === 0 ? 500 : 200, 0.001 + (i % 97) / 200, false);
    }
  };
  traffic(routes.length * 2);
  let series = [...metrics.registry.all()].reduce((n, f) => n + f.size, 0);
  for (let f = 0; series < totalSeries; f++) {
    const n = Math.min(cap, totalSeries - series);
    if (f % 3 === 2) {
      const h = metrics.registry.register(
        new Histogram({ name: `app_latency_${f}`, help: 'x', labelNames: ['endpoint', 'status'], buckets: config.http.buckets, maxSeries: cap }),
      );
      for (let i = 0; i < n; i++) h.observe([`/e/${i}`, '200'], 0.05);
    } else {
      const c = metrics.registry.register(new Counter({ name: `app_events_${f}_total`, help: 'x', labelNames: ['kind', 'shard'], maxSeries: cap }));
      for (let i = 0; i < n; i++) c.inc([`k${i % 50}`, `s${i}`]);
      if (n === cap) c.inc(['overflowing', 'one-more']); // refused at the cap: counted as dropped
    }
    series += n;
  }
  // 15 minutes of history: a tick every 10 s, traffic in between, someone looking every minute.
  status.json();
  for (let t = 0; t < 90; t++) {
    clock += 10_000;
    traffic(500);
    status.sampler.tick();
    if (t % 6 === 0) status.json();
  }
  return { status, series: [...metrics.registry.all()].reduce((n, f) => n + f.size, 0), tick: () => status.sampler.tick(), more: () => traffic(50) };
}

/**
 * Wall time of each synchronous run (what the event loop is held for) and the process CPU time it
 * used: on a busy machine the wall time also counts time the kernel gave to other processes,
 * the CPU time does not.
 */
function time(fn, runs) {
  for (let i = 0; i < Math.min(20, runs); i++) fn(); // warm-up
  const ms = [];
  const cpu = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  ms.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  return { p50: percentile(ms, 0.5), p99: percentile(ms, 0.99), max: ms[ms.length - 1], cpu_p50: percentile(cpu, 0.5) };
}

const results = [];
for (const size of SIZES) {
  log(`building ${fmtInt(size)} series`);
  const s = scenario(size);
  let bytes = 0;
  const build = time(() => {
    s.more();
    bytes = s.status.json().length;
  }, RUNS);
  const page = time(() => renderPage(JSON.parse(s.status.json()), '', undefined), Math.ceil(RUNS / 4));
  const tick = time(s.tick, Math.ceil(RUNS / 4));
  s.status.stop();
  results.push({ series: s.series, json_bytes: bytes, build_ms: build, page_ms: page, tick_ms: tick });
}

console.log(`\nstatus.json build time (event-loop ms, synchronous), default limits (but the total series budget), ${RUNS} builds per size\n`);
console.log(
  table(
    ['series', 'build p50', 'build p99', 'build max', 'build CPU p50', 'CPU p50 / 1 ms', 'page p50', 'tick p50', 'json bytes'],
    results.map((r) => [
      fmtInt(r.series),
      fmt(r.build_ms.p50, 3),
      fmt(r.build_ms.p99, 3),
      fmt(r.build_ms.max, 3),
      fmt(r.build_ms.cpu_p50, 3),
      fmt(r.build_ms.cpu_p50 / TARGET_MS, 2),
      fmt(r.page_ms.p50, 3),
      fmt(r.tick_ms.p50, 3),
      fmtInt(r.json_bytes),
    ]),
  ),
);
console.log('');
for (const r of results) {
  console.log(
    targetLine(`build CPU p50 at ${fmtInt(r.series)} series (ms)`, fmt(r.build_ms.cpu_p50, 3), `≤ ${TARGET_MS} ms`, atMost(r.build_ms.cpu_p50, TARGET_MS)),
  );
  console.log(targetLine(`build wall p50 at ${fmtInt(r.series)} series (ms)`, fmt(r.build_ms.p50, 3), `≤ ${TARGET_MS} ms`, atMost(r.build_ms.p50, TARGET_MS)));
}
const load = os.loadavg()[0];
if (load > os.cpus().length)
  console.log(`\nnote: load average ${load.toFixed(1)} on ${os.cpus().length} CPUs during the run: wall times include waiting for a CPU; compare CPU times.`);
const file = writeResults('status', { ...meta, settings: { runs: RUNS, sizes: SIZES, target_ms: TARGET_MS }, load_average_1m: os.loadavg()[0], results });
console.log(`\nresults: ${file}`);
