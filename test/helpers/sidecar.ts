import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { createSidecar, type Sidecar } from '../../src/app';
import { freePort, request } from './net';

export type Env = Record<string, string>;

export interface Running {
  sidecar: Sidecar;
  mainPort: number;
  metricsPort: number;
  /** Every log line the sidecar wrote, parsed. */
  logs: Record<string, unknown>[];
  /** Resolves with the first log line `match` accepts, as soon as it is written. */
  untilLogged(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Quiet, fast defaults for tests: StatsD off, short drain. */
const TEST_DEFAULTS: Env = { STATSD_PORT: '0', SHUTDOWN_TIMEOUT_MS: '2000', LOG_LEVEL: 'debug' };

/** Runs a sidecar in this process on ephemeral ports, configured from `env` like the real one. */
export async function startSidecar(env: Env = {}): Promise<Running> {
  // In-process sidecars leave the test runner's own threads at their priority (the spawned ones do not: test/runtime/thread-priority.test.ts).
  const config = loadConfig({ ...TEST_DEFAULTS, HELPER_THREADS_NICE: '0', LISTEN_PORT: '1', PROMETHEUS_PORT: '2', ...env });
  const logs: Record<string, unknown>[] = [];
  const waiting: (() => void)[] = [];
  const logger = createLogger(config.logLevel, (line) => {
    logs.push(JSON.parse(line) as Record<string, unknown>);
    for (const w of waiting.splice(0)) w();
  });
  const untilLogged = async (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    for (;;) {
      const found = logs.find(match);
      if (found !== undefined) return found;
      await new Promise<void>((r) => waiting.push(r));
    }
  };
  const sidecar = createSidecar(config, logger, { mainPort: 0, metricsPort: 0 });
  const { mainPort, metricsPort } = await sidecar.start();
  return {
    sidecar,
    mainPort: mainPort ?? 0,
    metricsPort: metricsPort ?? 0,
    logs,
    untilLogged,
    stop: async () => {
      await sidecar.stop();
    },
  };
}

export interface Child {
  proc: ChildProcess;
  mainPort: number;
  metricsPort: number;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

export const MAIN_JS = path.join(__dirname, '..', '..', 'dist', 'main.js');

/** SIGKILLs spawned sidecars and waits until each has exited (the afterAll of suites that spawn several). */
export async function killAll(children: Child[]): Promise<void> {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
}

/** Runs the built sidecar (`node dist/main.js`) as a separate process, as the container does. */
export async function spawnSidecar(env: Env): Promise<Child> {
  const mainPort = env.LISTEN_PORT !== undefined ? Number(env.LISTEN_PORT) : await freePort();
  const metricsPort = env.PROMETHEUS_PORT !== undefined ? Number(env.PROMETHEUS_PORT) : await freePort();
  const proc = spawn(process.execPath, [MAIN_JS], {
    env: { PATH: process.env.PATH ?? '', ...TEST_DEFAULTS, LISTEN_PORT: String(mainPort), PROMETHEUS_PORT: String(metricsPort), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  // 'close', not 'exit': by then every line the process wrote has been read.
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  let buf = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      logs.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  proc.stderr!.on('data', (c: Buffer) => logs.push({ stderr: c.toString('utf8') }));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  // Ready when the health endpoint answers (whatever LOG_LEVEL hides).
  const healthPort = metricsPort !== 0 ? metricsPort : mainPort;
  const healthPath = metricsPort !== 0 ? '/healthz' : '/debug/healthz';
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`sidecar exited with ${exitCode} before listening: ${JSON.stringify(logs)}`);
    try {
      if ((await request(healthPort, healthPath)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`sidecar did not become healthy: ${JSON.stringify(logs)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, mainPort, metricsPort, logs, exited };
}

/**
 * Resolves with the first log line of a spawned sidecar that `match` accepts, as soon as it has
 * been written (checked again on every chunk of its stdout): a wait on the event, not a poll.
 */
export function waitForLog(c: Child, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = (): void => {
      const found = c.logs.find(match);
      if (done || found === undefined) return;
      done = true;
      c.proc.stdout!.off('data', check);
      resolve(found);
    };
    // Registered after spawnSidecar's own listener: by the time it runs, the chunk's lines are in `logs`.
    c.proc.stdout!.on('data', check);
    // Every line is in `logs` once the process has closed: one last look, then it never will be.
    void c.exited.then(() => {
      check();
      if (done) return;
      done = true;
      c.proc.stdout!.off('data', check);
      reject(new Error(`the sidecar exited without logging it: ${JSON.stringify(c.logs)}`));
    });
    check();
  });
}

/** Peak resident memory (VmHWM) of a process, in bytes. */
export function peakRss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error('no VmHWM');
  return Number(m[1]) * 1024;
}

/** Current resident memory (VmRSS) of a process, in bytes. */
export function currentRss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error('no VmRSS');
  return Number(m[1]) * 1024;
}
