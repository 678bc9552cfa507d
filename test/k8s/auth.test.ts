/**
 * Kubernetes authentication for real: the built sidecar with METRICS_KUBERNETES_AUTH=true against
 * kube-apiserver v1.20.2 (test/k8s/run.mjs). Its own identity is a ServiceAccount token from the
 * TokenRequest API, its CA file the API server's; ServiceAccounts, ClusterRoles and bindings are
 * made through the API; the tokens it judges are TokenRequest tokens.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { auditLogOf, bindClusterRole, cluster, grantNonResource, kubeconfig, namespace, ok, serviceAccount, suffix, token } from './env';
import { countingRelay, killUnexited, kubeSidecar, readyz, runToExit, scrape, stop, until, untilReady, withExpiry, type Child } from './sidecars';
import { waitForLog } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';

const { startApiServer, stopProcess } = require('./cluster.cjs') as {
  startApiServer(o: {
    binary: string;
    creds: { dir: string; caFile: string; adminToken: string };
    etcdUrl: string;
    port?: number;
    logFile?: string;
  }): Promise<ApiServer>;
  stopProcess(p: ApiServer): Promise<void>;
};
interface ApiServer {
  pid: number;
  port: number;
  server: string;
  exitedWith(): unknown;
}

const NEEDS = 'create tokenreviews.authentication.k8s.io, create subjectaccessreviews.authorization.k8s.io';

describe('Kubernetes auth against a real API server (TokenReview + SubjectAccessReview)', () => {
  const c = cluster();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-auth-'));
  const run = suffix();
  let ns: string;
  /** Every token made here: none may show in a log line or a response. */
  const secrets: string[] = [];
  const seen: string[] = [];
  const children: Child[] = [];
  let sidecar: Child;
  const tok = { prometheus: '', nobody: '', poster: '', statusReader: '', own: '' };

  const track = (child: Child): Child => {
    children.push(child);
    return child;
  };
  const newToken = async (sa: string, opts: { audiences?: string[]; expirationSeconds?: number } = {}) => {
    const t = await token(ns, sa, opts);
    secrets.push(t);
    return t;
  };
  const get = async (port: number, t?: string, p = '/debug/metrics', method = 'GET') => {
    const r = await scrape(port, t, p, method);
    seen.push(r.text, JSON.stringify(r.headers));
    return r;
  };

  beforeAll(async () => {
    ns = await namespace('auth');
    for (const sa of ['sidecar', 'sidecar-norbac', 'sidecar-half', 'prometheus', 'nobody', 'poster', 'status-reader']) await serviceAccount(ns, sa);
    // The sidecar's own identity: what the chart binds (system:auth-delegator: create tokenreviews and subjectaccessreviews).
    await bindClusterRole(`auth-delegator-${run}`, 'system:auth-delegator', ns, 'sidecar');
    await grantNonResource(`reader-${run}`, ns, 'prometheus', ['/debug/metrics']);
    await grantNonResource(`poster-${run}`, ns, 'poster', ['/debug/metrics'], ['post']);
    await grantNonResource(`status-${run}`, ns, 'status-reader', ['/', '/status.json', '/debug/', '/debug/status.json']);
    tok.own = await newToken('sidecar');
    tok.prometheus = await newToken('prometheus');
    tok.nobody = await newToken('nobody');
    tok.poster = await newToken('poster');
    tok.statusReader = await newToken('status-reader');
    sidecar = track(
      await kubeSidecar(kubeconfig(tmp, 'own', { token: tok.own }), {
        // Longer than any run: what is cached stays fresh for the whole suite (the cache's own test below says otherwise).
        METRICS_KUBERNETES_ALLOW_TTL_MS: '3600000',
        METRICS_KUBERNETES_DENY_TTL_MS: '3600000',
      }),
    );
  });

  afterAll(async () => {
    killUnexited();
    for (const ch of children) await stop(ch);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('should become Ready once the API server says its own identity may create both reviews', async () => {
    await waitForLog(sidecar, (l) => l.msg === 'kubernetes API checked: the sidecar may create TokenReviews and SubjectAccessReviews');
    expect(await readyz(sidecar)).toEqual({ status: 200, text: 'ready\n' });
  });

  it('should allow a token of a ServiceAccount bound to get on the metrics path (200), on both ports', async () => {
    const r = await get(sidecar.metricsPort, tok.prometheus);
    expect(r.status).toBe(200);
    expect(r.text).toContain('# TYPE metrics_sidecar_info gauge');
    expect((await get(sidecar.mainPort, tok.prometheus)).status).toBe(200);
  });

  it('should refuse a token of a ServiceAccount without the binding: 403 on the metrics port, the hidden 404 on the main port', async () => {
    expect((await get(sidecar.metricsPort, tok.nobody)).status).toBe(403);
    expect((await get(sidecar.mainPort, tok.nobody)).status).toBe(404);
  });

  it('should refuse a garbage token and no token with 401 and a Bearer challenge', async () => {
    const garbage = `garbage-${suffix()}${suffix()}`;
    secrets.push(garbage);
    const r = await get(sidecar.metricsPort, garbage);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    expect((await get(sidecar.metricsPort)).status).toBe(401);
  });

  it('should refuse (401) a token made for another audience, though its ServiceAccount is bound', async () => {
    const other = await newToken('prometheus', { audiences: ['https://not-this-api-server.example'] });
    expect((await get(sidecar.metricsPort, other)).status).toBe(401);
  });

  it('should refuse (401) an expired token: the API server refuses it once its expiry is reached (plus its 60 s leeway and its 10 s cache of accepted tokens)', async () => {
    // A sidecar that caches nothing: every request is a TokenReview.
    const uncached = track(
      await kubeSidecar(kubeconfig(tmp, 'uncached', { token: tok.own }), { METRICS_KUBERNETES_ALLOW_TTL_MS: '0', METRICS_KUBERNETES_DENY_TTL_MS: '0' }),
    );
    await untilReady(uncached);
    const real = await newToken('prometheus');
    const key = path.join(c.pki, 'sa.key');
    const now = Math.floor(Date.now() / 1000);
    // The same token, valid for an hour more: the re-signed token is one the API server accepts.
    const valid = withExpiry(real, now + 3600, key);
    // Expired 2 s ago, still inside the API server's 60 s leeway: accepted until the leeway is over.
    const expiring = withExpiry(real, now - 58, key);
    const expired = withExpiry(real, now - 120, key);
    secrets.push(valid, expiring, expired);
    expect((await get(uncached.metricsPort, valid)).status).toBe(200);
    expect((await get(uncached.metricsPort, expired)).status).toBe(401);
    expect((await get(uncached.metricsPort, expiring)).status).toBe(200);
    // Wait on the API server itself: its TokenReview says the token is no longer valid...
    await until('the API server refuses the expiring token', async () => {
      const r = await ok<{ status: { authenticated?: boolean } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token: expiring },
      });
      return r.status.authenticated === true ? undefined : true;
    });
    // ...and from then on the sidecar refuses it too.
    expect((await get(uncached.metricsPort, expiring)).status).toBe(401);
    expect((await get(uncached.metricsPort, valid)).status).toBe(200);
  });

  it('should not take post for get: a ServiceAccount allowed only to post the path is refused (403)', async () => {
    expect((await get(sidecar.metricsPort, tok.poster)).status).toBe(403);
  });

  it('should answer another method on the metrics path 405 "method not allowed" with Allow (hidden 404 on the main port without a passing token)', async () => {
    const r = await get(sidecar.metricsPort, tok.prometheus, '/debug/metrics', 'POST');
    expect(r.status).toBe(405);
    expect(r.text).toBe('method not allowed\n');
    expect(String(r.headers.allow)).toMatch(/GET/);
    const main = await get(sidecar.mainPort, tok.prometheus, '/debug/metrics', 'POST');
    expect(main.status).toBe(405);
    expect(main.text).toBe('method not allowed\n');
    expect(main.headers.allow).toBe('GET, HEAD');
    expect((await get(sidecar.mainPort, tok.nobody, '/debug/metrics', 'POST')).status).toBe(404);
    expect((await get(sidecar.mainPort, undefined, '/debug/metrics', 'POST')).status).toBe(404);
  });

  it('should ask for the status page paths on their own: the metrics path grants neither, their own nonResourceURLs grant both', async () => {
    for (const [port, page, json] of [
      [sidecar.metricsPort, '/', '/status.json'],
      [sidecar.mainPort, '/debug/', '/debug/status.json'],
    ] as const) {
      const refused = port === sidecar.mainPort ? 404 : 403;
      expect((await get(port, tok.prometheus, page)).status).toBe(refused);
      expect((await get(port, tok.prometheus, json)).status).toBe(refused);
      expect((await get(port, tok.statusReader, page)).status).toBe(200);
      expect((await get(port, tok.statusReader, json)).status).toBe(200);
      // And the status paths grant no metrics.
      expect((await get(port, tok.statusReader, '/debug/metrics')).status).toBe(port === sidecar.mainPort ? 404 : 403);
    }
  });

  it('should answer a decision again from its cache, without asking the API server', async () => {
    const before = parseExposition((await get(sidecar.metricsPort, tok.prometheus)).text);
    const after = parseExposition((await get(sidecar.metricsPort, tok.prometheus)).text);
    const hits = (p: ReturnType<typeof parseExposition>) => value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'hit' });
    const misses = (p: ReturnType<typeof parseExposition>) => value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'miss' });
    expect(hits(after)).toBe(hits(before) + 1);
    expect(misses(after)).toBe(misses(before));
  });

  describe('finding (c): one keep-alive connection, the CA read once', () => {
    it('should open at most one TLS connection for 10 uncached decisions (it was 20), and not read the CA file again', async () => {
      const relay = await countingRelay(Number(new URL(c.server).port));
      const caCopy = path.join(tmp, 'ca-copy.crt');
      fs.copyFileSync(c.caFile, caCopy);
      const counted = track(
        await kubeSidecar(kubeconfig(tmp, 'counted', { token: tok.own }, { server: `https://127.0.0.1:${relay.port}`, caFile: caCopy }), {
          METRICS_KUBERNETES_MAX_REQUESTS_PER_S: '1000',
        }),
      );
      try {
        await untilReady(counted);
        // Had the CA file been read per call, every decision below would now fail.
        fs.writeFileSync(caCopy, 'not a certificate\n');
        const tokens: string[] = [];
        // Ten different tokens (two asked for in the same second with the same expiry are the same JWT).
        for (let i = 0; i < 10; i++) tokens.push(await newToken('prometheus', { expirationSeconds: 3600 + i }));
        expect(new Set(tokens).size).toBe(10);
        const before = relay.connections();
        for (const t of tokens) expect((await get(counted.metricsPort, t)).status).toBe(200);
        const opened = relay.connections() - before;
        expect(opened).toBeLessThanOrEqual(1);
        const p = parseExposition((await get(counted.metricsPort, tokens[0])).text);
        expect(value(p, 'metrics_sidecar_kubernetes_auth_cache_total', { result: 'miss' })).toBe(10);
      } finally {
        await stop(counted);
        await relay.close();
      }
    });
  });

  describe("finding (a): a refusal of the sidecar's own review calls is missing RBAC, said so", () => {
    it('should stay not Ready naming the verbs it needs, log a 403 on a review as missing RBAC (not as an outage), and become Ready once bound', async () => {
      const own = await newToken('sidecar-norbac');
      const norbac = track(await kubeSidecar(kubeconfig(tmp, 'norbac', { token: own })));
      const notReady = await waitForLog(norbac, (l) => typeof l.msg === 'string' && l.msg.startsWith('kubernetes auth not ready'));
      expect(notReady.msg).toContain('may not create TokenReviews or SubjectAccessReviews');
      expect(notReady.msg).toContain('create tokenreviews.authentication.k8s.io');
      expect(notReady.msg).toContain('create subjectaccessreviews.authorization.k8s.io');
      const r = await readyz(norbac);
      expect(r.status).toBe(503);
      expect(r.text).toContain('kubernetes auth not ready');

      expect((await get(norbac.metricsPort, tok.prometheus)).status).toBe(401);
      const logged = await waitForLog(norbac, (l) => l.code === 'HTTP_403');
      expect(logged).toMatchObject({ level: 'error', call: 'TokenReview', needs: NEEDS });
      expect(String(logged.msg)).toContain('RBAC');
      expect(norbac.logs.some((l) => l.msg === 'kubernetes API unavailable for an auth decision')).toBe(false);

      await bindClusterRole(`late-delegator-${run}`, 'system:auth-delegator', ns, 'sidecar-norbac');
      await waitForLog(norbac, (l) => l.msg === 'kubernetes API checked: the sidecar may create TokenReviews and SubjectAccessReviews');
      expect((await readyz(norbac)).status).toBe(200);
      expect((await get(norbac.metricsPort, tok.prometheus)).status).toBe(200);
      seen.push(...norbac.logs.map((l) => JSON.stringify(l)));
    });

    it('should name only what is missing: a ServiceAccount that may create TokenReviews but not SubjectAccessReviews', async () => {
      await ok('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: `tokenreviews-only-${run}` },
        rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
      });
      await bindClusterRole(`tokenreviews-only-${run}`, `tokenreviews-only-${run}`, ns, 'sidecar-half');
      const half = track(await kubeSidecar(kubeconfig(tmp, 'half', { token: await newToken('sidecar-half') })));
      const notReady = await waitForLog(half, (l) => typeof l.msg === 'string' && l.msg.startsWith('kubernetes auth not ready'));
      expect(notReady.msg).toContain('it needs create subjectaccessreviews.authorization.k8s.io (a ClusterRole bound to it)');
      expect(notReady.msg).not.toContain('create tokenreviews');
      expect((await readyz(half)).status).toBe(503);
      expect((await get(half.metricsPort, tok.prometheus)).status).toBe(401);
      expect(await waitForLog(half, (l) => l.code === 'HTTP_403')).toMatchObject({ level: 'error', call: 'SubjectAccessReview', needs: NEEDS });
      await stop(half);
      seen.push(...half.logs.map((l) => JSON.stringify(l)));
    });
  });

  describe('finding (b): the CA and the API server checked at start', () => {
    it('should exit 2 with one line naming the CA file when it holds no certificate, or cannot be read', async () => {
      const bad = path.join(tmp, 'bad-ca.crt');
      fs.writeFileSync(bad, 'not a certificate\n');
      for (const [caFile, says] of [
        [bad, 'holds no PEM certificate'],
        [path.join(tmp, 'missing-ca.crt'), 'could not be read: ENOENT'],
      ]) {
        const r = await runToExit({
          METRICS_KUBERNETES_AUTH: 'true',
          KUBECONFIG: kubeconfig(tmp, `ca-${path.basename(caFile)}`, { token: tok.own }, { caFile }),
        });
        expect(r.code).toBe(2);
        const lines = r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const fatal = lines.filter((l) => l.level === 'fatal');
        expect(fatal).toHaveLength(1);
        expect(fatal[0]).toMatchObject({ code: 'KUBERNETES_SETUP' });
        expect(String(fatal[0].msg)).toContain(caFile);
        expect(String(fatal[0].msg)).toContain(says);
        seen.push(r.stdout, r.stderr);
      }
    });

    it('should stay not Ready, saying the certificate is not trusted, with a CA that did not sign the API server', async () => {
      const other = path.join(tmp, 'other-ca');
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${other}.key`, '-out', `${other}.crt`, '-days', '1', '-subj', '/CN=other-ca'],
        {
          stdio: 'ignore',
        },
      );
      const wrong = track(await kubeSidecar(kubeconfig(tmp, 'wrong-ca', { token: tok.own }, { caFile: `${other}.crt` })));
      const logged = await waitForLog(wrong, (l) => typeof l.msg === 'string' && l.msg.startsWith('kubernetes auth not ready'));
      expect(logged.msg).toContain("the API server's certificate is not trusted by the configured CA");
      expect(logged.msg).toContain(`${other}.crt`);
      const r = await readyz(wrong);
      expect(r).toEqual({ status: 503, text: 'kubernetes auth not ready (the log says why)\n' });
      expect((await get(wrong.metricsPort, tok.prometheus)).status).toBe(401);
      await stop(wrong);
      seen.push(...wrong.logs.map((l) => JSON.stringify(l)));
    });
  });

  describe('the API server stopped and restarted (an API server of its own, on the same etcd)', () => {
    let own: ApiServer | undefined;
    afterAll(async () => {
      if (own) await stopProcess(own);
    });

    it('should serve cached decisions for the stale window then refuse; not be Ready when started without it; resume once it is back', async () => {
      const creds = { dir: c.pki, caFile: c.caFile, adminToken: c.adminToken };
      own = await startApiServer({ binary: c.apiserver, creds, etcdUrl: c.etcdUrl });
      const port = own.port;
      const cfg = kubeconfig(tmp, 'restartable', { token: tok.own }, { server: own.server });
      const sc = track(
        await kubeSidecar(cfg, { METRICS_KUBERNETES_ALLOW_TTL_MS: '300', METRICS_KUBERNETES_DENY_TTL_MS: '300', METRICS_KUBERNETES_STALE_MS: '4000' }),
      );
      await untilReady(sc);
      const cache = async (result: string) =>
        value(parseExposition((await get(sc.metricsPort, tok.prometheus)).text), 'metrics_sidecar_kubernetes_auth_cache_total', { result });
      expect((await get(sc.metricsPort, tok.prometheus)).status).toBe(200);
      expect((await get(sc.metricsPort, tok.nobody)).status).toBe(403);

      await stopProcess(own);
      // Past the TTL, the cached decisions are served stale: the allow still 200, the deny still 403.
      await until('a decision served stale', async () => ((await cache('stale')) > 0 ? true : undefined));
      expect((await get(sc.metricsPort, tok.nobody)).status).toBe(403);
      // A token never decided is refused: nothing to serve.
      const fresh = await newToken('prometheus');
      expect((await get(sc.metricsPort, fresh)).status).toBe(401);
      // Until the stale window is over: then the cached allow is refused too.
      await until('the stale window over', async () => ((await get(sc.metricsPort, tok.nobody)).status === 401 ? true : undefined));
      expect((await scrape(sc.metricsPort, tok.prometheus)).status).toBe(401);
      expect(sc.logs.some((l) => l.msg === 'kubernetes API unavailable for an auth decision' && l.code === 'ECONNREFUSED')).toBe(true);

      // A sidecar started while the API server is down is not Ready, and says why.
      const late = track(await kubeSidecar(cfg));
      const why = await waitForLog(late, (l) => typeof l.msg === 'string' && l.msg.startsWith('kubernetes auth not ready'));
      expect(why.msg).toContain('the API server could not be asked: ECONNREFUSED');
      expect((await readyz(late)).status).toBe(503);

      own = await startApiServer({ binary: c.apiserver, creds, etcdUrl: c.etcdUrl, port });
      await until('decisions again', async () => ((await scrape(sc.metricsPort, tok.prometheus)).status === 200 ? true : undefined));
      expect((await get(sc.metricsPort, fresh)).status).toBe(200);
      expect((await get(sc.metricsPort, tok.nobody)).status).toBe(403);
      await untilReady(late);
      expect((await get(late.metricsPort, tok.prometheus)).status).toBe(200);
      seen.push(...sc.logs.map((l) => JSON.stringify(l)), ...late.logs.map((l) => JSON.stringify(l)));
    });
  });

  it('should use a rotated token file from the next call on (its own token read per call)', async () => {
    const dir = path.join(tmp, 'sa');
    fs.mkdirSync(dir, { recursive: true });
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${tok.own}\n`);
    const rotating = track(
      await kubeSidecar(kubeconfig(tmp, 'token-file', { tokenFile }), {
        METRICS_KUBERNETES_ALLOW_TTL_MS: '0',
        METRICS_KUBERNETES_DENY_TTL_MS: '0',
        // No stale window either: a refused review call must show, not be covered by the last allow.
        METRICS_KUBERNETES_STALE_MS: '0',
      }),
    );
    await untilReady(rotating);
    expect((await get(rotating.metricsPort, tok.prometheus)).status).toBe(200);
    // As the kubelet rotates a projected token: a new file renamed over the old one. A token of a
    // ServiceAccount without RBAC shows at once that the new file is the one sent.
    const unbound = await newToken('nobody');
    fs.writeFileSync(`${tokenFile}.new`, `${unbound}\n`);
    fs.renameSync(`${tokenFile}.new`, tokenFile);
    expect((await get(rotating.metricsPort, tok.prometheus)).status).toBe(401);
    expect(await waitForLog(rotating, (l) => l.code === 'HTTP_403')).toMatchObject({ needs: NEEDS });
    const again = await newToken('sidecar');
    fs.writeFileSync(`${tokenFile}.new`, `${again}\n`);
    fs.renameSync(`${tokenFile}.new`, tokenFile);
    expect((await get(rotating.metricsPort, tok.prometheus)).status).toBe(200);
    seen.push(...rotating.logs.map((l) => JSON.stringify(l)));
  });

  it("should have made its review calls as its own ServiceAccount (the API server's audit log)", async () => {
    const user = `system:serviceaccount:${ns}:sidecar`;
    interface Event {
      verb: string;
      user: { username: string };
      objectRef?: { resource: string };
      responseStatus?: { code: number };
    }
    const events = await until('the sidecar’s reviews in the audit log', async () => {
      const found = fs
        .readFileSync(auditLogOf(c), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Event)
        .filter((e) => e.user.username === user && e.verb === 'create');
      const resources = new Set(found.map((e) => e.objectRef?.resource));
      return ['tokenreviews', 'subjectaccessreviews', 'selfsubjectaccessreviews'].every((r) => resources.has(r)) ? found : undefined;
    });
    expect(events.every((e) => e.responseStatus?.code === 201)).toBe(true);
    // Metadata only: no review body, so no token, in the audit log either.
    const text = fs.readFileSync(auditLogOf(c), 'utf8');
    for (const s of secrets) expect(text).not.toContain(s);
  });

  it('should never put a token in a log line or a response', async () => {
    for (const ch of children) await stop(ch);
    const all = [...seen, ...children.flatMap((ch) => ch.logs.map((l) => JSON.stringify(l)))].join('\n');
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) {
      expect(all).not.toContain(s);
      // Nor its signature alone (the part a log line cut short would still show).
      expect(all).not.toContain(s.split('.')[2] ?? s);
    }
  });
});
