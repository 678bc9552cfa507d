/**
 * Kubernetes auth against a local HTTPS server that speaks the TokenReview and
 * SubjectAccessReview JSON, kept only for the faults a real API server cannot be made to produce:
 * a review that never answers (the call must be aborted at METRICS_KUBERNETES_TIMEOUT_MS, its
 * connection closed), and a call still in flight when the sidecar stops. Everything a real API
 * server can show (allow, deny, 401s, audiences, expiry, RBAC of the sidecar's own identity, the
 * CA, TTLs, the rate limit, the stale window while it is down, token rotation) is tested against
 * kube-apiserver itself in test/k8s/ (`npm run test:k8s`).
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { KubernetesAuthConfig } from '../../src/config';
import { spawnSidecar, waitForLog, type Child } from '../helpers/sidecar';
import { request } from '../helpers/net';
import { startAuthorizer, type Authorizer } from '../helpers/k8s-authorizer';

const rand = () => crypto.randomBytes(12).toString('hex');
const SA_TOKEN = `sidecar-sa-${rand()}`;
const GOOD = `good-${rand()}`;
const GOOD_TOO = `good-too-${rand()}`;
const GOOD_3 = `good-3-${rand()}`;
const DENIED = `denied-${rand()}`;
const BOGUS = `bogus-${rand()}`;
const SLOW = `slow-${rand()}`;
const SECRETS = [SA_TOKEN, GOOD, GOOD_TOO, GOOD_3, DENIED, BOGUS, SLOW];
const PROMETHEUS_SA = 'system:serviceaccount:monitoring:prometheus';

interface Review {
  path: string;
  authorization: string | undefined;
  body: { apiVersion: string; kind: string; spec: Record<string, unknown> };
}

describe('fake API server: faults the real one cannot produce (Kubernetes auth)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-k8s-'));
  const reviews: Review[] = [];
  let api: https.Server;
  let kubeconfig: string;
  let child: Child;
  const seen: string[] = [];
  /** The next SLOW review: when it reaches the API server, and when its connection closes (the caller gave up on it). */
  let slow = { arrived: () => undefined as void, closed: () => undefined as void };
  const nextSlow = () => {
    const arrived = new Promise<void>((r) => (slow = { ...slow, arrived: r }));
    const closed = new Promise<void>((r) => (slow = { ...slow, closed: r }));
    return { arrived, closed };
  };

  /** The API server's two reviews, as kube-apiserver answers them. */
  const answer: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Review['body'];
      reviews.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
      if (req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
        const token = body.spec.token as string;
        if (token === SLOW) {
          // Never answers: the caller must abort the call (the connection closes under us).
          const { closed } = slow;
          res.on('close', () => closed());
          slow.arrived();
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
  };

  /** An API server answering the reviews, on an ephemeral port. */
  const startApi = async (): Promise<https.Server> => {
    const server = https.createServer({ key: fs.readFileSync(path.join(tmp, 'key.pem')), cert: fs.readFileSync(path.join(tmp, 'cert.pem')) }, answer);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return server;
  };

  /** A kubeconfig for the API server on `port`, with the server's CA and the sidecar's own token. */
  const kubeconfigFor = (port: number): string => {
    const file = path.join(tmp, `kubeconfig-${port}`);
    fs.writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'test',
            cluster: {
              server: `https://127.0.0.1:${port}`,
              'certificate-authority-data': fs.readFileSync(path.join(tmp, 'cert.pem')).toString('base64'),
            },
          },
        ],
        users: [{ name: 'sidecar', user: { token: SA_TOKEN } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'sidecar' } }],
        'current-context': 'test',
      }),
    );
    return file;
  };

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

    api = await startApi();
    kubeconfig = kubeconfigFor((api.address() as AddressInfo).port);
    child = await spawnSidecar({
      SERVE_PROMETHEUS_ENDPOINT: 'true',
      METRICS_KUBERNETES_AUTH: 'true',
      KUBECONFIG: kubeconfig,
      METRICS_KUBERNETES_AUDIENCES: 'https://kubernetes.default.svc',
      // Longer than any run: a decision cached here stays fresh for the whole suite.
      METRICS_KUBERNETES_ALLOW_TTL_MS: '3600000',
      METRICS_KUBERNETES_DENY_TTL_MS: '3600000',
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

  it('should abort an API call at METRICS_KUBERNETES_TIMEOUT_MS and refuse', async () => {
    const { closed } = nextSlow();
    expect((await scrape(child.metricsPort, SLOW)).status).toBe(401);
    // The request was really aborted (its connection closed), not left hanging behind a refusal.
    await closed;
    expect(await waitForLog(child, (l) => l.msg === 'kubernetes API unavailable for an auth decision')).toMatchObject({ code: 'ETIMEDOUT' });
  });

  describe('the authorizer alone, in a process of its own', () => {
    const cfg = (over: Partial<KubernetesAuthConfig> = {}): KubernetesAuthConfig => ({
      kubeconfig,
      audiences: [],
      allowTtlMs: 400,
      denyTtlMs: 400,
      staleMs: 60_000,
      timeoutMs: 60_000,
      maxRequestsPerSecond: 1000,
      ...over,
    });
    let authorizer: Authorizer | undefined;
    afterEach(async () => {
      await authorizer?.end();
      authorizer = undefined;
    });

    it('should end an API call in flight at close(): the API server sees it close, and the process holds no more than before the call', async () => {
      authorizer = await startAuthorizer(cfg());
      const idle = await authorizer.resources();
      const { arrived, closed } = nextSlow();
      const pending = authorizer.ask(SLOW);
      await arrived;
      // Its connection and its timeout timer were gone once close() had returned (and the loop turned).
      expect(await authorizer.close()).toEqual(idle);
      await closed;
      expect((await pending).decision).toBe('unavailable');
      // Closed for good: no call reaches the API any more.
      const before = reviews.length;
      expect((await authorizer.ask(GOOD_3)).decision).toBe('unavailable');
      expect(reviews.length).toBe(before);
    });
  });

  it('should never put a token in a log line or a response', async () => {
    child.proc.kill('SIGTERM');
    await child.exited;
    const all = [...seen, ...child.logs.map((l) => JSON.stringify(l))].join('\n');
    for (const s of SECRETS) expect(all).not.toContain(s);
  });
});
