/**
 * The built sidecar (`node dist/main.js`) as a benchmark subject: started pinned, configured from
 * a clean environment, loopback only, with helpers to read its own counters.
 */
import fs from 'node:fs';
import path from 'node:path';
import { start, stop, tail, waitForHttp } from './procs.mjs';
import { timedGet, sampleValue } from './http.mjs';
import { ROOT, summariseSidecarLog } from './report.mjs';

/**
 * Extra node flags for the sidecar from BENCH_SIDECAR_NODE_ARGS (space-separated, e.g.
 * `--trace-gc`): for diagnosis; their output lands in the sidecar's log, which is then not
 * reported line by line.
 */
export const EXTRA_NODE_ARGS = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

/**
 * Extra variables for the sidecar from BENCH_SIDECAR_ENV (space-separated NAME=value, e.g.
 * `HELPER_THREADS_NICE=0`), for A/B runs of a setting; they override the benchmark's own.
 */
export const EXTRA_ENV = Object.fromEntries(
  (process.env.BENCH_SIDECAR_ENV ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 1) throw new Error(`BENCH_SIDECAR_ENV: expected NAME=value, got ${kv}`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
);

/**
 * Starts the sidecar on `cpus`. `ports` = {listen, metrics, statsd} (0 turns a listener off);
 * `env` adds or overrides variables; `nodeArgs` go before the script (e.g. --cpu-prof); `dist`
 * runs another build (bench/lib/builds.mjs).
 * Resolves when the metrics port answers /healthz. Returns {proc, pid, metricsUrl, healthUrl,
 * alive(), stop(), logSummary()}.
 */
export async function startSidecar({
  name = 'sidecar',
  cpus,
  ports,
  upstream,
  env = {},
  nodeArgs = [],
  tmp,
  readyTimeoutMs = 15000,
  dist = path.join(ROOT, 'dist'),
}) {
  const proc = start(name, process.execPath, [...EXTRA_NODE_ARGS, ...nodeArgs, path.join(dist, 'main.js')], {
    cpus,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? tmp,
      NODE_ENV: 'production',
      LISTEN_HOST: '127.0.0.1',
      LISTEN_PORT: String(ports.listen ?? 0),
      PROMETHEUS_PORT: String(ports.metrics),
      STATSD_PORT: String(ports.statsd ?? 0),
      STATSD_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: '2000',
      ...(upstream ? { UPSTREAM_URL: upstream } : {}),
      ...env,
      ...EXTRA_ENV,
    },
    cwd: ROOT,
    logFile: tmp ? path.join(tmp, `${name}.log`) : undefined,
  });
  const base = `http://127.0.0.1:${ports.metrics}`;
  await waitForHttp(`${base}/healthz`, proc, readyTimeoutMs);
  return {
    proc,
    pid: proc.pid,
    metricsUrl: `${base}/debug/metrics`,
    healthUrl: `${base}/healthz`,
    alive() {
      if (proc.done) throw new Error(`${name} (pid ${proc.pid}) ended during the benchmark (${proc.exitInfo}); its output:\n${tail(proc.output())}`);
    },
    /** SIGTERM (graceful drain), SIGKILL after `graceMs`; resolves {code, signal}. */
    stop(graceMs = 5000) {
      return stop(proc, { signal: 'SIGTERM', graceMs });
    },
    logSummary() {
      return summariseSidecarLog(proc.output(), { ignoreRaw: EXTRA_NODE_ARGS.length > 0 });
    },
  };
}

/** Scrapes `metricsUrl` (plain text) and returns the body. */
export async function scrapeText(metricsUrl, timeoutMs = 30000) {
  const r = await timedGet(metricsUrl, { keepBody: true, timeoutMs, headers: { accept: 'text/plain;version=0.0.4' } });
  if (r.status !== 200) throw new Error(`GET ${metricsUrl}: HTTP ${r.status}`);
  return r.body;
}

/** metrics_sidecar_statsd_lines_total by outcome: {accepted, malformed, dropped, type_conflict}. */
export async function statsdOutcomes(metricsUrl) {
  const text = await scrapeText(metricsUrl);
  const out = {};
  for (const o of ['accepted', 'malformed', 'dropped', 'type_conflict']) out[o] = sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: o }) ?? 0;
  return out;
}

/** Moves the newest `.cpuprofile` in `dir` to `dest` (returns dest, or null if none was written). */
export function collectCpuProfile(dir, dest) {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (!files.length) return null;
  const newest = files.map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(newest, dest);
  return dest;
}
