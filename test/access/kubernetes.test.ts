/**
 * Kubernetes ServiceAccount auth against a local HTTPS server that speaks the real
 * authentication.k8s.io/v1 TokenReview and authorization.k8s.io/v1 SubjectAccessReview JSON (no
 * API server can run here). The sidecar is the built dist/main.js in its own process, loading
 * @kubernetes/client-node and a kubeconfig with the server's CA and its own token, as in a pod.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { request } from '../helpers/net';
import { parseExposition, value } from '../helpers/exposition';

const rand = () => crypto.randomBytes(12).toString('hex');
const SA_TOKEN = `sidecar-sa-${rand()}`;
const GOOD = `good-${rand()}`;
const GOOD_TOO = `good-too-${rand()}`;
const GOOD_3 = `good-3-${rand()}`;
const DENIED = `denied-${rand()}`;
const BOGUS = `bogus-${rand()}`;
const SLOW = `slow-${rand()}`;
const ROTATED_1 = `sidecar-sa-before-${rand()}`;
const ROTATED_2 = `sidecar-sa-after-${rand()}`;
const SECRETS = [SA_TOKEN, GOOD, GOOD_TOO, GOOD_3, DENIED, BOGUS, SLOW, ROTATED_1, ROTATED_2];
const PROMETHEUS_SA = 'system:serviceaccount:monitoring:prometheus';

interface Review {
  path: string;
  authorization: string | undefined;
  body: { apiVersion: string; kind: string; spec: Record<string, unknown> };
}

describe('Kubernetes ServiceAccount auth (TokenReview + SubjectAccessReview)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-k8s-'));
  const reviews: Review[] = [];
  let api: https.Server;
  let child: Child;
  const seen: string[] = [];
  let slowAborted = false;

  beforeAll(async () => {
    const key = path.join(tmp, 'key.pem');
    const cert = path.join(tmp, 'cert.pem');
    execFileSync(
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
      { stdio: 'ignore' },
    );

    api = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Review['body'];
        reviews.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
        if (req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
          const token = body.spec.token as string;
          if (token === SLOW) {
            // Never answers: the sidecar must abort the call (the connection closes under us).
            res.on('close', () => (slowAborted = true));
            return;
          }
          const known = [GOOD, GOOD_TOO, GOOD_3].includes(token) ? PROMETHEUS_SA : token === DENIED ? 'system:serviceaccount:default:nobody' : undefined;
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              apiVersion: 'authentication.k8s.io/v1',
              kind: 'TokenReview',
              spec: body.spec,
              status: known
                ? {
                    authenticated: true,
                    user: { username: known, uid: '42', groups: ['system:serviceaccounts', 'system:authenticated'] },
                    audiences: body.spec.audiences,
                  }
                : { authenticated: false, error: 'invalid bearer token' },
            }),
          );
          return;
        }
        if (req.url === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
          const spec = body.spec as { user: string; nonResourceAttributes?: { path: string; verb: string } };
          const allowed = spec.user === PROMETHEUS_SA && spec.nonResourceAttributes?.path === '/debug/metrics' && spec.nonResourceAttributes.verb === 'get';
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SubjectAccessReview',
              spec: body.spec,
              status: allowed ? { allowed: true } : { allowed: false, reason: 'no RBAC policy matched' },
            }),
          );
          return;
        }
        res.statusCode = 404;
        res.end('{}');
      });
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));

    const kubeconfig = path.join(tmp, 'kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'test',
            cluster: {
              server: `https://127.0.0.1:${(api.address() as AddressInfo).port}`,
              'certificate-authority-data': fs.readFileSync(cert).toString('base64'),
            },
          },
        ],
        users: [{ name: 'sidecar', user: { token: SA_TOKEN } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'sidecar' } }],
        'current-context': 'test',
      }),
    );
    child = await spawnSidecar({
      SERVE_PROMETHEUS_ENDPOINT: 'true',
      METRICS_KUBERNETES_AUTH: 'true',
      KUBECONFIG: kubeconfig,
      METRICS_KUBERNETES_AUDIENCES: 'https://kubernetes.default.svc',
      METRICS_KUBERNETES_ALLOW_TTL_MS: '400',
      METRICS_KUBERNETES_DENY_TTL_MS: '400',
      METRICS_KUBERNETES_STALE_MS: '60000',
      METRICS_KUBERNETES_TIMEOUT_MS: '300',
    });
  });

  afterAll(async () => {
    child?.proc.kill('SIGTERM');
    await child?.exited;
    api.closeAllConnections();
    api.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const scrape = async (port: number, token?: string) => {
    const r = await request(port, '/debug/metrics', { headers: token ? { authorization: `Bearer ${token}` } : {} });
    seen.push(r.text, JSON.stringify(r.headers));
    return r;
  };

  it('should allow a token that TokenReview authenticates and SubjectAccessReview allows', async () => {
    const r = await scrape(child.metricsPort, GOOD);
    expect(r.status).toBe(200);
    expect(r.text).toContain('# TYPE metrics_sidecar_info gauge');

    const [tr, sar] = reviews;
    expect(tr).toMatchObject({
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      authorization: `Bearer ${SA_TOKEN}`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: GOOD, audiences: ['https://kubernetes.default.svc'] } },
    });
    expect(sar).toMatchObject({
      path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: PROMETHEUS_SA,
          uid: '42',
          groups: ['system:serviceaccounts', 'system:authenticated'],
          nonResourceAttributes: { path: '/debug/metrics', verb: 'get' },
        },
      },
    });
  });

  it('should answer from the cache within the allow TTL', async () => {
    const before = reviews.length;
    expect((await scrape(child.metricsPort, GOOD)).status).toBe(200);
    expect(reviews.length).toBe(before);
  });

  it('should refuse a token that SubjectAccessReview denies (403) or TokenReview rejects (401)', async () => {
    expect((await scrape(child.metricsPort, DENIED)).status).toBe(403);
    const bogus = await scrape(child.metricsPort, BOGUS);
    expect(bogus.status).toBe(401);
    expect(bogus.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    expect((await scrape(child.metricsPort)).status).toBe(401);
  });

  it('should hide the path on the main port on failure', async () => {
    expect((await scrape(child.mainPort, GOOD)).status).toBe(200);
    expect((await scrape(child.mainPort, DENIED)).status).toBe(404);
    expect((await scrape(child.mainPort, BOGUS)).status).toBe(404);
  });

  it('should ask the API again once the TTL has expired', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const before = reviews.length;
    expect((await scrape(child.metricsPort, GOOD)).status).toBe(200);
    expect(reviews.length).toBe(before + 2);
  });

  it('should abort an API call at METRICS_KUBERNETES_TIMEOUT_MS and refuse', async () => {
    expect((await scrape(child.metricsPort, SLOW)).status).toBe(401);
    // The request was really aborted (its socket closed), not left hanging behind a refusal.
    const logged = () => child.logs.some((l) => l.msg === 'kubernetes API unavailable for an auth decision' && l.code === 'ETIMEDOUT');
    for (let i = 0; i < 500 && !(slowAborted && logged()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(slowAborted).toBe(true);
    expect(logged()).toBe(true);
  });

  it('should read its own token file per call: a rotated ServiceAccount token is used from the next call on', async () => {
    // As the kubelet does with a projected token: a new file swapped in through a rename.
    const dir = path.join(tmp, 'sa');
    fs.mkdirSync(dir, { recursive: true });
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${ROTATED_1}\n`);
    const kubeconfig = path.join(tmp, 'kubeconfig-token-file');
    const base = JSON.parse(fs.readFileSync(path.join(tmp, 'kubeconfig'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      kubeconfig,
      JSON.stringify({ ...base, users: [{ name: 'sidecar', user: { 'auth-provider': { name: 'tokenFile', config: { tokenFile } } } }] }),
    );
    const rotating = await spawnSidecar({ METRICS_KUBERNETES_AUTH: 'true', KUBECONFIG: kubeconfig });
    try {
      let before = reviews.length;
      expect((await scrape(rotating.metricsPort, GOOD)).status).toBe(200);
      expect(reviews.slice(before).map((r) => r.authorization)).toEqual([`Bearer ${ROTATED_1}`, `Bearer ${ROTATED_1}`]);

      fs.writeFileSync(`${tokenFile}.new`, `${ROTATED_2}\n`);
      fs.renameSync(`${tokenFile}.new`, tokenFile);
      before = reviews.length;
      expect((await scrape(rotating.metricsPort, GOOD_TOO)).status).toBe(200);
      expect(reviews.slice(before).map((r) => r.authorization)).toEqual([`Bearer ${ROTATED_2}`, `Bearer ${ROTATED_2}`]);
    } finally {
      rotating.proc.kill('SIGTERM');
      await rotating.exited;
      seen.push(...rotating.logs.map((l) => JSON.stringify(l)));
    }
  });

  it('should bound the rate of API calls (METRICS_KUBERNETES_MAX_REQUESTS_PER_S)', async () => {
    // 2 calls per second: one decision (TokenReview + SubjectAccessReview), then the budget is spent.
    const limited = await spawnSidecar({
      METRICS_KUBERNETES_AUTH: 'true',
      KUBECONFIG: path.join(tmp, 'kubeconfig'),
      METRICS_KUBERNETES_MAX_REQUESTS_PER_S: '2',
    });
    try {
      const before = reviews.length;
      const statuses = [];
      for (const t of [GOOD, GOOD_TOO, GOOD_3]) statuses.push((await scrape(limited.metricsPort, t)).status);
      expect(statuses).toEqual([200, 401, 401]);
      expect(reviews.length).toBe(before + 2);
      await new Promise((r) => setTimeout(r, 1100));
      expect((await scrape(limited.metricsPort, GOOD_3)).status).toBe(200);
    } finally {
      limited.proc.kill('SIGTERM');
      await limited.exited;
      seen.push(...limited.logs.map((l) => JSON.stringify(l)));
    }
  });

  it('should keep serving a cached decision while the API is down, and refuse an uncached token', async () => {
    api.closeAllConnections();
    await new Promise((r) => api.close(r));
    await new Promise((r) => setTimeout(r, 500)); // the cached decisions are now past their TTL
    expect((await scrape(child.metricsPort, GOOD)).status).toBe(200);
    expect((await scrape(child.metricsPort, DENIED)).status).toBe(403);
    expect((await scrape(child.metricsPort, GOOD_TOO)).status).toBe(401);

    const p = parseExposition((await scrape(child.metricsPort, GOOD)).text);
    expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'stale' })).toBeGreaterThanOrEqual(3);
    expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'miss' })).toBeGreaterThanOrEqual(4);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'metrics', reason: 'k8s_unavailable' })).toBe(2);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'metrics', reason: 'k8s_denied' })).toBe(2);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'main', reason: 'k8s_unauthenticated' })).toBe(1);
    expect(child.logs.some((l) => l.msg === 'kubernetes API unavailable for an auth decision')).toBe(true);
  });

  it('should never put a token in a log line or a response', async () => {
    child.proc.kill('SIGTERM');
    await child.exited;
    const all = [...seen, ...child.logs.map((l) => JSON.stringify(l))].join('\n');
    for (const s of SECRETS) expect(all).not.toContain(s);
  });
});
