/** Runs wrk and parses its text report (wrk 4.x, with --latency). */
import { run } from './procs.mjs';

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "123.45us" | "1.20ms" | "2.00s" | "1.00m" -> milliseconds. */
export function durationToMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`unparseable wrk duration ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Parses wrk's stdout into numbers; throws if the essential lines are missing. */
export function parseWrk(out) {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const total = /^\s*(\d+) requests in ([\d.]+\w+),/m.exec(out);
  if (!rps || !total) throw new Error(`could not parse wrk output:\n${out}`);
  const pct = {};
  const dist = /Latency Distribution\n((?:\s+\d+%\s+\S+\n)+)/.exec(out);
  if (dist) {
    for (const line of dist[1].trim().split('\n')) {
      const [p, v] = line.trim().split(/\s+/);
      pct[p] = durationToMs(v);
    }
  }
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    duration_ms: durationToMs(total[2]),
    rps: Number(rps[1]),
    p50_ms: pct['50%'] ?? null,
    p75_ms: pct['75%'] ?? null,
    p90_ms: pct['90%'] ?? null,
    p99_ms: pct['99%'] ?? null,
    socket_errors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non_2xx_3xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

/** `wrk -t<threads> -c<connections> -d<seconds>s --latency [-s script] <url>` pinned to `cpus`. */
export async function runWrk(url, { threads = 1, connections = 32, seconds = 10, cpus, script } = {}) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', ...(script ? ['-s', script] : []), url];
  const res = await run('wrk', 'wrk', args, { cpus, timeoutMs: (seconds + 20) * 1000 });
  if (res.code !== 0) throw new Error(`wrk exited ${res.code ?? res.signal}: ${res.stderr || res.stdout}`);
  return { ...parseWrk(res.stdout), raw: res.stdout };
}

export async function wrkVersion() {
  // wrk has no --version flag: it prints its banner (and usage) and exits 1.
  const res = await run('wrk-version', 'wrk', ['--version'], { timeoutMs: 5000 });
  const line = (res.stdout + res.stderr).split('\n')[0];
  return /^wrk\s+(\S+)/.exec(line)?.[1] ?? line.trim();
}
