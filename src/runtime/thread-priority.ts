/**
 * The event loop first. Every request the sidecar forwards runs on one thread, the event loop's;
 * the process's other threads do background work: V8's platform workers (concurrent marking and
 * sweeping, the helpers of parallel scavenges, compilation) and libuv's pool (the gzip of large
 * scrapes, file reads, DNS). On a CPU that is busy or throttled by the container's quota, the
 * kernel shares it evenly between runnable threads, so a forwarded request could wait while a GC
 * worker or a gzip finished its slice: with the sidecar on one CPU, V8's memory reducer
 * (a GC run after a burst of allocations) took 12 ms steps of the event loop's time while its
 * workers marked beside it. Raising the helpers' nice value makes the kernel run the event loop
 * first whenever it is runnable; the helpers keep every cycle it leaves idle (bench:stall).
 *
 * Linux only (/proc/self/task, setpriority on a thread id), and only from the main thread of a
 * process whose /proc is its own; elsewhere, or when nothing may be changed, it does nothing. Raising a nice value needs no privilege. Threads that start later
 * (libuv's pool is made on first use) are found by a rescan every few seconds.
 */
import fs from 'node:fs';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';

const TASKS = '/proc/self/task';
const MAX_NICE = 19;

export class HelperThreadPriority {
  /** Threads already at their priority (or gone); pruned to the living ones at every scan. */
  private readonly done = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  /** Helper threads whose priority was lowered so far (status and tests). */
  lowered = 0;
  /** False once a scan found this process cannot have its threads told apart (no rescans then). */
  private possible = true;

  /** `increment`: nice values added to the event loop's own for every other thread (0: off). */
  constructor(private readonly increment: number) {}

  /** Lowers the priority of helper threads not seen before; returns how many it changed. */
  apply(): number {
    // The event loop's thread is told apart by its id being the process id: true only on the
    // main thread, and only when /proc is this process's own (not another PID namespace's).
    if (this.increment <= 0 || !this.possible) return 0;
    let tids: number[];
    let base: number;
    try {
      if (!isMainThread || fs.readlinkSync('/proc/self') !== String(process.pid)) throw new Error('not this process');
      tids = fs.readdirSync(TASKS).map(Number);
      base = os.getPriority(process.pid);
    } catch {
      this.possible = false; // not Linux, no /proc, or not the main thread of the process /proc shows
      return 0;
    }
    const alive = new Set(tids);
    for (const tid of this.done) if (!alive.has(tid)) this.done.delete(tid);
    const target = Math.min(MAX_NICE, base + this.increment);
    let n = 0;
    for (const tid of tids) {
      if (tid === process.pid || this.done.has(tid)) continue;
      try {
        // Never raise a thread's priority: an operator may have lowered one further.
        if (os.getPriority(tid) < target) {
          os.setPriority(tid, target);
          n++;
        }
        this.done.add(tid);
      } catch (err) {
        // Gone between the listing and now: done. Refused: tried again at the next scan.
        // (os' errors are ERR_SYSTEM_ERROR with the errno's name in `info.code`.)
        if ((err as { info?: { code?: string } }).info?.code === 'ESRCH') this.done.add(tid);
      }
    }
    this.lowered += n;
    return n;
  }

  /** Applies now and rescans every `intervalMs` (the timer does not keep the process alive). */
  start(intervalMs = 5_000): void {
    this.apply();
    if (this.increment <= 0 || !this.possible || this.timer !== undefined) return;
    this.timer = setInterval(() => this.apply(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
