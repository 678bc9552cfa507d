/**
 * The event loop first (issue 12): the built sidecar runs every thread but the event loop's at a
 * lower scheduling priority (HELPER_THREADS_NICE, default +10), so V8's GC workers and libuv's
 * pool (gzip of scrapes) wait for the thread that forwards requests. Read from /proc, on the real
 * process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { request } from '../helpers/net';
import { HelperThreadPriority } from '../../src/runtime/thread-priority';

/** Nice value of each thread of a process (field 19 of /proc/<pid>/task/<tid>/stat). */
function niceByThread(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      out.set(Number(t), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!check()) throw new Error(`never happened: ${what}`);
}

describe('helper thread priority (spawned sidecar)', () => {
  const children: Child[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.proc.kill('SIGTERM');
      await c.exited;
    }
  });

  it('should run every thread but the event loop 10 nice values lower by default, threads made later included', async () => {
    const c = await spawnSidecar({ LOG_LEVEL: 'info' });
    children.push(c);
    const pid = c.proc.pid!;
    await until(() => c.logs.some((l) => l.msg === 'listening'), 'the listening line');
    const line = c.logs.find((l) => l.msg === 'listening') as { helper_threads: { nice_increment: number; lowered: number } };
    expect(line.helper_threads.nice_increment).toBe(10);
    // V8's platform workers at least (4 by default), found at start.
    expect(line.helper_threads.lowered).toBeGreaterThanOrEqual(4);
    // A gzip scrape puts libuv's pool to work; every thread there is ends up lowered (a rescan finds late ones).
    expect((await request(c.metricsPort, '/debug/metrics', { headers: { 'accept-encoding': 'gzip' } })).status).toBe(200);
    const main = (): number => niceByThread(pid).get(pid)!;
    await until(() => [...niceByThread(pid)].every(([tid, nice]) => tid === pid || nice === Math.min(19, main() + 10)), 'all helpers at +10');
    const nices = niceByThread(pid);
    expect(nices.size).toBeGreaterThanOrEqual(5);
    expect(nices.get(pid)).toBe(niceByThread(process.pid).get(process.pid)); // the event loop keeps the priority it was started with
  });

  it('should leave every thread alone with HELPER_THREADS_NICE=0', async () => {
    const c = await spawnSidecar({ HELPER_THREADS_NICE: '0', LOG_LEVEL: 'info' });
    children.push(c);
    const pid = c.proc.pid!;
    expect((await request(c.metricsPort, '/debug/metrics', { headers: { 'accept-encoding': 'gzip' } })).status).toBe(200);
    const nices = niceByThread(pid);
    expect(new Set(nices.values())).toEqual(new Set([nices.get(pid)]));
    await until(() => c.logs.some((l) => l.msg === 'listening'), 'the listening line');
    const line = c.logs.find((l) => l.msg === 'listening') as { helper_threads: { lowered: number } };
    expect(line.helper_threads.lowered).toBe(0);
  });

  it('should refuse a nice increment outside 0-19 before starting (exit 2, the variable named)', async () => {
    await expect(spawnSidecar({ HELPER_THREADS_NICE: '20' })).rejects.toThrow(/HELPER_THREADS_NICE/);
  });
});

describe('HelperThreadPriority', () => {
  it('should change nothing when the increment is 0', () => {
    const p = new HelperThreadPriority(0);
    expect(p.apply()).toBe(0);
    expect(p.lowered).toBe(0);
  });

  it('should change nothing from a worker thread (its thread id is not the process id)', async () => {
    const built = path.join(__dirname, '..', '..', 'dist', 'runtime', 'thread-priority.js');
    const w = new Worker(
      `const { HelperThreadPriority } = require(${JSON.stringify(built)}); require('node:worker_threads').parentPort.postMessage(new HelperThreadPriority(10).apply());`,
      { eval: true },
    );
    const [n] = (await once(w, 'message')) as [number];
    await w.terminate();
    expect(n).toBe(0);
  });
});

