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
 *
 * Every call goes through one keep-alive HTTPS agent, made at start from the CA (and client
 * certificate, if any) read once: the library's own authentication made a new agent, and read the
 * CA file again, per call, so every uncached decision opened two TLS connections. The CA is read
 * again only when the API server's certificate fails verification, and the agent remade only if
 * the file changed (a rotated CA).
 *
 * Start (init): the configuration and the CA are read and checked; an unreadable or invalid CA is a
 * KubernetesSetupError (exit 2, one line). Then (startCheck) the sidecar asks the API server, with
 * two SelfSubjectAccessReviews, whether its own identity may create TokenReviews and
 * SubjectAccessReviews: until that has once succeeded the sidecar is not Ready, and the reason is
 * logged once per change (API server unreachable, certificate not trusted, own credentials refused,
 * RBAC missing); it asks again with a backoff up to 30 s. Once passed, readiness no longer depends
 * on the API server: an outage later is what the stale period is for.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type https from 'node:https';
import type { KubernetesAuthConfig } from '../config';
import type { Logger } from '../log/logger';
import { sha256 } from '../formats/api-keys';

export type KubeDecision = 'allow' | 'deny' | 'unauthenticated' | 'unavailable';
export type CacheOutcome = 'hit' | 'miss' | 'stale';

interface CacheEntry {
  decision: Exclude<KubeDecision, 'unavailable'>;
  freshUntil: number;
  staleUntil: number;
}

const MAX_CACHE_ENTRIES = 10_000;

/** What the sidecar's own identity needs (the chart's ClusterRole grants exactly this). */
export const NEEDED_RBAC = 'create tokenreviews.authentication.k8s.io, create subjectaccessreviews.authorization.k8s.io';
export const MISSING_RBAC_MESSAGE = "kubernetes RBAC: the sidecar's own ServiceAccount may not create TokenReviews or SubjectAccessReviews";
export const OWN_CREDENTIALS_MESSAGE = "kubernetes API refused the sidecar's own credentials";
export const UNAVAILABLE_MESSAGE = 'kubernetes API unavailable for an auth decision';

/** Codes of a server certificate the configured CA does not verify. */
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A configuration the sidecar cannot start with: main exits 2 with this one line. */
export class KubernetesSetupError extends Error {
  readonly code = 'KUBERNETES_SETUP';
}

/** Every certificate of a PEM text; throws unless there is at least one and each parses. */
function parseCertificates(pem: string, source: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new KubernetesSetupError(`kubernetes CA ${source} holds no PEM certificate`);
  for (const b of blocks) {
    try {
      new crypto.X509Certificate(b);
    } catch (err) {
      throw new KubernetesSetupError(`kubernetes CA ${source} holds an invalid certificate: ${(err as Error).message}`);
    }
  }
}

interface Tls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

type K8s = typeof import('@kubernetes/client-node');

interface Apis {
  authn: InstanceType<K8s['AuthenticationV1Api']>;
  authz: InstanceType<K8s['AuthorizationV1Api']>;
  /** The file the credentials' token is read from, if they come from one. */
  tokenFile: string | undefined;
}

/** What the start check found; `ok` once the sidecar may create both reviews. */
type Check = { ok: true } | { ok: false; reason: string };

export class KubernetesAuthorizer {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly pending = new Map<string, Promise<KubeDecision>>();
  private tokens: number;
  private lastRefill: number;
  private apis: Promise<Apis> | undefined;
  /** The API calls in flight: close() aborts them. */
  private readonly calls = new Set<AbortController>();
  private closed = false;
  /** The one keep-alive agent every call goes through (remade only when a changed CA is read). */
  private agent: https.Agent | undefined;
  private tls: Tls = {};
  private caFile: string | undefined;
  private check: Check = { ok: false, reason: 'the kubernetes API has not been checked yet' };
  private checkTimer: NodeJS.Timeout | undefined;

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

  /**
   * Loads the client library, the credentials and the CA now, so a broken setup shows at start:
   * throws a KubernetesSetupError for a configuration or CA the sidecar cannot work with.
   */
  async init(): Promise<void> {
    await this.loadApis();
  }

  /** True once the start check has passed (the sidecar's identity may create both reviews). */
  ready(): boolean {
    return this.check.ok;
  }

