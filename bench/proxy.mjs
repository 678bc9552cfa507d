#!/usr/bin/env node
/**
 * Proxy benchmark: what does putting the sidecar in front of an application cost, compared with
 * no proxy at all and with nginx as the proxy? Run with `npm run bench:proxy` (builds first).
 *
 * One run, one small upstream (nginx answering `200 hello\n`), three configurations:
 *   direct   wrk -> upstream
 *   sidecar  wrk -> node dist/main.js -> upstream
 *   nginx    wrk -> nginx reverse proxy (keep-alive pool) -> upstream
 *
 * For each: closed-loop throughput and latency with wrk (-t1 -c32, 2 s warm-up + 10 s measured),
 * CPU time per request of the proxy process(es) from /proc/<pid>/stat over the measured wrk run,
 * and open-loop latency at a fixed 1,000 req/s (bench/fixed-rate.mjs, 1 s warm-up + 10 s; three
 * interleaved rounds per configuration, the median of the rounds' percentiles is reported).
 * The proxies run on CPU 0 (both are started up front; only the one under load does any work);
 * wrk, the upstream, the fixed-rate client and this script share CPU 1. Everything binds 127.0.0.1. Results: a table on stdout and
 * bench/results/proxy.json. Exit status is non-zero only when something failed to run (or the
 * load saw more than 1% errors, which makes the numbers meaningless); a missed target is not a
 * failure.
 *
 * Environment knobs (optional): BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (32),
 * BENCH_RATE (1000), BENCH_RATE_DURATION_S (10), BENCH_RATE_ROUNDS (3), BENCH_KEEP_TMP=1 (keep the
 * nginx/sidecar logs in the temp dir).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  installCleanup,
  start,
  stop,
  stopAll,
  freePorts,
  waitForHttp,
  httpGet,
  clockTicks,
  cpuTicks,
  run,
  tail,
  interrupted,
  beginRun,
  runMain,
} from './lib/procs.mjs';
import { startNginx, upstreamConf, proxyConf, nginxVersion, NGINX } from './lib/nginx.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';
import { round } from './lib/stats.mjs';
import { which, pinSelf, summariseSidecarLog, warningLines } from './lib/report.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
const RESULTS = path.join(BENCH_DIR, 'results', 'proxy.json');

const num = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
};

const SETTINGS = {
  wrk_threads: 1,
  wrk_connections: num('BENCH_CONNECTIONS', 32),
  wrk_duration_s: num('BENCH_DURATION_S', 10),
  wrk_warmup_s: num('BENCH_WARMUP_S', 2),
  fixed_rate_rps: num('BENCH_RATE', 1000),
  fixed_rate_duration_s: num('BENCH_RATE_DURATION_S', 10),
  fixed_rate_warmup_s: 1,
  fixed_rate_rounds: num('BENCH_RATE_ROUNDS', 3),
  fixed_rate_max_sockets: 64,
  path: '/bench/path?x=1',
  proxy_cpu: 0,
  load_cpu: 1,
};

const TARGETS = {
  cpu_per_request_sidecar_over_nginx_max: 1.5,
  p99_added_over_direct_at_fixed_rate_ms_max: 0.5,
};

/** Above this share of failed requests a configuration's numbers are not worth reporting. */
const MAX_ERROR_SHARE = 0.01;
/** Hard bound on the whole run. */
const OVERALL_TIMEOUT_MS = 8 * 60 * 1000;

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);


