/**
 * Runs bench/fixed-rate.mjs (the open-loop latency probe) as a child process and returns its JSON
 * result: {sent, ok, errors, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, send_lag_*, ...}.
 */
import path from 'node:path';
import { run } from './procs.mjs';
import { BENCH_DIR } from './report.mjs';

export async function runFixedRate(url, { rate = 1000, duration = 10, warmup = 1, maxSockets = 64, timeoutMs = 5000, cpus, name = 'fixed-rate', mix } = {}) {
  const args = [
    path.join(BENCH_DIR, 'fixed-rate.mjs'),
    url,
    '--rate',
    String(rate),
    '--duration',
    String(duration),
    '--warmup',
    String(warmup),
    '--max-sockets',
    String(maxSockets),
    '--timeout-ms',
    String(timeoutMs),
    ...(mix ? ['--mix', mix] : []),
  ];
  const res = await run(name, process.execPath, args, { cpus, timeoutMs: (duration + warmup) * 1000 + timeoutMs + 30000 });
  let out;
  try {
    out = JSON.parse(res.stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`${name} gave no result (exit ${res.code ?? res.signal}):\n${res.stderr}${res.stdout}`);
  }
  if (res.code !== 0) throw new Error(`${name} exited ${res.code ?? res.signal}: ${res.stderr.trim()} ${JSON.stringify(out)}`);
  return out;
}
