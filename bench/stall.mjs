#!/usr/bin/env node
/**
 * Stall benchmark: does scraping a large exposition stall the requests the sidecar is forwarding?
 * Run with `npm run bench:stall` (builds first).
 *
 * The built sidecar (CPU 0) sits in front of a small upstream (nginx answering `200 hello\n`, or a
 * tiny Node server when nginx is missing; CPU 1) and holds 100,000 series, loaded over StatsD UDP
 * before the measurement (`bench_series_<k>:<v>|g|#id:<i>,shard:<j>` lines in ≤ 8 KB datagrams,
 * resent until stored; the number actually stored is reported; the sidecar's series budgets are set
 * high enough for all of them). Then, in interleaved rounds:
 *
 *   baseline  no scrapes (10 s)
 *   scraping  a client scrapes /debug/metrics back to back, with the headers Prometheus sends
 *             (OpenMetrics preferred, gzip) (10 s)
 *   periodic  the same scrape once a second, as a Prometheus with a 1 s interval would (60 s)
 *
 * and in each, after 3 s of warm-up at the same rate (bench/fixed-rate.mjs, no coordinated
 * omission; the warm-up also absorbs the first GCs after the previous phase's scrapes):
 *   - proxied requests at a fixed 1,000 req/s through the main port: p50/p99/max latency;
 *   - a probe of the metrics port's /healthz at a fixed 500 req/s: a trivial request whose latency
 *     is mostly the time it waited for the event loop (plus the client's and the network's share);
 *   - the sidecar's own event-loop delay, measured inside it (bench/lib/loop-delay.cjs, preloaded
 *     with --require: monitorEventLoopDelay at 1 ms resolution): its max is the worst loop stall,
 *     which the once-a-second target is judged on;
 *   - the same measurement in an idle Node process pinned to the sidecar's CPU (the idle
 *     reference, on by default): the loop delay this machine gives a process that does nothing,
 *     in the same seconds, so a stall of the sidecar can be told from the machine's own noise.
 * All clients run on CPU 1. Medians of the rounds' percentiles (max: the max over rounds).
 *
 * Results: a table on stdout and bench/results/stall.json. A missed target is not a failure; the
 * exit status is non-zero only when something failed to run or > 1% of requests failed.
 *
 * Environment knobs (optional): BENCH_STALL_SERIES (100000), BENCH_STALL_ROUNDS (2),
 * BENCH_STALL_PHASES (baseline,scraping,periodic), BENCH_STALL_PERIODIC_S (60: length of the
 * periodic phase), BENCH_STALL_SCRAPE_INTERVAL_MS (1000),
 * BENCH_RATE (1000 proxied req/s), BENCH_PROBE_RATE (500 /healthz req/s), BENCH_RATE_DURATION_S
 * (10: baseline and back-to-back phases), BENCH_SCRAPE_GZIP (1; 0 = plain-text scrapes), BENCH_STALL_IDLE_REF (1; 0 = no idle reference process), BENCH_CPU_PROF=1 (run the sidecar under
 * --cpu-prof; the profile is summarised and kept as bench/results/stall-sidecar.cpuprofile),
 * BENCH_KEEP_TMP=1.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopAll, stop, start, freePorts, cpuTicks, clockTicks, beginRun, runMain } from './lib/procs.mjs';
import * as R from './lib/report.mjs';
import { round, median } from './lib/stats.mjs';
import { timedGet, countSamples } from './lib/http.mjs';
import { startSidecar, statsdOutcomes, scrapeText, collectCpuProfile } from './lib/sidecar.mjs';
import { summariseProfile, sidecarProfileLines } from './lib/cpuprofile.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { runFixedRate } from './lib/fixed-rate.mjs';
import { seriesLines, packLines, udpClient, sendPaced } from './lib/statsd.mjs';

const log = R.logger('stall');
const LOOP_DELAY_MODULE = fileURLToPath(new URL('./lib/loop-delay.cjs', import.meta.url));

const SETTINGS = {
  series: R.envNum('BENCH_STALL_SERIES', 100_000),
  series_prefix: 'bench_series',
  series_families: 10,
  datagram_max_bytes: 8192,
  load_datagrams_per_s: 500,
  rounds: R.envNum('BENCH_STALL_ROUNDS', 2),
  proxied_rps: R.envNum('BENCH_RATE', 1000),
  probe_rps: R.envNum('BENCH_PROBE_RATE', 500),
  duration_s: R.envNum('BENCH_RATE_DURATION_S', 10),
  periodic_s: R.envNum('BENCH_STALL_PERIODIC_S', 60),
  scrape_interval_ms: R.envNum('BENCH_STALL_SCRAPE_INTERVAL_MS', 1000),
  phases: (process.env.BENCH_STALL_PHASES || 'baseline,scraping,periodic')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean),
  warmup_s: 3,
  scrape_gzip: R.envBool('BENCH_SCRAPE_GZIP', true),
  settle_s: 1,
  cpu_prof: R.envBool('BENCH_CPU_PROF', false),
  idle_reference: R.envBool('BENCH_STALL_IDLE_REF', true),
  path: '/bench/path?x=1',
  sidecar_cpu: 0,
  load_cpu: 1,
};
/** What Prometheus 2.x sends when it scrapes. */
const PROMETHEUS_HEADERS = {
  accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'x-prometheus-scrape-timeout-seconds': '10',
  'user-agent': 'Prometheus/2.53.0',
};
/** Issue 12: back to back p99 ≤ 15 ms; once a second p99 ≤ baseline + 5 ms and worst loop delay ≤ 10 ms. */
const TARGETS = { scraping_p99_ms_max: 15, periodic_p99_added_ms_max: 5, periodic_max_loop_delay_ms_max: 10 };
const PHASES = ['baseline', 'scraping', 'periodic'];
const PHASE_LABELS = { baseline: 'baseline (no scrapes)', scraping: 'scraped back to back', periodic: 'scraped once a second' };
const MAX_ERROR_SHARE = 0.01;
const OVERALL_TIMEOUT_MS = 12 * 60 * 1000;