  /**
   * Asks the API server whether the sidecar's own identity may create TokenReviews and
   * SubjectAccessReviews, again with a backoff (0.5 s doubling to 30 s) until it once may.
   */
  startCheck(): void {
    let delay = 500;
    const attempt = async (): Promise<void> => {
      this.checkTimer = undefined;
      if (this.closed) return;
      const found = await this.selfCheck();
      if (this.closed) return;
      const changed = found.ok !== this.check.ok || (!found.ok && !this.check.ok && found.reason !== this.check.reason);
      this.check = found;
      if (found.ok) {
        this.logger.info('kubernetes API checked: the sidecar may create TokenReviews and SubjectAccessReviews');
        return;
      }
      if (changed) this.logger.error(`kubernetes auth not ready: ${found.reason}`, { retry_ms: delay });
      this.checkTimer = setTimeout(() => void attempt(), delay);
      this.checkTimer.unref();
      delay = Math.min(delay * 2, 30_000);
    };
    void attempt();
  }

  private async selfCheck(): Promise<Check> {
    const { authz } = await this.loadApis();
    const may = (group: string, resource: string) =>
      this.call(
        (signal) =>
          authz.createSelfSubjectAccessReview(
            {
              body: {
                apiVersion: 'authorization.k8s.io/v1',
                kind: 'SelfSubjectAccessReview',
                spec: { resourceAttributes: { group, resource, verb: 'create' } },
              },
            },
            this.perCall(signal),
          ),
        false,
      );
    try {
      // One after the other: on the one keep-alive connection.
      const tr = await may('authentication.k8s.io', 'tokenreviews');
      const sar = await may('authorization.k8s.io', 'subjectaccessreviews');
      const missing = [
        ...(tr.status?.allowed === true ? [] : ['create tokenreviews.authentication.k8s.io']),
        ...(sar.status?.allowed === true ? [] : ['create subjectaccessreviews.authorization.k8s.io']),
      ];
      if (missing.length === 0) return { ok: true };
      return { ok: false, reason: `${MISSING_RBAC_MESSAGE}: it needs ${missing.join(', ')} (a ClusterRole bound to it)` };
    } catch (err) {
      const code = (err as Error & { code?: string }).code ?? 'API_ERROR';
      if (code === 'HTTP_401') return { ok: false, reason: `${OWN_CREDENTIALS_MESSAGE} (401): check its token` };
      if (code === 'HTTP_403') return { ok: false, reason: `${MISSING_RBAC_MESSAGE} (403 on SelfSubjectAccessReview): it needs ${NEEDED_RBAC}` };
      if (TLS_TRUST_CODES.has(code))
        return { ok: false, reason: `the API server's certificate is not trusted by the configured CA${this.caFile ? ` (${this.caFile})` : ''}: ${code}` };
      return { ok: false, reason: `the API server could not be asked: ${code}` };
    }
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
        (err: Error & { code?: string; call?: string }) => {
          const stale = this.cache.get(key);
          const code = err.code ?? err.message;
          const cachedToo = stale !== undefined;
          // The API server answered, and refused the sidecar itself: its RBAC or its token, not an outage.
          if (code === 'HTTP_403') this.logger.error(MISSING_RBAC_MESSAGE, { code, call: err.call, needs: NEEDED_RBAC, cached: cachedToo });
          else if (code === 'HTTP_401') this.logger.error(OWN_CREDENTIALS_MESSAGE, { code, call: err.call, cached: cachedToo });
          else this.logger.warn(UNAVAILABLE_MESSAGE, { code, cached: cachedToo });
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
    ).catch((err: Error) => {
      throw Object.assign(err, { call: 'TokenReview' });
    });
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
    ).catch((err: Error) => {
      throw Object.assign(err, { call: 'SubjectAccessReview' });
    });
    return sar.status?.allowed === true ? 'allow' : 'deny';
  }

  /**
   * Ends every API call in flight (their connections close now), the start check's retries and
   * the agent's idle connections, and makes later calls fail at once: what the sidecar's stop calls.
   */
  close(): void {
    this.closed = true;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    for (const c of this.calls) c.abort();
    this.calls.clear();
    this.agent?.destroy();
  }

  /**
   * Rate limit (review calls only), then the call, aborted at METRICS_KUBERNETES_TIMEOUT_MS or by
   * close(); errors become `{code}` errors that name no token. The timer is cleared when the call
   * ends (AbortSignal.timeout's ran on for the whole timeout after every call).
   */
  private async call<T>(fn: (signal: AbortSignal) => Promise<T>, limited = true): Promise<T> {
    if (this.closed) throw Object.assign(new Error('the sidecar is stopping'), { code: 'ESHUTDOWN' });
    if (limited && !this.takeToken()) throw Object.assign(new Error('rate limited'), { code: 'RATE_LIMITED' });
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
      const code = typeof e.code === 'string' ? e.code : e.name;
      if (TLS_TRUST_CODES.has(code)) this.reloadCa();
      throw Object.assign(new Error(`kubernetes API call failed: ${code}`), { code: typeof e.code === 'string' ? e.code : 'API_ERROR' });
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

  /** The keep-alive agent for the current TLS material (the previous one's idle connections closed). */
  private makeAgent(): void {
    this.agent?.destroy();
    // Required here, not imported: plain start-up (no Kubernetes auth) never loads node:https.
    const { Agent } = require('node:https') as typeof import('node:https');
    this.agent = new Agent({ keepAlive: true, ...this.tls });
  }

  /** After a certificate the CA did not verify: read the CA file again, and remake the agent if it changed. */
  private reloadCa(): void {
    if (this.caFile === undefined || this.closed) return;
    let ca: Buffer;
    try {
      ca = fs.readFileSync(this.caFile);
      parseCertificates(ca.toString('utf8'), this.caFile);
    } catch {
      return; // the check and the next failure say what is wrong; the agent keeps the CA it had
    }
    if (this.tls.ca !== undefined && ca.equals(this.tls.ca)) return;
    this.tls = { ...this.tls, ca };
    this.makeAgent();
    this.logger.info('kubernetes CA file changed: read again', { file: this.caFile });
  }

  private loadApis(): Promise<Apis> {
    this.apis ??= (async () => {
      const k8s = require('@kubernetes/client-node') as K8s;
      const kc = new k8s.KubeConfig();
      try {
        if (this.cfg.kubeconfig) kc.loadFromFile(this.cfg.kubeconfig);
        else kc.loadFromCluster();
      } catch (err) {
        throw new KubernetesSetupError(`kubernetes configuration could not be read: ${(err as Error).message}`);
      }
      const cluster = kc.getCurrentCluster();
      if (!cluster) throw new KubernetesSetupError('no cluster in the Kubernetes configuration');
      const user = kc.getCurrentUser();
      // The TLS material, read once (the library read it again for every call).
      const read = (file: string | undefined, data: string | undefined, what: string): Buffer | undefined => {
        if (file) {
          try {
            return fs.readFileSync(file);
          } catch (err) {
            throw new KubernetesSetupError(`kubernetes ${what} ${file} could not be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
          }
        }
        return data ? Buffer.from(data, 'base64') : undefined;
      };
      const ca = read(cluster.caFile, cluster.caData, 'CA file');
      if (ca) parseCertificates(ca.toString('utf8'), cluster.caFile ?? '(certificate-authority-data)');
      this.caFile = cluster.caFile;
      const tls: Tls = { ca, cert: read(user?.certFile, user?.certData, 'client certificate'), key: read(user?.keyFile, user?.keyData, 'client key') };
      if (cluster.skipTLSVerify) tls.rejectUnauthorized = false;
      if (cluster.tlsServerName) tls.servername = cluster.tlsServerName;
      for (const k of Object.keys(tls) as (keyof Tls)[]) if (tls[k] === undefined) delete tls[k];
      this.tls = tls;
      this.makeAgent();
      const provider = user?.authProvider as { config?: { tokenFile?: string } } | undefined;
      this.tokenFile = provider?.config?.tokenFile;
      this.observable = k8s.Observable;
      // The kubeconfig's own authentication (a token, a token file, exec...) for the header, this
      // one agent for the connection: the library's applySecurityAuthentication would make an agent per call.
      const headerOf = kc as unknown as { applyAuthorizationHeader(opts: { headers?: Record<string, string> }): Promise<void> };
      const auth: import('@kubernetes/client-node').SecurityAuthentication = {
        getName: () => 'metrics-sidecar kubeconfig',
        applySecurityAuthentication: async (ctx) => {
          const opts: { headers: Record<string, string> } = { headers: {} };
          await headerOf.applyAuthorizationHeader(opts);
          if (user?.impersonateUser) opts.headers['Impersonate-User'] = user.impersonateUser;
          for (const [name, value] of Object.entries(opts.headers)) ctx.setHeaderParam(name, String(value));
          ctx.setAgent(this.agent!);
        },
      };
      const config = k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(cluster.server, {}), authMethods: { default: auth } });
      return { authn: new k8s.AuthenticationV1Api(config), authz: new k8s.AuthorizationV1Api(config), tokenFile: this.tokenFile };
    })();
    return this.apis;
  }
}
