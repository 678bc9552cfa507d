#!/usr/bin/env node
/**
 * Peer benchmark: what does one hop through the sidecar cost, next to no proxy at all and to the
 * other proxies one could put there? Run with `npm run bench:proxy` (builds first).
 *
 * One upstream (nginx answering `200 hello\n`, keep-alive) behind each configuration:
 *   direct        wrk -> upstream
 *   sidecar       node dist/main.js (RED metrics on)
 *   nginx         1 worker, keep-alive pool to the upstream, no access log
 *   haproxy       Debian's, 1 thread, http-reuse always
 *   caddy         Debian's, reverse_proxy (GOMAXPROCS = 1 from the CPU mask)
 *   undici        bench/peers/undici-proxy.mjs: node:http + undici Pool, no metrics
 *   http-proxy    bench/peers/http-proxy.mjs: node-http-proxy with a keep-alive agent
 *   fastify       bench/peers/fastify-proxy.mjs: @fastify/http-proxy
 *   l4-pipe       bench/peers/l4-pipe.mjs: `net` sockets piped, no HTTP (the floor for Node)
 *
 * Every proxy runs on CPU 0 (all started up front; only the one under load does any work); wrk,
 * the upstream, the fixed-rate client and this script share CPU 1. Everything binds 127.0.0.1.
 *
 * 1. Saturated, in BENCH_ROUNDS interleaved rounds (order rotated each round): per configuration a
 *    short wrk warm-up, then `wrk -t1 -c32` for BENCH_DURATION_S with the proxy's CPU time read
 *    from /proc/<pid>/stat around it: CPU µs per request = CPU time / requests completed. Each
 *    round's ratio to nginx uses nginx's figure of the same round, so slow drifts of a shared
 *    machine hit both sides alike.
 * 2. Fixed rate, in BENCH_RATE_ROUNDS interleaved rounds: bench/fixed-rate.mjs sends exactly
 *    BENCH_RATE req/s (open loop, latency from the scheduled send time): CPU per request over the
 *    run (warm-up second included, idle time between requests included: what a real pod pays),
 *    and p50/p90/p99 added over `direct` of the same round.
 *
 * Reported: medians over rounds with min–max, the drift of the machine (nginx's own CPU per
 * request and direct's throughput, round by round), the targets of issue 12, and everything in
 * bench/results/proxy.json. Exit status is non-zero only when something failed to run or a
 * configuration saw more than 1% errors; a missed target is a result, not a failure.
 *
 * Loads (BENCH_LOAD, bench/lib/mix.mjs): `hello` (default: GET of one path, answered "hello\n")
 * or `mix` (browser-like heads of ~800 bytes, ids and queries in paths, 1-20 KiB answers, 5 %
 * POSTs with 1.5 KiB bodies), the same sequence for every configuration. Results go to
 * bench/results/proxy.json (hello) or proxy-mix.json.
 *
 * Other builds of the sidecar in the same rounds (bench/lib/builds.mjs): `sidecar-baseline` with
 * BENCH_BASELINE=<git ref | dist dir> (an earlier version, e.g. main before a change), and
 * `sidecar-undici` (today's build on undici's Pool instead of its own upstream client; ADR 0003),
 * selected with BENCH_PEERS. Their ratios to `sidecar` are reported.
 * `sidecar-control` is today's build again, a second identical process: its ratio to `sidecar` is
 * the A/A control, what two identical processes differ by in the same rounds.
 *
 * 3. Paired, in BENCH_PAIRED_BLOCKS blocks of BENCH_PAIRED_ROUNDS rounds (default 6 × 4 when
 *    another sidecar configuration is selected, else none): each other sidecar configuration runs
 *    *at the same time* as `sidecar`, each under its own `wrk -c<BENCH_CONNECTIONS/2>` for
 *    BENCH_DURATION_S, both sharing CPU 0. What the machine does to one in that window it does to
 *    the other, so the ratio of their CPU per request resolves far smaller differences than the
 *    interleaved rounds (whose per-round ratios move by ±30 % on a noisy VM). Each block starts a
 *    fresh pair of processes, in alternating order, and stops them after: of the long-lived
 *    processes of rounds 1 and 2, the one started first was ~9 % cheaper per request than an
 *    identical one started after it (sidecar-control, both start orders measured), a bias carried
 *    whole into every ratio between two configurations; fresh pairs show none (A/A 0.998). With
 *    sidecar-control selected, its paired ratio to `sidecar` says what resolution the blocks have.
 *
 * Knobs: BENCH_ROUNDS (5), BENCH_DURATION_S (4), BENCH_WARMUP_S (1), BENCH_CONNECTIONS (32),
 * BENCH_RATE (1000), BENCH_RATE_DURATION_S (5), BENCH_RATE_ROUNDS (3), BENCH_PEERS (comma list of
 * configurations to run; direct, sidecar and nginx are always included), BENCH_LOAD (hello),
 * BENCH_BASELINE, BENCH_PAIRED_BLOCKS, BENCH_PAIRED_ROUNDS (4), BENCH_KEEP_TMP=1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { start, stop, stopAll, freePorts, waitForHttp, httpGet, clockTicks, cpuTicks, run, tail, beginRun, runMain } from './lib/procs.mjs';
import { startNginx, upstreamConf, proxyConf, nginxVersion, NGINX } from './lib/nginx.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';
import { runFixedRate } from './lib/fixed-rate.mjs';
import { round, median } from './lib/stats.mjs';
import { startSidecar } from './lib/sidecar.mjs';
import {
  BENCH_DIR,
  ROOT,
  envNum,
  preflight,
  pinSelf,
  baseMeta,
  packageVersion,
  fmt,
  table,
  atMost,
  targetLine,
  writeResults,
  warningLines,
  logger,
} from './lib/report.mjs';
import { haproxyConf, caddyConf } from './peers/configs.mjs';
import { LOADS, mixHeadBytes, writeMixFiles, writeMixJson, writeMixWrkScript } from './lib/mix.mjs';
import { upstreamMixConf } from './lib/nginx.mjs';
import { baselineDist, undiciDist } from './lib/builds.mjs';
import { writeOpenApiDoc } from './lib/openapi.mjs';

const log = logger('proxy');

const SETTINGS = {
  rounds: envNum('BENCH_ROUNDS', 5),
  wrk_threads: 1,
  wrk_connections: envNum('BENCH_CONNECTIONS', 32),
  wrk_duration_s: envNum('BENCH_DURATION_S', 4),
  wrk_warmup_s: envNum('BENCH_WARMUP_S', 1),
  fixed_rate_rps: envNum('BENCH_RATE', 1000),
  fixed_rate_duration_s: envNum('BENCH_RATE_DURATION_S', 5),
  fixed_rate_warmup_s: 1,
  fixed_rate_rounds: envNum('BENCH_RATE_ROUNDS', 3),
  paired_blocks: process.env.BENCH_PAIRED_BLOCKS === undefined ? null : envNum('BENCH_PAIRED_BLOCKS', 0),
  paired_rounds: envNum('BENCH_PAIRED_ROUNDS', 4),
  fixed_rate_max_sockets: 64,
  path: '/bench/path?x=1',
  load: process.env.BENCH_LOAD || 'hello',
  baseline: process.env.BENCH_BASELINE || null,
  proxy_cpu: 0,
  load_cpu: 1,
};

/** Issue 12's "done when" lines. */
const TARGETS = {
  cpu_per_request_sidecar_over_nginx_max: 2.2,
  fixed_rate_cpu_us_per_req_sidecar_max: 130,
  fixed_rate_p50_added_sidecar_ms_max: 0.15,
};

