/**
 * The access gate in front of the metrics path on both listeners (DESIGN.md, "Access"):
 * 1. with METRICS_ALLOWED_CIDRS, the client address must be in it;
 * 2. with any credential method configured, one must succeed: basic auth, a bearer API key with
 *    the `metrics` scope, or a Kubernetes token allowed to `get` the path;
 * 3. nothing configured = open (a warning is logged at start).
 * On the main port every failure is a 404 (the tree is hidden); on the metrics port 401 with
 * WWW-Authenticate, or 403. Bodies say no more than the status; the reason goes to the log and
 * to metrics_sidecar_auth_failures_total, never a credential.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Context, Next } from 'koa';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import { Counter, Histogram, type Registry } from '../metrics/registry';
import { clientAddressOf, inAny } from './client-address';
import { BasicCredentials, findApiKey, presentedCredentials } from './credentials';
import { KubernetesAuthorizer } from './kubernetes';
import { SecretFile } from './secret-file';
import { parseApiKeys, type ApiKey } from '../formats/api-keys';
import { parsePassword } from '../formats/password-file';

export type Listener = 'main' | 'metrics';
export type Reason = 'cidr' | 'missing' | 'malformed' | 'bad_credentials' | 'scope' | 'k8s_unauthenticated' | 'k8s_denied' | 'k8s_unavailable';

export interface Denial {
  status: 401 | 403;
  reason: Reason;
  /** `cidr` only: the client address the allow-list refused (as computed, X-Forwarded-For from trusted proxies included). */
  client?: string;
}

/** The scope an API key needs to read metrics. */
export const METRICS_SCOPE = 'metrics';

