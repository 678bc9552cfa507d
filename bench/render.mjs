#!/usr/bin/env node
/**
 * Render benchmark: how long does a scrape of 100,000 series take, and how much heap does a stored
 * series cost, in the sidecar's metric store compared with prom-client and the Prometheus
 * Pushgateway? Run with `npm run bench:render` (builds first).
 *
 * The same series (bench/lib/series.mjs: identical families, label sets, values and order) go to:
 *   ours         dist/metrics/registry.js (the store) and dist/exposition/render.js (what the
 *                sidecar serves: the families rendered straight into pooled 64 KB buffers, streamed
 *                in ~1 ms slices)
 *   prom-client  a prom-client Registry, `await registry.metrics()`
 *   pushgateway  /usr/bin/prometheus-pushgateway (Debian), the text exposition PUT to it, then
 *                GET /metrics; only when installed (skipped otherwise)
 * in two variants: `flat` (100,000 counter/gauge series, 2-3 labels) and `histogram` (7,150
 * histograms = 100,100 exposed series).
 *
 * ours and prom-client each run in a fresh `node --expose-gc` process (this file, in worker mode)
 * pinned to CPU 0: heap is read after forced GCs before and after the series are created (V8 heap
 * plus array buffers), then the render is timed (warm-up, then the median of several renders).
 * Each worker then serves its exposition over HTTP, and this script (on CPU 1) times full scrapes
 * of it exactly as it times the pushgateway's (also pinned to CPU 0): request sent → last byte.
 *
 * Results: a table on stdout and bench/results/render.json. A missed target is not a failure; the
 * exit status is non-zero only when something failed to run.
 *
 * Environment knobs (optional): BENCH_RENDERS (9 timed renders/scrapes), BENCH_RENDER_WARMUP (3),
 * BENCH_BASELINE=<git ref | dist dir> (the same store from an earlier build, for heap per series),
 * BENCH_OBSERVE_ROUNDS (15: the observation-cost rounds, bench/lib/observe-cost.mjs),
 * BENCH_RENDER_VARIANTS (flat,histogram), BENCH_INSTALL_PUSHGATEWAY=1 (apt-get install it when
 * missing; root only), PUSHGATEWAY_BIN, BENCH_KEEP_TMP=1.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { start, stop, stopAll, freePorts, tail, interrupted, beginRun } from './lib/procs.mjs';
import { baselineDist } from './lib/builds.mjs';

const SELF = fileURLToPath(import.meta.url);

if (process.argv.includes('--worker')) {
  worker().catch((err) => {
    process.stderr.write(`render worker failed: ${err.stack ?? err}\n`);
    process.exit(1);
  });
} else {
  orchestrate().then(
    () => {},
    async (err) => {
      // After Ctrl-C the processes we stop make the run fail; the signal handler reports and exits.
      if (interrupted()) return;
      process.stderr.write(`\nbench:render failed: ${err.stack ?? err}\n`);
      await stopAll({ graceMs: 2000 }).catch(() => {});
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Worker mode: one implementation, one variant, in its own process.

async function worker() {
  const { forEachSeries, families, seriesCounts } = await import('./lib/series.mjs');
  const { summarise } = await import('./lib/stats.mjs');
  const { countSamples } = await import('./lib/http.mjs');
  const { values: opts } = parseArgs({
    options: {
      worker: { type: 'string' },
      variant: { type: 'string' },
      warmup: { type: 'string', default: '2' },
      renders: { type: 'string', default: '7' },
      dump: { type: 'string' },
      dist: { type: 'string' },
    },
  });
  if (typeof globalThis.gc !== 'function') throw new Error('worker needs node --expose-gc');
  const require = createRequire(import.meta.url);
  const impl = opts.worker;
  const variant = opts.variant;
  const warmup = Number(opts.warmup);
  const renders = Number(opts.renders);
  const fams = families(variant);
  const counts = seriesCounts(variant);

  // Load the library (and let its module-level allocations settle) before the baseline.
  // `ours-baseline` is the same store from an earlier build (BENCH_BASELINE, --dist): the heap per
  // series of classic-only series, before and after a change, in one run.
  const ours = impl === 'ours' || impl === 'ours-baseline';
  const dist = opts.dist ?? path.join(path.dirname(SELF), '..', 'dist');
  const lib = ours ? require(path.join(dist, 'metrics', 'registry.js')) : require('prom-client');
  const bytes = ours ? require(path.join(dist, 'exposition', 'render.js')) : null;
  const pbw = impl === 'ours' ? require(path.join(dist, 'exposition', 'protobuf.js')) : null;
  // protobufjs and its parsed schema (~1 MB) load before the heap baseline too: they belong to the
  // comparison, not to the store (loaded after it, they added ~10 B to every flat series).
  const MF = pbw
    ? require('protobufjs')
        .loadSync(path.join(path.dirname(SELF), '..', 'test', 'fixtures', 'metrics.proto'))
        .lookupType('io.prometheus.client.MetricFamily')
    : null;
  const gcAll = () => {
    for (let i = 0; i < 4; i++) globalThis.gc();
  };
  const mem = () => {
    const m = process.memoryUsage();
    return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external, rss: m.rss };
  };
  gcAll();
  const before = mem();
  const tBuild = performance.now();

  let renderAsync;
  let renderProto;
  let renderProtobufjs;
  let registry;
  if (ours) {
    registry = new lib.Registry();
    const made = fams.map((f) => {
      const o = { name: f.name, help: f.help, labelNames: f.labelNames, maxSeries: Infinity };
      if (f.type === 'counter') return registry.register(new lib.Counter(o));
      if (f.type === 'gauge') return registry.register(new lib.Gauge(o));
      return registry.register(new lib.Histogram({ ...o, buckets: f.buckets }));
    });
    forEachSeries(variant, (fi, values, v) => {
      const fam = made[fi];
      const type = fams[fi].type;
      if (type === 'counter') fam.inc(values, v);
      else if (type === 'gauge') fam.set(values, v);
      else for (const o of v) fam.observe(values, o);
    });
    // What a scrape costs the sidecar, short of the socket: every chunk rendered, then handed back.
    renderAsync = () => {
      const w = new bytes.ExpositionWriter(registry.all(), false, '');
      let n = 0;
      for (let c = w.next(); c !== undefined; c = w.next()) {
        n += c.length;
        bytes.sharedPool.give(c);
      }
      return n;
    };
    // The protobuf writer (what a protobuf scrape costs, as renderAsync for text).
    if (pbw) {
      renderProto = () => {
        const w = new pbw.ProtobufWriter(registry.all(), '');
        let n = 0;
        for (let c = w.next(); c !== undefined; c = w.next()) {
          n += c.length;
          bytes.sharedPool.give(c);
        }
        return n;
      };
      // The library alternative weighed in ADR 0004: protobufjs (reflection, from the vendored
      // metrics.proto, MF above) given plain objects built from the same store, encodeDelimited per family.
      const pairs = (text) => [...text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => ({ name: m[1], value: m[2] }));
      renderProtobufjs = () => {
        const parts = [];
        let n = 0;
        for (const f of registry.all()) {
          const metric = [];
          for (const s of f.allSeries()) {
            if (f.type === 'histogram') {
              let acc = 0;
              const bucket = f.buckets.map((b, i) => ({ cumulativeCount: (acc += s.counts[i]), upperBound: b }));
              metric.push({ label: pairs(s.labels), histogram: { sampleCount: s.count, sampleSum: s.sum, bucket } });
            } else metric.push({ label: pairs(s.labels), [f.type]: { value: s.value } });
          }
          const b = MF.encodeDelimited({ name: f.name, help: f.help, type: f.type === 'counter' ? 0 : f.type === 'gauge' ? 1 : 4, metric }).finish();
          parts.push(b);
          n += b.length;
        }
        return n;
      };
    }
  } else if (impl === 'prom-client') {
    registry = new lib.Registry();
    const made = fams.map((f) => {
      const o = { name: f.name, help: f.help, labelNames: f.labelNames, registers: [registry] };
      if (f.type === 'counter') return new lib.Counter(o);
      if (f.type === 'gauge') return new lib.Gauge(o);
      return new lib.Histogram({ ...o, buckets: f.buckets });
    });
    forEachSeries(variant, (fi, values, v) => {
      const fam = made[fi];
      const type = fams[fi].type;
      const labels = {};
      fams[fi].labelNames.forEach((n, i) => (labels[n] = values[i]));
      if (type === 'counter') fam.inc(labels, v);
      else if (type === 'gauge') fam.set(labels, v);
      else for (const o of v) fam.observe(labels, o);
    });
    renderAsync = () => registry.metrics();
  } else {
    throw new Error(`unknown implementation ${impl}`);
  }
  const buildMs = performance.now() - tBuild;
  gcAll();
  const after = mem();
  const heapDelta = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);

  /** Times the render functions interleaved (one of each per iteration), after warm-up. */
  const timed = async (fns) => {
    for (let i = 0; i < warmup; i++) for (const fn of fns) await fn();
    const samples = fns.map(() => []);
    const outs = [];
    for (let i = 0; i < renders; i++) {
      for (let k = 0; k < fns.length; k++) {
        const t0 = performance.now();
        outs[k] = await fns[k]();
        samples[k].push(performance.now() - t0);
      }
    }
    return samples.map((ms, k) => ({ ms: summarise(ms), out: outs[k] }));
  };
  const result = {
    impl,
    variant,
    series_stored: counts.stored,
    series_exposed: counts.exposed,
    build_ms: Math.round(buildMs),
    heap: {
      delta_bytes: heapDelta,
      heap_used_delta_bytes: after.heapUsed - before.heapUsed,
      array_buffers_delta_bytes: after.arrayBuffers - before.arrayBuffers,
      rss_delta_bytes: after.rss - before.rss,
      bytes_per_stored_series: Math.round(heapDelta / counts.stored),
      bytes_per_exposed_series: Math.round(heapDelta / counts.exposed),
    },
  };
  const fns = [renderAsync, renderProto, renderProtobufjs];
  const [asyncRes, proto, pbjs] = await timed(fns.filter(Boolean)).then((res) => fns.map((f) => (f ? res.shift() : undefined)));
  result.render_async_ms = asyncRes.ms;
  if (proto) {
    result.render_protobuf_ms = proto.ms;
    result.protobuf_bytes = proto.out;
    result.render_protobufjs_ms = pbjs.ms;
    result.protobufjs_bytes = pbjs.out;
  }
  const text = ours ? new bytes.ExpositionWriter(registry.all(), false, '').all().toString('utf8') : asyncRes.out;
  result.exposition_bytes = Buffer.byteLength(text);
  result.samples = countSamples(text);
  if (impl === 'ours' && opts.dump) fs.writeFileSync(opts.dump, text);

  // Serve the exposition, rendered on every request as the sidecar does (no gzip): ours streamed
  // chunk by chunk with backpressure, prom-client's string whole.
  const server = http.createServer(async (req, res) => {
    try {
      if (ours) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        await bytes.streamExposition(new bytes.ExpositionWriter(registry.all(), false, ''), res);
        return;
      }
      const body = await renderAsync();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } catch (err) {
      if (res.headersSent) res.destroy(err);
      else {
        res.writeHead(500);
        res.end(String(err));
      }
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  result.port = server.address().port;
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

// ---------------------------------------------------------------------------------------------
// Orchestrator mode.

async function orchestrate() {
  const R = await import('./lib/report.mjs');
  const { round, summarise } = await import('./lib/stats.mjs');
  const { timedGet, countSamples } = await import('./lib/http.mjs');
  const { VARIANTS, seriesCounts } = await import('./lib/series.mjs');
  const PG = await import('./lib/pushgateway.mjs');

  const log = R.logger('render');
  const SETTINGS = {
    renders: R.envNum('BENCH_RENDERS', 9),
    warmup: R.envNum('BENCH_RENDER_WARMUP', 3),
    variants: (process.env.BENCH_RENDER_VARIANTS || VARIANTS.join(','))
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    subject_cpu: 0,
    client_cpu: 1,
    scrape_headers: { accept: 'text/plain;version=0.0.4' },
    baseline: process.env.BENCH_BASELINE || null,
    observe_rounds: R.envNum('BENCH_OBSERVE_ROUNDS', 15),
  };
  for (const v of SETTINGS.variants) if (!VARIANTS.includes(v)) throw new Error(`BENCH_RENDER_VARIANTS: unknown variant ${v}`);
  // Heap: issue 12 — no worse than the 204 B per stored series measured before the byte renderer.
  // Against BENCH_BASELINE: classic-only series cost the same heap (within 1 %) after a change.
  const TARGETS = { speedup_min: 5, heap_bytes_per_series_max: 204, protobuf_over_text_max: 1.5, heap_over_baseline_max: 1.01 };
  const OVERALL_TIMEOUT_MS = 6 * 60 * 1000;

  const startedAt = Date.now();
  const pre = R.preflight({ needFiles: ['dist/metrics/registry.js'], script: 'bench:render' });
  if (R.packageVersion('prom-client') === 'not installed') throw new Error('prom-client is not installed (npm ci installs it: it is a devDependency)');
  const { tmp, overall } = beginRun('bench-render', OVERALL_TIMEOUT_MS, log);

  const pg = await PG.findPushgateway({ install: R.envBool('BENCH_INSTALL_PUSHGATEWAY', false), log });
  const meta = R.baseMeta(pre, {
    prom_client: R.packageVersion('prom-client'),
    pushgateway: pg.bin ? await PG.pushgatewayVersion(pg.bin) : null,
  });
  R.pinSelf(SETTINGS.client_cpu);
  log(
    `node ${meta.versions.node}, prom-client ${meta.versions.prom_client}, pushgateway ${meta.versions.pushgateway ?? `skipped: ${pg.skipped}`}; temp dir ${tmp}`,
  );

  const warnings = [];
  if (pg.skipped) warnings.push(`pushgateway comparison skipped: ${pg.skipped}`);

  /** Times `warmup + renders` full scrapes of `url` (keep-alive, one at a time). */
  async function scrapes(url) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ms = [];
      let last;
      for (let i = 0; i < SETTINGS.warmup + SETTINGS.renders; i++) {
        last = await timedGet(url, { agent, headers: SETTINGS.scrape_headers, timeoutMs: 60000, keepBody: i === SETTINGS.warmup + SETTINGS.renders - 1 });
        if (last.status !== 200) throw new Error(`GET ${url}: HTTP ${last.status}`);
        if (i >= SETTINGS.warmup) ms.push(last.ms);
      }
      return { ms: summarise(ms), bytes: last.bytes, samples: countSamples(last.body) };
    } finally {
      agent.destroy();
    }
  }

  async function runWorker(impl, variant, dist) {
    const dump = impl === 'ours' ? path.join(tmp, `${variant}.prom`) : undefined;
    const args = [
      '--expose-gc',
      SELF,
      '--worker',
      impl,
      '--variant',
      variant,
      '--warmup',
      String(SETTINGS.warmup),
      '--renders',
      String(SETTINGS.renders),
      ...(dump ? ['--dump', dump] : []),
      ...(dist ? ['--dist', dist] : []),
    ];
    log(`${variant}: ${impl} (fresh process on CPU ${SETTINGS.subject_cpu}): build, heap, ${SETTINGS.warmup}+${SETTINGS.renders} renders`);
    const m = start(`${impl}-${variant}`, process.execPath, args, { cpus: SETTINGS.subject_cpu, cwd: R.ROOT });
    const deadline = Date.now() + 180000;
    let result;
    while (!result) {
      const line = m
        .output()
        .split('\n')
        .find((l) => l.startsWith('BENCH_RESULT '));
      if (line) result = JSON.parse(line.slice('BENCH_RESULT '.length));
      else if (m.done) throw new Error(`${impl} worker ended (${m.exitInfo}):\n${tail(m.output())}`);
      else if (Date.now() > deadline) throw new Error(`${impl} worker gave no result within 180 s:\n${tail(m.output())}`);
      else await sleep(50);
    }
    log(`${variant}: ${impl}: ${SETTINGS.warmup}+${SETTINGS.renders} scrapes over HTTP`);
    result.http_scrape = await scrapes(`http://127.0.0.1:${result.port}/metrics`);
    await stop(m, { signal: 'SIGTERM', graceMs: 3000 });
    delete result.port;
    return { result, dump };
  }

  async function runPushgateway(variant, dump) {
    const [port] = await freePorts(1);
    log(`${variant}: pushgateway on 127.0.0.1:${port} (CPU ${SETTINGS.subject_cpu}): push, then ${SETTINGS.warmup}+${SETTINGS.renders} scrapes`);
    const m = await PG.startPushgateway(pg.bin, port, { cpus: SETTINGS.subject_cpu });
    try {
      const rssKb = () => Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${m.pid}/status`, 'utf8'))?.[1] ?? NaN);
      const url = `http://127.0.0.1:${port}/metrics`;
      await scrapes(url); // its own metrics only: warms it up and gives the empty baseline
      const rss0 = rssKb();
      const t0 = performance.now();
      await PG.push(port, fs.readFileSync(dump));
      const pushMs = performance.now() - t0;
      const s = await scrapes(url);
      const rss1 = rssKb();
      const { stored, exposed } = seriesCounts(variant);
      return {
        impl: 'pushgateway',
        variant,
        push_ms: Math.round(pushMs),
        http_scrape: s,
        exposition_bytes: s.bytes,
        samples: s.samples,
        rss_delta_bytes: (rss1 - rss0) * 1024,
        rss_delta_bytes_per_stored_series: Math.round(((rss1 - rss0) * 1024) / stored),
        rss_delta_bytes_per_exposed_series: Math.round(((rss1 - rss0) * 1024) / exposed),
      };
    } finally {
      await stop(m, { signal: 'SIGTERM', graceMs: 3000 });
    }
  }

  const baseline = SETTINGS.baseline ? baselineDist(SETTINGS.baseline, (w) => warnings.push(w)) : null;
  if (baseline) log(`baseline build (BENCH_BASELINE=${SETTINGS.baseline}): ${baseline}`);
  const results = {};
  for (const variant of SETTINGS.variants) {
    const ours = await runWorker('ours', variant);
    const prom = await runWorker('prom-client', variant);
    const r = { ours: ours.result, prom_client: prom.result };
    if (baseline) r.ours_baseline = (await runWorker('ours-baseline', variant, baseline)).result;
    if (pg.bin) r.pushgateway = await runPushgateway(variant, ours.dump);
    if (r.ours.samples !== r.prom_client.samples) warnings.push(`${variant}: ours exposes ${r.ours.samples} samples, prom-client ${r.prom_client.samples}`);
    results[variant] = r;
  }

  // ---- what one observation costs: classic, with native buckets, with an exemplar (one process)
  log(`observation cost (bench/lib/observe-cost.mjs on CPU ${SETTINGS.subject_cpu}): ${SETTINGS.observe_rounds} interleaved rounds`);
  const obsProc = start('observe-cost', process.execPath, ['--expose-gc', path.join(path.dirname(SELF), 'lib', 'observe-cost.mjs')], {
    cpus: SETTINGS.subject_cpu,
    cwd: R.ROOT,
    env: { ...process.env, BENCH_OBSERVE_ROUNDS: String(SETTINGS.observe_rounds) },
  });
  let observe;
  for (const deadline = Date.now() + 180000; !observe;) {
    const line = obsProc
      .output()
      .split('\n')
      .find((l) => l.startsWith('OBSERVE_RESULT '));
    if (line) observe = JSON.parse(line.slice('OBSERVE_RESULT '.length));
    else if (obsProc.done) throw new Error(`observe-cost ended (${obsProc.exitInfo}):\n${tail(obsProc.output())}`);
    else if (Date.now() > deadline) throw new Error(`observe-cost gave no result within 180 s:\n${tail(obsProc.output())}`);
    else await sleep(50);
  }
  await stop(obsProc, { signal: 'SIGTERM', graceMs: 2000 });

  // ---- ratios and verdicts
  const ratios = {};
  const verdicts = {};
  for (const [variant, r] of Object.entries(results)) {
    const o = r.ours;
    const p = r.prom_client;
    const g = r.pushgateway;
    const q = {
      render_prom_client_over_ours_async: round(p.render_async_ms.median / o.render_async_ms.median, 2),
      http_scrape_prom_client_over_ours: round(p.http_scrape.ms.median / o.http_scrape.ms.median, 2),
      http_scrape_pushgateway_over_ours: g ? round(g.http_scrape.ms.median / o.http_scrape.ms.median, 2) : null,
      heap_prom_client_over_ours: round(p.heap.delta_bytes / o.heap.delta_bytes, 2),
      render_protobuf_over_text: round(o.render_protobuf_ms.median / o.render_async_ms.median, 2),
      render_protobufjs_over_text: round(o.render_protobufjs_ms.median / o.render_async_ms.median, 2),
      heap_ours_over_baseline: r.ours_baseline ? round(o.heap.delta_bytes / r.ours_baseline.heap.delta_bytes, 3) : null,
    };
    ratios[variant] = q;
    verdicts[variant] = {
      render_prom_client_over_ours_async: R.atLeast(q.render_prom_client_over_ours_async, TARGETS.speedup_min),
      http_scrape_pushgateway_over_ours: g ? R.atLeast(q.http_scrape_pushgateway_over_ours, TARGETS.speedup_min) : 'skipped',
      ...(variant === 'flat' ? { heap_bytes_per_stored_series: R.atMost(o.heap.bytes_per_stored_series, TARGETS.heap_bytes_per_series_max) } : {}),
      render_protobuf_over_text: R.atMost(q.render_protobuf_over_text, TARGETS.protobuf_over_text_max),
      heap_ours_over_baseline: r.ours_baseline ? R.atMost(q.heap_ours_over_baseline, TARGETS.heap_over_baseline_max) : 'skipped',
    };
  }

  // ---- report
  const out = [''];
  out.push(
    `Render benchmark: ${SETTINGS.renders} timed renders/scrapes after ${SETTINGS.warmup} warm-up (medians); ` +
      `each implementation alone on CPU ${SETTINGS.subject_cpu}, scraper on CPU ${SETTINGS.client_cpu}; text format 0.0.4, no gzip`,
  );
  for (const [variant, r] of Object.entries(results)) {
    const { stored, exposed } = seriesCounts(variant);
    out.push('');
    out.push(
      variant === 'flat'
        ? `flat: ${R.fmtInt(stored)} counter/gauge series, 10 families, 2-3 labels`
        : `histogram: ${R.fmtInt(stored)} histograms x 14 = ${R.fmtInt(exposed)} exposed series, 5 families, 2-3 labels`,
    );
    const perSeries = variant === 'flat' ? 'heap B/series' : 'heap B/histogram';
    const head = ['implementation', perSeries, 'render ms', 'HTTP scrape ms', 'body MB', 'samples'];
    const rows = [
      [
        'ours byte renderer (served)',
        R.fmtInt(r.ours.heap.bytes_per_stored_series),
        R.fmt(r.ours.render_async_ms.median, 1),
        R.fmt(r.ours.http_scrape.ms.median, 1),
        R.fmt(r.ours.http_scrape.bytes / 1e6, 2),
        R.fmtInt(r.ours.http_scrape.samples),
      ],
      ['ours protobuf writer', '', R.fmt(r.ours.render_protobuf_ms.median, 1), '', R.fmt(r.ours.protobuf_bytes / 1e6, 2), ''],
      ['protobufjs encodeDelimited (ADR 0004)', '', R.fmt(r.ours.render_protobufjs_ms.median, 1), '', R.fmt(r.ours.protobufjs_bytes / 1e6, 2), ''],
      [
        'prom-client registry.metrics()',
        R.fmtInt(r.prom_client.heap.bytes_per_stored_series),
        R.fmt(r.prom_client.render_async_ms.median, 1),
        R.fmt(r.prom_client.http_scrape.ms.median, 1),
        R.fmt(r.prom_client.http_scrape.bytes / 1e6, 2),
        R.fmtInt(r.prom_client.http_scrape.samples),
      ],
      r.pushgateway
        ? [
            'pushgateway GET /metrics',
            `(${R.fmtInt(r.pushgateway.rss_delta_bytes_per_stored_series)} RSS)`,
            '',
            R.fmt(r.pushgateway.http_scrape.ms.median, 1),
            R.fmt(r.pushgateway.http_scrape.bytes / 1e6, 2),
            R.fmtInt(r.pushgateway.http_scrape.samples),
          ]
        : ['pushgateway', 'skipped', '', '', '', ''],
    ];
    if (r.ours_baseline) {
      rows.splice(2, 0, [
        `ours baseline ${SETTINGS.baseline} (byte renderer)`,
        R.fmtInt(r.ours_baseline.heap.bytes_per_stored_series),
        R.fmt(r.ours_baseline.render_async_ms.median, 1),
        R.fmt(r.ours_baseline.http_scrape.ms.median, 1),
        R.fmt(r.ours_baseline.http_scrape.bytes / 1e6, 2),
        R.fmtInt(r.ours_baseline.http_scrape.samples),
      ]);
    }
    out.push(R.table(head, rows));
    out.push('');
    const q = ratios[variant];
    const v = verdicts[variant];
    out.push(
      R.targetLine(
        'render prom-client / ours byte renderer:',
        `${R.fmt(q.render_prom_client_over_ours_async, 1)}x`,
        `target >= ${TARGETS.speedup_min}x`,
        v.render_prom_client_over_ours_async,
      ),
    );
    out.push(R.targetLine('HTTP scrape prom-client / ours:', `${R.fmt(q.http_scrape_prom_client_over_ours, 1)}x`));
    out.push(
      q.http_scrape_pushgateway_over_ours !== null
        ? R.targetLine(
            'HTTP scrape pushgateway / ours:',
            `${R.fmt(q.http_scrape_pushgateway_over_ours, 1)}x`,
            `target >= ${TARGETS.speedup_min}x`,
            v.http_scrape_pushgateway_over_ours,
          )
        : R.targetLine('HTTP scrape pushgateway / ours:', 'skipped'),
    );
    if (variant === 'flat') {
      out.push(
        R.targetLine(
          'heap per stored series, ours:',
          `${R.fmtInt(r.ours.heap.bytes_per_stored_series)} B`,
          `target <= ${TARGETS.heap_bytes_per_series_max} B`,
          v.heap_bytes_per_stored_series,
        ),
      );
    } else {
      out.push(R.targetLine('heap per exposed series, ours:', `${R.fmtInt(r.ours.heap.bytes_per_exposed_series)} B`, '(per histogram above)'));
    }
    out.push(R.targetLine('heap prom-client / ours:', `${R.fmt(q.heap_prom_client_over_ours, 1)}x`));
    out.push(
      R.targetLine(
        'render protobuf writer / text byte renderer:',
        `${R.fmt(q.render_protobuf_over_text, 2)}x`,
        `target <= ${TARGETS.protobuf_over_text_max}x`,
        v.render_protobuf_over_text,
      ),
    );
    out.push(R.targetLine('render protobufjs / text byte renderer:', `${R.fmt(q.render_protobufjs_over_text, 2)}x`));
    out.push(
      q.heap_ours_over_baseline !== null
        ? R.targetLine(
            `heap per series, ours / baseline ${SETTINGS.baseline}:`,
            `${R.fmt(q.heap_ours_over_baseline, 3)}x (${R.fmtInt(r.ours.heap.bytes_per_stored_series)} B / ${R.fmtInt(r.ours_baseline.heap.bytes_per_stored_series)} B)`,
            `target <= ${TARGETS.heap_over_baseline_max}x`,
            v.heap_ours_over_baseline,
          )
        : R.targetLine('heap per series, ours / baseline:', 'skipped (BENCH_BASELINE=<git ref> compares with an earlier build)'),
    );
  }
  {
    const ns = observe.ns_per_observation;
    const f = (x) => `${R.fmt(x.median, 1)} (${R.fmt(x.min, 1)}-${R.fmt(x.max, 1)})`;
    out.push('');
    out.push(
      `observation cost: ns per histogram observation, median (min-max) of ${observe.rounds} interleaved rounds of ${R.fmtInt(observe.observations_per_round)} ` +
        `over ${R.fmtInt(observe.series)} series, log-uniform 0.5 ms-20 s (${observe.native_buckets_per_series} native buckets per series)`,
    );
    out.push(
      R.table(
        ['histogram', 'ns/observation'],
        [
          ['classic buckets only', f(ns.classic)],
          ['classic + native (factor 1.1, <= 160 buckets)', f(ns.native)],
          ['classic + native, 1 in 8 with an exemplar', f(ns['native+exemplar'])],
          ["a request's RED recording, EXEMPLARS=false", f(ns['red-exemplars-off'])],
          ['the same, EXEMPLARS=true (traceparent on each, 1 in 8 sampled)', f(ns['red-exemplars-on'])],
        ],
      ),
    );
    out.push(R.targetLine('cost per native observation (native - classic, same round):', `${f(observe.native_cost_ns)} ns`));
    out.push(R.targetLine('cost of exemplars per request (on - off, same round):', `${f(observe.exemplars_cost_ns_per_request)} ns`));
  }
  out.push(...R.warningLines(warnings));

  const elapsed = round((Date.now() - startedAt) / 1000, 1);
  const file = R.writeResults('render', { ...meta, elapsed_s: elapsed, settings: SETTINGS, results, observe, ratios, targets: TARGETS, verdicts, warnings });
  out.push('');
  out.push(`results: ${file} (${elapsed}s)`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
}
