#!/usr/bin/env node
/**
 * npm run test:e2e: the end-to-end proof against a real Prometheus server and a real Flask app
 * under gunicorn (issue 6).
 *
 * It runs the shell blocks of docs/try-it-with-prometheus.md (the README links to it) as they are written, with bash, from the repository root, with the doc's
 * variables set to free loopback ports, a directory of its own and a 1 s scrape interval; the
 * doc's `curl` queries are sent to Prometheus too. Then it checks, through Prometheus's HTTP
 * API, what an operator would look at: targets, RED metrics by route template, the maintained app
 * metrics and their labels, every query of the chart's Grafana dashboard, the chart's alert rules
 * (live, and with promtool unit tests), a refused scrape, and exact request counts across
 * gunicorn workers.
 *
 * Additions that are not in the doc, because a laptop has no cluster: a stand-in for the
 * Kubernetes API server (TokenReview, SubjectAccessReview) in this process, a third sidecar using
 * it, and a scrape job for that sidecar (prometheus-kubernetes.yml), so that the dashboard's
 * "Kubernetes auth cache" panel has data too.
 *
 * Every process is started in a process group of its own and recorded; they are stopped with
 * the doc's own `kill` line, then whatever is left of their groups is killed, on success, failure,
 * timeout, SIGINT or SIGTERM. Bounded: RUN_TIMEOUT_MS in all. Loopback only.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { render } from './render.mjs';
import { eventually as retry } from './eventually.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const DOC = path.join(ROOT, 'docs', 'try-it-with-prometheus.md');
const DASHBOARD = path.join(ROOT, 'charts', 'metrics-sidecar', 'dashboards', 'metrics-sidecar.json');
/** Where the Python virtualenv is kept between runs (.tools is gitignored). */
const VENV = path.join(ROOT, '.tools', 'e2e-venv');
const RUN_TIMEOUT_MS = 110_000;
const SCRAPE_INTERVAL_S = 1;
/** Eventual checks give Prometheus this long (many scrape intervals) to see what they expect. */
const EVENTUALLY_MS = 20_000;

/** What the scrape config and the chart's rules call things (test/e2e/prometheus.yml). */
const NAMESPACE = 'my-namespace';
const WEB_JOB = 'my-app-metrics-sidecar-web';
const WORKER_JOB = 'my-app-metrics-sidecar-worker';
const KUBE_JOB = 'my-app-metrics-sidecar-kubernetes-auth';
const WRONG_JOB = 'wrong-password';
/** Labels Prometheus and the scrape config put on every series (not the family's own labels). */
const TARGET_LABELS = new Set(['__name__', 'job', 'instance', 'namespace', 'service', 'pod', 'container']);

