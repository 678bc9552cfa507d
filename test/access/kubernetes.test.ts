/**
 * Kubernetes ServiceAccount auth against a local HTTPS server that speaks the real
 * authentication.k8s.io/v1 TokenReview and authorization.k8s.io/v1 SubjectAccessReview JSON (no
 * API server can run here). The sidecar is the built dist/main.js in its own process, loading
 * @kubernetes/client-node and a kubeconfig with the server's CA and its own token, as in a pod.
 * What depends on time (TTLs, the rate limit, the stale period) is checked on the authorizer alone,
 * in a process of its own whose clock the test advances (test/fixtures/k8s-authorizer.js), never by
 * waiting for a TTL to pass; the sidecar's own TTLs are long enough that none passes during a run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { AddressInfo } from 'node:net';
import type { KubernetesAuthConfig } from '../../src/config';
import { spawnSidecar, waitForLog, type Child } from '../helpers/sidecar';
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

/** A KubernetesAuthorizer in its own process (test/fixtures/k8s-authorizer.js), on a clock the test moves. */
interface Authorizer {
  ask(token: string, path?: string): Promise<{ decision: string; cache: string[]; logs: { msg: string; code?: string }[] }>;
  advance(ms: number): Promise<void>;
  close(): Promise<string[]>;
  /** What keeps the process alive now (process.getActiveResourcesInfo()). */
  resources(): Promise<string[]>;
  end(): Promise<void>;
}

async function startAuthorizer(cfg: KubernetesAuthConfig): Promise<Authorizer> {
  const proc: ChildProcess = spawn(process.execPath, [path.join(__dirname, '..', 'fixtures', 'k8s-authorizer.js'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = new Map<number, (answer: Record<string, unknown>) => void>();
  let ready!: (answer: Record<string, unknown>) => void;
  const first = new Promise<Record<string, unknown>>((r) => (ready = r));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    const answer = JSON.parse(line) as Record<string, unknown>;
    if (answer.fail !== undefined) throw new Error(`authorizer: ${String(answer.fail)}`);
    if (answer.id === undefined) ready(answer);
    else waiting.get(answer.id as number)?.(answer);
  });
  let ids = 0;
  const send = (cmd: object) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++ids;
      waiting.set(id, resolve);
      proc.stdin!.write(`${JSON.stringify({ id, ...cmd })}\n`);
    });
  await first;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    ask: async (token, p = '/debug/metrics') => (await send({ authorize: { token, path: p } })) as Awaited<ReturnType<Authorizer['ask']>>,
    advance: async (ms) => void (await send({ advance: ms })),
    close: async () => (await send({ close: true })).resources as string[],
    resources: async () => (await send({ resources: true })).resources as string[],
    end: async () => {
      proc.stdin!.end();
      await exited;
    },
  };
}