const ALL = [
  'direct',
  'sidecar',
  'sidecar-baseline',
  'sidecar-undici',
  'sidecar-per-request',
  'sidecar-no-exemplars',
  'sidecar-classic',
  'sidecar-openapi',
  'sidecar-control',
  'nginx',
  'haproxy',
  'caddy',
  'undici',
  'http-proxy',
  'fastify',
  'l4-pipe',
];
/** Other builds of the sidecar: run only when asked for (BENCH_PEERS; sidecar-baseline also by BENCH_BASELINE). */
const OPT_IN = ['sidecar-baseline', 'sidecar-undici', 'sidecar-per-request', 'sidecar-no-exemplars', 'sidecar-classic', 'sidecar-openapi', 'sidecar-control'];
/**
 * Today's build with settings of its own: what a connection per request, exemplars and native buckets cost.
 * sidecar-control is today's build with no settings at all, a second process beside `sidecar`: its
 * ratio to `sidecar` is what two identical processes differ by in the same rounds (an A/A control),
 * the spread any other configuration's ratio must be read against.
 */
const SIDECAR_ENV = {
  'sidecar-per-request': { UPSTREAM_KEEPALIVE: 'false' },
  'sidecar-no-exemplars': { EXEMPLARS: 'false' },
  'sidecar-classic': { EXEMPLARS: 'false', NATIVE_HISTOGRAM_BUCKET_FACTOR: '0' },
  'sidecar-control': {},
};
const NODE_PEERS = { undici: 'undici-proxy.mjs', 'http-proxy': 'http-proxy.mjs', fastify: 'fastify-proxy.mjs', 'l4-pipe': 'l4-pipe.mjs' };
/** Peers the sidecar must use less CPU than (issue 12). */
const MUST_BEAT = ['caddy', 'undici', 'http-proxy', 'fastify'];
const MAX_ERROR_SHARE = 0.01;

function selected() {
  const v = process.env.BENCH_PEERS;
  const baseline = SETTINGS.baseline ? ['sidecar-baseline'] : [];
  if (!v) return ALL.filter((n) => !OPT_IN.includes(n) || baseline.includes(n));
  const want = new Set([
    'direct',
    'sidecar',
    'nginx',
    ...baseline,
    ...v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ]);
  for (const n of want) if (!ALL.includes(n)) throw new Error(`BENCH_PEERS: unknown configuration ${JSON.stringify(n)} (known: ${ALL.join(', ')})`);
  if (want.has('sidecar-baseline') && !SETTINGS.baseline) throw new Error('sidecar-baseline needs BENCH_BASELINE=<git ref | dist dir>');
  return ALL.filter((n) => want.has(n));
}

