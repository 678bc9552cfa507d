/**
 * Preloaded into a benchmarked sidecar (`node --require bench/lib/loop-delay.cjs`): measures the
 * process's own event-loop delay with perf_hooks' monitorEventLoopDelay (1 ms resolution) and
 * appends one JSON line a second to $BENCH_LOOP_DELAY_FILE: {t (ms since epoch), max_ms, p99_ms}
 * for that second. Unlike a probe request's latency, this is the loop's delay alone, without the
 * client's and the network's. Not part of the product: benchmarks only.
 */
'use strict';
const fs = require('node:fs');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const file = process.env.BENCH_LOOP_DELAY_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const timer = setInterval(() => {
    const line = { t: Date.now(), max_ms: h.max / 1e6, p99_ms: h.percentile(99) / 1e6 };
    h.reset();
    fs.appendFile(file, `${JSON.stringify(line)}\n`, () => {});
  }, 1000);
  timer.unref();
}
