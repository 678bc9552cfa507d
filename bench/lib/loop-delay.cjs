/**
 * Preloaded into a benchmarked sidecar (`node --require bench/lib/loop-delay.cjs`): measures the
 * process's own event-loop delay with perf_hooks' monitorEventLoopDelay (1 ms resolution) and
 * appends one JSON line a second to $BENCH_LOOP_DELAY_FILE: {t (ms since epoch), max_ms, p99_ms}
 * for that second, and the longest garbage-collection pause V8 reported in it (gc_max_ms, gc_kind:
 * minor, major, incremental or weakcb), so a stall can be told apart from a GC pause. Unlike a
 * probe request's latency, this is the loop's delay alone, without the client's and the
 * network's. Not part of the product: benchmarks only.
 */
'use strict';
const fs = require('node:fs');
const { monitorEventLoopDelay, PerformanceObserver, constants } = require('node:perf_hooks');

const GC_KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

const file = process.env.BENCH_LOOP_DELAY_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let gcMax = 0;
  let gcKind = null;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration > gcMax) {
        gcMax = e.duration;
        gcKind = GC_KINDS[e.detail?.kind] ?? String(e.detail?.kind);
      }
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  const timer = setInterval(() => {
    const line = { t: Date.now(), max_ms: h.max / 1e6, p99_ms: h.percentile(99) / 1e6, gc_max_ms: gcMax, gc_kind: gcKind };
    h.reset();
    gcMax = 0;
    gcKind = null;
    fs.appendFile(file, `${JSON.stringify(line)}\n`, () => {});
  }, 1000);
  timer.unref();
}