/** Loads the series over StatsD UDP; resends (gauges: idempotent) until all are stored or 3 tries. */
async function loadSeries(sidecar, statsdPort) {
  const lines = seriesLines(SETTINGS.series, { prefix: SETTINGS.series_prefix, families: SETTINGS.series_families });
  const datagrams = packLines(lines, SETTINGS.datagram_max_bytes);
  const sock = await udpClient(statsdPort);
  const t0 = performance.now();
  const attempts = [];
  let stored = 0;
  try {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const before = (await statsdOutcomes(sidecar.metricsUrl)).accepted;
      log(`loading ${R.fmtInt(SETTINGS.series)} series: ${datagrams.length} datagrams at ${SETTINGS.load_datagrams_per_s}/s (attempt ${attempt})`);
      await sendPaced(sock, datagrams, SETTINGS.load_datagrams_per_s);
      // Wait until the accepted counter stops moving.
      let last = -1;
      let acc = before;
      for (let still = 0; still < 3;) {
        await sleep(200);
        acc = (await statsdOutcomes(sidecar.metricsUrl)).accepted;
        still = acc === last ? still + 1 : 0;
        last = acc;
      }
      const text = await scrapeText(sidecar.metricsUrl, 60000);
      stored = countSeries(text);
      attempts.push({ accepted_lines: acc - before, stored_series: stored });
      if (stored >= SETTINGS.series) break;
    }
  } finally {
    sock.close();
  }
  return { stored, attempts, datagrams: datagrams.length, seconds: round((performance.now() - t0) / 1000, 1) };
}

/** Samples of the loaded families in a text exposition. */
function countSeries(text) {
  let n = 0;
  const prefix = `${SETTINGS.series_prefix}_`;
  for (let i = text.indexOf(prefix); i !== -1; i = text.indexOf(prefix, i + 1)) {
    if (i === 0 || text.charCodeAt(i - 1) === 10) n++;
  }
  return n;
}

/**
 * Scrapes until stop() is called, back to back (intervalMs 0) or starting one every intervalMs
 * (a scrape still running when the next is due delays it: counted as an overrun); collects
 * durations, sizes and errors.
 */
