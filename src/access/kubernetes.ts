/**
 * Kubernetes ServiceAccount tokens, as kube-rbac-proxy checks them: TokenReview authenticates the
 * bearer token, SubjectAccessReview asks whether that user may `get` the non-resource URL of the
 * request path (a ClusterRole with `nonResourceURLs: ["/debug/metrics"]`).
 *
 * Decisions are cached by (SHA-256 of the token, path) with separate allow and deny TTLs;
 * concurrent identical checks share one API call; API calls time out quickly and are rate
 * limited; when the API server cannot be reached, a cached decision keeps serving for a bounded
 * stale period. @kubernetes/client-node is loaded only when this method is configured (it takes
 * ~0.4 s) and is used for what it does best, loading the in-cluster or kubeconfig credentials;
 * the two POSTs are made with Node's https so their timeout and agent are ours.
 */
import type https from 'node:https';
import type { KubernetesAuthConfig } from '../config';
import type { Logger } from '../log/logger';
import { sha256 } from './credentials';

export type KubeDecision = 'allow' | 'deny' | 'unauthenticated' | 'unavailable';
export type CacheOutcome = 'hit' | 'miss' | 'stale';

interface CacheEntry {
  decision: Exclude<KubeDecision, 'unavailable'>;
  freshUntil: number;
  staleUntil: number;
}

const MAX_CACHE_ENTRIES = 10_000;

interface ApiTarget {
  url: URL;
  options: https.RequestOptions;
}

export class KubernetesAuthorizer {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly pending = new Map<string, Promise<KubeDecision>>();
  private tokens: number;
  private lastRefill = Date.now();
  private target: Promise<ApiTarget> | undefined;

  constructor(
    private readonly cfg: KubernetesAuthConfig,
    private readonly logger: Logger,
    private readonly onCache: (outcome: CacheOutcome) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = cfg.maxRequestsPerSecond;
  }

  /** Loads the client library and the credentials now, so a broken setup shows at start. */
  async init(): Promise<void> {
    await this.apiTarget();
  }

  async authorize(token: string, path: string): Promise<KubeDecision> {
    const key = `${sha256(token).toString('base64')} ${path}`;
    const t = this.now();
    const cached = this.cache.get(key);
    if (cached && t < cached.freshUntil) {
      this.onCache('hit');
      return cached.decision;
    }
    let p = this.pending.get(key);
    if (p === undefined) {
      p = this.review(token, path).then(
        (decision) => {
          this.remember(key, decision);
          this.onCache('miss');
          return decision;
        },
        (err: Error & { code?: string }) => {
          const stale = this.cache.get(key);
          this.logger.warn('kubernetes API unavailable for an auth decision', { code: err.code ?? err.message, cached: stale !== undefined });
          if (stale && this.now() < stale.staleUntil) {
            this.onCache('stale');
            return stale.decision;
          }
          return 'unavailable' as const;
        },
      );
      this.pending.set(key, p);
      void p.finally(() => this.pending.delete(key));
    }
    return p;
  }

  private remember(key: string, decision: Exclude<KubeDecision, 'unavailable'>): void {
    const ttl = decision === 'allow' ? this.cfg.allowTtlMs : this.cfg.denyTtlMs;
    const t = this.now();
    this.cache.delete(key);
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, { decision, freshUntil: t + ttl, staleUntil: t + ttl + this.cfg.staleMs });
  }

  private async review(token: string, path: string): Promise<Exclude<KubeDecision, 'unavailable'>> {
    const tr = (await this.post('/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: this.cfg.audiences.length > 0 ? { token, audiences: this.cfg.audiences } : { token },
    })) as { status?: { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } } };
    const user = tr.status?.user;
    if (tr.status?.authenticated !== true || !user?.username) return 'unauthenticated';
    const sar = (await this.post('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
    })) as { status?: { allowed?: boolean } };
    return sar.status?.allowed === true ? 'allow' : 'deny';
  }

  private takeToken(): boolean {
    const t = this.now();
    const rate = this.cfg.maxRequestsPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((t - this.lastRefill) / 1000) * rate);
    this.lastRefill = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private apiTarget(): Promise<ApiTarget> {
    this.target ??= (async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const k8s = require('@kubernetes/client-node') as typeof import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      if (this.cfg.kubeconfig) kc.loadFromFile(this.cfg.kubeconfig);
      else kc.loadFromCluster();
      const cluster = kc.getCurrentCluster();
      if (!cluster) throw new Error('no cluster in the Kubernetes configuration');
      const options: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      return { url: new URL(cluster.server), options };
    })();
    return this.target;
  }

  private async post(path: string, body: unknown): Promise<unknown> {
    if (!this.takeToken()) throw Object.assign(new Error('rate limited'), { code: 'RATE_LIMITED' });
    const { url, options } = await this.apiTarget();
    const payload = JSON.stringify(body);
    // node:https (and tls) loads only when Kubernetes auth is on: plain start-up stays fast.
    const { request } = require('node:https') as typeof https;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...options,
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || 443,
          path: `${url.pathname.replace(/\/$/, '')}${path}`,
          method: 'POST',
          headers: { ...(options.headers ?? {}), 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(payload) },
          timeout: this.cfg.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 300) {
              reject(Object.assign(new Error(`kubernetes API answered ${res.statusCode}`), { code: `HTTP_${res.statusCode}` }));
              return;
            }
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
            } catch {
              reject(Object.assign(new Error('kubernetes API answered invalid JSON'), { code: 'BAD_JSON' }));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('kubernetes API timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
