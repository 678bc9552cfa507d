// npm run test:k8s: the suites under test/k8s/ against a real kube-apiserver.
//   1. etcd (Debian's) and kube-apiserver v1.20.2 (built from Debian's src:kubernetes once, cached
//      under .tools/k8s/; test/k8s/tools.cjs), helm and kubectl from the npm layer package;
//   2. etcd and the API server started on 127.0.0.1, /readyz waited for;
//   3. Jest with test/k8s/jest.config.js (the default `jest` run does not see these suites);
//   4. both processes stopped by PID, whatever happened (a failure, SIGINT/SIGTERM).
// Arguments are passed to Jest (e.g. `npm run test:k8s -- -t 'expired'`). K8S_KEEP=1 keeps the
// state directory (logs of etcd and the API server) for a look afterwards.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { ROOT, ETCD, ensureApiServer } = require('./tools.cjs');
const { makeCredentials, startEtcd, startApiServer, stopProcess } = require('./cluster.cjs');
const { ensureHelm, ensureKubectl } = require('../helpers/helm-binary.cjs');

const t0 = Date.now();
const secs = (from) => `${((Date.now() - from) / 1000).toFixed(1)} s`;
const say = (msg) => process.stderr.write(`[test:k8s] ${msg}\n`);

const running = [];
let dir;
let jest;
let cleaning;
/** Set by a signal: nothing more is started, and what is started meanwhile is stopped at once. */
let stopping = false;

/** Keeps a started process for the cleanup, from the moment it exists. */
function started(p) {
  running.push(p);
  if (stopping) void stopProcess(p);
}

/** Stops the API server(s), then etcd, by PID; removes the state directory. Once. */
function cleanup() {
  stopping = true;
  cleaning ??= (async () => {
    while (running.length > 0) await stopProcess(running.pop());
    if (dir && process.env.K8S_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true });
    else if (dir) say(`state kept in ${dir}`);
  })();
  return cleaning;
}

/** Between the steps of main(): a signal ends the run there. */
function goOn() {
  if (stopping) throw new Error('stopped by a signal');
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    stopping = true;
    if (jest && jest.exitCode === null) jest.kill(signal);
    void cleanup().then(() => process.exit(128 + os.constants.signals[signal]));
  });
}

async function main() {
  const apiserver = ensureApiServer();
  ensureHelm();
  ensureKubectl();
  say(`tools ready in ${secs(t0)}`);

  goOn();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-k8s-'));
  const t1 = Date.now();
  const creds = makeCredentials(path.join(dir, 'pki'));
  goOn();
  const etcd = await startEtcd(ETCD, dir, started);
  goOn();
  const api = await startApiServer({ binary: apiserver, creds, etcdUrl: etcd.url, logFile: path.join(dir, 'apiserver.log'), onSpawn: started });
  goOn();
  say(`etcd (pid ${etcd.pid}) and kube-apiserver (pid ${api.pid}, ${api.server}) ready in ${secs(t1)}`);

  // What the suites read (test/k8s/env.ts): where the API server is and how to be its admin.
  const state = path.join(dir, 'cluster.json');
  fs.writeFileSync(
    state,
    JSON.stringify({ server: api.server, caFile: creds.caFile, adminToken: creds.adminToken, pki: creds.dir, etcdUrl: etcd.url, apiserver, dir }),
    { mode: 0o600 },
  );

  const jestBin = path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js');
  jest = spawn(process.execPath, [jestBin, '--config', path.join(ROOT, 'test', 'k8s', 'jest.config.js'), ...process.argv.slice(2)], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, K8S_CLUSTER: state },
  });
  const code = await new Promise((resolve) => jest.once('exit', (c, s) => resolve(c ?? 128 + (os.constants.signals[s] ?? 0))));
  if (api.exitedWith() !== undefined) say(`kube-apiserver exited during the run (${api.exitedWith()}): see ${api.logFile}`);
  return code;
}

let code;
try {
  code = await main();
} catch (err) {
  say(`failed: ${err && err.stack ? err.stack : err}`);
  code = 1;
} finally {
  await cleanup();
}
say(`done in ${secs(t0)} (exit ${code})`);
process.exit(code);