function scrapeLoop(url, intervalMs = 0) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { ...PROMETHEUS_HEADERS, ...(SETTINGS.scrape_gzip ? { 'accept-encoding': 'gzip' } : {}) };
  const ms = [];
  let bytes = 0;
  let errors = 0;
  let lastError;
  let running = true;
  let overruns = 0;
  const done = (async () => {
    let due = performance.now();
    while (running) {
      if (intervalMs > 0) {
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        else if (due > 0 && wait < -intervalMs / 2) overruns++;
        due = Math.max(due + intervalMs, performance.now());
        if (!running) break;
      }
      try {
        const r = await timedGet(url, { agent, headers, timeoutMs: 30000 });
        if (r.status === 200) {
          ms.push(r.ms);
          bytes = r.bytes;
        } else {
          errors++;
          lastError = `HTTP ${r.status}`;
        }
      } catch (err) {
        errors++;
        lastError = err.message;
        await sleep(100);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      agent.destroy();
      const sorted = [...ms].sort((a, b) => a - b);
      return {
        scrapes: ms.length,
        overruns,
        errors,
        last_error: lastError,
        body_bytes: bytes,
        ms_p50: round(median(sorted), 1),
        ms_max: round(sorted[sorted.length - 1] ?? null, 1),
      };
    },
  };
}

/** The worst event-loop delay the sidecar measured in itself over seconds ending in (from, to]. */
function readLoopDelay(file, from, to) {
  let lines;
  try {
    lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  } catch {
    return null;
  }
  const inWindow = lines.filter((l) => l.t > from + 1000 && l.t <= to + 1000);
  if (inWindow.length === 0) return null;
  const worst = inWindow.reduce((a, l) => (l.max_ms > a.max_ms ? l : a));
  return {
    seconds: inWindow.length,
    max_ms: round(worst.max_ms, 2),
    p99_ms_worst_second: round(Math.max(...inWindow.map((l) => l.p99_ms)), 2),
    // The longest GC pause V8 reported in the worst second, and in the whole window: a stall or a GC?
    worst_second_gc_ms: round(worst.gc_max_ms ?? null, 2),
    worst_second_gc_kind: worst.gc_kind ?? null,
    gc_max_ms: round(Math.max(...inWindow.map((l) => l.gc_max_ms ?? 0)), 2),
  };
}

async function measurePhase(phase, sidecar, mainUrl, hz, roundIdx) {
  sidecar.alive();
  await sleep(SETTINGS.settle_s * 1000);
  const duration = phase === 'periodic' ? SETTINGS.periodic_s : SETTINGS.duration_s;
  log(
    `${phase}: ${SETTINGS.proxied_rps} proxied req/s + ${SETTINGS.probe_rps} /healthz req/s, ${SETTINGS.warmup_s}s + ${duration}s (round ${roundIdx + 1}/${SETTINGS.rounds})`,
  );
  const scraper = phase === 'baseline' ? null : scrapeLoop(sidecar.metricsUrl, phase === 'periodic' ? SETTINGS.scrape_interval_ms : 0);
  if (scraper) await sleep(500);
  const t0 = cpuTicks([sidecar.pid]);
  const w0 = performance.now();
  // The loop-delay window: after the fixed-rate warm-up, to the end of the measurement.
  const windowFrom = Date.now() + SETTINGS.warmup_s * 1000;
  let proxied;
  let probe;
  let scrapes = null;
  try {
    [proxied, probe] = await Promise.all([
      runFixedRate(mainUrl, { rate: SETTINGS.proxied_rps, duration, warmup: SETTINGS.warmup_s, cpus: SETTINGS.load_cpu, name: 'fixed-rate-proxied' }),
      runFixedRate(sidecar.healthUrl, {
        rate: SETTINGS.probe_rps,
        duration,
        warmup: SETTINGS.warmup_s,
        maxSockets: 16,
        cpus: SETTINGS.load_cpu,
        name: 'fixed-rate-healthz',
      }),
    ]);
  } finally {
    if (scraper) scrapes = await scraper.stop();
  }
  const cpuPct = (((cpuTicks([sidecar.pid]) - t0) / hz) * 100) / ((performance.now() - w0) / 1000);
  const windowTo = Date.now();
  sidecar.alive();
  await sleep(1100); // the monitor's line for the last second
  const loopDelay = readLoopDelay(sidecar.loopDelayFile, windowFrom, windowTo);
  const idleRef = sidecar.idleRefFile ? readLoopDelay(sidecar.idleRefFile, windowFrom, windowTo) : null;
  const strip = (r) => {
    const { url: _u, rate: _r, duration_s: _d, warmup_s: _w, ...rest } = r;
    return rest;
  };
  return {
    phase,
    proxied: strip(proxied),
    healthz: strip(probe),
    scrapes,
    loop_delay: loopDelay,
    idle_ref_loop_delay: idleRef,
    sidecar_cpu_pct: round(cpuPct, 1),
  };
}

function summarise(rounds) {
  const pick = (f) => rounds.map(f);
  return {
    proxied_p50_ms: round(median(pick((r) => r.proxied.p50_ms)), 3),
    proxied_p99_ms: round(median(pick((r) => r.proxied.p99_ms)), 3),
    proxied_max_ms: round(Math.max(...pick((r) => r.proxied.max_ms ?? 0)), 3),
    healthz_p50_ms: round(median(pick((r) => r.healthz.p50_ms)), 3),
    healthz_p99_ms: round(median(pick((r) => r.healthz.p99_ms)), 3),
    healthz_max_ms: round(Math.max(...pick((r) => r.healthz.max_ms ?? 0)), 3),
    loop_delay_max_ms: rounds.every((r) => r.loop_delay) ? round(Math.max(...pick((r) => r.loop_delay.max_ms)), 2) : null,
    idle_ref_loop_delay_max_ms: rounds.every((r) => r.idle_ref_loop_delay) ? round(Math.max(...pick((r) => r.idle_ref_loop_delay.max_ms)), 2) : null,
    scrapes: rounds[0].scrapes ? rounds.reduce((a, r) => a + r.scrapes.scrapes, 0) : null,
    scrape_overruns: rounds[0].scrapes ? rounds.reduce((a, r) => a + r.scrapes.overruns, 0) : null,
    scrape_ms_p50: rounds[0].scrapes ? round(median(pick((r) => r.scrapes.ms_p50)), 1) : null,
    scrape_ms_max: rounds[0].scrapes ? round(Math.max(...pick((r) => r.scrapes.ms_max ?? 0)), 1) : null,
    sidecar_cpu_pct: round(median(pick((r) => r.sidecar_cpu_pct)), 1),
    errors: rounds.reduce((a, r) => a + r.proxied.errors + r.healthz.errors, 0),
    requests: rounds.reduce((a, r) => a + r.proxied.sent + r.healthz.sent, 0),
  };
}

async function main() {
  const startedAt = Date.now();
  const pre = R.preflight({ script: 'bench:stall' });
  const { tmp, overall } = beginRun('bench-stall', OVERALL_TIMEOUT_MS, log);
  const meta = R.baseMeta(pre);
  R.pinSelf(SETTINGS.load_cpu);
  const hz = clockTicks();
  const warnings = [];

  const [upstreamPort, mainPort, metricsPort, statsdPort] = await freePorts(4);
  const upstream = await startUpstream(tmp, upstreamPort, { cpus: SETTINGS.load_cpu });
  meta.versions.upstream = `${upstream.kind} ${upstream.version}`;
  log(`node ${meta.versions.node}; upstream ${meta.versions.upstream} on :${upstreamPort} (CPU ${SETTINGS.load_cpu}); temp dir ${tmp}`);
  log(`sidecar on :${mainPort} (metrics :${metricsPort}, StatsD :${statsdPort}; CPU ${SETTINGS.sidecar_cpu})`);
  const loopDelayFile = path.join(tmp, 'loop-delay.jsonl');
  const sidecar = await startSidecar({
    cpus: SETTINGS.sidecar_cpu,
    ports: { listen: mainPort, metrics: metricsPort, statsd: statsdPort },
    upstream: `http://127.0.0.1:${upstreamPort}`,
    // Budgets generous enough for every loaded series (the per-family cap and the total budget).
    env: {
      METRICS_MAX_SERIES_PER_FAMILY: String(Math.max(2000, SETTINGS.series * 2)),
      METRICS_MAX_SERIES_TOTAL: String(Math.max(10_000, SETTINGS.series * 4)),
      BENCH_LOOP_DELAY_FILE: loopDelayFile,
    },
    // The sidecar measures its own event-loop delay (bench/lib/loop-delay.cjs, one line a second).
    nodeArgs: ['--require', LOOP_DELAY_MODULE, ...(SETTINGS.cpu_prof ? ['--cpu-prof', `--cpu-prof-dir=${path.join(tmp, 'cpuprof')}`] : [])],
    tmp,
  });
  sidecar.loopDelayFile = loopDelayFile;
  // The idle reference: a Node process that does nothing, on the sidecar's CPU, measured the same way.
  let idleRef = null;
  if (SETTINGS.idle_reference) {
    sidecar.idleRefFile = path.join(tmp, 'idle-ref-loop-delay.jsonl');
    idleRef = start('idle-ref', process.execPath, ['--require', LOOP_DELAY_MODULE, '-e', 'setInterval(() => {}, 1 << 30)'], {
      cpus: SETTINGS.sidecar_cpu,
      env: { PATH: process.env.PATH, BENCH_LOOP_DELAY_FILE: sidecar.idleRefFile },
    });
  }
  const mainUrl = `http://127.0.0.1:${mainPort}${SETTINGS.path}`;

  const load = await loadSeries(sidecar, statsdPort);
  if (load.stored < SETTINGS.series)
    warnings.push(`only ${load.stored} of ${SETTINGS.series} series were stored after ${load.attempts.length} attempts (UDP loss)`);
  const plain = await scrapeText(sidecar.metricsUrl, 60000);
  const exposition = { samples: countSamples(plain), bytes: Buffer.byteLength(plain) };
  const om = await timedGet(sidecar.metricsUrl, { headers: { ...PROMETHEUS_HEADERS, 'accept-encoding': 'gzip' } });
  exposition.prometheus_scrape = { content_type: om.headers['content-type'], content_encoding: om.headers['content-encoding'] ?? null, bytes: om.bytes };
  log(
    `stored ${R.fmtInt(load.stored)} series in ${load.seconds}s; exposition ${R.fmtInt(exposition.samples)} samples, ${(exposition.bytes / 1e6).toFixed(1)} MB (${(om.bytes / 1e6).toFixed(2)} MB as scraped)`,
  );

  const phases = PHASES.filter((p) => SETTINGS.phases.includes(p));
  for (const p of SETTINGS.phases) if (!PHASES.includes(p)) throw new Error(`BENCH_STALL_PHASES: unknown phase ${p} (${PHASES.join(', ')})`);
  if (!phases.includes('baseline')) throw new Error('BENCH_STALL_PHASES must include baseline: the other phases are compared with it');
  const rounds = Object.fromEntries(phases.map((p) => [p, []]));
  for (let r = 0; r < SETTINGS.rounds; r++) {
    // Interleaved: each round rotates the order, so drift over the run hits every phase alike.
    const order = phases.map((_, i) => phases[(i + r) % phases.length]);
    for (const phase of order) rounds[phase].push(await measurePhase(phase, sidecar, mainUrl, hz, r));
  }

  if (idleRef) await stop(idleRef);
  const exit = await sidecar.stop();
  const logSummary = sidecar.logSummary();
  if (exit.code !== 0) warnings.push(`sidecar exited with ${exit.code ?? exit.signal} on SIGTERM`);
  for (const [k, n] of Object.entries(logSummary.counts)) warnings.push(`sidecar logged ${n}x "${k}"`);
  await upstream.stop();
  let sidecarProfile = null;
  if (SETTINGS.cpu_prof) {
    const kept = collectCpuProfile(path.join(tmp, 'cpuprof'), path.join(R.RESULTS_DIR, 'stall-sidecar.cpuprofile'));
    if (kept) sidecarProfile = { file: path.relative(process.cwd(), kept), ...summariseProfile(kept, { top: 15, root: R.ROOT }) };
    else warnings.push('BENCH_CPU_PROF=1 but the sidecar wrote no .cpuprofile');
  }

  const results = Object.fromEntries(phases.map((p) => [p, summarise(rounds[p])]));
  let invalid = false;
  for (const [phase, s] of Object.entries(results)) {
    if (s.errors)
      warnings.push(
        `${phase}: ${s.errors} of ${s.requests} requests failed ${JSON.stringify(Object.assign({}, ...rounds[phase].flatMap((r) => [r.proxied.error_kinds, r.healthz.error_kinds])))}`,
      );
    if (s.errors / s.requests > MAX_ERROR_SHARE) invalid = true;
  }
  for (const phase of phases) {
    for (const r of rounds[phase]) {
      if (r.scrapes?.errors) warnings.push(`${phase} scraper: ${r.scrapes.errors} failed scrapes (${r.scrapes.last_error})`);
      if (r.scrapes?.overruns)
        warnings.push(`${phase} scraper: ${r.scrapes.overruns} scrapes started late (the previous one took longer than ${SETTINGS.scrape_interval_ms} ms)`);
    }
  }
  if (phases.some((p) => rounds[p].some((r) => !r.proxied.metronome_realtime))) {
    warnings.push('fixed-rate: could not give its metronome thread realtime priority (needs root or CAP_SYS_NICE); its own timing noise is larger');
  }

  const B = results.baseline;
  const S = results.scraping;
  const P = results.periodic;
  const added = (x) => (x ? round(x.proxied_p99_ms - B.proxied_p99_ms, 3) : null);
  const ratios = {
    scraping_proxied_p99_added_ms: added(S),
    scraping_proxied_p99_over_baseline: S ? round(S.proxied_p99_ms / B.proxied_p99_ms, 2) : null,
    periodic_proxied_p99_added_ms: added(P),
    periodic_proxied_p99_over_baseline: P ? round(P.proxied_p99_ms / B.proxied_p99_ms, 2) : null,
  };
  const verdicts = {
    scraping_proxied_p99: S ? R.atMost(S.proxied_p99_ms, TARGETS.scraping_p99_ms_max) : 'skipped',
    periodic_proxied_p99_added: P ? R.atMost(ratios.periodic_proxied_p99_added_ms, TARGETS.periodic_p99_added_ms_max) : 'skipped',
    periodic_max_loop_delay: P ? R.atMost(P.loop_delay_max_ms ?? P.healthz_max_ms, TARGETS.periodic_max_loop_delay_ms_max) : 'skipped',
  };

  const out = [''];
  out.push(
    `Stall benchmark: sidecar on CPU ${SETTINGS.sidecar_cpu} holding ${R.fmtInt(load.stored)} StatsD series (${R.fmtInt(exposition.samples)} samples, ` +
      `${(exposition.bytes / 1e6).toFixed(1)} MB text; ${exposition.prometheus_scrape.content_type?.split(';')[0]}${exposition.prometheus_scrape.content_encoding ? ` + ${exposition.prometheus_scrape.content_encoding}` : ''} ` +
      `${(exposition.prometheus_scrape.bytes / 1e6).toFixed(2)} MB as Prometheus scrapes it); upstream ${upstream.kind} and all clients on CPU ${SETTINGS.load_cpu}`,
  );
  out.push(
    `${SETTINGS.proxied_rps} proxied req/s + ${SETTINGS.probe_rps} /healthz req/s (metrics port), ${SETTINGS.rounds} interleaved rounds of ` +
      `${phases.map((p) => `${p} ${p === 'periodic' ? SETTINGS.periodic_s : SETTINGS.duration_s}s`).join(', ')} ` +
      `(medians; max = max over rounds); scrapes as Prometheus sends them${SETTINGS.scrape_gzip ? ', with gzip' : ', without gzip'}` +
      (P ? `; periodic = one scrape every ${SETTINGS.scrape_interval_ms} ms` : ''),
  );
  out.push('');
  const head = [
    'phase',
    'proxied p50',
    'p99',
    'max',
    'p99 ÷ baseline',
    'healthz p50',
    'p99',
    'max',
    'loop delay max',
    'idle ref max',
    'scrapes',
    'scrape p50 ms',
    'sidecar CPU %',
  ];
  const row = (name, s) => [
    PHASE_LABELS[name],
    R.fmt(s.proxied_p50_ms, 3),
    R.fmt(s.proxied_p99_ms, 3),
    R.fmt(s.proxied_max_ms, 1),
    R.fmt(s.proxied_p99_ms / B.proxied_p99_ms, 2),
    R.fmt(s.healthz_p50_ms, 3),
    R.fmt(s.healthz_p99_ms, 3),
    R.fmt(s.healthz_max_ms, 1),
    R.fmt(s.loop_delay_max_ms, 1),
    R.fmt(s.idle_ref_loop_delay_max_ms, 1),
    s.scrapes === null ? '-' : String(s.scrapes),
    R.fmt(s.scrape_ms_p50, 1),
    R.fmt(s.sidecar_cpu_pct, 0),
  ];
  out.push(
    R.table(
      head,
      phases.map((p) => row(p, results[p])),
    ),
  );
  out.push(
    "(latencies in ms; loop delay max: measured inside the sidecar by monitorEventLoopDelay, without the probe client's and the network's share; idle ref max: the same in an idle node process on the sidecar's CPU, same seconds: the machine's own noise)",
  );
  out.push('');
  const per = (phase, f) => rounds[phase].map((r) => R.fmt(f(r), 2)).join(' ');
  out.push(`proxied p99 by round (ms): ${phases.map((p) => `${p} [${per(p, (r) => r.proxied.p99_ms)}]`).join('  ')}`);
  out.push(`healthz max by round (ms): ${phases.map((p) => `${p} [${per(p, (r) => r.healthz.max_ms)}]`).join('  ')}`);
  out.push(`loop delay max by round (ms): ${phases.map((p) => `${p} [${per(p, (r) => r.loop_delay?.max_ms)}]`).join('  ')}`);
  if (SETTINGS.idle_reference)
    out.push(`idle reference loop delay max by round (ms): ${phases.map((p) => `${p} [${per(p, (r) => r.idle_ref_loop_delay?.max_ms)}]`).join('  ')}`);
  out.push(
    `longest GC pause in that second (ms): ${phases.map((p) => `${p} [${rounds[p].map((r) => `${R.fmt(r.loop_delay?.worst_second_gc_ms, 1)}${r.loop_delay?.worst_second_gc_kind ? ` ${r.loop_delay.worst_second_gc_kind}` : ''}`).join(', ')}]`).join('  ')}`,
  );
  out.push(`longest GC pause by round (ms): ${phases.map((p) => `${p} [${per(p, (r) => r.loop_delay?.gc_max_ms)}]`).join('  ')}`);
  out.push('');
  const signed = (x) => `${x >= 0 ? '+' : ''}${R.fmt(x, 2)} ms`;
  if (S) {
    out.push(
      R.targetLine(
        'back to back: proxied p99:',
        `${R.fmt(S.proxied_p99_ms, 2)} ms`,
        `target <= ${TARGETS.scraping_p99_ms_max} ms`,
        verdicts.scraping_proxied_p99,
      ),
    );
    out.push(R.targetLine('back to back: proxied p99 added over baseline:', signed(ratios.scraping_proxied_p99_added_ms)));
    out.push(R.targetLine('back to back: max event-loop delay:', `${R.fmt(S.loop_delay_max_ms, 1)} ms`, `(healthz max ${R.fmt(S.healthz_max_ms, 1)} ms)`));
  }
  if (P) {
    out.push(
      R.targetLine(
        'once a second: proxied p99 added over baseline:',
        signed(ratios.periodic_proxied_p99_added_ms),
        `target <= +${TARGETS.periodic_p99_added_ms_max} ms`,
        verdicts.periodic_proxied_p99_added,
      ),
    );
    out.push(
      R.targetLine(
        'once a second: max event-loop delay:',
        `${R.fmt(P.loop_delay_max_ms ?? P.healthz_max_ms, 1)} ms`,
        `target <= ${TARGETS.periodic_max_loop_delay_ms_max} ms`,
        verdicts.periodic_max_loop_delay,
      ),
    );
    if (P.idle_ref_loop_delay_max_ms !== null)
      out.push(R.targetLine('once a second: idle reference, same seconds:', `${R.fmt(P.idle_ref_loop_delay_max_ms, 1)} ms`));
    out.push(R.targetLine('once a second: max healthz latency:', `${R.fmt(P.healthz_max_ms, 1)} ms`));
  }
  out.push(
    R.targetLine('baseline (no scrapes): max event-loop delay:', `${R.fmt(B.loop_delay_max_ms, 1)} ms`, `(healthz max ${R.fmt(B.healthz_max_ms, 1)} ms)`),
  );
  if (sidecarProfile) out.push(...sidecarProfileLines(sidecarProfile));
  out.push(...R.warningLines(warnings));
  if (invalid) {
    out.push('');
    out.push(`FAILED: more than ${MAX_ERROR_SHARE * 100}% of requests failed in a phase; the numbers above are not valid.`);
  }

  const elapsed = round((Date.now() - startedAt) / 1000, 1);
  const file = R.writeResults('stall', {
    ...meta,
    elapsed_s: elapsed,
    settings: SETTINGS,
    load,
    exposition,
    results,
    rounds,
    ratios,
    targets: TARGETS,
    verdicts,
    sidecar_profile: sidecarProfile,
    sidecar_log: logSummary.counts,
    warnings,
    valid: !invalid,
  });
  out.push('');
  out.push(`results: ${file} (${elapsed}s)`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
  return invalid ? 1 : 0;
}

runMain('stall', main);