async function versionOf(cmd, args, re) {
  try {
    const r = await run(`${cmd}-version`, cmd, args, { timeoutMs: 5000 });
    const text = `${r.stdout}${r.stderr}`.trim();
    return re.exec(text)?.[1] ?? text.split('\n')[0];
  } catch {
    return 'not installed';
  }
}

/** Starts one configuration on CPU 0; resolves {name, url, pids, proc, alive()}. */
async function startTarget(name, { tmp, port, metricsPort, upstreamPort, urlFor, dists, instance }) {
  const cpus = SETTINGS.proxy_cpu;
  const url = urlFor(port);
  const aliveFor = (proc) => () => {
    if (proc.done) throw new Error(`${name} (pid ${proc.pid}) ended during the benchmark (${proc.exitInfo}); its output:\n${tail(proc.output())}`);
  };
  switch (name) {
    case 'sidecar':
    case 'sidecar-baseline':
    case 'sidecar-undici':
    case 'sidecar-per-request':
    case 'sidecar-no-exemplars':
    case 'sidecar-classic':
    case 'sidecar-openapi':
    case 'sidecar-control': {
      const sc = await startSidecar({
        name: instance ?? name,
        cpus,
        ports: { listen: port, metrics: metricsPort },
        upstream: `http://127.0.0.1:${upstreamPort}`,
        tmp,
        dist: dists[name],
        // sidecar-openapi: route templates from a document of 200 operations (what matching them costs).
        env: name === 'sidecar-openapi' ? { ROUTE_OPENAPI_FILE: writeOpenApiDoc(tmp, 200) } : (SIDECAR_ENV[name] ?? {}),
      });
      await waitForHttp(url, sc.proc, 10000);
      return { name, url, pids: [sc.pid], proc: sc.proc, alive: sc.alive, sidecar: sc, metricsPort };
    }
    case 'nginx': {
      const n = await startNginx('proxy', tmp, (p) => proxyConf(p, port, upstreamPort), { cpus, readyUrl: url });
      return { name, url, pids: n.pids, proc: n.proc, alive: aliveFor(n.proc), stopSignal: 'SIGQUIT' };
    }
    case 'haproxy': {
      const conf = path.join(tmp, 'haproxy.cfg');
      fs.writeFileSync(conf, haproxyConf(port, upstreamPort));
      const check = await run('haproxy-check', 'haproxy', ['-c', '-q', '-f', conf], { timeoutMs: 10000 });
      if (check.code !== 0) throw new Error(`haproxy -c failed:\n${check.stderr}${check.stdout}`);
      const proc = start('haproxy', 'haproxy', ['-db', '-f', conf], { cpus, logFile: path.join(tmp, 'haproxy.log') });
      await waitForHttp(url, proc, 10000);
      return { name, url, pids: [proc.pid], proc, alive: aliveFor(proc) };
    }
    case 'caddy': {
      const dir = path.join(tmp, 'caddy');
      fs.mkdirSync(dir, { recursive: true });
      const conf = path.join(dir, 'Caddyfile');
      fs.writeFileSync(conf, caddyConf(port, upstreamPort));
      const env = { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir };
      const proc = start('caddy', 'caddy', ['run', '--config', conf, '--adapter', 'caddyfile'], { cpus, env, logFile: path.join(tmp, 'caddy.log') });
      await waitForHttp(url, proc, 15000);
      return { name, url, pids: [proc.pid], proc, alive: aliveFor(proc) };
    }
    default: {
      const script = path.join(BENCH_DIR, 'peers', NODE_PEERS[name]);
      const proc = start(name, process.execPath, [script, String(port), String(upstreamPort)], {
        cpus,
        cwd: ROOT,
        env: { PATH: process.env.PATH, NODE_ENV: 'production' },
        logFile: path.join(tmp, `${name}.log`),
      });
      await waitForHttp(url, proc, 15000);
      return { name, url, pids: [proc.pid], proc, alive: aliveFor(proc) };
    }
  }
}

function errorCount(w) {
  const s = w.socket_errors;
  return s.connect + s.read + s.write + s.timeout + w.non_2xx_3xx;
}

const ticksOf = (t) => (t.pids.length ? cpuTicks(t.pids) : 0);

async function saturatedRun(t, hz, script) {
  const wrkOpts = { threads: SETTINGS.wrk_threads, connections: SETTINGS.wrk_connections, cpus: SETTINGS.load_cpu, script };
  const warm = await runWrk(t.url, { ...wrkOpts, seconds: SETTINGS.wrk_warmup_s });
  t.alive();
  const t0 = ticksOf(t);
  const w = await runWrk(t.url, { ...wrkOpts, seconds: SETTINGS.wrk_duration_s });
  const t1 = ticksOf(t);
  t.alive();
  const cpu = (t1 - t0) / hz;
  return {
    requests: w.requests,
    rps: w.rps,
    p50_ms: w.p50_ms,
    p99_ms: w.p99_ms,
    errors: errorCount(w),
    warmup_requests: warm.requests,
    warmup_errors: errorCount(warm),
    cpu_s: t.pids.length ? round(cpu, 3) : null,
    cpu_us_per_req: t.pids.length && w.requests > 0 ? round((cpu * 1e6) / w.requests, 2) : null,
  };
}