const AUTH_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class AccessGate {
  private readonly basic: { username: string; password: SecretFile<string> | string } | undefined;
  private readonly apiKeys: SecretFile<ApiKey[]> | undefined;
  private readonly kube: KubernetesAuthorizer | undefined;
  private readonly failures: Counter;
  private readonly duration: Histogram;
  private readonly challenge: string[];
  private basicCache: { password: string; creds: BasicCredentials } | undefined;

  /**
   * Told the client address of each request the CIDR allow-list refused (the status page's access
   * section). Only those: a client refused for its credentials is never named.
   */
  onCidrRefused: ((address: string, listener: Listener) => void) | undefined;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    const a = config.access;
    if (a.basicAuth) {
      const pw = a.basicAuth.password;
      this.basic = {
        username: a.basicAuth.username,
        password: pw.file !== undefined ? new SecretFile(pw.file, parsePassword, logger, 'basic auth password', a.secretReloadMs) : (pw.value ?? ''),
      };
    }
    if (a.apiKeysFile) this.apiKeys = new SecretFile(a.apiKeysFile, parseApiKeys, logger, 'API keys', a.secretReloadMs);

    this.failures = registry.register(
      new Counter({
        name: 'metrics_sidecar_auth_failures_total',
        help: 'Requests for the metrics path refused by the access gate, by listener and reason.',
        labelNames: ['listener', 'reason'],
      }),
    );
    this.duration = registry.register(
      new Histogram({
        name: 'metrics_sidecar_auth_duration_seconds',
        help: 'Time to decide whether a metrics request may pass, in seconds.',
        labelNames: ['listener'],
        buckets: AUTH_BUCKETS,
      }),
    );
    if (a.kubernetes) {
      const cache = registry.register(
        new Counter({
          name: 'metrics_sidecar_kubernetes_auth_cache_total',
          help: 'Kubernetes auth decisions by cache outcome: hit, miss (asked the API) or stale (API unreachable, cached decision used).',
          labelNames: ['result'],
        }),
      );
      this.kube = new KubernetesAuthorizer(a.kubernetes, logger, (outcome) => cache.inc([outcome]));
    }
    this.challenge = [];
    if (this.basic) this.challenge.push('Basic realm="metrics", charset="UTF-8"');
    if (this.apiKeys || this.kube) this.challenge.push('Bearer realm="metrics"');
  }

  /** True when nothing is configured: every client passes. */
  get open(): boolean {
    return this.config.access.allowedCidrs.length === 0 && !this.hasCredentials;
  }

  private get hasCredentials(): boolean {
    return this.basic !== undefined || this.apiKeys !== undefined || this.kube !== undefined;
  }

  /** Loads what must work before serving (the Kubernetes client, credentials and CA): throws a KubernetesSetupError if they cannot. */
  async init(): Promise<void> {
    await this.kube?.init();
  }

  /** Starts asking the Kubernetes API whether the sidecar may create its reviews (readiness waits for it). */
  startChecks(): void {
    this.kube?.startCheck();
  }

  /** False while the Kubernetes API's start check has not passed: /readyz answers 503. */
  ready(): boolean {
    return this.kube?.ready() ?? true;
  }

  /** Stops watching the secret files and ends the Kubernetes API calls in flight. */
  close(): void {
    if (this.basic && typeof this.basic.password !== 'string') this.basic.password.close();
    this.apiKeys?.close();
    this.kube?.close();
  }

  /** Undefined when the request may pass. `path` is the normalised request path. */
  async check(req: http.IncomingMessage, path: string, queryKey: string | undefined): Promise<Denial | undefined> {
    const a = this.config.access;
    if (a.allowedCidrs.length > 0) {
      const xff = req.headers['x-forwarded-for'];
      const client = clientAddressOf(req.socket.remoteAddress, Array.isArray(xff) ? xff.join(',') : xff, a.trustedProxies);
      if (client === undefined) return { status: 403, reason: 'cidr', client: '(unparseable address)' };
      if (!inAny(client, a.allowedCidrs)) return { status: 403, reason: 'cidr', client: client.toString() };
    }
    if (!this.hasCredentials) return undefined;

    const presented = presentedCredentials(req.headers.authorization);
    switch (presented.kind) {
      case 'malformed':
        return { status: 401, reason: 'malformed' };
      case 'basic':
        return this.basic && this.basicCredentials().matches(presented.username, presented.password) ? undefined : { status: 401, reason: 'bad_credentials' };
      case 'bearer':
        return this.checkToken(presented.token, path, true);
      case 'apikey':
        return this.checkToken(presented.token, path, false);
      case 'none':
        if (queryKey !== undefined && a.apiKeyQueryParam && this.apiKeys) return this.checkToken(queryKey, path, false);
        return { status: 401, reason: 'missing' };
    }
  }

  private async checkToken(token: string, path: string, allowKubernetes: boolean): Promise<Denial | undefined> {
    const key = this.apiKeys ? findApiKey(this.apiKeys.current, token) : undefined;
    if (key) return key.scopes.has(METRICS_SCOPE) ? undefined : { status: 403, reason: 'scope' };
    if (!this.kube || !allowKubernetes) return { status: 401, reason: 'bad_credentials' };
    switch (await this.kube.authorize(token, path)) {
      case 'allow':
        return undefined;
      case 'deny':
        return { status: 403, reason: 'k8s_denied' };
      case 'unauthenticated':
        return { status: 401, reason: 'k8s_unauthenticated' };
      case 'unavailable':
        return { status: 401, reason: 'k8s_unavailable' };
    }
  }

  /** Digests of the current password, rebuilt only when a rotated file changed it. */
  private basicCredentials(): BasicCredentials {
    const b = this.basic!;
    const password = typeof b.password === 'string' ? b.password : b.password.current;
    if (this.basicCache?.password !== password) this.basicCache = { password, creds: new BasicCredentials(b.username, password) };
    return this.basicCache.creds;
  }

  /** Koa middleware guarding the route it is mounted on. */
  middleware(listener: Listener) {
    const durationSeries = this.duration.child([listener]);
    return async (ctx: Context, next: Next): Promise<void> => {
      if (this.open) return next();
      const started = performance.now();
      const q = ctx.query.api_key;
      const denial = await this.check(ctx.req, ctx.path, typeof q === 'string' ? q : undefined);
      if (durationSeries) this.duration.observeOn(durationSeries, (performance.now() - started) / 1000);
      if (denial === undefined) return next();
      this.failures.inc([listener, denial.reason]);
      if (denial.client !== undefined) this.onCidrRefused?.(denial.client, listener);
      this.logger.debug('metrics request refused', { listener, reason: denial.reason, peer: ctx.req.socket.remoteAddress });
      if (listener === 'main') {
        ctx.status = 404;
        ctx.body = 'not found\n';
        return;
      }
      ctx.status = denial.status;
      ctx.body = denial.status === 401 ? 'unauthorized\n' : 'forbidden\n';
      if (denial.status === 401 && this.challenge.length > 0) ctx.set('www-authenticate', this.challenge);
    };
  }
}
