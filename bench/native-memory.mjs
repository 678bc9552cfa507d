#!/usr/bin/env node
/**
 * Heap per native histogram series (dist/metrics/native-histogram.js), for the module comment and
 * the series budgets: 20,000 NativeHistogramBuckets each holding 0, 1, 10 or 160 populated positive
 * buckets (schema 3, values 2^(k/8)), V8 heap used plus array buffers after forced GCs, before and
 * after. Run: `npm run build && node --expose-gc bench/native-memory.mjs`.
 */
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { NativeHistogramBuckets } = require('../dist/metrics/native-histogram.js');

const N = 20000;
const gc = globalThis.gc;
if (typeof gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(2);
}

function used() {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const rows = [];
for (const buckets of [0, 1, 10, 160]) {
  const before = used();
  const keep = new Array(N);
  for (let n = 0; n < N; n++) {
    const h = new NativeHistogramBuckets();
    for (let k = 0; k < buckets; k++) h.observe(2 ** (k / 8) * 1.01);
    keep[n] = h;
  }
  const after = used();
  const perSeries = (after - before - N * 8) / N; // minus the keep array's slots
  const estimate = keep[0].bytesEstimate();
  if (keep[0].bucketCount() !== buckets) throw new Error(`expected ${buckets} buckets, got ${keep[0].bucketCount()}`);
  rows.push({ buckets, bytesPerSeries: Math.round(perSeries), bytesEstimate: estimate });
  keep.length = 0;
}
console.table(rows);
