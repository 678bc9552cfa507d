/**
 * Kubernetes ServiceAccount tokens, as kube-rbac-proxy checks them: TokenReview authenticates the
 * bearer token, SubjectAccessReview asks whether that user may `get` the non-resource URL of the
 * request path (a ClusterRole with `nonResourceURLs: ["/debug/metrics"]`).
 *
 * Decisions are cached by (SHA-256 of the token, path) with separate allow and deny TTLs;
 * concurrent identical checks share one API call; API calls time out quickly and are rate
 * limited; when the API server cannot be reached, a cached decision keeps serving for a bounded
 * stale period.
 *
 * The calls go through @kubernetes/client-node 1.x's typed `AuthenticationV1Api` and
 * `AuthorizationV1Api` (loaded only when this method is configured: it takes ~0.4 s, and being
 * ESM it needs Node ≥ 20.19 to be `require`d). Per call, a middleware adds an AbortSignal that
 * aborts the request at METRICS_KUBERNETES_TIMEOUT_MS, and, when the credentials come from a token
 * file (in a pod: the projected ServiceAccount token, which the kubelet rotates), reads that file
 * again so a rotated token is used from the next call on (the library itself re-reads it only
 * every 60 s).
 */
import fs from 'node:fs';
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

type K8s = typeof import('@kubernetes/client-node');

interface Apis {
  authn: InstanceType<K8s['AuthenticationV1Api']>;
  authz: InstanceType<K8s['AuthorizationV1Api']>;
  /** The file the credentials' token is read from, if they come from one. */
  tokenFile: string | undefined;
}

export class KubernetesAuthorizer {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly pending = new Map<string, Promise<KubeDecision>>();
  private tokens: number;
  private lastRefill: number;
  private apis: Promise<Apis> | undefined;
  /** The API calls in flight: close() aborts them. */
  private readonly calls = new Set<AbortController>();
  private closed = false;

  constructor(
    private readonly cfg: KubernetesAuthConfig,
    private readonly logger: Logger,
    private readonly onCache: (outcome: CacheOutcome) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = cfg.maxRequestsPerSecond;
    // On the injected clock, like every other time here (Date.now() against a test's clock emptied the budget).
    this.lastRefill = now();
  }

  /** Loads the client library and the credentials now, so a broken setup shows at start. */
  async init(): Promise<void> {
    await this.loadApis();
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
    const { authn, authz } = await this.loadApis();
    const tr = await this.call((signal) =>
      authn.createTokenReview(
        {
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: this.cfg.audiences.length > 0 ? { token, audiences: [...this.cfg.audiences] } : { token },
          },
        },
        this.perCall(signal),
      ),
    );
    const user = tr.status?.user;
    if (tr.status?.authenticated !== true || !user?.username) return 'unauthenticated';
    const sar = await this.call((signal) =>
      authz.createSubjectAccessReview(
        {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
          },
        },
        this.perCall(signal),
      ),
    );
    return sar.status?.allowed === true ? 'allow' : 'deny';
  }

  /**
   * Ends every API call in flight (their connections close now) and makes later ones fail at
   * once: what the sidecar's stop calls.
   */
  close(): void {
    this.closed = true;
    for (const c of this.calls) c.abort();
    this.calls.clear();
  }

  /**
   * Rate limit, then the call, aborted at METRICS_KUBERNETES_TIMEOUT_MS or by close(); errors
   * become `{code}` errors that name no token. The timer is cleared when the call ends
   * (AbortSignal.timeout's ran on for the whole timeout after every call).
   */
  private async call<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.closed) throw Object.assign(new Error('the sidecar is stopping'), { code: 'ESHUTDOWN' });
    if (!this.takeToken()) throw Object.assign(new Error('rate limited'), { code: 'RATE_LIMITED' });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.cfg.timeoutMs);
    this.calls.add(controller);
    try {
      return await fn(controller.signal);
    } catch (err) {
      const e = err as Error & { code?: unknown; type?: string };
      if (this.closed) throw Object.assign(new Error('the sidecar is stopping'), { code: 'ESHUTDOWN' });
      if (e.name === 'AbortError' || e.type === 'aborted') throw Object.assign(new Error('kubernetes API timed out'), { code: 'ETIMEDOUT' });
      if (typeof e.code === 'number') throw Object.assign(new Error(`kubernetes API answered ${e.code}`), { code: `HTTP_${e.code}` });
      throw Object.assign(new Error(`kubernetes API call failed: ${typeof e.code === 'string' ? e.code : e.name}`), {
        code: typeof e.code === 'string' ? e.code : 'API_ERROR',
      });
    } finally {
      clearTimeout(timer);
      this.calls.delete(controller);
    }
  }

  /** Options for one call: its abort signal, and the current token when it comes from a file. */
  private perCall(signal: AbortSignal): import('@kubernetes/client-node').ConfigurationOptions {
    const tokenFile = this.tokenFile;
    const Observable = this.observable!;
    return {
      middlewareMergeStrategy: 'append',
      middleware: [
        {
          // The typed APIs take Observable middleware (the library's own minimal Observable).
          pre: (ctx) =>
            new Observable(
              (async () => {
                ctx.setSignal(signal);
                if (tokenFile !== undefined) {
                  const current = (await fs.promises.readFile(tokenFile, 'utf8')).trim();
                  if (current !== '') ctx.setHeaderParam('Authorization', `Bearer ${current}`);
                }
                return ctx;
              })(),
            ),
          post: (rc) => new Observable(Promise.resolve(rc)),
        },
      ],
    };
  }

  private tokenFile: string | undefined;
  private observable: K8s['Observable'] | undefined;

  private takeToken(): boolean {
    const t = this.now();
    const rate = this.cfg.maxRequestsPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((t - this.lastRefill) / 1000) * rate);
    this.lastRefill = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private loadApis(): Promise<Apis> {
    this.apis ??= (async () => {
      const k8s = require('@kubernetes/client-node') as K8s;
      const kc = new k8s.KubeConfig();
      if (this.cfg.kubeconfig) kc.loadFromFile(this.cfg.kubeconfig);
      else kc.loadFromCluster();
      if (!kc.getCurrentCluster()) throw new Error('no cluster in the Kubernetes configuration');
      const provider = kc.getCurrentUser()?.authProvider as { config?: { tokenFile?: string } } | undefined;
      this.tokenFile = provider?.config?.tokenFile;
      this.observable = k8s.Observable;
      return { authn: kc.makeApiClient(k8s.AuthenticationV1Api), authz: kc.makeApiClient(k8s.AuthorizationV1Api), tokenFile: this.tokenFile };
    })();
    return this.apis;
  }
}
