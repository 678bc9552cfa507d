#!/usr/bin/env node
/**
 * Routes benchmark: what turning a request path into its `path` label costs a request, in this
 * process, with and without an OpenAPI document of 200 operations (ROUTE_OPENAPI_FILE), for
 * `bench:proxy`'s `sidecar-openapi` question without the noise of a whole proxy. Run with
 * `npm run bench:routes` (builds first); about half a minute.
 *
 * From dist/: a RedRecorder as the sidecar makes it (default limits, learned caps on), without a
 * document and with bench/lib/openapi.mjs's 200 operations loaded (setOpenApi, as the OpenAPI
 * source does). Per request, what the forwarder does with the path: `route()` (the path cache,
 * else the templater: configured patterns, OpenAPI templates, learned caps, heuristics) and
 * `record()` (the RED families). Two path sets:
 *   mix       the 64 paths of bench:proxy's `mix` load, round and round: cache hits, as in steady traffic;
 *   distinct  the same shapes with a new id on every request (`/users/<n>/repos`, `/api/items/<uuid>`,
 *             ...): every request misses the cache and is templated, the worst case.
 * Timed in BENCH_ROUTES_ROUNDS interleaved rounds (9; order rotated) of BENCH_ROUTES_REQUESTS
 * (1,000,000) after a warm-up; ns per request, medians with min-max; the ratio with/without the
 * document per round. Pinned to CPU 0. Results: a table and bench/results/routes.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, baseMeta, envNum, fmt, logger, pinSelf, preflight, table, targetLine, writeResults } from './lib/report.mjs';
import { mixRequests } from './lib/mix.mjs';
import { writeOpenApiDoc } from './lib/openapi.mjs';

const log = logger('routes');
const require = createRequire(import.meta.url);
const ROUNDS = envNum('BENCH_ROUTES_ROUNDS', 9);
const REQUESTS = envNum('BENCH_ROUTES_REQUESTS', 1_000_000);

const env = preflight({ needFiles: ['dist/proxy/red.js', 'dist/formats/openapi.js'], script: 'bench:routes' });
const meta = baseMeta(env);
pinSelf(0);
const { RedRecorder } = require(`${ROOT}/dist/proxy/red.js`);
const { Registry } = require(`${ROOT}/dist/metrics/registry.js`);
const { parseOpenApi } = require(`${ROOT}/dist/formats/openapi.js`);
const { DEFAULT_HTTP_BUCKETS } = require(`${ROOT}/dist/config/variables.js`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-routes-'));
const doc = parseOpenApi(fs.readFileSync(writeOpenApiDoc(tmp, 200), 'utf8'));
fs.rmSync(tmp, { recursive: true, force: true });

const HTTP = {
  prefix: 'flask_http_request',
  buckets: DEFAULT_HTTP_BUCKETS,
  routePatterns: [],
  excludePaths: [],
  maxSeriesPerFamily: 2000,
  exemplars: true,
};
const recorder = (withDoc) => {
  const r = new RedRecorder(new Registry(), HTTP);
  if (withDoc) r.setOpenApi(doc.routes);
  return r;
};

const mix = mixRequests().map((m) => ({ path: m.path.split('?')[0], method: m.method, status: m.method === 'POST' ? 201 : 200 }));
/** The mix's path with its ids replaced by the n-th fresh one. */
const fresh = (m, n) => ({
  ...m,
  path: m.path.replace(
    /\/(\d+|[0-9a-f]{8}-[0-9a-f-]{27})(?=\/|$)/g,
    (s, id) => `/${/^\d+$/.test(id) ? 100000 + n : `${(n >>> 0).toString(16).padStart(8, '0')}-0000-4000-a000-000000000000`}`,
  ),
});

const VARIANTS = {
  'mix, no document': { withDoc: false, distinct: false },
  'mix, 200 operations': { withDoc: true, distinct: false },
  'distinct, no document': { withDoc: false, distinct: true },
  'distinct, 200 operations': { withDoc: true, distinct: true },
};
const state = Object.fromEntries(Object.entries(VARIANTS).map(([k, v]) => [k, { ...v, red: recorder(v.withDoc), n: 0 }]));

function run(name) {
  const s = state[name];
  const red = s.red;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const m = s.distinct ? fresh(mix[i & 63], s.n++) : mix[i & 63];
    const route = red.route(m.path);
    if (route !== null) red.record(m.method, route, m.status, 0.004, false);
  }
  return Number(process.hrtime.bigint() - t0) / REQUESTS;
}

// The `distinct` variants build their paths inside the loop; the same cost with no templating is
// measured too and subtracted, so their figure is the templating alone.
function pathsOnly() {
  let n = 0;
  let len = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) len += fresh(mix[i & 63], n++).path.length;
  const ns = Number(process.hrtime.bigint() - t0) / REQUESTS;
  if (len === 0) throw new Error('no paths');
  return ns;
}

const names = Object.keys(VARIANTS);
log(`${names.length} variants, ${ROUNDS} rounds of ${REQUESTS} requests, 200 operations (${doc.routes.length} templates)`);
for (const n of names) run(n);
pathsOnly();
const samples = Object.fromEntries(names.map((n) => [n, []]));
const pathCost = [];
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < names.length; k++) {
    const n = names[(r + k) % names.length];
    samples[n].push(run(n));
  }
  pathCost.push(pathsOnly());
}
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a) });
const results = {};
for (const n of names) {
  const ns = VARIANTS[n].distinct ? samples[n].map((v, i) => v - pathCost[i]) : samples[n];
  results[n] = { ns_per_request: summary(ns), samples: ns };
}
const ratio = (a, b) => summary(results[a].samples.map((v, i) => v / results[b].samples[i]));
const ratios = {
  mix_document_over_none: ratio('mix, 200 operations', 'mix, no document'),
  distinct_document_over_none: ratio('distinct, 200 operations', 'distinct, no document'),
};
const routesOf = (n) => state[n].red.templateSources();

const f = (x) => `${fmt(x.median, 1)} (${fmt(x.min, 1)}-${fmt(x.max, 1)})`;
const out = [
  '',
  `Routes benchmark: route() + record() per request, in process on CPU 0; ${ROUNDS} interleaved rounds of ${REQUESTS.toLocaleString('en')} (medians, min-max)`,
  table(
    ['variant', 'ns/request', 'templates admitted'],
    names.map((n) => [n, f(results[n].ns_per_request), String(routesOf(n).admitted)]),
  ),
  '',
  targetLine('with a 200-operation document / without, mix (cache hits):', `${fmt(ratios.mix_document_over_none.median, 3)}x`),
  targetLine('with a 200-operation document / without, distinct paths:', `${fmt(ratios.distinct_document_over_none.median, 3)}x`),
];
const file = writeResults('routes', {
  ...meta,
  settings: { rounds: ROUNDS, requests: REQUESTS, operations: 200, templates: doc.routes.length },
  results,
  ratios,
  path_build_ns: summary(pathCost),
});
out.push('', `results: ${file}`);
process.stdout.write(`${out.join('\n')}\n`);
