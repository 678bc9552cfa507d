#!/usr/bin/env node
/**
 * npm run test:e2e, second part: native histograms and exemplars in a real Prometheus (issue 20).
 *
 * The Flask app of test/e2e/app.py under gunicorn, the built sidecar in front of it serving its
 * metrics on the main port, and two of Debian's Prometheus 2.42 servers scraping it every second:
 * - `native`: `--enable-feature=native-histograms,exemplar-storage`. It asks for protobuf first, so
 *   `flask_http_request_duration_seconds` must come back from its query API as a native histogram,
 *   and the exemplars of sampled requests must be stored;
 * - `classic`: `--enable-feature=exemplar-storage` only. It asks for OpenMetrics: the classic
 *   `_bucket` series must be stored and the exemplars read from OpenMetrics.
 * Requests carry W3C `traceparent` headers, some sampled and some not: only sampled trace ids may
 * ever appear in `/api/v1/query_exemplars`.
 *
 * Every process is started in a process group of its own and killed on the way out. Loopback only;
 * bounded by RUN_TIMEOUT_MS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually as retry } from './eventually.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
/** The virtualenv test/e2e/run.mjs makes (Flask, gunicorn, prometheus_client); made here if missing. */
const VENV = path.join(ROOT, '.tools', 'e2e-venv');
const RUN_TIMEOUT_MS = 120_000;
/** Eventual checks give Prometheus this long (many 1 s scrape intervals). */
const EVENTUALLY_MS = 30_000;

const started = Date.now();
const log = (msg) => process.stderr.write(`e2e native [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const children = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-native-'));

function start(name, command, args, env = {}) {
  const out = fs.openSync(path.join(dir, `${name}.log`), 'a');
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  child.name = name;
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  children.push(child);
  return child;
}

async function stopAll() {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }
  await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(5_000)]);
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

process.on('exit', () => {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});
const overall = setTimeout(() => {
  log(`timed out after ${RUN_TIMEOUT_MS / 1000}s`);
  printLogs();
  process.exit(1);
}, RUN_TIMEOUT_MS);
overall.unref();

function printLogs() {
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.log'))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    process.stderr.write(`---- ${f} (last 30 lines)\n${text.split('\n').slice(-30).join('\n')}\n`);
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** Retries `fn` until it stops throwing, or throws its last error after `ms`. */
const eventually = (fn, ms = EVENTUALLY_MS) => retry(fn, ms);

async function api(base, apiPath, params) {
  const r = await fetch(`${base}${apiPath}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(5000) });
  const j = await r.json();
  if (j.status !== 'success') throw new Error(`${apiPath} ${JSON.stringify(params)}: ${j.errorType}: ${j.error}`);
  return j.data;
}

/** Trace ids of the exemplars Prometheus at `base` holds for `selector` over the last minute. */
async function exemplarTraceIds(base, selector) {
  const now = Date.now() / 1000;
  const data = await api(base, '/api/v1/query_exemplars', { query: selector, start: String(now - 120), end: String(now + 1) });
  return new Set(data.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id)));
}

const ports = {};
const prom = {};
/** Trace ids sent sampled (flags 01) and not sampled (flags 00). */
const sampled = [];
const unsampled = [];

