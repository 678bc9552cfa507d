/**
 * The only module that reads the environment. `loadConfig` validates every variable in one pass,
 * throws a ConfigError naming each bad one, and otherwise returns a frozen, typed Config.
 */
import { EnvReader, type Cidr, type Env, type Problem } from './parse';
import { normalizePath } from '../proxy/reserved';

export type { Cidr, Problem } from './parse';

export type Role = 'web' | 'worker';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** prometheus-flask-exporter's default buckets, so its dashboards read the same. */
export const DEFAULT_HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export interface SecretSource {
  /** The value given inline (never logged). */
  value?: string;
  /** A mounted file holding the value, re-read when it changes. */
  file?: string;
}

export interface Config {
  role: Role;
  appName: string;
  logLevel: LogLevel;
  listenPort: number;
  listenHost: string | undefined;
  upstream: URL | undefined;
  upstreamTimeoutMs: number;
  upstreamMaxConnections: number;
  serveOnMainPort: boolean;
  prometheusPort: number;
  /** Normalised (see proxy/reserved), so both listeners compare normalised request paths to it. */
  metricsPath: string;
  enableDbMetrics: boolean;
  http: {
    prefix: string;
    buckets: readonly number[];
    routePatterns: readonly string[];
    excludePaths: readonly string[];
    maxSeriesPerFamily: number;
  };
  access: {
    basicAuth: { username: string; password: SecretSource } | undefined;
    apiKeysFile: string | undefined;
    allowedCidrs: readonly Cidr[];
    trustedProxies: readonly Cidr[];
    /** Also accept an API key from the `api_key` query parameter (keys then appear in URLs and logs of proxies). */
    apiKeyQueryParam: boolean;
    /** How often mounted secret files are checked for changes. */
    secretReloadMs: number;
    kubernetes: KubernetesAuthConfig | undefined;
  };
  statsd: {
    port: number;
    host: string;
    mappingFile: string | undefined;
    /** SO_RCVBUF asked for the UDP socket (the kernel caps it at net.core.rmem_max). */
    receiveBufferBytes: number;
  };
  mergeTargets: readonly URL[];
  /** A merge target's body is refused past this size. */
  mergeMaxBytes: number;
  shutdown: { timeoutMs: number; delayMs: number };
  /** App-aware health (UPSTREAM_HEALTH_PATH); undefined = readiness is the sidecar's own only. */
  appHealth: AppHealthConfig | undefined;
}

export interface AppHealthConfig {
  /** The app's health URL: UPSTREAM_URL with UPSTREAM_HEALTH_PATH (path and query). */
  url: URL;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failed checks that make the sidecar unready. */
  failureThreshold: number;
  /** Consecutive successful checks that make it ready again (and ready at start). */
  successThreshold: number;
}

export interface KubernetesAuthConfig {
  /** A kubeconfig file; unset = the in-cluster ServiceAccount config. */
  kubeconfig: string | undefined;
  /** Audiences the token must be valid for (TokenReview spec.audiences); empty = the API server's. */
  audiences: readonly string[];
  allowTtlMs: number;
  denyTtlMs: number;
  /** How long a cached decision keeps serving past its TTL while the API server is unreachable. */
  staleMs: number;
  timeoutMs: number;
  /** TokenReview + SubjectAccessReview calls per second at most (a burst of the same size is allowed). */
  maxRequestsPerSecond: number;
}

