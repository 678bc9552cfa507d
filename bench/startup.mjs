#!/usr/bin/env node
/**
 * Start-up and footprint: how long from `spawn` to a ready sidecar, and how much memory it holds
 * when idle, with the default configuration. Run with `npm run bench:startup` (builds first).
 *
 * For BENCH_STARTUP_RUNS (15) interleaved runs, each on CPU 0 with this script on CPU 1:
 *   node -e ''      the reference: spawn to exit of an empty Node process (Node's own start-up)
 *   sidecar         `node dist/main.js` with the defaults (main port, metrics port, StatsD on;
 *                   no upstream), on free ports: spawn to the first `200` from the metrics port's
 *                   /readyz (polled every 5 ms).
 * Then idle RSS: BENCH_RSS_PROCS (3) sidecars started together and left idle; VmRSS 1 s after
 * ready and after BENCH_IDLE_MS (30000), by when V8's memory reducer has given back the young
 * generation that start-up grew (~4-5 MiB): the second figure is what an idle pod holds.
 *
 * Prints medians with min–max, the sidecar minus the reference, the targets of issue 12
 * (start-to-ready ≤ 250 ms median, idle RSS ≤ 55 MiB) and writes bench/results/startup.json.
 * BENCH_STARTUP_PROFILE=1 also prints which modules took longest to load in one extra run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts, beginRun, runMain, stopAll, start, stop } from './lib/procs.mjs';
import { round, median } from './lib/stats.mjs';
import { ROOT, envNum, preflight, pinSelf, baseMeta, fmt, table, atMost, targetLine, writeResults, warningLines, logger } from './lib/report.mjs';

const log = logger('startup');
const SETTINGS = {
  runs: envNum('BENCH_STARTUP_RUNS', 15),
  idle_ms: envNum('BENCH_IDLE_MS', 30000),
  rss_procs: envNum('BENCH_RSS_PROCS', 3),
  poll_ms: 5,
  subject_cpu: 0,
  driver_cpu: 1,
};
const TARGETS = { start_to_ready_ms_max: 250, idle_rss_mib_max: 55 };
const MAIN = path.join(ROOT, 'dist', 'main.js');

const env = (ports) => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME ?? '/tmp',
  NODE_ENV: 'production',
  LISTEN_HOST: '127.0.0.1',
  LISTEN_PORT: String(ports[0]),
  PROMETHEUS_PORT: String(ports[1]),
  STATSD_PORT: String(ports[2]),
  STATSD_HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
});

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

function status(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/** Spawn to exit of `node -e ''`, in ms. */
async function reference() {
  const t0 = performance.now();
  const child = spawn('taskset', ['-c', String(SETTINGS.subject_cpu), process.execPath, '-e', ''], { stdio: 'ignore' });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`node -e '' exited ${code}`);
  return performance.now() - t0;
}

/** Spawn to /readyz 200; with `idle`, also VmRSS 1 s after ready and after SETTINGS.idle_ms. */
async function sidecar(nodeArgs = [], idle = false) {
  const ports = await freePorts(3);
  const t0 = performance.now();
  const proc = start('sidecar', process.execPath, [...nodeArgs, MAIN], { cpus: SETTINGS.subject_cpu, env: env(ports), cwd: ROOT });
  const url = `http://127.0.0.1:${ports[1]}/readyz`;
  let ready = null;
  while (performance.now() - t0 < 15000) {
    if (proc.done) throw new Error(`sidecar exited (${proc.exitInfo}) before it was ready:\n${proc.output()}`);
    if ((await status(url)) === 200) {
      ready = performance.now() - t0;
      break;
    }
    await sleep(SETTINGS.poll_ms);
  }
  if (ready === null) throw new Error(`sidecar not ready after 15 s:\n${proc.output()}`);
  let rss1 = null;
  let rss = null;
  if (idle) {
    await sleep(1000);
    rss1 = rssMiB(proc.pid);
    await sleep(Math.max(0, SETTINGS.idle_ms - 1000));
    rss = rssMiB(proc.pid);
  }
  const exit = await stop(proc, { signal: 'SIGTERM', graceMs: 5000 });
  return { ready_ms: ready, rss_1s_mib: rss1, rss_mib: rss, exit: exit.code ?? exit.signal, output: proc.output() };
}

const spread = (xs, d = 1) => ({ median: round(median(xs), d), min: round(Math.min(...xs), d), max: round(Math.max(...xs), d) });