before(async () => {
  for (const tool of ['prometheus', 'python3']) assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is not on PATH`);
  assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'main.js')), 'dist/main.js is missing: npm run build first');
  if (!fs.existsSync(path.join(VENV, 'bin', 'gunicorn'))) {
    log('making the virtualenv');
    const made = spawnSync('sh', ['-c', `python3 -m venv "${VENV}" && "${VENV}/bin/pip" install -q -r test/e2e/requirements.txt`], {
      cwd: ROOT,
      env: { ...process.env, PIP_RETRIES: '0' },
      stdio: 'inherit',
    });
    assert.equal(made.status, 0, 'the virtualenv could not be made');
  }
  for (const k of ['app', 'web', 'statsd', 'native', 'classic']) ports[k] = await freePort();

  start('app', path.join(VENV, 'bin', 'gunicorn'), ['--chdir', 'test/e2e', '--workers', '2', '--bind', `127.0.0.1:${ports.app}`, 'app:app'], {
    STATSD_PORT: String(ports.statsd),
  });
  start('sidecar', process.execPath, ['dist/main.js'], {
    LISTEN_HOST: '127.0.0.1',
    LISTEN_PORT: String(ports.web),
    UPSTREAM_URL: `http://127.0.0.1:${ports.app}`,
    SERVE_PROMETHEUS_ENDPOINT: 'true',
    PROMETHEUS_PORT: '0',
    STATSD_PORT: String(ports.statsd),
    ROUTE_PATTERNS: '/repos/:owner/:repo',
    APP_NAME: 'native-e2e',
  });
  for (const [name, features] of [
    ['native', 'native-histograms,exemplar-storage'],
    ['classic', 'exemplar-storage'],
  ]) {
    const config = path.join(dir, `${name}.yml`);
    fs.writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 900ms',
        'scrape_configs:',
        '  - job_name: sidecar',
        '    metrics_path: /debug/metrics',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${ports.web}']`,
        '',
      ].join('\n'),
    );
    start(`prometheus-${name}`, 'prometheus', [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, `data-${name}`)}`,
      `--web.listen-address=127.0.0.1:${ports[name]}`,
      `--enable-feature=${features}`,
    ]);
    prom[name] = `http://127.0.0.1:${ports[name]}`;
  }
  await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${ports.web}/`, { signal: AbortSignal.timeout(2000) });
    assert.equal(r.status, 200);
  });
  for (const name of ['native', 'classic']) {
    await eventually(async () => {
      const targets = await api(prom[name], '/api/v1/targets', {});
      assert.equal(targets.activeTargets[0]?.health, 'up', `${name}: ${JSON.stringify(targets.activeTargets[0])}`);
    });
  }
  log('app, sidecar and both Prometheus servers up');

  // Traffic: 120 requests, a quarter of them sampled.
  for (let round = 0; round < 6; round++) {
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const traceId = crypto.randomBytes(16).toString('hex');
        const spanId = crypto.randomBytes(8).toString('hex');
        const isSampled = i % 4 === 0;
        (isSampled ? sampled : unsampled).push(traceId);
        const r = await fetch(`http://127.0.0.1:${ports.web}/repos/octo/repo-${i}`, {
          headers: { traceparent: `00-${traceId}-${spanId}-${isSampled ? '01' : '00'}` },
          signal: AbortSignal.timeout(5000),
        });
        await r.arrayBuffer();
      }),
    );
  }
  log(`sent ${sampled.length} sampled and ${unsampled.length} unsampled requests`);
});

after(async () => {
  await stopAll();
  if (process.exitCode) printLogs();
  else fs.rmSync(dir, { recursive: true, force: true });
});

test('Prometheus with native histograms stores the RED duration as a native histogram', async () => {
  await eventually(async () => {
    const data = await api(prom.native, '/api/v1/query', { query: 'sum(flask_http_request_duration_seconds{path="/repos/:owner/:repo"})' });
    assert.equal(data.result.length, 1, JSON.stringify(data));
    const h = data.result[0].histogram;
    assert.ok(h !== undefined, `not a native histogram: ${JSON.stringify(data.result[0])}`);
    assert.equal(Number(h[1].count), sampled.length + unsampled.length, JSON.stringify(h));
    assert.ok(h[1].buckets.length >= 1, JSON.stringify(h));
  });
  // histogram_quantile works on it (over the counts since start: a rate() needs traffic between
  // two scrapes, which a burst sent at once may not give).
  await eventually(async () => {
    const q = await api(prom.native, '/api/v1/query', {
      query: 'histogram_quantile(0.99, sum(flask_http_request_duration_seconds{path="/repos/:owner/:repo"}))',
    });
    assert.equal(q.result.length, 1, JSON.stringify(q));
    assert.ok(Number(q.result[0].value[1]) > 0, JSON.stringify(q));
  });
});

test('Prometheus with native histograms holds the exemplars of sampled requests, never of unsampled ones', async () => {
  await eventually(async () => {
    const ids = await exemplarTraceIds(prom.native, 'flask_http_request_duration_seconds');
    const total = await exemplarTraceIds(prom.native, 'flask_http_request_total');
    for (const id of [...ids, ...total]) assert.ok(sampled.includes(id), `an exemplar names a trace that was not sampled or not sent: ${id}`);
    assert.ok(ids.size + total.size > 0, 'no exemplar yet');
    log(`native: exemplars of ${ids.size} traces on the duration, ${total.size} on flask_http_request_total`);
  });
});

test('Prometheus without native histograms stores the classic buckets and reads exemplars from OpenMetrics', async () => {
  await eventually(async () => {
    const data = await api(prom.classic, '/api/v1/query', { query: 'sum by (le) (flask_http_request_duration_seconds_bucket{path="/repos/:owner/:repo"})' });
    assert.ok(data.result.length >= 2, JSON.stringify(data));
    const inf = data.result.find((s) => s.metric.le === '+Inf');
    assert.equal(Number(inf?.value[1]), sampled.length + unsampled.length, JSON.stringify(data));
  });
  await eventually(async () => {
    const ids = await exemplarTraceIds(prom.classic, 'flask_http_request_duration_seconds_bucket');
    for (const id of ids) assert.ok(sampled.includes(id), `an exemplar names a trace that was not sampled or not sent: ${id}`);
    assert.ok(ids.size > 0, 'no exemplar yet');
    for (const id of unsampled) assert.ok(!ids.has(id));
    log(`classic: exemplars of ${ids.size} traces on the duration buckets`);
  });
});