/**
 * `sidecar` and another sidecar configuration under load at the same time (a wrk each, half the
 * connections each), both on CPU 0: their CPU per request over the same window.
 */
async function pairedRun(a, b, hz, script, bFirst) {
  const wrkOpts = { threads: SETTINGS.wrk_threads, connections: Math.max(1, SETTINGS.wrk_connections / 2), cpus: SETTINGS.load_cpu, script };
  // Which wrk starts first alternates by round: the first one's connections are made first.
  const both = (seconds) => {
    const [x, y] = bFirst ? [b, a] : [a, b];
    const px = runWrk(x.url, { ...wrkOpts, seconds });
    const py = runWrk(y.url, { ...wrkOpts, seconds });
    return Promise.all([px, py]).then(([wx, wy]) => (bFirst ? [wy, wx] : [wx, wy]));
  };
  const warm = await both(SETTINGS.wrk_warmup_s);
  a.alive();
  b.alive();
  const t0 = [ticksOf(a), ticksOf(b)];
  const [wa, wb] = await both(SETTINGS.wrk_duration_s);
  const t1 = [ticksOf(a), ticksOf(b)];
  a.alive();
  b.alive();
  const per = (i, w) => (w.requests > 0 ? round((((t1[i] - t0[i]) / hz) * 1e6) / w.requests, 2) : null);
  return {
    first: bFirst ? b.name : a.name,
    [a.name]: { requests: wa.requests, warmup_requests: warm[0].requests, errors: errorCount(wa) + errorCount(warm[0]), cpu_us_per_req: per(0, wa) },
    [b.name]: { requests: wb.requests, warmup_requests: warm[1].requests, errors: errorCount(wb) + errorCount(warm[1]), cpu_us_per_req: per(1, wb) },
  };
}

/**
 * A sidecar's own request counter against what the load generators completed (a proxy that skipped
 * its metrics would look cheap), then the sidecar stopped: {warnings, check, summary}.
 */
async function checkAndStop(t, sent) {
  const warnings = [];
  let check;
  const who = t.sidecar.proc.name ?? t.name;
  try {
    const { status, body } = await httpGet(`http://127.0.0.1:${t.metricsPort}/debug/metrics`, 5000);
    let recorded = 0;
    for (const m of body.matchAll(/^flask_http_request_total\{[^}]*\}\s+([0-9.eE+-]+)/gm)) recorded += Number(m[1]);
    check = { status, flask_http_request_total: recorded, load_generator_requests: sent };
    if (recorded < sent * 0.99) warnings.push(`${who} recorded ${recorded} requests but the load generators completed ${sent}`);
  } catch (err) {
    warnings.push(`could not scrape ${who}'s metrics: ${err.message}`);
  }
  const exit = await t.sidecar.stop();
  const summary = t.sidecar.logSummary();
  if (exit.code !== 0) warnings.push(`${who} exited with ${exit.code ?? exit.signal} on SIGTERM`);
  for (const [k, n] of Object.entries(summary.counts)) warnings.push(`${who} logged ${n}x "${k}"`);
  return { warnings, check, summary };
}

async function fixedRateRun(t, hz, mix) {
  const t0 = ticksOf(t);
  const fr = await runFixedRate(t.url, {
    mix,
    rate: SETTINGS.fixed_rate_rps,
    duration: SETTINGS.fixed_rate_duration_s,
    warmup: SETTINGS.fixed_rate_warmup_s,
    maxSockets: SETTINGS.fixed_rate_max_sockets,
    cpus: SETTINGS.load_cpu,
  });
  const t1 = ticksOf(t);
  t.alive();
  const requests = Math.round(SETTINGS.fixed_rate_rps * (SETTINGS.fixed_rate_duration_s + SETTINGS.fixed_rate_warmup_s));
  const rest = { ...fr };
  for (const k of ['url', 'rate', 'duration_s', 'warmup_s']) delete rest[k];
  return { ...rest, requests, cpu_us_per_req: t.pids.length ? round((((t1 - t0) / hz) * 1e6) / requests, 2) : null };
}

/** {median, min, max} of the finite values. */
function spread(xs, digits = 2) {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  if (!v.length) return { median: null, min: null, max: null };
  return { median: round(median(v), digits), min: round(Math.min(...v), digits), max: round(Math.max(...v), digits) };
}

const range = (s, d) => (s.median === null ? '-' : `${fmt(s.min, d)}–${fmt(s.max, d)}`);
const signedMs = (x, d = 3) => (x === null || x === undefined ? '-' : `${x >= 0 ? '+' : ''}${x.toFixed(d)}`);