const started = Date.now();
const log = (msg) => process.stderr.write(`e2e [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------
// Processes: every one in a group of its own, all killed on the way out, whatever the way.

/** pgid → name. */
const groups = new Map();
let failed = false;

/** Non-zombie processes of a process group, from /proc. */
function groupMembers(pgid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ...
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push(Number(entry));
  }
  return out;
}

function killGroups(signal) {
  for (const pgid of groups.keys()) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // the group is empty already
    }
  }
}

function leftovers() {
  return [...groups].flatMap(([pgid, name]) => groupMembers(pgid).map((pid) => `${name}: pid ${pid}`));
}

/**
 * SIGTERM to every process started, except the bash that started them (it reaps them when they
 * exit, so nothing is left a zombie), up to `graceMs` for them to go, then SIGKILL to the groups.
 * Resolves with what had to be killed.
 */
async function stopAll(graceMs) {
  for (const pgid of groups.keys()) {
    for (const pid of groupMembers(pgid)) {
      if (pid === pgid && groups.get(pgid).startsWith('block')) continue; // a doc block's bash
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
    }
  }
  const deadline = Date.now() + graceMs;
  while (leftovers().length > 0 && Date.now() < deadline) await sleep(100);
  const stubborn = leftovers();
  if (stubborn.length > 0) {
    killGroups('SIGKILL');
    await sleep(300);
  }
  return stubborn;
}

let stopping = false;
async function abort(why) {
  if (stopping) {
    killGroups('SIGKILL');
    process.exit(1);
  }
  stopping = true;
  log(`${why}: stopping everything started`);
  printLogs();
  const stubborn = await stopAll(5_000);
  if (stubborn.length > 0) log(`killed: ${stubborn.join(', ')}`);
  if (state.env) log(`kept for inspection: ${state.env.TRY_DIR}`);
  process.exit(1);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void abort(signal));
// Last resort (an uncaught error, process.exit): SIGKILL whatever is left; a no-op after cleanup.
process.on('exit', () => killGroups('SIGKILL'));
const overall = setTimeout(() => void abort(`timed out after ${RUN_TIMEOUT_MS / 1000}s`), RUN_TIMEOUT_MS);
overall.unref();

/** Starts a command in a process group of its own; its output goes to `logFile`. */
function startGroup(name, command, args, env, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  groups.set(child.pid, name);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (err) => log(`${name}: ${err.message}`));
  return child;
}

// ------------------------------------------------------------------------------------------------
// The doc: its shell blocks, run as written.

/**
 * The README links to the doc rather than holding a copy of it: what this runs is what a reader
 * opens from the README, and there is one text to keep right. Fails when the link is gone, or when
 * a copy of the doc's section (its heading, or any of its shell blocks) is pasted back.
 */
function checkReadme(docText) {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /\]\(docs\/try-it-with-prometheus\.md(#[^)]*)?\)/, 'README.md should link to docs/try-it-with-prometheus.md');
  assert.ok(
    !/^#+ Try it with Prometheus\s*$/m.test(readme),
    'README.md should link to docs/try-it-with-prometheus.md, not hold a "Try it with Prometheus" section',
  );
  for (const m of docText.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    assert.ok(!readme.includes(m[1].trim()), `README.md holds a copy of a shell block of docs/try-it-with-prometheus.md:\n${m[1]}`);
  }
}

function docBlocks() {
  const text = fs.readFileSync(DOC, 'utf8');
  checkReadme(text);
  const blocks = [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
  const sh = blocks.filter((b) => b.lang === 'sh').map((b) => b.body);
  const yaml = blocks.filter((b) => b.lang === 'yaml').map((b) => b.body);
  const want = ['variables', 'venv', 'config', 'start', 'traffic', 'queries', 'stop'];
  assert.equal(sh.length, want.length, `${DOC} should have ${want.length} sh blocks (${want.join(', ')}), it has ${sh.length}`);
  const doc = Object.fromEntries(want.map((k, i) => [k, sh[i]]));
  assert.match(doc.variables, /^: "\$\{/m, 'the first sh block sets the variables');
  assert.match(doc.venv, /python3 -m venv/);
  assert.match(doc.start, /prometheus --config\.file/);
  assert.match(doc.traffic, /traffic\.py/);
  assert.match(doc.stop, /^kill /m);
  assert.equal(yaml.length, 1, 'one yaml block: the scrape config excerpt');
  doc.configExcerpt = yaml[0];
  doc.queries = doc.queries
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /--data-urlencode 'query=(.*)'$/.exec(l);
      assert.ok(m && l.startsWith('curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query"'), `not a query line: ${l}`);
      return m[1];
    });
  return doc;
}

/** The variables the doc's first block defines (`: "${NAME:=default}"`). */
function docVariables(variablesBlock) {
  return [...variablesBlock.matchAll(/"\$\{([A-Z_][A-Z0-9_]*):=/g)].map((m) => m[1]);
}

/** Runs a doc block with bash (after the variables block); resolves with its output. */
async function runBlock(doc, name, body, env, { timeoutMs = 60_000 } = {}) {
  const logFile = path.join(env.TRY_DIR, `block-${name}.log`);
  fs.mkdirSync(env.TRY_DIR, { recursive: true });
  const child = spawn('bash', ['-c', `set -euo pipefail\n${doc.variables}\n${body}`], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.set(child.pid, `block ${name}`);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const timer = setTimeout(() => {
    log(`block ${name} still running after ${timeoutMs / 1000}s: killing it`);
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, timeoutMs);
  const [code, signal] = await new Promise((resolve) => child.once('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  if (groupMembers(child.pid).length === 0) groups.delete(child.pid); // nothing left in the background
  fs.writeFileSync(logFile, `${stdout}${stderr}`);
  if (code !== 0) throw new Error(`doc block "${name}" failed (${signal ?? `exit ${code}`}):\n${body}\n--- output ---\n${stdout}${stderr}`);
  return stdout;
}

// ------------------------------------------------------------------------------------------------
// Ports, HTTP, Prometheus.

const taken = new Set();
async function freePort({ udp = false } = {}) {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (taken.has(port)) continue;
    if (udp) {
      const ok = await new Promise((resolve) => {
        const u = dgram.createSocket('udp4');
        u.once('error', () => resolve(false));
        u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
      });
      if (!ok) continue;
    }
    taken.add(port);
    return port;
  }
}

async function get(url, headers = {}) {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

let PROM;
async function prom(apiPath, params = {}) {
  const r = await fetch(`${PROM}${apiPath}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(5000) });
  const j = await r.json();
  if (j.status !== 'success') throw new Error(`${apiPath} ${JSON.stringify(params)}: ${j.errorType}: ${j.error}`);
  return j.data;
}