describe('HelperThreadPriority over a stand-in /proc', () => {
  afterEach(() => jest.restoreAllMocks());
  const pid = process.pid;
  const sysError = (code: string): Error => Object.assign(new Error(`uv_os_setpriority returned ${code}`), { code: 'ERR_SYSTEM_ERROR', info: { code } });

  /** Threads `tids()` with nice values in `nice`; setPriority on a thread in `refuse` fails with EACCES. */
  function standIn(tids: () => number[], nice: Map<number, number>, refuse = new Set<number>()): void {
    jest.spyOn(fs, 'readlinkSync').mockImplementation(((p: string) => (p === '/proc/self' ? String(pid) : '')) as typeof fs.readlinkSync);
    jest.spyOn(fs, 'readdirSync').mockImplementation(((p: string) => {
      if (p !== '/proc/self/task') throw new Error(p);
      return tids().map(String);
    }) as unknown as typeof fs.readdirSync);
    jest.spyOn(os, 'getPriority').mockImplementation((t?: number) => {
      if (!nice.has(t!)) throw sysError('ESRCH');
      return nice.get(t!)!;
    });
    jest.spyOn(os, 'setPriority').mockImplementation(((t: number, v: number) => {
      if (refuse.has(t)) throw sysError('EACCES');
      nice.set(t, v);
    }) as typeof os.setPriority);
  }

  it('should do nothing without /proc', () => {
    jest.spyOn(fs, 'readlinkSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    });
    expect(new HelperThreadPriority(10).apply()).toBe(0);
  });

  it("should do nothing when /proc is another PID namespace's (its ids are not this process's threads)", () => {
    const nice = new Map([
      [pid, 0],
      [100, 0],
    ]);
    standIn(() => [pid, 100], nice);
    jest.spyOn(fs, 'readlinkSync').mockImplementation((() => '4242') as unknown as typeof fs.readlinkSync);
    expect(new HelperThreadPriority(10).apply()).toBe(0);
    expect(nice.get(100)).toBe(0);
  });

  it('should never raise a priority, and leave the event loop alone', () => {
    const nice = new Map([
      [pid, 0],
      [100, 15],
      [101, 0],
    ]);
    standIn(() => [pid, 100, 101], nice);
    expect(new HelperThreadPriority(10).apply()).toBe(1);
    expect([nice.get(pid), nice.get(100), nice.get(101)]).toEqual([0, 15, 10]);
  });

  it("should add its increment to the event loop's own nice, capped at 19", () => {
    const nice = new Map([
      [pid, 12],
      [100, 12],
    ]);
    standIn(() => [pid, 100], nice);
    new HelperThreadPriority(10).apply();
    expect(nice.get(100)).toBe(19);
  });

  it('should try a refused thread again at the next scan', () => {
    const nice = new Map([
      [pid, 0],
      [100, 0],
    ]);
    const refuse = new Set([100]);
    standIn(() => [pid, 100], nice, refuse);
    const p = new HelperThreadPriority(10);
    expect(p.apply()).toBe(0);
    refuse.clear();
    expect(p.apply()).toBe(1);
    expect(nice.get(100)).toBe(10);
  });

  it('should lower a new thread that got the id of one that ended', () => {
    const nice = new Map([
      [pid, 0],
      [100, 0],
    ]);
    let list = [pid, 100];
    standIn(() => list, nice);
    const p = new HelperThreadPriority(10);
    expect(p.apply()).toBe(1);
    list = [pid];
    nice.delete(100);
    p.apply(); // thread 100 ended
    list = [pid, 100];
    nice.set(100, 0); // a new thread with the same id, at the event loop's priority
    expect(p.apply()).toBe(1);
    expect(nice.get(100)).toBe(10);
    expect(p.lowered).toBe(2);
  });
});