describe('Kubernetes ServiceAccount auth (TokenReview + SubjectAccessReview)', () => {
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
  const stopApi = async (server: https.Server) => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
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

  it('should abort an API call at METRICS_KUBERNETES_TIMEOUT_MS and refuse', async () => {
    const { closed } = nextSlow();
    expect((await scrape(child.metricsPort, SLOW)).status).toBe(401);
    // The request was really aborted (its connection closed), not left hanging behind a refusal.
    await closed;
    expect(await waitForLog(child, (l) => l.msg === 'kubernetes API unavailable for an auth decision')).toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('should read its own token file per call: a rotated ServiceAccount token is used from the next call on', async () => {
    // As the kubelet does with a projected token: a new file swapped in through a rename.
    const dir = path.join(tmp, 'sa');
    fs.mkdirSync(dir, { recursive: true });
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${ROTATED_1}\n`);
    const tokenFileKubeconfig = path.join(tmp, 'kubeconfig-token-file');
    const base = JSON.parse(fs.readFileSync(kubeconfig, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      tokenFileKubeconfig,
      JSON.stringify({ ...base, users: [{ name: 'sidecar', user: { 'auth-provider': { name: 'tokenFile', config: { tokenFile } } } }] }),
    );
    const rotating = await spawnSidecar({ METRICS_KUBERNETES_AUTH: 'true', KUBECONFIG: tokenFileKubeconfig });
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
    // (Refilling it is the authorizer's test below, on a clock of its own.)
    const limited = await spawnSidecar({ METRICS_KUBERNETES_AUTH: 'true', KUBECONFIG: kubeconfig, METRICS_KUBERNETES_MAX_REQUESTS_PER_S: '2' });
    try {
      const before = reviews.length;
      const statuses = [];
      for (const t of [GOOD, GOOD_TOO, GOOD_3]) statuses.push((await scrape(limited.metricsPort, t)).status);
      expect(statuses).toEqual([200, 401, 401]);
      expect(reviews.length).toBe(before + 2);
      expect(await waitForLog(limited, (l) => l.msg === 'kubernetes API unavailable for an auth decision')).toMatchObject({ code: 'RATE_LIMITED' });
    } finally {
      limited.proc.kill('SIGTERM');
      await limited.exited;
      seen.push(...limited.logs.map((l) => JSON.stringify(l)));
    }
  });

  describe('the authorizer, on a clock the test advances', () => {
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

    it('should answer from the cache until the TTL has passed, then ask the API again', async () => {
      authorizer = await startAuthorizer(cfg());
      let before = reviews.length;
      expect(await authorizer.ask(GOOD)).toMatchObject({ decision: 'allow', cache: ['miss'] });
      expect(reviews.length).toBe(before + 2);
      before = reviews.length;
      await authorizer.advance(399);
      expect(await authorizer.ask(GOOD)).toMatchObject({ decision: 'allow', cache: ['hit'] });
      await authorizer.advance(1);
      expect(await authorizer.ask(GOOD)).toMatchObject({ decision: 'allow', cache: ['miss'] });
      expect(reviews.length).toBe(before + 2);
    });

    it('should refill the rate budget as the clock moves', async () => {
      authorizer = await startAuthorizer(cfg({ maxRequestsPerSecond: 2 }));
      expect((await authorizer.ask(GOOD)).decision).toBe('allow');
      const refused = await authorizer.ask(GOOD_TOO);
      expect(refused.decision).toBe('unavailable');
      expect(refused.logs).toEqual([expect.objectContaining({ code: 'RATE_LIMITED' })]);
      // Half a second refills one call, and a decision takes two.
      await authorizer.advance(500);
      expect((await authorizer.ask(GOOD_TOO)).decision).toBe('unavailable');
      await authorizer.advance(1000);
      expect((await authorizer.ask(GOOD_3)).decision).toBe('allow');
    });

    it('should keep serving a decision past its TTL while the API is down, for the stale period only', async () => {
      const own = await startApi();
      try {
        authorizer = await startAuthorizer(cfg({ kubeconfig: kubeconfigFor((own.address() as AddressInfo).port), staleMs: 1000 }));
        expect((await authorizer.ask(GOOD)).decision).toBe('allow');
        expect((await authorizer.ask(DENIED)).decision).toBe('deny');
        await stopApi(own);
        await authorizer.advance(401);
        expect(await authorizer.ask(GOOD)).toMatchObject({ decision: 'allow', cache: ['stale'] });
        expect(await authorizer.ask(DENIED)).toMatchObject({ decision: 'deny', cache: ['stale'] });
        expect(await authorizer.ask(GOOD_TOO)).toMatchObject({ decision: 'unavailable', cache: [] });
        await authorizer.advance(1000);
        expect(await authorizer.ask(GOOD)).toMatchObject({ decision: 'unavailable', cache: [] });
      } finally {
        await stopApi(own);
      }
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

  it('should keep serving cached decisions while the API is down, and refuse an uncached token', async () => {
    api.closeAllConnections();
    await new Promise((r) => api.close(r));
    expect((await scrape(child.metricsPort, GOOD)).status).toBe(200);
    expect((await scrape(child.metricsPort, DENIED)).status).toBe(403);
    expect((await scrape(child.metricsPort, GOOD_TOO)).status).toBe(401);

    const p = parseExposition((await scrape(child.metricsPort, GOOD)).text);
    expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'hit' })).toBeGreaterThanOrEqual(4);
    expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'miss' })).toBeGreaterThanOrEqual(3);
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
