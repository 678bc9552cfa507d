/**
 * The only module that reads the environment. `readConfig` validates every variable in one pass,
 * and everything the process will read at start with it (the StatsD mapping file, the API key
 * file, the password file, the kubeconfig), throws a ConfigError naming each bad variable and
 * file, and otherwise returns a frozen, typed Config plus warnings (unknown variables with the
 * sidecar's prefixes, a web role with nothing to forward to). Each variable is declared once in
 * ./variables.ts and read through that entry.
 */
import fs from 'node:fs';
import net from 'node:net';
import type * as YamlModule from 'yaml';
import { EnvReader, readBoundedFile, shownUrl, type Cidr, type Env, type Problem } from './parse';
import { MAX_OPENAPI_BYTES, parseOpenApi } from '../formats/openapi';
import { VARIABLE_NAMES, readVariable, unknownVariables, type VariableName, type ValueOf } from './variables';
import { normalizePath } from '../formats/request-path';
import { parseApiKeys } from '../formats/api-keys';
import { parsePassword } from '../formats/password-file';
import { parseMappingFile, type MappingFile } from './statsd-mapping';
import { MAX_TCP_LINE_BYTES } from '../formats/statsd-line';

export type { Cidr, Problem } from './parse';

export type Role = 'web' | 'worker';
export type { LogLevel } from '../log/logger';
import type { LogLevel } from '../log/logger';

export { DEFAULT_HTTP_BUCKETS } from './variables';

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
  /** ACCESS_LOG: one info line per request. */
  accessLog: boolean;
  /** HELPER_THREADS_NICE: nice increment of every thread but the event loop's (0 = off). */
  helperThreadsNice: number;
  listenPort: number;
  listenHost: string | undefined;
  upstream: URL | undefined;
  upstreamTimeoutMs: number;
  upstreamMaxConnections: number;
  /** UPSTREAM_KEEPALIVE: reuse a client connection's upstream connection (false = one per request). */
  upstreamKeepAlive: boolean;
  /** Request and answer buffering, and the clients' minimum data rates (proxy/transfers.ts). */
  transfers: {
    requestBufferBytes: number;
    responseBufferBytes: number;
    totalBufferBytes: number;
    minDataRate: number;
    graceMs: number;
  };
  /** `Upgrade` protocols passed to the application (lower case); any other Upgrade header is removed. */
  upstreamUpgradeProtocols: readonly string[];
  /** Methods of METHODS_REFUSED_BY_DEFAULT forwarded anyway (UPSTREAM_ALLOWED_METHODS). */
  upstreamAllowedMethods: readonly string[];
  serveOnMainPort: boolean;
  prometheusPort: number;
  /** Normalised (see formats/request-path), so both listeners compare normalised request paths to it. */
  metricsPath: string;
  enableDbMetrics: boolean;
  http: {
    prefix: string;
    buckets: readonly number[];
    /** Exemplars from sampled `traceparent` headers on the RED series (EXEMPLARS). */
    exemplars: boolean;
    /** Native buckets beside the classic ones (RED duration, StatsD timers); undefined = classic only. */
    native: { bucketFactor: number; maxBuckets: number } | undefined;
    routePatterns: readonly string[];
    excludePaths: readonly string[];
    maxSeriesPerFamily: number;
    /** Route templates admitted as `path` values at most (configured patterns included). */
    maxRouteTemplates: number;
    /** A template longer than this is cut at a segment boundary (ends in `/:rest`). */
    routeTemplateMaxLength: number;
    /** Segments of a template at most (the rest becomes `/:rest`). */
    routeTemplateMaxSegments: number;
    /** Distinct literal values a path position may hold under one prefix before it collapses to `:id`; 0 = off. */
    routeSegmentMaxValues: number;
    /** Where the app's OpenAPI document is read (ROUTE_OPENAPI_FILE / ROUTE_OPENAPI_URL); undefined = none. */
    openApi?: OpenApiSourceConfig;
  };
  access: {
    basicAuth: { username: string; password: SecretSource } | undefined;
    apiKeysFile: string | undefined;
    allowedCidrs: readonly Cidr[];
    /** Peers whose X-Forwarded-For the allow-list believes, and whose forwarding headers reach the app. */
    trustedProxies: readonly Cidr[];
    /**
     * Host names (lower case, no trailing dot) besides IP literals and `localhost` whose `Host` may
     * read the status page while the gate is open; `*` = any.
     */
    statusAllowedHosts: readonly string[];
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
    /** The mapping file, parsed and validated at config time. */
    mapping: MappingFile | undefined;
    /** SO_RCVBUF asked for the UDP socket (the kernel caps it at net.core.rmem_max). */
    receiveBufferBytes: number;
    /** Bounds of the TCP listener. */
    tcp: {
      /** Connections open at once; more are closed as they arrive. */
      maxConnections: number;
      /** A connection silent this long is closed. */
      idleTimeoutMs: number;
      /** Bytes of unfinished lines held across all connections. */
      bufferBytesTotal: number;
    };
  };
  /** Memory budgets of the metric store (docs/limits.md, "Limits"). */
  limits: {
    /** Series stored across all sources (the sidecar's own families aside); merged series take what is left. */
    maxSeriesTotal: number;
    /** Characters of label text stored across all series. */
    maxLabelBytesTotal: number;
    /** Labels on one StatsD or merged series. */
    maxLabelsPerSeries: number;
    /** UTF-8 bytes of one label value. */
    maxLabelValueBytes: number;
    /** Families one source (StatsD, each merge target) may create. */
    maxFamiliesPerSource: number;
  };
  mergeTargets: readonly URL[];
  /** A merge target's body is refused past this size. */
  mergeMaxBytes: number;
  shutdown: { timeoutMs: number; delayMs: number };
  /** App-aware health (UPSTREAM_HEALTH_PATH); undefined = readiness is the sidecar's own only. */
  appHealth: AppHealthConfig | undefined;
}