export class ConfigError extends Error {
  readonly code = 'ERR_SIDECAR_CONFIG';
  constructor(readonly problems: readonly Problem[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}): ` +
        problems.map((p) => `${p.variable}: ${p.message}`).join('; '),
    );
    this.name = 'ConfigError';
  }
}

const PROMETHEUS_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const ROUTE_PATTERN = /^\/([^/?#\s]+(\/[^/?#\s]+)*\/?)?$/;
const MAX_MS = 24 * 3600 * 1000;

export function loadConfig(env: Env = process.env): Config {
  const r = new EnvReader(env);

  const listenPort = r.port('LISTEN_PORT', 8080);
  const prometheusPort = r.port('PROMETHEUS_PORT', 8491);
  const serveOnMainPort = r.bool('SERVE_PROMETHEUS_ENDPOINT', false);

  const upstream = r.url('UPSTREAM_URL', ['http:']);
  if (upstream && upstream.pathname !== '/') {
    r.problem('UPSTREAM_URL', 'must not have a path: requests are forwarded with their own path');
  }
  if (upstream && (upstream.search || upstream.hash)) {
    r.problem('UPSTREAM_URL', 'must not have a query or fragment');
  }

  let metricsPath = r.string('METRICS_PATH', '/debug/metrics');
  if (!metricsPath.startsWith('/')) {
    r.problem('METRICS_PATH', 'must start with "/"');
  } else {
    metricsPath = normalizePath(metricsPath);
    if (serveOnMainPort && !metricsPath.startsWith('/debug/')) {
      r.problem('METRICS_PATH', 'must be under /debug/ to be served on the main port (SERVE_PROMETHEUS_ENDPOINT=true)');
    }
  }

  if (listenPort === 0 && serveOnMainPort) {
    r.problem('SERVE_PROMETHEUS_ENDPOINT', 'is true but LISTEN_PORT=0 turns the main listener off');
  }
  if (listenPort === 0 && prometheusPort === 0) {
    r.problem('PROMETHEUS_PORT', 'and LISTEN_PORT are both 0: the sidecar would serve nothing');
  } else if (listenPort !== 0 && listenPort === prometheusPort) {
    r.problem('PROMETHEUS_PORT', `must differ from LISTEN_PORT (both ${listenPort})`);
  }

  const role = r.oneOf<Role>('SIDECAR_ROLE', ['web', 'worker'], listenPort === 0 ? 'worker' : 'web');

  const prefix = r.string('HTTP_METRICS_PREFIX', 'flask_http_request');
  if (!PROMETHEUS_NAME.test(prefix)) r.problem('HTTP_METRICS_PREFIX', `${JSON.stringify(prefix)} is not a valid metric name`);

  const routePatterns = r.list('ROUTE_PATTERNS');
  for (const p of routePatterns) {
    if (!ROUTE_PATTERN.test(p)) r.problem('ROUTE_PATTERNS', `${JSON.stringify(p)} is not a path pattern like /users/:id or /static/*`);
  }
  const excludePaths = r.list('METRICS_EXCLUDE_PATHS');
  for (const p of excludePaths) {
    if (!p.startsWith('/')) r.problem('METRICS_EXCLUDE_PATHS', `${JSON.stringify(p)} must start with "/"`);
  }

  // Basic auth: the username plus the password inline or from a mounted file, never both.
  const username = r.raw('METRICS_BASIC_AUTH_USERNAME');
  const passwordValue = r.raw('METRICS_BASIC_AUTH_PASSWORD');
  const passwordFile = r.file('METRICS_BASIC_AUTH_PASSWORD_FILE');
  if (passwordValue !== undefined && r.raw('METRICS_BASIC_AUTH_PASSWORD_FILE') !== undefined) {
    r.problem('METRICS_BASIC_AUTH_PASSWORD', 'and METRICS_BASIC_AUTH_PASSWORD_FILE are both set; use one');
  }
  const hasPassword = passwordValue !== undefined || r.raw('METRICS_BASIC_AUTH_PASSWORD_FILE') !== undefined;
  if (username !== undefined && !hasPassword) {
    r.problem('METRICS_BASIC_AUTH_PASSWORD', 'is required when METRICS_BASIC_AUTH_USERNAME is set (or use _FILE)');
  }
  if (username === undefined && hasPassword) {
    r.problem('METRICS_BASIC_AUTH_USERNAME', 'is required when a basic auth password is set');
  }
  if (username !== undefined && username.includes(':')) {
    r.problem('METRICS_BASIC_AUTH_USERNAME', 'must not contain ":" (RFC 7617)');
  }
  const basicAuth =
    username !== undefined && hasPassword
      ? { username, password: passwordFile !== undefined ? { file: passwordFile } : { value: passwordValue } }
      : undefined;

  const mergeTargets: URL[] = [];
  for (const item of r.list('MERGE_TARGETS')) {
    const u = r.parseUrl('MERGE_TARGETS', item, ['http:', 'https:']);
    if (u) mergeTargets.push(u);
  }

  // App-aware health: the path is checked on UPSTREAM_URL, so it needs one.
  const healthPath = r.raw('UPSTREAM_HEALTH_PATH');
  let appHealth: AppHealthConfig | undefined;
  const healthTiming = {
    intervalMs: r.int('UPSTREAM_HEALTH_INTERVAL_MS', 5_000, 100, MAX_MS),
    timeoutMs: r.int('UPSTREAM_HEALTH_TIMEOUT_MS', 2_000, 1, 60_000),
    failureThreshold: r.int('UPSTREAM_HEALTH_FAILURE_THRESHOLD', 3, 1, 1_000),
    successThreshold: r.int('UPSTREAM_HEALTH_SUCCESS_THRESHOLD', 1, 1, 1_000),
  };
  if (healthPath !== undefined) {
    if (!healthPath.startsWith('/') || healthPath.startsWith('//') || /[\s#]/.test(healthPath)) {
      r.problem('UPSTREAM_HEALTH_PATH', `${JSON.stringify(healthPath)} must be a path on the app starting with "/" (a query is allowed)`);
    } else if (upstream === undefined) {
      r.problem('UPSTREAM_HEALTH_PATH', 'needs UPSTREAM_URL: the path is checked on the app');
    } else {
      appHealth = { url: new URL(healthPath, upstream), ...healthTiming };
    }
  }

  const config: Config = {
    role,
    appName: r.string('APP_NAME', 'app'),
    logLevel: r.oneOf<LogLevel>('LOG_LEVEL', ['debug', 'info', 'warn', 'error'], 'info'),
    listenPort,
    listenHost: r.raw('LISTEN_HOST'),
    upstream,
    upstreamTimeoutMs: r.int('UPSTREAM_TIMEOUT_MS', 60_000, 1, MAX_MS),
    upstreamMaxConnections: r.int('UPSTREAM_MAX_CONNECTIONS', 0, 0, 100_000),
    serveOnMainPort,
    prometheusPort,
    metricsPath,
    enableDbMetrics: r.bool('ENABLE_DB_METRICS', false),
    http: {
      prefix,
      buckets: r.buckets('HTTP_DURATION_BUCKETS', DEFAULT_HTTP_BUCKETS),
      routePatterns,
      excludePaths,
      maxSeriesPerFamily: r.int('METRICS_MAX_SERIES_PER_FAMILY', 2000, 1, 10_000_000),
    },
    access: {
      basicAuth,
      apiKeysFile: r.file('METRICS_API_KEYS_FILE'),
      allowedCidrs: r.cidrs('METRICS_ALLOWED_CIDRS'),
      trustedProxies: r.cidrs('TRUSTED_PROXIES'),
      apiKeyQueryParam: r.bool('METRICS_API_KEY_QUERY_PARAM', false),
      secretReloadMs: r.int('SECRET_RELOAD_INTERVAL_MS', 5_000, 50, MAX_MS),
      kubernetes: r.bool('METRICS_KUBERNETES_AUTH', false)
        ? {
            kubeconfig: r.file('KUBECONFIG'),
            audiences: r.list('METRICS_KUBERNETES_AUDIENCES'),
            allowTtlMs: r.int('METRICS_KUBERNETES_ALLOW_TTL_MS', 60_000, 0, MAX_MS),
            denyTtlMs: r.int('METRICS_KUBERNETES_DENY_TTL_MS', 10_000, 0, MAX_MS),
            staleMs: r.int('METRICS_KUBERNETES_STALE_MS', 300_000, 0, MAX_MS),
            timeoutMs: r.int('METRICS_KUBERNETES_TIMEOUT_MS', 2_000, 1, 60_000),
            maxRequestsPerSecond: r.int('METRICS_KUBERNETES_MAX_REQUESTS_PER_S', 20, 1, 100_000),
          }
        : undefined,
    },
    statsd: {
      port: r.port('STATSD_PORT', 9125),
      host: r.string('STATSD_HOST', '127.0.0.1'),
      mappingFile: r.file('STATSD_MAPPING_FILE'),
      receiveBufferBytes: r.int('STATSD_RECEIVE_BUFFER_BYTES', 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    },
    mergeTargets,
    mergeMaxBytes: r.int('MERGE_MAX_BYTES', 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    shutdown: {
      timeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 25_000, 0, MAX_MS),
      delayMs: r.int('SHUTDOWN_DELAY_MS', 0, 0, MAX_MS),
    },
    appHealth,
  };

  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof URL) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
