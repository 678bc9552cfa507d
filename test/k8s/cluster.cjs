// etcd and kube-apiserver on 127.0.0.1 for `npm run test:k8s`: certificates, the ServiceAccount
// signing key and the admin's static token made here, each process started with its PID kept and
// stopped by it. No kubelet, nothing else of a cluster: the API server alone is what the suite needs.
// CommonJS so that the runner (test/k8s/run.mjs) and the suite (which starts an API server of its
// own to stop and restart) share this one copy.
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');

/** What the API server says a token is for, and what the sidecar asks TokenReview about by default. */
const AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const ADMIN_USER = 'test-admin';

/** A port free on 127.0.0.1 now (the kernel's pick). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Writes into `dir` everything the API server is started with: a CA and the serving certificate it
 * signs (for 127.0.0.1 and localhost), the ServiceAccount signing key pair, and a static token file
 * holding one admin (system:masters). Returns the paths and the admin token.
 */
function makeCredentials(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f) => path.join(dir, f);
  const ssl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=test-k8s-ca']);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('apiserver.key'), '-out', p('apiserver.csr'), '-subj', '/CN=kube-apiserver']);
  fs.writeFileSync(p('apiserver.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl([
    'x509',
    '-req',
    '-in',
    p('apiserver.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('apiserver.crt'),
    '-days',
    '2',
    '-extfile',
    p('apiserver.ext'),
  ]);
  const sa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(p('sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(p('sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  // The audit log records who created reviews (metadata only: a review's body holds a token).
  fs.writeFileSync(
    p('audit-policy.yaml'),
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: ["RequestReceived"]',
      'rules:',
      '  - level: Metadata',
      '    resources:',
      '      - { group: authentication.k8s.io, resources: ["tokenreviews"] }',
      '      - { group: authorization.k8s.io, resources: ["subjectaccessreviews", "selfsubjectaccessreviews"] }',
      '  - level: None',
      '',
    ].join('\n'),
  );
  const adminToken = crypto.randomBytes(24).toString('hex');
  fs.writeFileSync(p('tokens.csv'), `${adminToken},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });
  return { dir, caFile: p('ca.crt'), adminToken };
}

/** Starts a process with its output appended to `logFile`; resolves the `exited` promise with its exit code or signal. */
function startProcess(binary, args, logFile) {
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(binary, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  let exit;
  void exited.then((e) => (exit = e));
  return { proc, pid: proc.pid, exited, exitedWith: () => exit, logFile };
}

/** SIGTERM by PID and wait for it to exit (SIGKILL when it is still there after `graceMs`). */
async function stopProcess(p, graceMs = 10_000) {
  if (!p || p.exitedWith() !== undefined) return;
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }, graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** GET `urlPath` from the API server with the admin token; resolves {status, text} or rejects on a connection error. */
function get(cluster, urlPath) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${cluster.server}${urlPath}`,
      { ca: fs.readFileSync(cluster.caFile), headers: { authorization: `Bearer ${cluster.adminToken}` } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Polls until `check()` is true, at most `attempts` times `everyMs` apart; rejects with `what` when it never was or `alive()` turns false. */
async function until(what, check, { attempts = 600, everyMs = 100, alive = () => true, logFile } = {}) {
  for (let i = 0; i < attempts; i++) {
    if (!alive()) throw new Error(`${what}: the process exited${logFile ? ` (log: ${logFile})` : ''}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`${what}: not after ${attempts} attempts${logFile ? ` (log: ${logFile})` : ''}`);
}

/**
 * etcd on 127.0.0.1 with its data under `dir`; resolves once it answers /health. `onSpawn` is told
 * the process as soon as it exists (so that a caller stopping meanwhile can stop it too).
 */
async function startEtcd(etcdBinary, dir, onSpawn = () => undefined) {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  fs.mkdirSync(path.join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  const p = startProcess(
    etcdBinary,
    [
      '--name=test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      '--listen-metrics-urls=',
      '--log-level=warn',
    ],
    path.join(dir, 'etcd.log'),
  );
  onSpawn(p);
  const health = () =>
    new Promise((resolve, reject) => {
      const http = require('node:http');
      http
        .get(`${client}/health`, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(res.statusCode === 200 && text.includes('true')));
        })
        .on('error', reject);
    });
  await until('etcd /health', health, { alive: () => p.exitedWith() === undefined, logFile: p.logFile });
  return { ...p, url: client };
}

/** Where the API server on `port` writes its audit log (one JSON event a line). */
function auditLog(creds, port) {
  return path.join(creds.dir, `audit-${port}.log`);
}

/** The API server's flags: loopback only, RBAC, static admin token, ServiceAccount tokens with our key. */
function apiServerArgs(creds, etcdUrl, port) {
  const p = (f) => path.join(creds.dir, f);
  return [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    '--insecure-port=0',
    `--etcd-servers=${etcdUrl}`,
    `--tls-cert-file=${p('apiserver.crt')}`,
    `--tls-private-key-file=${p('apiserver.key')}`,
    `--client-ca-file=${p('ca.crt')}`,
    `--token-auth-file=${p('tokens.csv')}`,
    '--authorization-mode=RBAC',
    `--service-account-key-file=${p('sa.pub')}`,
    `--service-account-signing-key-file=${p('sa.key')}`,
    `--service-account-issuer=${AUDIENCE}`,
    `--api-audiences=${AUDIENCE}`,
    // Only a stored value (the range Services' cluster IPs are allocated from): no traffic goes there.
    '--service-cluster-ip-range=10.96.0.0/16',
    // No endpoints for the `kubernetes` Service: 127.0.0.1 is not an address a pod could reach.
    '--endpoint-reconciler-type=none',
    '--allow-privileged=true',
    '--profiling=false',
    `--cert-dir=${p('apiserver-certs')}`,
    `--audit-policy-file=${p('audit-policy.yaml')}`,
    `--audit-log-path=${auditLog(creds, port)}`,
    '--v=1',
  ];
}

/**
 * kube-apiserver on 127.0.0.1 (a free port unless `port` is given); resolves once /readyz answers
 * 200 to the admin. `port` lets a test restart one on the port it had.
 */
async function startApiServer({ binary, creds, etcdUrl, port, logFile, onSpawn = () => undefined }) {
  const securePort = port ?? (await freePort());
  const p = startProcess(binary, apiServerArgs(creds, etcdUrl, securePort), logFile ?? path.join(creds.dir, `apiserver-${securePort}.log`));
  onSpawn(p);
  const cluster = { server: `https://127.0.0.1:${securePort}`, caFile: creds.caFile, adminToken: creds.adminToken };
  await until('kube-apiserver /readyz', async () => (await get(cluster, '/readyz')).status === 200, {
    alive: () => p.exitedWith() === undefined,
    logFile: p.logFile,
  });
  return { ...p, ...cluster, port: securePort };
}

module.exports = { AUDIENCE, ADMIN_USER, auditLog, freePort, makeCredentials, startEtcd, startApiServer, stopProcess, until, get };