export interface OpenApiSourceConfig {
  /** A mounted file, or the document's URL on the app (UPSTREAM_URL with ROUTE_OPENAPI_URL). */
  source: { file: string } | { url: URL };
  /** Between two reads once one has loaded; 0 = read once. */
  refreshMs: number;
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
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}): ` + problems.map((p) => `${p.variable}: ${p.message}`).join('; '),
    );
    this.name = 'ConfigError';
  }

  /** One line per problem, for a terminal (`--check-config`). */
  get text(): string {
    return `invalid configuration (${this.problems.length} problem${this.problems.length === 1 ? '' : 's'}):\n${this.problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}\n`;
  }
}

export interface Loaded {
  config: Config;
  /** Things that are valid but probably not meant (an unknown variable, a web role with no upstream). */
  warnings: string[];
  /** Every variable's value as read, for --check-config's effective settings. */
  values: ReadonlyMap<VariableName, unknown>;
  /** Variables that only matter with another on (the Kubernetes settings without METRICS_KUBERNETES_AUTH). */
  unused: ReadonlySet<VariableName>;
}

const PROMETHEUS_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const ROUTE_PATTERN = /^\/([^/?#\s]+(\/[^/?#\s]+)*\/?)?$/;
/** An HTTP token (RFC 9110 §5.6.2): what a method is. */
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A DNS name: labels of letters, digits, `-` (and `_`, which some internal names use), 253 characters at most. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * Methods the main port answers 405 without asking the app, unless UPSTREAM_ALLOWED_METHODS
 * lists them: TRACE echoes the request back, `Cookie` and `Authorization` included (cross-site
 * tracing). CONNECT is refused too, always (the sidecar is not a tunnel).
 */
export const METHODS_REFUSED_BY_DEFAULT: readonly string[] = ['TRACE'];

/** Reads and validates the configuration; throws ConfigError. Warnings are dropped (see readConfig). */
export function loadConfig(env: Env = process.env): Config {
  return readConfig(env).config;
}

export function readConfig(env: Env = process.env): Loaded {
  const r = new EnvReader(env);
  const values = new Map<VariableName, unknown>();
  const v = <K extends VariableName>(name: K): ValueOf<K> => {
    const value = readVariable(r, name);
    values.set(name, value);
    return value;
  };

  const listenPort = v('LISTEN_PORT');
  const prometheusPort = v('PROMETHEUS_PORT');
  const serveOnMainPort = v('SERVE_PROMETHEUS_ENDPOINT');

  const upstream = v('UPSTREAM_URL');
  if (upstream && upstream.pathname !== '/') {
    r.problem('UPSTREAM_URL', 'must not have a path: requests are forwarded with their own path');
  }
  if (upstream && (upstream.search || upstream.hash)) {
    r.problem('UPSTREAM_URL', 'must not have a query or fragment');
  }

  let metricsPath = v('METRICS_PATH');
  if (!metricsPath.startsWith('/')) {
    r.problem('METRICS_PATH', 'must start with "/"');
  } else {
    metricsPath = normalizePath(metricsPath);
    values.set('METRICS_PATH', metricsPath);
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

  const statsdPort = v('STATSD_PORT');
  for (const [other, port] of [
    ['LISTEN_PORT', listenPort],
    ['PROMETHEUS_PORT', prometheusPort],
  ] as const) {
    if (statsdPort !== 0 && statsdPort === port) r.problem('STATSD_PORT', `must differ from ${other} (both ${port}): StatsD's TCP listener would take it`);
  }
  const upstreamAllowedMethods: string[] = [];
  for (const m of v('UPSTREAM_ALLOWED_METHODS')) {
    const upper = m.toUpperCase();
    if (METHODS_REFUSED_BY_DEFAULT.includes(upper)) upstreamAllowedMethods.push(upper);
    else if (upper === 'CONNECT') r.problem('UPSTREAM_ALLOWED_METHODS', 'CONNECT is never forwarded: the sidecar is not a tunnel (it answers 405)');
    else if (!HTTP_TOKEN.test(m)) r.problem('UPSTREAM_ALLOWED_METHODS', `${JSON.stringify(m)} is not a method name`);
    else {
      r.problem(
        'UPSTREAM_ALLOWED_METHODS',
        `${upper} is always forwarded: the list names methods refused by default that should reach the app anyway (${METHODS_REFUSED_BY_DEFAULT.join(', ')})`,
      );
    }
  }
  values.set('UPSTREAM_ALLOWED_METHODS', upstreamAllowedMethods);

  const statusAllowedHosts: string[] = [];
  for (const h of v('STATUS_ALLOWED_HOSTS')) {
    const name = h.toLowerCase().replace(/\.$/, '');
    if (name === '*' || net.isIP(name.replace(/^\[(.*)\]$/, '$1')) !== 0 || HOST_NAME.test(name)) statusAllowedHosts.push(name);
    else if (/:\d*$/.test(name)) r.problem('STATUS_ALLOWED_HOSTS', `${JSON.stringify(h)}: give the host name without a port (any port is allowed)`);
    else r.problem('STATUS_ALLOWED_HOSTS', `${JSON.stringify(h)} is not a host name like status.example.com (or * for any)`);
  }
  values.set('STATUS_ALLOWED_HOSTS', statusAllowedHosts);

  const listenHost = bindAddress(r, 'LISTEN_HOST', v('LISTEN_HOST'));
  const statsdHost = bindAddress(r, 'STATSD_HOST', v('STATSD_HOST'));

  const role: Role = v('SIDECAR_ROLE') ?? (listenPort === 0 ? 'worker' : 'web');
  values.set('SIDECAR_ROLE', role);

  const prefix = v('HTTP_METRICS_PREFIX');
  if (!PROMETHEUS_NAME.test(prefix)) {
    r.problem('HTTP_METRICS_PREFIX', `${JSON.stringify(prefix)} is not a valid metric name`);
  } else if (prefix.startsWith('metrics_sidecar_')) {
    r.problem('HTTP_METRICS_PREFIX', "must not start with metrics_sidecar_ (the sidecar's own families)");
  }

  const routePatterns = v('ROUTE_PATTERNS');
  for (const p of routePatterns) {
    if (!ROUTE_PATTERN.test(p)) r.problem('ROUTE_PATTERNS', `${JSON.stringify(p)} is not a path pattern like /users/:id or /static/*`);
  }
  const excludePaths = v('METRICS_EXCLUDE_PATHS');
  for (const p of excludePaths) {
    if (!p.startsWith('/')) r.problem('METRICS_EXCLUDE_PATHS', `${JSON.stringify(p)} must start with "/"`);
  }

  // Basic auth: the username plus the password inline or from a mounted file, never both.
  const username = v('METRICS_BASIC_AUTH_USERNAME');
  const passwordValue = v('METRICS_BASIC_AUTH_PASSWORD');
  const passwordFileSet = r.raw('METRICS_BASIC_AUTH_PASSWORD_FILE') !== undefined;
  const passwordFile = v('METRICS_BASIC_AUTH_PASSWORD_FILE');
  r.fileContent('METRICS_BASIC_AUTH_PASSWORD_FILE', passwordFile, parsePassword);
  if (passwordValue !== undefined && passwordFileSet) {
    r.problem('METRICS_BASIC_AUTH_PASSWORD', 'and METRICS_BASIC_AUTH_PASSWORD_FILE are both set; use one');
  }
  const hasPassword = passwordValue !== undefined || passwordFileSet;
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
    username !== undefined && hasPassword ? { username, password: passwordFile !== undefined ? { file: passwordFile } : { value: passwordValue } } : undefined;

  const apiKeysFile = v('METRICS_API_KEYS_FILE');
  r.fileContent('METRICS_API_KEYS_FILE', apiKeysFile, parseApiKeys);

  const mergeTargets: URL[] = [];
  for (const item of v('MERGE_TARGETS')) {
    const u = r.parseUrl('MERGE_TARGETS', item, ['http:', 'https:']);
    if (u) mergeTargets.push(u);
  }

  // StatsD TCP: the budget must hold one whole line, or a line near the limit would close its connection instead of being read.
  const statsdTcp = {
    maxConnections: v('STATSD_TCP_MAX_CONNECTIONS'),
    idleTimeoutMs: v('STATSD_TCP_IDLE_TIMEOUT_MS'),
    bufferBytesTotal: v('STATSD_TCP_BUFFER_BYTES_TOTAL'),
  };
  if (statsdTcp.bufferBytesTotal < MAX_TCP_LINE_BYTES + 1) {
    r.problem(
      'STATSD_TCP_BUFFER_BYTES_TOTAL',
      `${statsdTcp.bufferBytesTotal} cannot hold one whole line: at least ${MAX_TCP_LINE_BYTES + 1} (64 KiB, and the CR of a CR LF)`,
    );
  }

  const mappingFile = v('STATSD_MAPPING_FILE');
  const mapping = r.fileContent('STATSD_MAPPING_FILE', mappingFile, parseMappingFile);

  let kubernetes: KubernetesAuthConfig | undefined;
  if (v('METRICS_KUBERNETES_AUTH')) {
    const kubeconfig = v('KUBECONFIG');
    if (kubeconfig !== undefined) r.fileContent('KUBECONFIG', kubeconfig, checkKubeconfig);
    else if (r.raw('KUBECONFIG') === undefined) checkInCluster(r, env);
    kubernetes = {
      kubeconfig,
      audiences: v('METRICS_KUBERNETES_AUDIENCES'),
      allowTtlMs: v('METRICS_KUBERNETES_ALLOW_TTL_MS'),
      denyTtlMs: v('METRICS_KUBERNETES_DENY_TTL_MS'),
      staleMs: v('METRICS_KUBERNETES_STALE_MS'),
      timeoutMs: v('METRICS_KUBERNETES_TIMEOUT_MS'),
      maxRequestsPerSecond: v('METRICS_KUBERNETES_MAX_REQUESTS_PER_S'),
    };
  }

  // The app's OpenAPI document: a mounted file (validated now, as a start would read it) or a path on the app.
  const openApiFile = v('ROUTE_OPENAPI_FILE');
  const openApiPath = v('ROUTE_OPENAPI_URL');
  let openApi: OpenApiSourceConfig | undefined;
  const refreshMs = v('ROUTE_OPENAPI_REFRESH_S') * 1000;
  if (openApiFile !== undefined && openApiPath !== undefined) {
    r.problem('ROUTE_OPENAPI_URL', 'and ROUTE_OPENAPI_FILE are both set; use one');
  } else if (openApiFile !== undefined) {
    try {
      parseOpenApi(readBoundedFile(openApiFile, MAX_OPENAPI_BYTES));
      openApi = { source: { file: openApiFile }, refreshMs };
    } catch (err) {
      r.problem('ROUTE_OPENAPI_FILE', `${JSON.stringify(openApiFile)}: ${(err as Error).message}`);
    }
  } else if (openApiPath !== undefined) {
    if (!openApiPath.startsWith('/') || openApiPath.startsWith('//') || /[\s#]/.test(openApiPath)) {
      r.problem('ROUTE_OPENAPI_URL', `${shownUrl(openApiPath)} must be a path on the app starting with "/", like /openapi.json (a query is allowed)`);
    } else if (upstream === undefined) {
      r.problem('ROUTE_OPENAPI_URL', 'needs UPSTREAM_URL: the document is fetched from the app');
    } else {
      openApi = { source: { url: new URL(openApiPath, upstream) }, refreshMs };
    }
  }

  // App-aware health: the path is checked on UPSTREAM_URL, so it needs one.
  const healthPath = v('UPSTREAM_HEALTH_PATH');
  let appHealth: AppHealthConfig | undefined;
  const healthTiming = {
    intervalMs: v('UPSTREAM_HEALTH_INTERVAL_MS'),
    timeoutMs: v('UPSTREAM_HEALTH_TIMEOUT_MS'),
    failureThreshold: v('UPSTREAM_HEALTH_FAILURE_THRESHOLD'),
    successThreshold: v('UPSTREAM_HEALTH_SUCCESS_THRESHOLD'),
  };
  if (healthPath !== undefined) {
    if (!healthPath.startsWith('/') || healthPath.startsWith('//') || /[\s#]/.test(healthPath)) {
      r.problem('UPSTREAM_HEALTH_PATH', `${shownUrl(healthPath)} must be a path on the app starting with "/" (a query is allowed)`);
    } else if (upstream === undefined) {
      r.problem('UPSTREAM_HEALTH_PATH', 'needs UPSTREAM_URL: the path is checked on the app');
    } else {
      appHealth = { url: new URL(healthPath, upstream), ...healthTiming };
    }
  }

  const config: Config = {
    role,
    appName: v('APP_NAME'),
    logLevel: v('LOG_LEVEL') ?? 'info',
    accessLog: v('ACCESS_LOG'),
    helperThreadsNice: v('HELPER_THREADS_NICE'),
    listenPort,
    listenHost,
    upstream,
    upstreamTimeoutMs: v('UPSTREAM_TIMEOUT_MS'),
    upstreamMaxConnections: v('UPSTREAM_MAX_CONNECTIONS'),
    upstreamKeepAlive: v('UPSTREAM_KEEPALIVE'),
    transfers: {
      requestBufferBytes: v('UPSTREAM_REQUEST_BUFFER_BYTES'),
      responseBufferBytes: v('UPSTREAM_RESPONSE_BUFFER_BYTES'),
      totalBufferBytes: v('PROXY_BUFFER_BYTES_TOTAL'),
      minDataRate: v('CLIENT_MIN_DATA_RATE'),
      graceMs: v('CLIENT_MIN_DATA_RATE_GRACE_MS'),
    },
    upstreamUpgradeProtocols: v('UPSTREAM_UPGRADE_PROTOCOLS'),
    upstreamAllowedMethods,
    serveOnMainPort,
    prometheusPort,
    metricsPath,
    enableDbMetrics: v('ENABLE_DB_METRICS'),
    http: {
      prefix,
      buckets: v('HTTP_DURATION_BUCKETS'),
      exemplars: v('EXEMPLARS'),
      native:
        v('NATIVE_HISTOGRAM_BUCKET_FACTOR') === 0
          ? undefined
          : { bucketFactor: v('NATIVE_HISTOGRAM_BUCKET_FACTOR'), maxBuckets: v('NATIVE_HISTOGRAM_MAX_BUCKETS') },
      routePatterns,
      excludePaths,
      maxSeriesPerFamily: v('METRICS_MAX_SERIES_PER_FAMILY'),
      maxRouteTemplates: v('ROUTE_TEMPLATES_MAX'),
      routeTemplateMaxLength: v('ROUTE_TEMPLATE_MAX_LENGTH'),
      routeTemplateMaxSegments: v('ROUTE_TEMPLATE_MAX_SEGMENTS'),
      routeSegmentMaxValues: v('ROUTE_SEGMENT_MAX_VALUES'),
      openApi,
    },
    access: {
      basicAuth,
      apiKeysFile,
      allowedCidrs: v('METRICS_ALLOWED_CIDRS'),
      trustedProxies: v('TRUSTED_PROXIES'),
      statusAllowedHosts,
      apiKeyQueryParam: v('METRICS_API_KEY_QUERY_PARAM'),
      secretReloadMs: v('SECRET_RELOAD_INTERVAL_MS'),
      kubernetes,
    },
    statsd: {
      port: statsdPort,
      host: statsdHost ?? '127.0.0.1',
      mappingFile,
      mapping,
      receiveBufferBytes: v('STATSD_RECEIVE_BUFFER_BYTES'),
      tcp: statsdTcp,
    },
    limits: {
      maxSeriesTotal: v('METRICS_MAX_SERIES_TOTAL'),
      maxLabelBytesTotal: v('METRICS_MAX_LABEL_BYTES_TOTAL'),
      maxLabelsPerSeries: v('METRICS_MAX_LABELS_PER_SERIES'),
      maxLabelValueBytes: v('METRICS_MAX_LABEL_VALUE_BYTES'),
      maxFamiliesPerSource: v('METRICS_MAX_FAMILIES_PER_SOURCE'),
    },
    mergeTargets,
    mergeMaxBytes: v('MERGE_MAX_BYTES'),
    shutdown: {
      timeoutMs: v('SHUTDOWN_TIMEOUT_MS'),
      delayMs: v('SHUTDOWN_DELAY_MS'),
    },
    appHealth,
  };

  // A near miss of a known name is almost surely a misspelling that would leave a setting (often
  // a security one) at its default: refused, unless the operator says it belongs to the app.
  const allowUnknown = v('CONFIG_ALLOW_UNKNOWN');
  const warnings: string[] = [];
  for (const u of unknownVariables(env)) {
    const meant = u.suggestion ? `; did you mean ${u.suggestion}?` : '';
    if (u.refused === 'near_miss' && !allowUnknown) {
      r.problem(
        u.name,
        `unknown variable${meant} As written it is ignored and ${u.suggestion} keeps its default (set CONFIG_ALLOW_UNKNOWN=true if the variable belongs to the app)`,
      );
    } else if (u.refused === 'access_control' && !allowUnknown) {
      r.problem(
        u.name,
        `unknown variable named like an access-control setting${meant} As written it is ignored and would leave the metrics endpoint less guarded than meant (set CONFIG_ALLOW_UNKNOWN=true if the variable belongs to the app)`,
      );
    } else {
      warnings.push(`unknown variable ${u.name} is ignored${meant}`);
    }
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  // Variables only read with another on (the Kubernetes settings) get their defaults, for --check-config.
  const unused = new Set(VARIABLE_NAMES.filter((name) => !values.has(name)));
  for (const name of unused) values.set(name, readVariable(new EnvReader({}), name));

  if (role === 'web' && listenPort !== 0 && upstream === undefined) {
    warnings.push('web role without UPSTREAM_URL: the main port forwards nothing and answers 404 outside /debug/');
  }
  return { config: deepFreeze(config), warnings, values, unused };
}

/**
 * An address to bind: an IPv4 or IPv6 literal (brackets allowed and removed) or `localhost`.
 * A host name would be resolved at start and fail there, naming the port instead of the host.
 */
function bindAddress(r: EnvReader, name: 'LISTEN_HOST' | 'STATSD_HOST', value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bare = /^\[.*\]$/.test(value) ? value.slice(1, -1) : value;
  if (net.isIP(bare) !== 0 || bare === 'localhost') return bare;
  r.problem(name, `${JSON.stringify(value)} is not an IP address to bind (e.g. 0.0.0.0, ::, 127.0.0.1) or localhost`);
  return undefined;
}

/** A kubeconfig the client can use: a current context naming a cluster with a server. */
function checkKubeconfig(text: string): void {
  let doc: {
    clusters?: { name?: string; cluster?: { server?: string } }[];
    contexts?: { name?: string; context?: { cluster?: string } }[];
    'current-context'?: string;
  };
  try {
    // yaml (~70 modules) loads only when a kubeconfig is given: plain start-up stays fast.
    const YAML = require('yaml') as typeof YamlModule;
    doc = YAML.parse(text) as typeof doc;
  } catch (err) {
    throw new Error(`not YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (!doc || typeof doc !== 'object') throw new Error('not a kubeconfig (a YAML mapping)');
  const current = doc['current-context'];
  if (!current) throw new Error('no current-context');
  const ctx = (doc.contexts ?? []).find((c) => c?.name === current);
  if (!ctx?.context?.cluster) throw new Error(`current-context ${JSON.stringify(current)} is not among its contexts`);
  const cluster = (doc.clusters ?? []).find((c) => c?.name === ctx.context?.cluster);
  if (!cluster?.cluster?.server) throw new Error(`cluster ${JSON.stringify(ctx.context.cluster)} has no server`);
}

/**
 * In a pod (KUBERNETES_SERVICE_HOST set): the ServiceAccount token must be readable. Outside a
 * pod without KUBECONFIG there is nothing to check here; the client then fails at start.
 */
function checkInCluster(r: EnvReader, env: Env): void {
  const token = '/var/run/secrets/kubernetes.io/serviceaccount/token';
  if (!env.KUBERNETES_SERVICE_HOST) return;
  try {
    fs.accessSync(token, fs.constants.R_OK);
  } catch {
    r.problem('METRICS_KUBERNETES_AUTH', `is true but the ServiceAccount token ${token} cannot be read (automountServiceAccountToken?)`);
  }
}

/** Freezes plain objects and arrays (not URLs or RegExps, whose methods keep internal state). */
function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && (Array.isArray(o) || Object.getPrototypeOf(o) === Object.prototype) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