async function main() {
  const pre = preflight({ script: 'bench:startup' });
  const { tmp, overall } = beginRun('bench-startup', SETTINGS.runs * 10000 + SETTINGS.idle_ms + 120000, log);
  const meta = baseMeta(pre);
  pinSelf(SETTINGS.driver_cpu);
  const warnings = [];

  const refs = [];
  const runs = [];
  for (let i = 0; i < SETTINGS.runs; i++) {
    log(`run ${i + 1}/${SETTINGS.runs}`);
    // Alternate which goes first, so a slow moment of the machine is shared.
    if (i % 2 === 0) refs.push(await reference());
    const r = await sidecar();
    runs.push(r);
    if (i % 2 === 1) refs.push(await reference());
    if (r.exit !== 0) warnings.push(`sidecar run ${i + 1} exited with ${r.exit} on SIGTERM`);
  }
  const ref = spread(refs);
  const ready = spread(runs.map((r) => r.ready_ms));
  log(`idle RSS: ${SETTINGS.rss_procs} sidecars, ${SETTINGS.idle_ms} ms`);
  const idleRuns = await Promise.all(Array.from({ length: SETTINGS.rss_procs }, () => sidecar([], true)));
  const rss = spread(idleRuns.map((r) => r.rss_mib));
  const rss1 = spread(idleRuns.map((r) => r.rss_1s_mib));
  const over = spread(runs.map((r, i) => r.ready_ms - refs[i]));

  let modules;
  if (process.env.BENCH_STARTUP_PROFILE === '1') modules = await moduleTimes(tmp);

  const verdicts = {
    start_to_ready: atMost(ready.median, TARGETS.start_to_ready_ms_max),
    idle_rss: atMost(rss.median, TARGETS.idle_rss_mib_max),
  };
  const out = [''];
  out.push(
    `Start-up: ${SETTINGS.runs} interleaved runs on CPU ${SETTINGS.subject_cpu}, default configuration (main, metrics and StatsD listeners; no upstream). Medians [min–max].`,
  );
  out.push('');
  out.push(
    table(
      ['process', 'start-to-ready ms', '[min–max]', 'RSS 1 s after ready MiB', `idle RSS (${SETTINGS.idle_ms / 1000} s) MiB`, '[min–max]'],
      [
        ["node -e ''", fmt(ref.median, 1), `${fmt(ref.min, 1)}–${fmt(ref.max, 1)}`, '', '', ''],
        [
          'sidecar',
          fmt(ready.median, 1),
          `${fmt(ready.min, 1)}–${fmt(ready.max, 1)}`,
          fmt(rss1.median, 1),
          fmt(rss.median, 1),
          `${fmt(rss.min, 1)}–${fmt(rss.max, 1)}`,
        ],
      ],
    ),
  );
  out.push('');
  out.push(targetLine("sidecar start-to-ready minus node -e ''", `${fmt(over.median, 1)} ms`));
  out.push(
    targetLine('sidecar start-to-ready (spawn → /readyz 200)', `${fmt(ready.median, 1)} ms`, `<= ${TARGETS.start_to_ready_ms_max} ms`, verdicts.start_to_ready),
  );
  out.push(
    targetLine(
      `sidecar idle RSS (${SETTINGS.idle_ms / 1000} s after ready)`,
      `${fmt(rss.median, 1)} MiB`,
      `<= ${TARGETS.idle_rss_mib_max} MiB`,
      verdicts.idle_rss,
    ),
  );
  if (modules) {
    out.push('');
    out.push('slowest top-level module loads in one run (ms, inclusive):');
    for (const [id, ms] of modules) out.push(`  ${ms.toFixed(1).padStart(7)}  ${id}`);
  }
  out.push(...warningLines(warnings));
  const file = writeResults('startup', {
    ...meta,
    settings: SETTINGS,
    reference_ms: { ...ref, samples: refs.map((x) => round(x, 1)) },
    start_to_ready_ms: { ...ready, samples: runs.map((r) => round(r.ready_ms, 1)) },
    start_to_ready_over_reference_ms: over,
    rss_1s_after_ready_mib: { ...rss1, samples: idleRuns.map((r) => round(r.rss_1s_mib, 1)) },
    idle_rss_mib: { ...rss, samples: idleRuns.map((r) => round(r.rss_mib, 1)) },
    slowest_modules: modules ?? null,
    targets: TARGETS,
    verdicts,
    warnings,
  });
  out.push('');
  out.push(`results: ${file}`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
  return 0;
}

/** A --require hook that prints the inclusive load time of every module required by dist/ code. */
const REQUIRE_HOOK = `
const Module = require('node:module');
const orig = Module.prototype.require;
const times = new Map();
Module.prototype.require = function (id) {
  const from = this.filename || '';
  if (!from.includes('/dist/')) return orig.apply(this, arguments);
  const t0 = process.hrtime.bigint();
  try { return orig.apply(this, arguments); } finally {
    const key = id.startsWith('.') ? id : id;
    times.set(key, (times.get(key) || 0) + Number(process.hrtime.bigint() - t0) / 1e6);
  }
};
setTimeout(() => {
  const top = [...times].sort((a, b) => b[1] - a[1]).slice(0, 12);
  process.stdout.write(JSON.stringify({ require_times: top }) + '\\n');
}, 200).unref();
`;

/** Inclusive load time of the modules dist/ requires (one extra run, via a --require hook). */
async function moduleTimes(tmp) {
  const hook = path.join(tmp, 'require-times.cjs');
  fs.writeFileSync(hook, REQUIRE_HOOK);
  const r = await sidecar(['--require', hook]);
  const line = r.output.split('\n').find((l) => l.startsWith('{"require_times"'));
  return line ? JSON.parse(line).require_times : null;
}

runMain('startup', main);