async function main() {
  const startedAt = Date.now();
  if (!LOADS.includes(SETTINGS.load)) throw new Error(`BENCH_LOAD: unknown load ${JSON.stringify(SETTINGS.load)} (known: ${LOADS.join(', ')})`);
  const names = selected();
  const tools = [['wrk', 'apt-get install -y wrk']];
  if (names.includes('haproxy')) tools.push(['haproxy', 'apt-get install -y haproxy']);
  if (names.includes('caddy')) tools.push(['caddy', 'apt-get install -y caddy']);
  const pre = preflight({ tools, script: 'bench:proxy' });
  try {
    fs.accessSync(NGINX, fs.constants.X_OK);
  } catch {
    throw new Error(`${NGINX} not found (apt-get install -y nginx-light, or set NGINX_BIN)`);
  }
  const perRound = names.length * (SETTINGS.wrk_warmup_s + SETTINGS.wrk_duration_s + 1);
  const perRateRound = names.length * (SETTINGS.fixed_rate_warmup_s + SETTINGS.fixed_rate_duration_s + 2);
  const pairedWith = names.filter((n) => OPT_IN.includes(n));
  SETTINGS.paired_blocks ??= pairedWith.length ? 6 : 0;
  const perPairedBlock = pairedWith.length * (SETTINGS.paired_rounds * (SETTINGS.wrk_warmup_s + SETTINGS.wrk_duration_s + 1) + 15);
  const budgetMs = (SETTINGS.rounds * perRound + SETTINGS.fixed_rate_rounds * perRateRound + SETTINGS.paired_blocks * perPairedBlock + 180) * 1000;
  const { tmp, overall } = beginRun('bench-proxy', budgetMs, log);

  const meta = baseMeta(pre, {
    nginx: await nginxVersion(),
    wrk: await wrkVersion(),
    haproxy: names.includes('haproxy') ? await versionOf('haproxy', ['-v'], /version (\S+)/) : null,
    caddy: names.includes('caddy') ? await versionOf('caddy', ['version'], /^(v?\S+)/) : null,
    undici: packageVersion('undici'),
    'http-proxy': packageVersion('http-proxy'),
    fastify: packageVersion('fastify'),
    '@fastify/http-proxy': packageVersion('@fastify/http-proxy'),
  });
  pinSelf(SETTINGS.load_cpu);
  const hz = clockTicks();
  log(`${names.join(', ')}; ${SETTINGS.rounds} saturated + ${SETTINGS.fixed_rate_rounds} fixed-rate rounds; temp dir ${tmp}`);

  const ports = await freePorts(2 * names.length + 1);
  const upstreamPort = ports.pop();
  const metricsPorts = ports.splice(names.length);
  const urlFor = (port) => `http://127.0.0.1:${port}${SETTINGS.path}`;
  const mix = SETTINGS.load === 'mix';
  let script;
  let mixJson;
  if (mix) {
    writeMixFiles(path.join(tmp, 'mix-root'));
    script = writeMixWrkScript(path.join(tmp, 'mix.lua'));
    mixJson = writeMixJson(path.join(tmp, 'mix.json'));
    log(`load: mix (request heads ~${mixHeadBytes()} bytes)`);
  }
  const upstream = await startNginx(
    'upstream',
    tmp,
    (p) => (mix ? upstreamMixConf(p, upstreamPort, path.join(tmp, 'mix-root')) : upstreamConf(p, upstreamPort)),
    {
      cpus: SETTINGS.load_cpu,
      readyUrl: urlFor(upstreamPort),
    },
  );
  const dists = {};
  const buildNotes = [];
  if (names.includes('sidecar-baseline')) dists['sidecar-baseline'] = baselineDist(SETTINGS.baseline, (w) => buildNotes.push(w));
  if (names.includes('sidecar-undici')) dists['sidecar-undici'] = undiciDist();
  const upstreamAlive = () => {
    if (upstream.proc.done) throw new Error(`upstream nginx ended unexpectedly (${upstream.proc.exitInfo}):\n${tail(upstream.proc.output())}`);
  };

  const targets = [];
  for (const [i, name] of names.entries()) {
    if (name === 'direct') {
      targets.push({ name, url: urlFor(upstreamPort), pids: [], alive: upstreamAlive });
      continue;
    }
    log(`starting ${name} on 127.0.0.1:${ports[i]} (CPU ${SETTINGS.proxy_cpu})`);
    const t = await startTarget(name, { tmp, port: ports[i], metricsPort: metricsPorts[i], upstreamPort, urlFor, dists });
    const own = t.alive;
    t.alive = () => {
      upstreamAlive();
      own();
    };
    targets.push(t);
  }

  const sat = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < SETTINGS.rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + r) % targets.length];
      log(`saturated round ${r + 1}/${SETTINGS.rounds}: ${t.name}`);
      sat[t.name][r] = await saturatedRun(t, hz, script);
    }
  }
  const fixed = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < SETTINGS.fixed_rate_rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + r) % targets.length];
      log(`fixed-rate round ${r + 1}/${SETTINGS.fixed_rate_rounds}: ${t.name} at ${SETTINGS.fixed_rate_rps} req/s`);
      fixed[t.name][r] = await fixedRateRun(t, hz, mixJson);
    }
  }

  // Paired: each other sidecar configuration at the same time as `sidecar` (the machine's noise hits
  // both), in fresh pairs of processes started in alternating order (long-lived processes carry a per-process bias).
  const paired = Object.fromEntries(pairedWith.map((n) => [n, []]));
  const pairedNotes = [];
  for (let b = 0; b < SETTINGS.paired_blocks; b++) {
    for (const n of pairedWith) {
      const order = b % 2 === 0 ? ['sidecar', n] : [n, 'sidecar'];
      const pp = await freePorts(4);
      const pair = {};
      for (const [i, name] of order.entries()) {
        const t = await startTarget(name, { tmp, port: pp[i], metricsPort: pp[2 + i], upstreamPort, urlFor, dists, instance: `paired-${b}-${name}` });
        const own = t.alive;
        t.alive = () => {
          upstreamAlive();
          own();
        };
        pair[name] = t;
      }
      log(`paired block ${b + 1}/${SETTINGS.paired_blocks}: sidecar with ${n}, ${order[0]} started first`);
      const rounds = [];
      for (let r = 0; r < SETTINGS.paired_rounds; r++) rounds.push(await pairedRun(pair.sidecar, pair[n], hz, script, r % 2 === 1));
      for (const x of rounds) paired[n].push({ block: b, started_first: order[0], ...x });
      for (const t of Object.values(pair))
        pairedNotes.push(
          ...(
            await checkAndStop(
              t,
              rounds.reduce((a, x) => a + x[t.name].requests + x[t.name].warmup_requests, 0),
            )
          ).warnings,
        );
    }
  }

  const warnings = [...buildNotes, ...pairedNotes];
  const extra = {};
  let logSummary;
  for (const sc of targets.filter((t) => t.sidecar)) {
    const sent = sat[sc.name].reduce((a, x) => a + x.requests + x.warmup_requests, 0) + fixed[sc.name].reduce((a, x) => a + x.requests, 0);
    const c = await checkAndStop(sc, sent);
    if (c.check) extra[sc.name === 'sidecar' ? 'sidecar_metrics_check' : `${sc.name}_metrics_check`] = c.check;
    if (sc.name === 'sidecar') logSummary = c.summary;
    warnings.push(...c.warnings);
  }
  for (const t of targets) if (t.proc && !t.sidecar) await stop(t.proc, { signal: t.stopSignal ?? 'SIGTERM', graceMs: 3000 });
  await stop(upstream.proc, { signal: 'SIGQUIT', graceMs: 3000 });

  // ---- summaries
  let invalid = false;
  const summary = {};
  for (const n of names) {
    const s = sat[n];
    const f = fixed[n];
    const nginxCpu = sat.nginx.map((x) => x.cpu_us_per_req);
    const errors = s.reduce((a, x) => a + x.errors, 0);
    const requests = s.reduce((a, x) => a + x.requests, 0);
    const frErrors = f.reduce((a, x) => a + x.errors, 0);
    const frSent = f.reduce((a, x) => a + x.sent, 0);
    if (errors) warnings.push(`${n}: wrk saw ${errors} errors in ${requests} requests`);
    if (frErrors) warnings.push(`${n}: fixed-rate saw ${frErrors} errors ${JSON.stringify(Object.assign({}, ...f.map((x) => x.error_kinds)))}`);
    if (errors / Math.max(1, requests) > MAX_ERROR_SHARE || frErrors / Math.max(1, frSent) > MAX_ERROR_SHARE) invalid = true;
    const added = (key) =>
      spread(
        f.map((x, r) => (x[key] ?? NaN) - (fixed.direct[r][key] ?? NaN)),
        4,
      );
    summary[n] = {
      saturated: {
        cpu_us_per_req: spread(s.map((x) => x.cpu_us_per_req)),
        over_nginx: spread(
          s.map((x, r) => (x.cpu_us_per_req ?? NaN) / nginxCpu[r]),
          3,
        ),
        rps: spread(
          s.map((x) => x.rps),
          0,
        ),
        p99_ms: spread(
          s.map((x) => x.p99_ms),
          3,
        ),
        rounds: s,
      },
      fixed_rate: {
        cpu_us_per_req: spread(f.map((x) => x.cpu_us_per_req)),
        p50_ms: spread(
          f.map((x) => x.p50_ms),
          4,
        ),
        p50_added_ms: added('p50_ms'),
        p90_added_ms: added('p90_ms'),
        p99_added_ms: added('p99_ms'),
        rounds: f,
      },
    };
  }

  // ---- report
  const out = [''];
  out.push(
    `Peer benchmark, load ${SETTINGS.load}: saturated wrk -t1 -c${SETTINGS.wrk_connections} ${SETTINGS.wrk_duration_s}s x ${SETTINGS.rounds} interleaved rounds; ` +
      `${SETTINGS.fixed_rate_rps} req/s for ${SETTINGS.fixed_rate_duration_s}s x ${SETTINGS.fixed_rate_rounds} rounds; ` +
      `proxy on CPU ${SETTINGS.proxy_cpu}, wrk + upstream on CPU ${SETTINGS.load_cpu}. Medians over rounds [min–max].`,
  );
  out.push('');
  const order = [...names].sort((a, b) => (summary[a].saturated.cpu_us_per_req.median ?? -1) - (summary[b].saturated.cpu_us_per_req.median ?? -1));
  out.push(
    table(
      [
        'proxy',
        'CPU µs/req',
        '[min–max]',
        '÷ nginx',
        '[min–max]',
        'req/s',
        `CPU µs/req @${SETTINGS.fixed_rate_rps}`,
        'p50 added ms',
        'p90 added',
        'p99 added',
        '[p99 min–max]',
      ],
      order.map((n) => {
        const s = summary[n].saturated;
        const f = summary[n].fixed_rate;
        const isDirect = n === 'direct';
        return [
          n,
          fmt(s.cpu_us_per_req.median, 1),
          range(s.cpu_us_per_req, 1),
          fmt(s.over_nginx.median, 2),
          range(s.over_nginx, 2),
          fmt(s.rps.median, 0),
          fmt(f.cpu_us_per_req.median, 1),
          isDirect ? `(${fmt(f.p50_ms.median, 3)})` : signedMs(f.p50_added_ms.median),
          isDirect ? '' : signedMs(f.p90_added_ms.median),
          isDirect ? '' : signedMs(f.p99_added_ms.median),
          isDirect ? '' : `${signedMs(f.p99_added_ms.min)}..${signedMs(f.p99_added_ms.max)}`,
        ];
      }),
    ),
  );
  out.push('(direct: its own p50 in ms, the base the "added" columns subtract)');

  // Drift: the reference configurations round by round.
  const nginxRounds = sat.nginx.map((x) => x.cpu_us_per_req);
  const directRps = sat.direct.map((x) => x.rps);
  const drift = {
    nginx_cpu_us_per_req_by_round: nginxRounds,
    nginx_cpu_spread: round(Math.max(...nginxRounds) / Math.min(...nginxRounds) - 1, 3),
    direct_rps_by_round: directRps,
    direct_rps_spread: round(Math.max(...directRps) / Math.min(...directRps) - 1, 3),
    direct_p50_ms_by_fixed_round: fixed.direct.map((x) => x.p50_ms),
  };
  out.push('');
  out.push(
    `machine drift: nginx CPU µs/req by round [${nginxRounds.map((x) => fmt(x, 1)).join(' ')}] (spread ${fmt(drift.nginx_cpu_spread * 100, 0)}%), direct req/s by round [${directRps.map((x) => fmt(x, 0)).join(' ')}] (spread ${fmt(drift.direct_rps_spread * 100, 0)}%)`,
  );

  // Other builds against today's, round by round (the same rounds, so the machine's drift cancels).
  // With sidecar-control in the run, each is also set against it and against the two identical
  // processes' per-round mean: a difference smaller than control ÷ sidecar is not the configuration's.
  const builds = {};
  const runs = { sat, fixed };
  const refValue = {
    sidecar: (mode, r, key) => runs[mode].sidecar[r]?.[key] ?? NaN,
  };
  if (names.includes('sidecar-control')) {
    refValue['sidecar-control'] = (mode, r, key) => runs[mode]['sidecar-control'][r]?.[key] ?? NaN;
    refValue['mean(sidecar, sidecar-control)'] = (mode, r, key) => (refValue.sidecar(mode, r, key) + refValue['sidecar-control'](mode, r, key)) / 2;
  }
  for (const n of names.filter((x) => OPT_IN.includes(x))) {
    for (const [ref, value] of Object.entries(refValue)) {
      if (ref === n || (n === 'sidecar-control' && ref !== 'sidecar')) continue;
      const cpu = spread(
        sat[n].map((x, r) => (x.cpu_us_per_req ?? NaN) / value('sat', r, 'cpu_us_per_req')),
        3,
      );
      const rateCpu = spread(
        fixed[n].map((x, r) => (x.cpu_us_per_req ?? NaN) / value('fixed', r, 'cpu_us_per_req')),
        3,
      );
      const p99 = spread(
        fixed[n].map((x, r) => (x.p99_ms ?? NaN) - value('fixed', r, 'p99_ms')),
        4,
      );
      const entry = { saturated_cpu_over_sidecar: cpu, fixed_rate_cpu_over_sidecar: rateCpu, fixed_rate_p99_minus_sidecar_ms: p99 };
      if (ref === 'sidecar') builds[n] = entry;
      else (builds[n].against ??= {})[ref] = entry;
      out.push('');
      out.push(
        `${n} ÷ ${ref}, same rounds: saturated CPU/request ${fmt(cpu.median, 3)} [${range(cpu, 3)}], CPU/request at ${SETTINGS.fixed_rate_rps} req/s ${fmt(rateCpu.median, 3)} [${range(rateCpu, 3)}], p99 at ${SETTINGS.fixed_rate_rps} req/s ${signedMs(p99.median)} ms [${signedMs(p99.min)}..${signedMs(p99.max)}]`,
      );
    }
  }
  extra.builds = builds;

  // Paired rounds: the other configuration ÷ sidecar over the same seconds, in fresh pairs.
  if (SETTINGS.paired_blocks > 0) {
    const pairs = {};
    out.push('');
    out.push(
      `Paired (at the same time as sidecar, wrk -c${Math.max(1, SETTINGS.wrk_connections / 2)} each, both on CPU ${SETTINGS.proxy_cpu}; ` +
        `${SETTINGS.paired_blocks} fresh pairs x ${SETTINGS.paired_rounds} rounds of ${SETTINGS.wrk_duration_s}s, start order alternating):`,
    );
    for (const n of pairedWith) {
      const rounds = paired[n];
      const errors = rounds.reduce((a, x) => a + x[n].errors + x.sidecar.errors, 0);
      const requests = rounds.reduce((a, x) => a + x[n].requests + x.sidecar.requests, 0);
      if (errors) warnings.push(`paired ${n}: wrk saw ${errors} errors in ${requests} requests`);
      if (errors / Math.max(1, requests) > MAX_ERROR_SHARE) invalid = true;
      const ratio = (x) => (x[n].cpu_us_per_req ?? NaN) / (x.sidecar.cpu_us_per_req ?? NaN);
      const cpu = spread(rounds.map(ratio), 3);
      const sidecarFirst = spread(rounds.filter((x) => x.started_first === 'sidecar').map(ratio), 3);
      const otherFirst = spread(rounds.filter((x) => x.started_first === n).map(ratio), 3);
      pairs[n] = { cpu_over_sidecar: cpu, sidecar_started_first: sidecarFirst, started_first: otherFirst, rounds };
      out.push(
        `  ${n} ÷ sidecar: CPU/request ${fmt(cpu.median, 3)} [${range(cpu, 3)}]; ` +
          `sidecar started first ${fmt(sidecarFirst.median, 3)} [${range(sidecarFirst, 3)}], ${n} started first ${fmt(otherFirst.median, 3)} [${range(otherFirst, 3)}]`,
      );
    }
    extra.paired = pairs;
  }

  const S = summary.sidecar;
  const ratio = S.saturated.over_nginx.median;
  const beaten = MUST_BEAT.filter((n) => names.includes(n)).map((n) => ({
    n,
    ok: (S.saturated.cpu_us_per_req.median ?? Infinity) < (summary[n].saturated.cpu_us_per_req.median ?? -Infinity),
  }));
  const verdicts = {
    cpu_per_request_sidecar_over_nginx: atMost(ratio, TARGETS.cpu_per_request_sidecar_over_nginx_max),
    sidecar_below_node_peers_and_caddy: beaten.length === 0 ? 'n/a' : beaten.every((b) => b.ok) ? 'PASS' : 'MISS',
    fixed_rate_cpu_us_per_req_sidecar: atMost(S.fixed_rate.cpu_us_per_req.median, TARGETS.fixed_rate_cpu_us_per_req_sidecar_max),
    fixed_rate_p50_added_sidecar: atMost(S.fixed_rate.p50_added_ms.median, TARGETS.fixed_rate_p50_added_sidecar_ms_max),
  };
  out.push('');
  out.push(
    targetLine(
      'saturated CPU/request, sidecar ÷ nginx',
      fmt(ratio, 2),
      `<= ${TARGETS.cpu_per_request_sidecar_over_nginx_max}`,
      verdicts.cpu_per_request_sidecar_over_nginx,
    ),
  );
  out.push(
    targetLine(
      'sidecar below Caddy and every Node peer',
      beaten.map((b) => `${b.n}:${b.ok ? 'yes' : 'no'}`).join(' ') || '-',
      '',
      verdicts.sidecar_below_node_peers_and_caddy,
    ),
  );
  out.push(
    targetLine(
      `CPU µs/request at ${SETTINGS.fixed_rate_rps} req/s, sidecar`,
      fmt(S.fixed_rate.cpu_us_per_req.median, 1),
      `<= ${TARGETS.fixed_rate_cpu_us_per_req_sidecar_max}`,
      verdicts.fixed_rate_cpu_us_per_req_sidecar,
    ),
  );
  out.push(
    targetLine(
      `p50 added over direct at ${SETTINGS.fixed_rate_rps} req/s, sidecar`,
      `${signedMs(S.fixed_rate.p50_added_ms.median)} ms`,
      `<= ${TARGETS.fixed_rate_p50_added_sidecar_ms_max} ms`,
      verdicts.fixed_rate_p50_added_sidecar,
    ),
  );
  if (extra.sidecar_metrics_check) {
    out.push('');
    out.push(
      `sidecar metrics check: flask_http_request_total = ${extra.sidecar_metrics_check.flask_http_request_total}, load generators completed ${extra.sidecar_metrics_check.load_generator_requests}`,
    );
  }
  if (summary.direct.fixed_rate.rounds.some((r) => !r.metronome_realtime))
    warnings.push('fixed-rate: no realtime priority for its metronome thread (needs root or CAP_SYS_NICE); its own timing noise is larger');
  out.push(...warningLines(warnings));
  if (invalid) {
    out.push('');
    out.push(`FAILED: more than ${MAX_ERROR_SHARE * 100}% of requests failed in at least one configuration; the numbers above are not valid.`);
  }

  const elapsed = round((Date.now() - startedAt) / 1000, 1);
  const file = writeResults(mix ? 'proxy-mix' : 'proxy', {
    ...meta,
    settings: SETTINGS,
    elapsed_s: elapsed,
    results: summary,
    drift,
    targets: TARGETS,
    verdicts,
    ...extra,
    sidecar_log: logSummary.counts,
    warnings,
    valid: !invalid,
  });
  out.push('');
  out.push(`results: ${file} (${elapsed}s)`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
  await sleep(0);
  return invalid ? 1 : 0;
}

runMain('proxy', main);