/** An instant query's vector: [{ metric, value: number }]. */
async function query(expr, time) {
  const data = await prom('/api/v1/query', time === undefined ? { query: expr } : { query: expr, time: String(time) });
  if (data.resultType !== 'vector') throw new Error(`${expr}: a ${data.resultType}, not a vector`);
  return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]), time: s.value[0] }));
}

/** The value of a query that must give one sample. */
async function scalar(expr, time) {
  const r = await query(expr, time);
  assert.equal(r.length, 1, `${expr}: expected one sample, got ${JSON.stringify(r)}`);
  return r[0].value;
}

/** Retries `fn` until it stops throwing, or throws its last error after `ms`. */
const eventually = (fn, ms = EVENTUALLY_MS) => retry(fn, ms);

/** Waits until `expr` gives `want` and still gives it a few scrape intervals later. */
async function settlesAt(expr, want) {
  await eventually(async () => assert.equal(await scalar(expr), want, expr));
  await sleep(3 * SCRAPE_INTERVAL_S * 1000);
  const final = await query(expr);
  assert.equal(final.length, 1, expr);
  assert.equal(final[0].value, want, `${expr} moved past ${want}`);
  return final[0].time;
}

const labelNames = (metric) =>
  Object.keys(metric)
    .filter((k) => !TARGET_LABELS.has(k))
    .sort();

// ------------------------------------------------------------------------------------------------
// The stand-in Kubernetes API server (TokenReview, SubjectAccessReview), for the Kubernetes auth
// sidecar only.

const PROMETHEUS_SA = 'system:serviceaccount:monitoring:prometheus';
async function startKubernetesStandIn(dir, prometheusToken) {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=kube-apiserver',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  const reviews = { tokenreviews: 0, subjectaccessreviews: 0 };
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const review = JSON.parse(body || '{}');
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
        reviews.tokenreviews++;
        const ok = review.spec?.token === prometheusToken;
        const status = ok
          ? { authenticated: true, user: { username: PROMETHEUS_SA, uid: '1', groups: ['system:serviceaccounts', 'system:authenticated'] } }
          : { authenticated: false, error: 'invalid bearer token' };
        res.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: review.spec, status }));
      } else if (req.method === 'POST' && req.url === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
        reviews.subjectaccessreviews++;
        const s = review.spec ?? {};
        const allowed = s.user === PROMETHEUS_SA && s.nonResourceAttributes?.path === '/debug/metrics' && s.nonResourceAttributes?.verb === 'get';
        res.end(JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: s, status: { allowed } }));
      } else if (req.method === 'POST' && req.url === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
        // The sidecar's start check: may its own identity create TokenReviews and SubjectAccessReviews? Yes.
        const s = review.spec ?? {};
        const allowed = s.resourceAttributes?.verb === 'create' && ['tokenreviews', 'subjectaccessreviews'].includes(s.resourceAttributes?.resource);
        res.end(JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: s, status: { allowed } }));
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(
    kubeconfig,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'stand-in',
          cluster: { server: `https://127.0.0.1:${server.address().port}`, 'certificate-authority-data': fs.readFileSync(cert).toString('base64') },
        },
      ],
      users: [{ name: 'sidecar', user: { token: `sidecar-sa-${crypto.randomBytes(8).toString('hex')}` } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'sidecar' } }],
      'current-context': 'stand-in',
    }),
  );
  return { server, kubeconfig, reviews };
}

// ------------------------------------------------------------------------------------------------

const state = {};

function printLogs() {
  const dir = state.env?.TRY_DIR;
  if (!dir || !fs.existsSync(dir)) return;
  for (const f of fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.log'))
    .sort()) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8').trimEnd().split('\n').slice(-25).join('\n');
    process.stderr.write(`\n----- ${f} (last lines) -----\n${text}\n`);
  }
}

