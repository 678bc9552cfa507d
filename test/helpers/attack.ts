/**
 * Shared pieces of the adversarial suite (test/adversarial, issue 9): the memory bound the chart
 * promises, scrapes checked by promtool, raw StatsD senders, and checks that the sidecar is alive.
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { request } from './net';
import type { Child } from './sidecar';

const VALUES = path.join(__dirname, '..', '..', 'charts', 'metrics-sidecar', 'values.yaml');
const UNITS: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9, '': 1 };

/** A Kubernetes quantity (`256Mi`, `1G`, `268435456`) in bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G|)$/.exec(q.trim());
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  return Number(m[1]) * UNITS[m[2]];
}

/**
 * The sidecar container's default memory limit: `sidecar.resources.limits.memory` of the chart's
 * values.yaml, or 256Mi (what issue 9 asks the chart to set) while the chart sets none.
 */
export function memoryLimit(): { bytes: number; quantity: string; from: string } {
  try {
    const values = YAML.parse(fs.readFileSync(VALUES, 'utf8')) as { sidecar?: { resources?: { limits?: { memory?: string | number } } } };
    const q = values.sidecar?.resources?.limits?.memory;
    if (q !== undefined) return { bytes: quantityBytes(String(q)), quantity: String(q), from: 'values.yaml sidecar.resources.limits.memory' };
  } catch {
    // unreadable values: the default below
  }
  return { bytes: 256 * 1024 ** 2, quantity: '256Mi', from: 'default (values.yaml sets none)' };
}

/**
 * Node's heap limit for a sidecar under attack, as the container's memory limit would impose it:
 * a process past the limit is killed (here V8 aborts) instead of eating the test machine's memory.
 */
export function heapCapOptions(): string {
  return `--max-old-space-size=${Math.floor(memoryLimit().bytes / 1024 ** 2)}`;
}

/**
 * The exposition is held in memory while a scrape is answered (as a string, then as bytes on the
 * socket): a quarter of the memory limit leaves room for everything else.
 */
export function expositionBound(): number {
  return Math.floor(memoryLimit().bytes / 4);
}

export interface Scrape {
  status: number;
  text: string;
  bytes: number;
}

export async function scrape(port: number, pathname = '/debug/metrics'): Promise<Scrape> {
  const r = await request(port, pathname);
  return { status: r.status, text: r.text, bytes: r.body.length };
}

/** `promtool check metrics` on an exposition: ok, or what promtool said. */
export function promtool(text: string): { ok: boolean; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.slice(0, 2000) };
}

const oomKilled = new WeakMap<Child, number>();

/**
 * Kills the child with SIGKILL as soon as its resident memory passes `limit`, as the kernel would
 * kill a container past its memory limit (checked every 50 ms; the heap cap of heapCapOptions()
 * stays as the backstop between checks). A process that would need gigabytes so dies at the
 * limit, quickly, instead of grinding through garbage collections or eating the machine.
 */
export function oomKiller(child: Child, limit = memoryLimit().bytes): () => void {
  const timer = setInterval(() => {
    if (!alive(child)) return clearInterval(timer);
    let rss: number;
    try {
      rss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      return; // exiting
    }
    if (rss > limit) {
      oomKilled.set(child, rss);
      child.proc.kill('SIGKILL');
      clearInterval(timer);
    }
  }, 50);
  timer.unref();
  return () => clearInterval(timer);
}

/** True while the child process has not exited. */
export function alive(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null;
}

/** Why the child is dead, with the tail of what it wrote (for failure messages). */
export function deathNote(child: Child): string {
  const stderr = child.logs
    .filter((l) => typeof l.stderr === 'string')
    .map((l) => l.stderr as string)
    .join('')
    .trim();
  const lastErrors = warnings(child.logs)
    .slice(-2)
    .map((l) => JSON.stringify(l).slice(0, 300));
  const oom = oomKilled.get(child);
  if (oom !== undefined) return `OOM: killed by the test at VmRSS ${Math.round(oom / 1024 ** 2)} MiB, past the ${memoryLimit().quantity} limit`;
  // The thrown error's own line, not the stack (Jest would render a stack as a code frame).
  const thrown = stderr.split('\n').filter((l) => /^\s*(\w*Error|FATAL|<--- |Aborted|Killed)/.test(l));
  return `sidecar exit code ${child.proc.exitCode}, signal ${child.proc.signalCode}; stderr: ${thrown.slice(0, 3).join(' / ').slice(0, 600) || stderr.slice(-300) || '(none)'}; last warnings: ${lastErrors.join(' | ') || '(none)'}`;
}

/** Status of one request on the main port, 0 when the connection failed (refused, reset). */
export async function mainPortStatus(port: number, pathname = '/hello'): Promise<number> {
  try {
    return (await request(port, pathname)).status;
  } catch {
    return 0;
  }
}

export function sendUdp(port: number, payloads: (string | Buffer)[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    let i = 0;
    const next = (): void => {
      if (i === payloads.length) {
        s.close();
        resolve();
        return;
      }
      s.send(payloads[i++], port, '127.0.0.1', (err) => (err ? (s.close(), reject(err)) : next()));
    };
    next();
  });
}

/** Writes `data` to the StatsD TCP port (with backpressure) and closes the connection. */
export function sendTcp(port: number, chunks: Iterable<string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', reject);
    sock.on('close', () => resolve());
    sock.on('connect', () => {
      const it = chunks[Symbol.iterator]();
      const pump = (): void => {
        for (;;) {
          const n = it.next();
          if (n.done) {
            sock.end();
            return;
          }
          if (!sock.write(n.value)) {
            sock.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}

/** Waits (polling) until `ok()` holds or the child dies; returns whether it held. A throw counts as not yet. */
export async function eventually(ok: () => Promise<boolean> | boolean, child?: Child, tries = 400, everyMs = 50): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (child && !alive(child)) return false;
    try {
      if (await ok()) return true;
    } catch {
      // not yet (or the child is dying: checked next round)
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/** Log lines at warn level or above, whether the logger writes levels as names or as pino numbers. */
export function warnings(logs: Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((l) => {
    const lv = l.level;
    return (typeof lv === 'number' && lv >= 40) || (typeof lv === 'string' && ['warn', 'error', 'fatal'].includes(lv));
  });
}

/** Random lower-case letters (no digits: nothing id-shaped). */
export function letters(n: number, rand: () => number = Math.random): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(rand() * 26));
  return s;
}

/** A small deterministic PRNG (mulberry32) so attacks are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