function preflight() {
  const missing = [];
  if (!which('taskset')) missing.push('taskset (apt-get install -y util-linux)');
  if (!which('wrk')) missing.push('wrk (apt-get install -y wrk)');
  if (!which('getconf')) missing.push('getconf (libc-bin)');
  try {
    fs.accessSync(NGINX, fs.constants.X_OK);
  } catch {
    missing.push(`${NGINX} (apt-get install -y nginx-light, or set NGINX_BIN)`);
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}`);
  if (!fs.existsSync(path.join(ROOT, 'dist', 'main.js'))) throw new Error('dist/main.js not found: run `npm run build` (npm run bench:proxy does)');
  if (!fs.existsSync('/proc/self/stat')) throw new Error('/proc is required (Linux only)');
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  const allowed = fs.readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.*)$/m)?.[1] ?? '';
  if (cpus < 2) throw new Error(`needs 2 CPUs (proxy on CPU 0, load on CPU 1); this machine has ${cpus}`);
  return { cpus, allowed };
}

function safe(fn, fallback = 'unknown') {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/** Sums the sidecar's `<prefix>_total` counter from its Prometheus exposition. */
function sumRequestsTotal(exposition) {
  let sum = 0;
  let found = false;
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*_total)(\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
    if (m && m[1] === 'flask_http_request_total') {
      sum += Number(m[3]);
      found = true;
    }
  }
  return found ? sum : null;
}

function errorCount(w) {
  const s = w.socket_errors;
  return s.connect + s.read + s.write + s.timeout + w.non_2xx_3xx;
}

async function fixedRate(url) {
  const args = [
    path.join(BENCH_DIR, 'fixed-rate.mjs'),
    url,
    '--rate',
    String(SETTINGS.fixed_rate_rps),
    '--duration',
    String(SETTINGS.fixed_rate_duration_s),
    '--warmup',
    String(SETTINGS.fixed_rate_warmup_s),
    '--max-sockets',
    String(SETTINGS.fixed_rate_max_sockets),
  ];
  const budget = (SETTINGS.fixed_rate_duration_s + SETTINGS.fixed_rate_warmup_s + 30) * 1000;
  const res = await run('fixed-rate', process.execPath, args, { cpus: SETTINGS.load_cpu, timeoutMs: budget });
  let out;
  try {
    out = JSON.parse(res.stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`fixed-rate gave no result (exit ${res.code ?? res.signal}):\n${res.stderr}${res.stdout}`);
  }
  if (res.code !== 0) throw new Error(`fixed-rate exited ${res.code ?? res.signal}: ${res.stderr.trim()} ${JSON.stringify(out)}`);
  return out;
}

/** CPU ticks of a target's processes. */
function ticksOf(target) {
  if (!target.pids.length) return 0;
  target.alive();
  return cpuTicks(target.pids);
}

/**
 * Runs `fn`; if it fails, gives a proxy that just died a moment to be reported as such (its exit
 * event may not have been seen yet), since "connection refused" or a missing /proc entry is only
 * the symptom.
 */
async function explained(target, fn) {
  try {
    return await fn();
  } catch (err) {
    const procs = [target.proc, target.upstream].filter(Boolean);
    await Promise.race([Promise.race(procs.map((p) => p.exited)), sleep(1000)]);
    target.alive();
    throw err;
  }
}

/**
 * Closed loop: a wrk warm-up, then the measured wrk run with the proxy's CPU time read around it.
 * `target` is {name, url, pids (empty for direct), alive()}; alive() throws if a process died.
 */
async function closedLoop(target, hz) {
  return explained(target, () => closedLoopRun(target, hz));
}

async function closedLoopRun(target, hz) {
  const { name, url, pids, alive } = target;
  const wrkOpts = { threads: SETTINGS.wrk_threads, connections: SETTINGS.wrk_connections, cpus: SETTINGS.load_cpu };
  log(`${name}: wrk warm-up ${SETTINGS.wrk_warmup_s}s`);
  const warm = await runWrk(url, { ...wrkOpts, seconds: SETTINGS.wrk_warmup_s });
  alive();

  log(`${name}: wrk -t${wrkOpts.threads} -c${wrkOpts.connections} -d${SETTINGS.wrk_duration_s}s --latency`);
  const t0 = ticksOf(target);
  const w = await runWrk(url, { ...wrkOpts, seconds: SETTINGS.wrk_duration_s });
  const t1 = ticksOf(target);
  alive();
  const cpuSeconds = (t1 - t0) / hz;
  const { raw, ...wrk } = w;
  return {
    wrk: { ...wrk, errors: errorCount(w) },
    wrk_warmup: { requests: warm.requests, rps: warm.rps, errors: errorCount(warm) },
    wrk_raw: raw,
    proxy_pids: pids,
    cpu_seconds: pids.length ? round(cpuSeconds, 3) : null,
    cpu_us_per_req: pids.length && w.requests > 0 ? round((cpuSeconds * 1e6) / w.requests, 2) : null,
    requests_sent: warm.requests + w.requests,
  };
}

/** One fixed-rate round against `target`, with the proxy's CPU time around it. */
async function fixedRateRound(target, hz, round_) {
  return explained(target, () => fixedRateRoundRun(target, hz, round_));
}

async function fixedRateRoundRun(target, hz, round_) {
  const { name, url, pids, alive } = target;
  log(`${name}: ${SETTINGS.fixed_rate_rps} req/s open loop, ${SETTINGS.fixed_rate_warmup_s}s warm-up + ${SETTINGS.fixed_rate_duration_s}s (round ${round_ + 1}/${SETTINGS.fixed_rate_rounds})`);
  const f0 = ticksOf(target);
  const fr = await fixedRate(url);
  const f1 = ticksOf(target);
  alive();
  return { ...fr, cpu_ticks: f1 - f0 };
}

const median = (xs) => {
  const v = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};

/** Per-configuration fixed-rate summary: medians over rounds (every round kept as well). */
function summariseRounds(rounds, hz, hasProxy) {
  const requestsPerRound = Math.round(SETTINGS.fixed_rate_rps * (SETTINGS.fixed_rate_duration_s + SETTINGS.fixed_rate_warmup_s));
  const ticks = rounds.reduce((a, r) => a + r.cpu_ticks, 0);
  return {
    p50_ms: round(median(rounds.map((r) => r.p50_ms)), 4),
    p90_ms: round(median(rounds.map((r) => r.p90_ms)), 4),
    p99_ms: round(median(rounds.map((r) => r.p99_ms)), 4),
    max_ms: round(Math.max(...rounds.map((r) => r.max_ms ?? 0)), 4),
    sent: rounds.reduce((a, r) => a + r.sent, 0),
    ok: rounds.reduce((a, r) => a + r.ok, 0),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    error_kinds: Object.assign({}, ...rounds.map((r) => r.error_kinds)),
    // Informational: includes the warm-up seconds and the idle time between requests.
    cpu_us_per_req: hasProxy ? round(((ticks / hz) * 1e6) / (requestsPerRound * rounds.length), 2) : null,
    requests_sent: requestsPerRound * rounds.length,
    rounds: rounds.map(({ url, rate, duration_s, warmup_s, ...r }) => r),
  };
}

function fmt(x, digits) {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
}

function table(results) {
  const head = ['config', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'p50@1000rps', 'p99@1000rps'];
  head[5] = `p50@${SETTINGS.fixed_rate_rps}rps`;
  head[6] = `p99@${SETTINGS.fixed_rate_rps}rps`;
  const rows = Object.entries(results).map(([name, r]) => [
    name,
    fmt(r.wrk.rps, 0),
    fmt(r.wrk.p50_ms, 3),
    fmt(r.wrk.p99_ms, 3),
    fmt(r.cpu_us_per_req, 1),
    fmt(r.fixed_rate.p50_ms, 3),
    fmt(r.fixed_rate.p99_ms, 3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function verdict(value, max) {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  return value <= max ? 'PASS' : 'MISS';
}

async function main() {
  const startedAt = Date.now();
  const { cpus, allowed } = preflight();
  const { tmp, overall } = beginRun('bench-proxy', OVERALL_TIMEOUT_MS, log);

  // Count CPUs before pinning this process (nproc reports the affinity mask).
  const nproc = Number(safe(() => execFileSync('nproc', { encoding: 'utf8' }).trim(), String(cpus)));
  pinSelf(SETTINGS.load_cpu);
  const hz = clockTicks();

  const meta = {
    timestamp: new Date().toISOString(),
    machine: {
      nproc,
      cpus_allowed: allowed,
      cpu_model: os.cpus()[0]?.model ?? 'unknown',
      kernel: `${os.type()} ${os.release()}`,
      clk_tck: hz,
    },
    versions: {
      node: process.version,
      nginx: await nginxVersion(),
      wrk: await wrkVersion(),
      sidecar: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
      git_commit: safe(() => execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()),
      git_src_dirty: safe(() => execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '', null),
    },
    settings: SETTINGS,
  };
  log(`node ${meta.versions.node}, nginx ${meta.versions.nginx}, wrk ${meta.versions.wrk}, ${meta.machine.nproc} CPUs; temp dir ${tmp}`);

  const [upstreamPort, sidecarPort, sidecarMetricsPort, nginxPort] = await freePorts(4);
  const urlFor = (port) => `http://127.0.0.1:${port}${SETTINGS.path}`;

  log(`upstream nginx on 127.0.0.1:${upstreamPort} (CPU ${SETTINGS.load_cpu})`);
  const upstream = await startNginx('upstream', tmp, (p) => upstreamConf(p, upstreamPort), {
    cpus: SETTINGS.load_cpu,
    readyUrl: urlFor(upstreamPort),
  });
  const upstreamAlive = () => {
    if (upstream.proc.done) throw new Error(`upstream nginx ended unexpectedly (${upstream.proc.exitInfo}):\n${tail(upstream.proc.output())}`);
  };

  const warnings = [];
  const extra = {};

  // The two proxies start up front, both on the proxy CPU; only the one under load does any work.
  log(`sidecar on 127.0.0.1:${sidecarPort} (metrics :${sidecarMetricsPort}, CPU ${SETTINGS.proxy_cpu})`);
  const sidecar = start('sidecar', process.execPath, [path.join(ROOT, 'dist', 'main.js')], {
    cpus: SETTINGS.proxy_cpu,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? tmp,
      NODE_ENV: 'production',
      LISTEN_PORT: String(sidecarPort),
      UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
      PROMETHEUS_PORT: String(sidecarMetricsPort),
      STATSD_PORT: '0',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: '2000',
    },
    cwd: ROOT,
    logFile: path.join(tmp, 'sidecar.log'),
  });
  await waitForHttp(urlFor(sidecarPort), sidecar, 15000);

  log(`nginx proxy on 127.0.0.1:${nginxPort} (CPU ${SETTINGS.proxy_cpu})`);
  const ngx = await startNginx('proxy', tmp, (p) => proxyConf(p, nginxPort, upstreamPort), {
    cpus: SETTINGS.proxy_cpu,
    readyUrl: urlFor(nginxPort),
  });

  const targets = [
    { name: 'direct', url: urlFor(upstreamPort), pids: [], upstream: upstream.proc, alive: upstreamAlive },
    {
      name: 'sidecar',
      url: urlFor(sidecarPort),
      pids: [sidecar.pid],
      proc: sidecar,
      upstream: upstream.proc,
      alive: () => {
        upstreamAlive();
        if (sidecar.done) throw new Error(`sidecar (pid ${sidecar.pid}) ended during the benchmark (${sidecar.exitInfo}); its output:\n${tail(sidecar.output())}`);
      },
    },
    {
      name: 'nginx',
      url: urlFor(nginxPort),
      pids: ngx.pids,
      proc: ngx.proc,
      upstream: upstream.proc,
      alive: () => {
        upstreamAlive();
        if (ngx.proc.done) throw new Error(`nginx proxy ended during the benchmark (${ngx.proc.exitInfo}):\n${tail(ngx.proc.output())}`);
      },
    },
  ];

  // 1. Closed loop, one configuration after the other.
  const results = {};
  for (const t of targets) results[t.name] = await closedLoop(t, hz);

  // 2. Fixed rate, in interleaved rounds (order rotated each round) so that slow drifts of the
  // machine's latency noise hit every configuration alike; per configuration the median of the
  // rounds' percentiles is reported.
  const rounds = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let r = 0; r < SETTINGS.fixed_rate_rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + r) % targets.length];
      rounds[t.name].push(await fixedRateRound(t, hz, r));
    }
  }
  for (const t of targets) results[t.name].fixed_rate = summariseRounds(rounds[t.name], hz, t.pids.length > 0);
  if (rounds.direct.some((r) => !r.metronome_realtime)) {
    warnings.push('fixed-rate: could not give its metronome thread realtime priority (needs root or CAP_SYS_NICE); its own timing noise is larger');
  }

  // Sanity: the sidecar really recorded what it forwarded (a proxy that skips its metrics would
  // look cheap). wrk cuts in-flight requests at its deadline and readiness probes add a few, so
  // the two counts differ slightly.
  let recorded = null;
  try {
    const { status, body } = await httpGet(`http://127.0.0.1:${sidecarMetricsPort}/debug/metrics`, 5000);
    if (status === 200) recorded = sumRequestsTotal(body);
    else warnings.push(`sidecar metrics endpoint answered ${status}`);
  } catch (err) {
    warnings.push(`could not scrape the sidecar's metrics: ${err.message}`);
  }
  const sent = results.sidecar.requests_sent + results.sidecar.fixed_rate.requests_sent;
  extra.sidecar_metrics_check = { flask_http_request_total: recorded, load_generator_requests: sent };
  if (recorded === null) warnings.push('sidecar exposition has no flask_http_request_total samples');
  else if (recorded < sent * 0.99) warnings.push(`sidecar recorded ${recorded} requests but the load generators completed ${sent}`);

  const exit = await stop(sidecar, { signal: 'SIGTERM', graceMs: 5000 });
  const logSummary = summariseSidecarLog(sidecar.output());
  extra.sidecar_exit = exit.signal ?? exit.code;
  extra.sidecar_log = logSummary.counts;
  if (exit.code !== 0) warnings.push(`sidecar exited with ${exit.code ?? exit.signal} on SIGTERM`);
  for (const [k, n] of Object.entries(logSummary.counts)) warnings.push(`sidecar logged ${n}x "${k}"`);
  if (logSummary.samples.length) extra.sidecar_log_samples = logSummary.samples;

  await stop(ngx.proc, { signal: 'SIGQUIT', graceMs: 5000 });
  await stop(upstream.proc, { signal: 'SIGQUIT', graceMs: 5000 });
  for (const name of ['proxy', 'upstream']) {
    const errLog = safe(() => fs.readFileSync(path.join(tmp, name, 'error.log'), 'utf8').trim(), '');
    if (errLog) extra[`nginx_${name}_error_log`] = tail(errLog, 10);
  }

  // Errors under load make the numbers meaningless: flag them (and fail above 1%).
  let invalid = false;
  for (const [name, r] of Object.entries(results)) {
    const wrkShare = r.wrk.requests ? r.wrk.errors / r.wrk.requests : 1;
    if (r.wrk.errors) warnings.push(`${name}: wrk saw ${r.wrk.errors} errors (socket ${JSON.stringify(r.wrk.socket_errors)}, non-2xx/3xx ${r.wrk.non_2xx_3xx})`);
    if (r.wrk_warmup.errors) warnings.push(`${name}: wrk warm-up saw ${r.wrk_warmup.errors} errors`);
    if (r.fixed_rate.errors) warnings.push(`${name}: fixed-rate saw ${r.fixed_rate.errors} errors ${JSON.stringify(r.fixed_rate.error_kinds)}`);
    if (wrkShare > MAX_ERROR_SHARE || r.fixed_rate.errors / r.fixed_rate.sent > MAX_ERROR_SHARE) invalid = true;
  }

  const S = results.sidecar;
  const N = results.nginx;
  const D = results.direct;
  const ratios = {
    cpu_per_request_sidecar_over_nginx: round(S.cpu_us_per_req / N.cpu_us_per_req, 3),
    rps_sidecar_over_direct: round(S.wrk.rps / D.wrk.rps, 3),
    rps_sidecar_over_nginx: round(S.wrk.rps / N.wrk.rps, 3),
    p99_added_over_direct_at_fixed_rate_ms: {
      sidecar: round(S.fixed_rate.p99_ms - D.fixed_rate.p99_ms, 3),
      nginx: round(N.fixed_rate.p99_ms - D.fixed_rate.p99_ms, 3),
    },
  };
  const verdicts = {
    cpu_per_request_sidecar_over_nginx: verdict(ratios.cpu_per_request_sidecar_over_nginx, TARGETS.cpu_per_request_sidecar_over_nginx_max),
    p99_added_over_direct_at_fixed_rate_sidecar: verdict(
      ratios.p99_added_over_direct_at_fixed_rate_ms.sidecar,
      TARGETS.p99_added_over_direct_at_fixed_rate_ms_max,
    ),
  };

  // ---- report
  const rate = SETTINGS.fixed_rate_rps;
  const signed = (x) => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${x.toFixed(3)} ms`);
  const out = [];
  out.push('');
  out.push(
    `Proxy benchmark: closed loop wrk -t${SETTINGS.wrk_threads} -c${SETTINGS.wrk_connections} -d${SETTINGS.wrk_duration_s}s; ` +
      `open loop ${rate} req/s for ${SETTINGS.fixed_rate_duration_s}s (median of ${SETTINGS.fixed_rate_rounds} rounds); ` +
      `proxy on CPU ${SETTINGS.proxy_cpu}, load + upstream on CPU ${SETTINGS.load_cpu}`,
  );
  out.push('');
  out.push(table(results));
  out.push('');
  const perRound = (name) => results[name].fixed_rate.rounds.map((r) => fmt(r.p99_ms, 3)).join(' ');
  out.push(`p99@${rate}rps by round (ms): ${Object.keys(results).map((n) => `${n} [${perRound(n)}]`).join('  ')}`);
  out.push('');
  const label = (t) => t.padEnd(47);
  out.push(
    `${label('CPU/request sidecar/nginx:')}${fmt(ratios.cpu_per_request_sidecar_over_nginx, 2).padStart(9)}   target <= ${TARGETS.cpu_per_request_sidecar_over_nginx_max}      ${verdicts.cpu_per_request_sidecar_over_nginx}`,
  );
  out.push(`${label('req/s sidecar/direct:')}${fmt(ratios.rps_sidecar_over_direct, 2).padStart(9)}`);
  out.push(`${label('req/s sidecar/nginx:')}${fmt(ratios.rps_sidecar_over_nginx, 2).padStart(9)}`);
  out.push(
    `${label(`p99 added over direct at ${rate} req/s, sidecar:`)}${signed(ratios.p99_added_over_direct_at_fixed_rate_ms.sidecar).padStart(9)}   target <= ${TARGETS.p99_added_over_direct_at_fixed_rate_ms_max} ms   ${verdicts.p99_added_over_direct_at_fixed_rate_sidecar}`,
  );
  out.push(`${label(`p99 added over direct at ${rate} req/s, nginx:`)}${signed(ratios.p99_added_over_direct_at_fixed_rate_ms.nginx).padStart(9)}   (reference)`);
  if (extra.sidecar_metrics_check) {
    out.push('');
    out.push(
      `sidecar metrics check: flask_http_request_total = ${extra.sidecar_metrics_check.flask_http_request_total}, ` +
        `load generators completed ${extra.sidecar_metrics_check.load_generator_requests}`,
    );
  }
  out.push(...warningLines(warnings));
  if (invalid) {
    out.push('');
    out.push(`FAILED: more than ${MAX_ERROR_SHARE * 100}% of requests failed in at least one configuration; the numbers above are not valid.`);
  }

  const elapsed = round((Date.now() - startedAt) / 1000, 1);
  const json = {
    ...meta,
    elapsed_s: elapsed,
    results: Object.fromEntries(Object.entries(results).map(([k, { wrk_raw, ...r }]) => [k, r])),
    wrk_output: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.wrk_raw])),
    ratios,
    targets: TARGETS,
    verdicts,
    ...extra,
    warnings,
    valid: !invalid,
  };
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.writeFileSync(RESULTS, `${JSON.stringify(json, null, 2)}\n`);
  out.push('');
  out.push(`results: ${path.relative(process.cwd(), RESULTS) || RESULTS} (${elapsed}s)`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
  return invalid ? 1 : 0;
}

runMain('proxy', main);