/** A test() whose failure is remembered (for the logs printed at the end). */
function check(name, fn) {
  test(name, { timeout: 60_000 }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

function requireTools() {
  const missing = ['bash', 'python3', 'openssl', 'prometheus', 'promtool', 'sha256sum'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length > 0) throw new Error(`missing on PATH: ${missing.join(', ')} (prometheus and promtool: apt-get install -y prometheus)`);
  if (!fs.existsSync(path.join(ROOT, 'dist', 'main.js'))) throw new Error('dist/main.js is missing: npm run build first (npm run test:e2e does)');
}

before(async () => {
  try {
    requireTools();
    const doc = docBlocks();
    state.doc = doc;

    // The doc's variables: each one gets a value here (free ports, our own directory).
    const tryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-e2e-'));
    const vars = {
      TRY_DIR: tryDir,
      VENV,
      SCRAPE_INTERVAL: `${SCRAPE_INTERVAL_S}s`,
      SCRAPE_TIMEOUT: `${SCRAPE_INTERVAL_S}s`, // may not exceed the interval
      PROM_PORT: String(await freePort()),
      APP_PORT: String(await freePort()),
      WEB_PORT: String(await freePort()),
      WEB_STATSD_PORT: String(await freePort({ udp: true })),
      WORKER_METRICS_PORT: String(await freePort()),
      WORKER_PORT: String(await freePort()),
      WORKER_STATSD_PORT: String(await freePort({ udp: true })),
    };
    assert.deepEqual(docVariables(doc.variables).sort(), Object.keys(vars).sort(), "the doc's variables are the ones this runner sets");
    // A clean environment: nothing of the caller's reaches the sidecars' configuration.
    const passthrough = Object.fromEntries(
      Object.entries(process.env).filter(([k]) =>
        /^(PATH|HOME|USER|LANG|LC_[A-Z]+|TZ|PIP_[A-Z_]+|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|(https?|no)_proxy|(HTTPS?|NO)_PROXY)$/.test(k),
      ),
    );
    // PIP_RETRIES: where pip's default index is out of reach, fail over to the others at once.
    // PYTHONDONTWRITEBYTECODE: no __pycache__ left in test/e2e.
    const env = { PIP_RETRIES: '0', PIP_DISABLE_PIP_VERSION_CHECK: '1', ...passthrough, PYTHONDONTWRITEBYTECODE: '1', ...vars };
    state.env = env;
    PROM = `http://127.0.0.1:${vars.PROM_PORT}`;
    log(`directory ${tryDir}; ports ${JSON.stringify(Object.fromEntries(Object.entries(vars).filter(([k]) => k.endsWith('PORT'))))}`);

    // The doc's config excerpt is what test/e2e/prometheus.yml renders to with the doc's defaults.
    const defaults = spawnSync('bash', ['-c', `set -eu\n${doc.variables}\nenv`], { cwd: ROOT, env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(defaults.status, 0, defaults.stderr);
    const defaultEnv = Object.fromEntries(
      defaults.stdout
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const renderedWithDefaults = render(fs.readFileSync(path.join(HERE, 'prometheus.yml'), 'utf8'), defaultEnv);
    assert.ok(renderedWithDefaults.includes(doc.configExcerpt), "the doc's yaml block is not what test/e2e/prometheus.yml renders to with the doc's defaults");

    log('doc block: venv');
    await runBlock(doc, 'venv', doc.venv, env, { timeoutMs: 120_000 });
    log('doc block: config');
    await runBlock(doc, 'config', doc.config, env);

    // Not in the doc: the Kubernetes auth sidecar and its scrape job (see the header).
    const kubeToken = `prometheus-sa-${crypto.randomBytes(12).toString('hex')}`;
    fs.writeFileSync(path.join(tryDir, 'kubernetes-token'), kubeToken);
    state.kube = await startKubernetesStandIn(path.join(tryDir, 'kube'), kubeToken);
    env.KUBE_SIDECAR_PORT = String(await freePort());
    fs.appendFileSync(path.join(tryDir, 'prometheus.yml'), render(fs.readFileSync(path.join(HERE, 'prometheus-kubernetes.yml'), 'utf8'), env));
    const checked = spawnSync('promtool', ['check', 'config', path.join(tryDir, 'prometheus.yml')], { encoding: 'utf8' });
    assert.equal(checked.status, 0, `promtool check config: ${checked.stdout}${checked.stderr}`);

    log('doc block: start (in the background)');
    const startLog = path.join(tryDir, 'block-start.log');
    state.start = startGroup('block start', 'bash', ['-c', `set -euo pipefail\n${doc.variables}\n${doc.start}\nwait`], env, startLog);
    state.kubeSidecar = startGroup(
      'kubernetes auth sidecar',
      process.execPath,
      [path.join(ROOT, 'dist', 'main.js')],
      {
        PATH: process.env.PATH,
        LISTEN_HOST: '127.0.0.1',
        LISTEN_PORT: '0',
        PROMETHEUS_PORT: env.KUBE_SIDECAR_PORT,
        STATSD_PORT: '0',
        APP_NAME: 'my-app',
        METRICS_KUBERNETES_AUTH: 'true',
        KUBECONFIG: state.kube.kubeconfig,
      },
      path.join(tryDir, 'kubernetes-sidecar.log'),
    );

    // Up and answering: the app directly (a request through the sidecar would be counted), the
    // sidecars' health endpoints, the worker's own endpoint, Prometheus.
    const ready = [
      [`http://127.0.0.1:${vars.APP_PORT}/`, 200],
      [`http://127.0.0.1:${vars.WEB_PORT}/debug/readyz`, 200],
      [`http://127.0.0.1:${vars.WORKER_PORT}/readyz`, 200],
      [`http://127.0.0.1:${env.KUBE_SIDECAR_PORT}/readyz`, 200],
      [`http://127.0.0.1:${vars.WORKER_METRICS_PORT}/metrics`, 200],
      [`${PROM}/-/ready`, 200],
    ];
    let startExit;
    state.start.exited.then((e) => (startExit = e));
    await eventually(async () => {
      if (startExit) throw new Error(`the start block exited early (${JSON.stringify(startExit)}): see its log`);
      for (const [url, status] of ready) {
        const r = await get(url).catch((err) => ({ status: err.cause?.code ?? err.message }));
        assert.equal(r.status, status, `${url} not ready: ${r.status}`);
      }
    }, 30_000);
    log('everything is up');
  } catch (err) {
    failed = true;
    printLogs();
    throw err;
  }
});

after(async () => {
  const env = state.env;
  if (env) {
    // The doc's own stop line first, then whatever is left of the groups.
    if (state.start) {
      log('doc block: stop');
      await runBlock(state.doc, 'stop', state.doc.stop, env, { timeoutMs: 10_000 }).catch((err) => log(err.message));
      // The start block's bash waits for what it started: it ends when the kill line stopped all.
      const ended = await Promise.race([state.start?.exited, new Promise((resolve) => setTimeout(resolve, 15_000, false).unref())]);
      if (ended === false) {
        failed = true;
        log(`the doc's kill line did not stop everything the doc started: ${leftovers().join(', ')}`);
      }
    }
    const stubborn = await stopAll(15_000);
    if (stubborn.length > 0) log(`still running after the doc's kill line and SIGTERM, killed: ${stubborn.join(', ')}`);
    state.kube?.server.close();
    const left = leftovers();
    if (left.length === 0) groups.clear(); // empty: never signal those (reusable) ids again
    if (failed) printLogs();
    if (left.length > 0) {
      failed = true;
      throw new Error(`processes left behind: ${left.join(', ')}`);
    }
    if (failed) log(`kept for inspection: ${env.TRY_DIR}`);
    else fs.rmSync(env.TRY_DIR, { recursive: true, force: true });
  }
  log(`done, ${failed ? 'FAILED' : 'passed'}`);
});

// ------------------------------------------------------------------------------------------------
// The checks, in order.

check("promtool unit tests: every alert of the chart's PrometheusRule, firing and not firing", () => {
  const dir = path.join(state.env.TRY_DIR, 'rules-test');
  fs.mkdirSync(dir, { recursive: true });
  // rules.yml is what the doc's config block rendered from the chart.
  fs.copyFileSync(path.join(state.env.TRY_DIR, 'rules.yml'), path.join(dir, 'rules.yml'));
  const testFile = path.join(HERE, 'rules', 'alerts.test.yml');
  fs.copyFileSync(testFile, path.join(dir, 'alerts.test.yml'));

  // The SLO groups' burn-rate alerts are proven by test/chart/slo.test.ts on the same chart render
  // (promtool test rules: pages on 2 % errors, never on 0.05 % or no traffic, latency regression);
  // here every other alert of the chart.
  const groups = YAML.parse(fs.readFileSync(path.join(dir, 'rules.yml'), 'utf8')).groups;
  assert.ok(
    groups.some((g) => g.name.startsWith('sloth-slo-alerts-')),
    'the doc renders the SLO rules too',
  );
  const alerts = groups.filter((g) => !g.name.startsWith('sloth-slo-')).flatMap((g) => g.rules.filter((r) => r.alert).map((r) => r.alert));
  assert.ok(alerts.length >= 6, `the chart renders ${alerts.length} alerts`);
  const cases = YAML.parse(fs.readFileSync(testFile, 'utf8')).tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const alert of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert}: no promtool case where it fires`,
    );
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert}: no promtool case where it does not fire`,
    );
  }
  const r = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool test rules:\n${r.stdout}${r.stderr}`);
});

check('both sidecars are up (and the Kubernetes auth one); the scrape with a wrong password is down', async () => {
  await eventually(async () => {
    const up = Object.fromEntries((await query('up')).map((s) => [s.metric.job, s.value]));
    assert.deepEqual(up, { [WEB_JOB]: 1, [WORKER_JOB]: 1, [KUBE_JOB]: 1, [WRONG_JOB]: 0 });
  });
  const { activeTargets } = await prom('/api/v1/targets', { state: 'active' });
  const wrong = activeTargets.find((t) => t.labels.job === WRONG_JOB);
  // The main port hides /debug/ from a client that fails the gate: 404, as if nothing were there.
  assert.match(wrong.lastError, /404/, `wrong-password target: ${wrong.lastError}`);
});

check("the doc's traffic: the requests sent are exactly the requests counted, whichever worker answered", async () => {
  log('doc block: traffic');
  const sent = JSON.parse((await runBlock(state.doc, 'traffic', state.doc.traffic, state.env)).trim().split('\n').pop());
  state.sent = [sent];
  assert.equal(sent.requests, 200);
  assert.ok(sent.worker_pids.length >= 2, `only ${sent.worker_pids.length} gunicorn worker(s) answered`);
  await settlesAt(`sum(flask_http_request_total{job="${WEB_JOB}"})`, sent.requests);
});

check('request rate and histogram_quantile by route template', async () => {
  const routes = ['/', '/boom', '/graphql', '/repos/:owner/:repo', '/users/:id', '/webhook'];
  await eventually(async () => {
    const rate = await query(`sum by (path) (rate(flask_http_request_duration_seconds_count{job="${WEB_JOB}"}[1m]))`);
    assert.deepEqual(rate.map((s) => s.metric.path).sort(), routes);
    for (const s of rate) assert.ok(s.value > 0, `rate of ${s.metric.path} is ${s.value}`);
    for (const q of [0.5, 0.9, 0.99]) {
      const quantile = await query(`histogram_quantile(${q}, sum by (path, le) (rate(flask_http_request_duration_seconds_bucket{job="${WEB_JOB}"}[1m])))`);
      assert.deepEqual(quantile.map((s) => s.metric.path).sort(), routes, `p${q * 100}`);
      for (const s of quantile) assert.ok(Number.isFinite(s.value) && s.value > 0 && s.value < 10, `p${q * 100} of ${s.metric.path} is ${s.value}`);
    }
  });
  // No raw path ever became a label value.
  const paths = await prom('/api/v1/label/path/values');
  assert.deepEqual(paths.sort(), routes);
});

check("each maintained app metric, from the app's gunicorn workers and from the worker, with its labels", async () => {
  const families = {
    flask_http_request_duration_seconds_bucket: ['le', 'method', 'path', 'status'],
    flask_http_request_total: ['method', 'status'],
    flask_http_request_exceptions_total: ['method', 'status'],
    github_api_call_latency_bucket: ['endpoint', 'le', 'status'],
    github_webhook_latency_bucket: ['event', 'le'],
    graphql_requests_total: ['operation'],
    sqlalchemy_query_latency_seconds_bucket: ['le', 'statement'],
  };
  await eventually(async () => {
    for (const [series, labels] of Object.entries(families)) {
      const r = await query(`${series}{namespace="${NAMESPACE}"}`);
      assert.ok(r.length > 0, `no ${series}`);
      for (const s of r) assert.deepEqual(labelNames(s.metric), labels, `${series}: ${JSON.stringify(s.metric)}`);
    }
    const values = async (expr, label) => [...new Set((await query(expr)).map((s) => s.metric[label]))].sort();
    assert.deepEqual(await values(`github_api_call_latency_count{job="${WEB_JOB}"}`, 'endpoint'), ['/repos/{owner}/{repo}']);
    assert.deepEqual(await values(`github_api_call_latency_count{job="${WEB_JOB}"}`, 'status'), ['200', '404']);
    assert.deepEqual(await values(`github_api_call_latency_count{job="${WORKER_JOB}"}`, 'endpoint'), ['/repos/{owner}/{repo}/pulls']);
    assert.deepEqual(await values(`github_webhook_latency_count{job="${WEB_JOB}"}`, 'event'), ['issues', 'push']);
    assert.deepEqual(await values(`github_webhook_latency_count{job="${WORKER_JOB}"}`, 'event'), ['pull_request', 'push']);
    assert.deepEqual(await values(`graphql_requests_total{job="${WEB_JOB}"}`, 'operation'), ['repository', 'viewer']);
    assert.deepEqual(await values(`graphql_requests_total{job="${WORKER_JOB}"}`, 'operation'), ['syncPullRequests']);
    assert.deepEqual(await values(`sqlalchemy_query_latency_seconds_count{job="${WEB_JOB}"}`, 'statement'), ['SELECT']);
    assert.deepEqual(await values(`sqlalchemy_query_latency_seconds_count{job="${WORKER_JOB}"}`, 'statement'), ['UPDATE']);
  });
  // Types, as Prometheus recorded them from the exposition (OpenMetrics names counters without _total).
  const metadata = await prom('/api/v1/metadata');
  const type = (name) => (metadata[name] ?? metadata[name.replace(/_total$/, '')])?.[0]?.type;
  for (const [name, want] of [
    ['flask_http_request_duration_seconds', 'histogram'],
    ['flask_http_request_total', 'counter'],
    ['flask_http_request_exceptions_total', 'counter'],
    ['github_api_call_latency', 'histogram'],
    ['github_webhook_latency', 'histogram'],
    ['graphql_requests_total', 'counter'],
    ['sqlalchemy_query_latency_seconds', 'histogram'],
  ]) {
    assert.equal(type(name), want, `type of ${name}`);
  }
  // Seconds, not milliseconds: every observation of the app is far below 1 s.
  assert.ok((await scalar(`max(github_api_call_latency_sum{job="${WEB_JOB}"} / github_api_call_latency_count{job="${WEB_JOB}"})`)) < 0.5);
  assert.ok((await scalar(`max(sqlalchemy_query_latency_seconds_sum / sqlalchemy_query_latency_seconds_count)`)) < 0.5);
});

check('the scrape with a wrong password is counted by the sidecar, and never reaches the app', async () => {
  const failures = `metrics_sidecar_auth_failures_total{job="${WEB_JOB}", listener="main", reason="bad_credentials"}`;
  const first = await eventually(async () => {
    const v = await scalar(failures);
    assert.ok(v >= 2, `${failures} = ${v}`);
    return v;
  });
  await eventually(async () => assert.ok((await scalar(failures)) > first, 'the failure count does not grow with the scrapes'));
  // Only that reason, only on that listener.
  const all = await query(`metrics_sidecar_auth_failures_total{namespace="${NAMESPACE}"}`);
  assert.deepEqual(
    all.map((s) => `${s.metric.job} ${s.metric.listener} ${s.metric.reason}`),
    [`${WEB_JOB} main bad_credentials`],
  );
  // The exact request count (the test above) already shows these scrapes were not forwarded.
});

check("the worker sidecar merges the worker's own endpoint, and its series cap catches the task-id tag", async () => {
  await eventually(async () => {
    assert.equal(await scalar(`metrics_sidecar_merge_up{job="${WORKER_JOB}"}`), 1);
    const jobs = await query(`worker_jobs_processed_total{job="${WORKER_JOB}"}`);
    assert.deepEqual(jobs.map((s) => s.metric.queue).sort(), ['default', 'mail']);
    // The cap's 20 label sets, then one overflow series for the rest (OpenTelemetry's convention), so the total stays right.
    assert.equal(await scalar(`count(worker_task_runs_total{job="${WORKER_JOB}", otel_metric_overflow=""})`), 20, 'METRICS_MAX_SERIES_PER_FAMILY=20');
    assert.equal(await scalar(`count(worker_task_runs_total{job="${WORKER_JOB}", otel_metric_overflow="true"})`), 1, 'one overflow series');
    assert.ok((await scalar(`metrics_sidecar_series_dropped_total{job="${WORKER_JOB}", family="worker_task_runs_total"}`)) > 0);
  });
});

check('N more requests through the sidecar: the counter grows by exactly N, by status too, across gunicorn workers', async () => {
  const expr = `sum(flask_http_request_total{job="${WEB_JOB}"})`;
  const before = state.sent[0].requests;
  const t1 = await settlesAt(expr, before);
  const byStatusBefore = Object.fromEntries(
    (await query(`sum by (status) (flask_http_request_total{job="${WEB_JOB}"})`, t1)).map((s) => [s.metric.status, s.value]),
  );

  const N = 300;
  log(`traffic: ${N} more requests`);
  const more = state.doc.traffic.replace(/ 200 "\$SCRAPE_INTERVAL"$/m, ` ${N} "$SCRAPE_INTERVAL"`);
  assert.notEqual(more, state.doc.traffic, 'the doc\'s traffic line should end with: 200 "$SCRAPE_INTERVAL"');
  const out = await runBlock(state.doc, 'traffic-more', more, state.env);
  const sent = JSON.parse(out.trim().split('\n').pop());
  state.sent.push(sent);
  assert.equal(sent.requests, N);
  assert.ok(sent.worker_pids.length >= 2, `only ${sent.worker_pids.length} gunicorn worker(s) answered`);
  log(`gunicorn workers that answered: ${sent.worker_pids.length}`);

  const t2 = await settlesAt(expr, before + N);
  assert.equal(await scalar(`${expr} - sum(flask_http_request_total{job="${WEB_JOB}"} @ ${t1})`, t2), N, 'increase over the second traffic run');
  const byStatusAfter = Object.fromEntries(
    (await query(`sum by (status) (flask_http_request_total{job="${WEB_JOB}"})`, t2)).map((s) => [s.metric.status, s.value]),
  );
  const increase = Object.fromEntries(Object.entries(byStatusAfter).map(([k, v]) => [k, v - (byStatusBefore[k] ?? 0)]));
  assert.deepEqual(increase, sent.by_status, 'increase by status');
  assert.equal(
    await scalar(`sum(flask_http_request_exceptions_total{job="${WEB_JOB}"})`, t2),
    state.sent.reduce((n, s) => n + (s.by_status['500'] ?? 0), 0),
    'exceptions = the 500s',
  );
});

check('every StatsD line from every gunicorn worker arrived: the app metrics count exactly what was sent', async () => {
  const total = (route) => state.sent.reduce((n, s) => n + (s.by_route[route] ?? 0), 0);
  const want = {
    [`sum(graphql_requests_total{job="${WEB_JOB}"})`]: total('/graphql'),
    [`sum(github_api_call_latency_count{job="${WEB_JOB}"})`]: total('/repos/:owner/:repo'),
    [`sum(github_webhook_latency_count{job="${WEB_JOB}"})`]: total('/webhook'),
    [`sum(sqlalchemy_query_latency_seconds_count{job="${WEB_JOB}"})`]: total('/users/:id') + total('/graphql'),
  };
  await eventually(async () => {
    for (const [expr, n] of Object.entries(want)) assert.equal(await scalar(expr), n, expr);
  });
});

check("the doc's queries return data", async () => {
  await eventually(async () => {
    for (const q of state.doc.queries) assert.ok((await query(q)).length > 0, `no data: ${q}`);
  });
});

check('every query of the Grafana dashboard returns data (namespace my-namespace, job All)', async () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  // The variables resolve: label_values(metrics_sidecar_info, namespace) and, for it, the jobs.
  const namespaces = await prom('/api/v1/label/namespace/values', { 'match[]': 'metrics_sidecar_info' });
  assert.deepEqual(namespaces, [NAMESPACE]);
  const jobs = await prom('/api/v1/label/job/values', { 'match[]': `metrics_sidecar_info{namespace="${NAMESPACE}"}` });
  assert.deepEqual(jobs.sort(), [KUBE_JOB, WEB_JOB, WORKER_JOB]);

  const jobVar = dashboard.templating.list.find((v) => v.name === 'job');
  const sloVar = dashboard.templating.list.find((v) => v.name === 'slo_service');
  const exprs = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      walk(p.panels);
      for (const t of p.targets ?? []) if (t.expr) exprs.push({ title: `${p.title} ${t.refId}`, expr: t.expr });
    }
  };
  walk(dashboard.panels);
  assert.ok(exprs.length >= 20, `only ${exprs.length} queries in the dashboard`);
  const expand = (e) =>
    e
      .replaceAll('$namespace', NAMESPACE)
      .replaceAll('$job', jobVar.allValue) // "All"
      .replaceAll('$slo_service', sloVar.allValue) // "All"
      .replace(/\$__rate_interval\b/g, '1m') // Grafana's value for a 15 s data source interval
      .replace(/\$__interval\b/g, '15s')
      .replace(/\$__range\b/g, '5m');
  let missing = [];
  await eventually(async () => {
    missing = [];
    for (const { title, expr } of exprs) {
      const e = expand(expr);
      assert.ok(!e.includes('$'), `unexpanded variable in ${e}`);
      const r = await query(e);
      if (!r.some((s) => Number.isFinite(s.value))) missing.push(`${title}: ${e} → ${JSON.stringify(r)}`);
    }
    assert.deepEqual(missing, [], `dashboard queries without data:\n${missing.join('\n')}`);
  });
  assert.ok(state.kube.reviews.tokenreviews > 0 && state.kube.reviews.subjectaccessreviews > 0, 'the stand-in API server was asked');
});

check("the chart's alert rules run in Prometheus: all healthy, SeriesDropped firing, HighErrorRatio pending, the availability SLO paging", async () => {
  const { groups: ruleGroups } = await prom('/api/v1/rules');
  const rules = ruleGroups.flatMap((g) => g.rules);
  const rendered = YAML.parse(fs.readFileSync(path.join(state.env.TRY_DIR, 'rules.yml'), 'utf8')).groups.flatMap((g) =>
    g.rules.map((r) => r.alert ?? r.record),
  );
  assert.deepEqual(rules.map((r) => r.name).sort(), rendered.sort());
  await eventually(async () => {
    const { groups: now } = await prom('/api/v1/rules');
    for (const r of now.flatMap((g) => g.rules)) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
    const { alerts } = await prom('/api/v1/alerts');
    const states = alerts
      .map((a) => `${a.labels.alertname} ${a.labels.sloth_severity ?? a.labels.job}${a.labels.family ? ` ${a.labels.family}` : ''} ${a.state}`)
      .sort();
    assert.deepEqual(states, [
      // The doc's 10 % of 5xx burns a 99.9 % availability budget 100 times too fast: both windows of
      // the page (14.4x) and of the ticket (3x) alert; the latency SLO (all answers well under
      // 0.3 s) stays quiet.
      'MetricsSidecarAvailabilityBudgetBurn page firing',
      'MetricsSidecarAvailabilityBudgetBurn ticket firing',
      `MetricsSidecarHighErrorRatio ${WEB_JOB} pending`, // 10 % of 5xx, for 10 m
      `MetricsSidecarSeriesDropped ${WORKER_JOB} worker_task_runs_total firing`, // for: 0m
    ]);
  });
});
