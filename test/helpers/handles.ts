/**
 * Every socket, server, timer and native request created while a tracker is on, until it is
 * destroyed: what is left after a `stop()` is what the stopped thing leaked. Unlike
 * `process.getActiveResourcesInfo()`, this also sees what was unref'd (timers, an agent's idle
 * sockets): those do not keep the process alive, but they still run, log and hold descriptors
 * after the stop (and in a test runner, outlive the suite).
 */
import { AsyncResource, createHook } from 'node:async_hooks';

export interface Tracked {
  type: string;
  /** Where it was created. */
  stack: string;
}

/**
 * Not handles or timers: promises (destroyed only when collected) and one-shot callbacks (queued
 * ticks, microtasks) that run and end by themselves. `AsyncResource` objects made by libraries
 * (on-finished's, for one) are skipped too: they end when they are collected, not when closed.
 */
const IGNORED = new Set(['PROMISE', 'TickObject', 'Microtask']);

/**
 * Frames whose resources belong to nobody in particular: Node's cache of the `Date` header (one
 * timer per process, cleared within a second of the last response) and the tracker's own turns.
 */
const PROCESS_WIDE = ['at utcDate (node:internal/http', 'at turnLoop ('];

export interface Tracker {
  /** Resources created since `trackResources()` and not destroyed yet. */
  alive(): Tracked[];
  stop(): void;
}

export function trackResources(): Tracker {
  const live = new Map<number, Tracked>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (IGNORED.has(type) || resource instanceof AsyncResource) return;
      const all = callSites();
      if (all.some((f) => PROCESS_WIDE.some((p) => f.includes(p)))) return;
      // Without the hook's own frames (this file's, and those of async_hooks calling it).
      const frames = all.filter((f) => !f.includes('node:internal/async_hooks') && !f.includes('/handles.ts'));
      const own = frames.filter((f) => !f.includes('(node:'));
      live.set(asyncId, { type, stack: (own.length > 0 ? own : frames).slice(0, 8).join('\n') });
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  });
  hook.enable();
  return {
    alive: () => [...live.values()],
    stop: () => hook.disable(),
  };
}

/**
 * The current stack as `at function (file:line:column)` lines, formatted here: the test runner's
 * own formatter maps every frame through source maps, too slow for a hook that runs for every
 * resource (line numbers are those of the transpiled code, close to the source's).
 */
function callSites(): string[] {
  const previous = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  Error.prepareStackTrace = (_err, sites) =>
    sites.map((s) => `    at ${s.getFunctionName() ?? '<anonymous>'} (${s.getFileName() ?? '?'}:${s.getLineNumber() ?? 0}:${s.getColumnNumber() ?? 0})`);
  try {
    const holder: { stack?: string[] } = {};
    Error.captureStackTrace(holder, callSites);
    return holder.stack ?? [];
  } finally {
    Error.prepareStackTrace = previous;
    Error.stackTraceLimit = limit;
  }
}

/**
 * Turns the event loop (I/O included) until `done()` or `turns` turns have passed: close
 * callbacks, and the destroy notifications that follow them, run on the turns after a stop
 * resolved. Counted in turns, never in time.
 */
export async function turnLoop(done: () => boolean, turns = 50): Promise<void> {
  for (let i = 0; i < turns && !done(); i++) await new Promise((r) => setImmediate(r));
}
