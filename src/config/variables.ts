/**
 * The sidecar's environment variables, declared once: name, parser, default and meaning. This
 * table feeds the config reader (src/config/index.ts reads every value through `read`), `--help`,
 * `--check-config`'s effective settings, the configuration table of docs/configuration.md and
 * docs/variables.json (the names the chart reserves), and the "did you mean" warning for unknown
 * variables. Adding a variable is one entry here; a test fails when a name is read that is not in
 * the table, and when that table or docs/variables.json is stale (`npm run docs:config`).
 */
import { type Cidr, type EnvReader } from './parse';

export interface VariableSpec<T> {
  /** The default as an operator reads it in --help and docs/configuration.md. */
  default: string;
  /** What it does (markdown: backticks are kept in --help). */
  doc: string;
  /** Holds a secret: never printed, even by --check-config. */
  secret?: boolean;
  /** Reads and validates the value, recording a problem on the reader when it is wrong. */
  read(r: EnvReader, name: string): T;
}

const MAX_MS = 24 * 3600 * 1000;
/** An HTTP token (RFC 9110 §5.6.2), the protocol name of an `Upgrade` value (without `/version`). */
const UPGRADE_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

const port = (def: number, doc: string): VariableSpec<number> => ({ default: String(def), doc, read: (r, n) => r.port(n, def) });
const int = (def: number, min: number, max: number, doc: string, shown = String(def)): VariableSpec<number> => ({
  default: shown,
  doc,
  read: (r, n) => r.int(n, def, min, max),
});
const ms = (def: number, min: number, doc: string, max = MAX_MS): VariableSpec<number> => int(def, min, max, doc);
const bool = (def: boolean, doc: string): VariableSpec<boolean> => ({ default: String(def), doc, read: (r, n) => r.bool(n, def) });
const str = (def: string, doc: string): VariableSpec<string> => ({ default: def, doc, read: (r, n) => r.string(n, def) });
const optional = (doc: string, shown = 'none', secret = false): VariableSpec<string | undefined> => ({ default: shown, doc, secret, read: (r, n) => r.raw(n) });
const list = (doc: string, shown = 'none'): VariableSpec<string[]> => ({ default: shown, doc, read: (r, n) => r.list(n) });
const cidrs = (doc: string): VariableSpec<Cidr[]> => ({ default: 'none', doc, read: (r, n) => r.cidrs(n) });
const file = (doc: string, shown = 'none'): VariableSpec<string | undefined> => ({ default: shown, doc, read: (r, n) => r.file(n) });
const oneOf = <T extends string>(allowed: readonly T[], def: T | undefined, doc: string, shown = def ?? 'none'): VariableSpec<T | undefined> => ({
  default: shown,
  doc,
  read: (r, n) => r.oneOf<T>(n, allowed, def as T) ?? def,
});

/** Python's (and other loggers') level names, read as the sidecar's own. */
const LOG_LEVEL_ALIASES: Record<string, 'debug' | 'info' | 'warn' | 'error'> = {
  trace: 'debug',
  verbose: 'debug',
  notset: 'debug',
  warning: 'warn',
  critical: 'error',
  fatal: 'error',
  // Python's numeric levels.
  '0': 'debug',
  '10': 'debug',
  '20': 'info',
  '30': 'warn',
  '40': 'error',
  '50': 'error',
};

/** prometheus-flask-exporter's default buckets, so its dashboards read the same. */
export const DEFAULT_HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export const VARIABLES = {
  LISTEN_PORT: port(8080, 'main port (web role); `0` = no main listener (worker role)'),
  LISTEN_HOST: optional('address both listeners bind to', 'all interfaces'),
  UPSTREAM_URL: {
    default: 'none',
    doc: 'the app, e.g. `http://127.0.0.1:8000` (http, no path); unset = nothing is forwarded (404)',
    read: (r: EnvReader, n: string) => r.url(n, ['http:']),
  } satisfies VariableSpec<URL | undefined>,
  SERVE_PROMETHEUS_ENDPOINT: bool(false, 'serve `METRICS_PATH` on the main port (it must then be under `/debug/`)'),
  PROMETHEUS_PORT: port(8491, 'dedicated metrics port; `0` = off'),
  METRICS_PATH: str('/debug/metrics', 'exposition path on both listeners'),
  APP_NAME: str('app', '`app_name` label of `metrics_sidecar_info`'),
  SIDECAR_ROLE: oneOf(['web', 'worker'] as const, undefined, '`role` label of `metrics_sidecar_info`', '`web`, or `worker` when `LISTEN_PORT=0`'),
  HTTP_METRICS_PREFIX: str('flask_http_request', 'prefix of the RED families'),
  HTTP_DURATION_BUCKETS: {
    default: DEFAULT_HTTP_BUCKETS.join(','),
    doc: 'duration histogram bounds, seconds',
    read: (r: EnvReader, n: string) => r.buckets(n, DEFAULT_HTTP_BUCKETS),
  } satisfies VariableSpec<number[]>,
  NATIVE_HISTOGRAM_BUCKET_FACTOR: {
    default: '1.1',
    doc: "growth factor of the native histogram buckets kept beside the classic ones for the RED duration and StatsD timers/distributions (Prometheus' schema: 1.1 gives schema 3, ~10 % resolution; carried only by the protobuf exposition); `0` = classic buckets only. statsd_exporter's `native_histogram_bucket_factor`",
    read: (r: EnvReader, n: string) => {
      const v = r.raw(n);
      if (v === undefined) return 1.1;
      const f = Number(v);
      if (f === 0) return 0;
      if (!Number.isFinite(f) || f <= 1 || f > 65536) {
        r.problem(n, `must be 0 (off) or a number above 1 and at most 65536, got "${v}"`);
        return 1.1;
      }
      return f;
    },
  } satisfies VariableSpec<number>,
  NATIVE_HISTOGRAM_MAX_BUCKETS: int(
    160,
    1,
    100_000,
    "native buckets per series at most; past it the resolution halves (client_golang's rule), so memory per series stays bounded. statsd_exporter's `native_histogram_max_buckets`",
  ),
  EXEMPLARS: bool(
    true,
    'attach an exemplar (`trace_id`, `span_id` of a sampled W3C `traceparent`, the duration, the time) to the RED duration bucket and `_total` series a request lands in; served in OpenMetrics and protobuf only',
  ),
  ROUTE_PATTERNS: list('comma list of route templates for the `path` label, first match wins: `/users/:id,/static/*`'),
  ROUTE_OPENAPI_FILE: optional(
    "the app's OpenAPI 3.x or Swagger 2.0 document (JSON or YAML, a mounted file, at most 4 MiB and 2,000 operations): each operation's path becomes a template (`/users/{userId}` → `/users/:userId`), matched after `ROUTE_PATTERNS`, most specific first; read at start (a bad file stops the start) and again every `ROUTE_OPENAPI_REFRESH_S`",
  ),
  ROUTE_OPENAPI_URL: optional(
    'a path on the app serving its OpenAPI document, e.g. `/openapi.json` (needs `UPSTREAM_URL`; not with `ROUTE_OPENAPI_FILE`): fetched from the app in the background at start, retried with backoff until it loads, then every `ROUTE_OPENAPI_REFRESH_S`; a refused document keeps the previous one in use',
  ),
  ROUTE_OPENAPI_REFRESH_S: int(300, 0, 86_400, 'seconds between two reads of the OpenAPI document once one has loaded; `0` = read once'),
  METRICS_EXCLUDE_PATHS: list('comma list of paths forwarded but not recorded (`/healthz`, or a prefix `/internal/*`)'),
  ROUTE_TEMPLATES_MAX: int(
    1000,
    1,
    1_000_000,
    'route templates admitted as `path` values at most (configured patterns included); later new ones are recorded as `/:overflow`',
  ),
  ROUTE_TEMPLATE_MAX_LENGTH: int(128, 16, 4096, 'a template longer than this is cut at a segment boundary and ends in `/:rest`'),
  ROUTE_TEMPLATE_MAX_SEGMENTS: int(12, 1, 256, 'segments of a template at most; the remainder becomes `/:rest`'),
  ROUTE_SEGMENT_MAX_VALUES: int(
    10,
    0,
    1000,
    'learned cap: a path position (after the first) that holds more than this many distinct literal values under one prefix collapses to `:id` there (`/tags/kubernetes`, `/tags/prometheus`, … → `/tags/:id`); `0` = off',
  ),
  METRICS_MAX_SERIES_PER_FAMILY: int(
    2000,
    1,
    10_000_000,
    'series cap per family; further label sets go to the family\'s overflow series and are counted in `metrics_sidecar_series_dropped_total{reason="family_cap"}` ([limits](#limits))',
  ),
  METRICS_MAX_SERIES_TOTAL: int(
    20_000,
    1,
    100_000_000,
    "series stored across all families but the sidecar's own; merged samples take what is left at each scrape ([limits](#limits))",
  ),
  METRICS_MAX_LABEL_BYTES_TOTAL: int(8 * 1024 * 1024, 1024, 1024 * 1024 * 1024, 'characters of label text stored across those series'),
  METRICS_MAX_LABELS_PER_SERIES: int(16, 1, 1000, "labels on one StatsD or merged series (Prometheus' `label_limit`)"),
  METRICS_MAX_LABEL_VALUE_BYTES: int(256, 16, 1024 * 1024, "UTF-8 bytes of one label value (Prometheus' `label_value_length_limit`)"),
  METRICS_MAX_FAMILIES_PER_SOURCE: int(
    1000,
    1,
    1_000_000,
    'families StatsD, and each merge target, may create; a merge target naming ten times more is marked down',
  ),
  UPSTREAM_TIMEOUT_MS: ms(60_000, 1, 'the upstream may stay silent this long (before or during its answer); before the answer → 504'),
  UPSTREAM_MAX_CONNECTIONS: int(
    0,
    0,
    100_000,
    "connections to the app at most; further requests wait for a free one, up to `UPSTREAM_TIMEOUT_MS` (then 504). Idle ones close after 4 s, or sooner if the app's `Keep-Alive: timeout` says so",
    '`0` (unlimited)',
  ),
  UPSTREAM_REQUEST_BUFFER_BYTES: int(
    1024 * 1024,
    0,
    1024 * 1024 * 1024,
    "request bodies up to this are read whole before the app sees the request, so a slow upload never holds an app worker (nginx's `proxy_request_buffering`); larger ones stream; `0` streams every body",
  ),
  UPSTREAM_RESPONSE_BUFFER_BYTES: int(
    8 * 1024 * 1024,
    0,
    1024 * 1024 * 1024,
    "what one answer may have queued for a slow client before the app is slowed down: the app's worker is free as soon as it has written (nginx's `proxy_buffering`); bytes still go out as soon as the client takes them, and `X-Accel-Buffering: no` from the app turns it off per answer; `0` = plain backpressure",
  ),
  PROXY_BUFFER_BYTES_TOTAL: int(
    64 * 1024 * 1024,
    64 * 1024,
    4 * 1024 * 1024 * 1024,
    "all request buffers and answer backlogs together (sized for the chart's 256 MiB limit); past it requests and answers stream with plain backpressure, never fail",
  ),
  CLIENT_MIN_DATA_RATE: int(
    240,
    0,
    1024 * 1024 * 1024,
    "bytes/s a client must keep up on average when sending its body or taking its answer, past the grace period (Kestrel's default); below it an upload gets 408 and a download is cut, counted as `slow_upload` / `slow_read` client errors, never as app failures; `0` = no minimum",
  ),
  CLIENT_MIN_DATA_RATE_GRACE_MS: ms(5_000, 0, 'how long a transfer may run below `CLIENT_MIN_DATA_RATE` before it counts'),
  UPSTREAM_KEEPALIVE: bool(
    true,
    "reuse a client connection's connection to the app for that client's next request; `false` opens one per request (`Connection: close`), for apps whose late or extra bytes must not meet even the same client's next answer. An upstream connection is never shared between client connections either way",
  ),
  UPSTREAM_UPGRADE_PROTOCOLS: {
    default: 'websocket',
    doc: 'comma list of `Upgrade` protocols (case-insensitive) passed to the app as upgrades; any other (`h2c`, ...) is removed and the request forwarded as plain HTTP; `none` = no upgrades',
    read: (r: EnvReader, n: string) => {
      // Blank means unset (the default, websocket); `none` passes no upgrade at all.
      const raw = r.raw(n);
      const protocols = raw === undefined ? ['websocket'] : raw.toLowerCase() === 'none' ? [] : r.list(n).map((p) => p.toLowerCase());
      for (const p of protocols) {
        if (!UPGRADE_TOKEN.test(p)) r.problem(n, `${JSON.stringify(p)} is not a protocol name like websocket`);
      }
      return protocols;
    },
  } satisfies VariableSpec<string[]>,
  UPSTREAM_HEALTH_PATH: optional(
    "the app's health path (and query) on `UPSTREAM_URL`, e.g. `/healthz`: readiness then also requires the app to answer it 2xx/3xx, and `/app-health`, `/debug/app-health` relay it",
  ),
  UPSTREAM_HEALTH_INTERVAL_MS: ms(5_000, 100, "time between two background checks of the health path (never on the probe's own request)"),
  UPSTREAM_HEALTH_TIMEOUT_MS: ms(2_000, 1, 'a check, or a relayed probe, fails after this long (504 on the relay)', 60_000),
  UPSTREAM_HEALTH_FAILURE_THRESHOLD: int(3, 1, 1_000, 'failed checks in a row that turn readiness 503'),
  UPSTREAM_HEALTH_SUCCESS_THRESHOLD: int(1, 1, 1_000, 'successful checks in a row that turn it 200 again (readiness starts at 503 until then)'),
  // Hostile input (issue 18): methods answered by the sidecar, and which Host names may read the status page.
  UPSTREAM_ALLOWED_METHODS: list(
    "comma list of methods the sidecar refuses by default (405, never forwarded) that are forwarded anyway: `TRACE` (it echoes the request, cookies included, back to the client). Every other method Node's parser accepts is always forwarded; `CONNECT` never is (the sidecar is not a tunnel)",
  ),
  STATUS_ALLOWED_HOSTS: list(
    'comma list of host names (no port) whose `Host` may read the [status page](#status-page) and `status.json` while no credential method is configured (nothing, or only `METRICS_ALLOWED_CIDRS`); IP literals and `localhost` always may (`kubectl port-forward`), any other `Host` gets 403 (404 on the main port), against DNS rebinding. `*` = any `Host`',
  ),
  HELPER_THREADS_NICE: int(
    10,
    0,
    19,
    "how much lower than the event loop's the scheduling priority of the sidecar's helper threads is (a nice increment, Linux): V8's GC workers and libuv's pool (gzip of scrapes) then wait for the thread that forwards requests instead of taking turns with it on a busy or throttled CPU; `0` leaves them alone",
  ),
  SHUTDOWN_DELAY_MS: ms(0, 0, 'after SIGTERM, keep serving (readiness 503) this long before closing listeners'),
  SHUTDOWN_TIMEOUT_MS: ms(25_000, 0, 'how long in-flight requests may take to finish after SIGTERM'),
  LOG_LEVEL: {
    default: 'info',
    doc: "`debug`, `info`, `warn`, `error` (any case; also `trace`, `verbose`, `warning`, `critical`, `fatal` and Python's names and numbers, since `common.env` is shared with the app)",
    read: (r: EnvReader, n: string) => {
      const raw = (r.raw(n) ?? '').toLowerCase();
      return Object.hasOwn(LOG_LEVEL_ALIASES, raw) ? LOG_LEVEL_ALIASES[raw] : r.oneOf(n, ['debug', 'info', 'warn', 'error'] as const, 'info');
    },
  } satisfies VariableSpec<'debug' | 'info' | 'warn' | 'error'>,
  CONFIG_ALLOW_UNKNOWN: bool(
    false,
    "a variable with one of the sidecar's prefixes that is a near miss of one of its names (`METRICS_ALLOWED_CIDR`: one letter off, two in names of 16 or more) is a warning instead of an error (exit 2); for an app variable in a shared env that happens to be that close",
  ),
  ACCESS_LOG: bool(
    false,
    'one `info` line per request on both listeners (method, path without query and with id/token segments as `:id`, status, bytes written, duration)',
  ),
  ENABLE_DB_METRICS: bool(false, 'store and expose the DB family `sqlalchemy_query_latency_seconds`'),
  STATSD_PORT: port(9125, 'StatsD/DogStatsD UDP and TCP port; `0` = off'),
  STATSD_HOST: str('127.0.0.1', "StatsD bind address (loopback: only the pod's containers can send)"),
  STATSD_RECEIVE_BUFFER_BYTES: int(
    8 * 1024 * 1024,
    1024,
    1024 * 1024 * 1024,
    'UDP receive buffer asked for (`SO_RCVBUF`; the kernel caps it at `net.core.rmem_max` and doubles it); datagrams arriving while it is full are dropped by the kernel and counted in `metrics_sidecar_statsd_udp_receive_drops_total`',
  ),
  STATSD_MAPPING_FILE: file("StatsD mapping rules in [statsd_exporter's format](#mapping-rules) (YAML), read and validated at start"),
  // StatsD over TCP: its bounds (issue 18). Defaults sized for the chart's 256Mi memory limit: 256 connections × a 64 KiB line = the 16 MiB budget.
  STATSD_TCP_MAX_CONNECTIONS: int(
    256,
    1,
    100_000,
    'StatsD TCP connections open at once; one more is closed as it arrives, counted in `metrics_sidecar_statsd_tcp_connections_closed_total{reason="max_connections"}`',
  ),
  STATSD_TCP_IDLE_TIMEOUT_MS: ms(
    60_000,
    1,
    'a StatsD TCP connection that sends nothing this long is closed (`reason="idle_timeout"`); clients that keep one open send at least every flush interval',
  ),
  STATSD_TCP_BUFFER_BYTES_TOTAL: int(
    16 * 1024 * 1024,
    1024,
    1024 * 1024 * 1024,
    'bytes of unfinished StatsD TCP lines held across all connections (each holds at most one line, 64 KiB); a connection that would go past it is closed (`reason="buffer_budget"`)',
  ),
  MERGE_TARGETS: list("comma list of URLs (the app's own `/metrics`) merged into the exposition at scrape time"),
  MERGE_MAX_BYTES: int(4 * 1024 * 1024, 1024, 1024 * 1024 * 1024, "a merge target's body is refused past this size (the target then counts as down)"),
  METRICS_ALLOWED_CIDRS: cidrs('comma list of IPs/CIDRs, IPv4 and IPv6, allowed to read metrics'),
  TRUSTED_PROXIES: cidrs(
    "CIDRs of proxies in front (ingress controller pods, a load balancer's source range) whose forwarding headers are believed: their `X-Forwarded-For` for `METRICS_ALLOWED_CIDRS`, and their `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, ... passed to the app on the main port, `X-Forwarded-For` extended with the peer. From any other peer those headers are replaced by the sidecar's own ([forwarding headers](#behind-an-ingress-controller-or-load-balancer))",
  ),
  METRICS_BASIC_AUTH_USERNAME: optional('basic auth user name (UTF-8, no `:`)'),
  METRICS_BASIC_AUTH_PASSWORD: optional('basic auth password (prefer the `_FILE` form)', 'none', true),
  METRICS_BASIC_AUTH_PASSWORD_FILE: file('a mounted file holding the basic auth password (re-read when it changes)'),
  METRICS_API_KEYS_FILE: file('scoped API keys, [format below](#scoped-api-keys)'),
  METRICS_API_KEY_QUERY_PARAM: bool(false, 'also accept an API key as `?api_key=` (it then shows in URLs and proxy logs)'),
  SECRET_RELOAD_INTERVAL_MS: ms(5_000, 50, 'how often the password and key files are checked for changes'),
  METRICS_KUBERNETES_AUTH: bool(false, 'ServiceAccount tokens: TokenReview + SubjectAccessReview'),
  METRICS_KUBERNETES_AUDIENCES: list('comma list of audiences a token must be valid for', "none (the API server's)"),
  METRICS_KUBERNETES_ALLOW_TTL_MS: ms(60_000, 0, 'how long an allow is cached'),
  METRICS_KUBERNETES_DENY_TTL_MS: ms(10_000, 0, 'how long a deny is cached'),
  METRICS_KUBERNETES_STALE_MS: ms(300_000, 0, 'past its TTL, how long a cached decision keeps serving while the API server is unreachable'),
  METRICS_KUBERNETES_TIMEOUT_MS: ms(2_000, 1, 'timeout of one TokenReview or SubjectAccessReview call (aborted past it)', 60_000),
  METRICS_KUBERNETES_MAX_REQUESTS_PER_S: int(20, 1, 100_000, 'API calls per second at most (a decision costs two)'),
  KUBECONFIG: file("a kubeconfig file instead of the pod's ServiceAccount (development); read only with `METRICS_KUBERNETES_AUTH=true`", 'in-cluster config'),
} as const;

export type VariableName = keyof typeof VARIABLES;
export type ValueOf<K extends VariableName> = ReturnType<(typeof VARIABLES)[K]['read']>;

/** Every variable the sidecar reads, in table order. */
export const VARIABLE_NAMES = Object.keys(VARIABLES) as VariableName[];

/** Reads one variable through its table entry. */
export function readVariable<K extends VariableName>(r: EnvReader, name: K): ValueOf<K> {
  return (VARIABLES[name] as VariableSpec<unknown>).read(r, name) as ValueOf<K>;
}

/**
 * Prefixes that mark a variable as meant for the sidecar. Others in the environment (PATH, the
 * app's own settings) are none of its business.
 */
export const OWN_PREFIXES = [
  'METRICS_',
  'STATSD_',
  'MERGE_',
  'UPSTREAM_',
  'LISTEN_',
  'PROMETHEUS_',
  'SHUTDOWN_',
  'HTTP_',
  'SIDECAR_',
  'SECRET_',
  'ROUTE_',
  'ACCESS_LOG',
  'TRUSTED_',
  'SERVE_',
  'ENABLE_DB',
  'PROXY_BUFFER',
  'CLIENT_MIN_',
];

/** Well-known variables with those prefixes that belong to something else. */
const FOREIGN = new Set(['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'HTTP_PROXY_REQUEST_FULLURI', 'SECRET_KEY']);
/** What Kubernetes Service links inject (`PROMETHEUS_PORT_9090_TCP_ADDR`, `METRICS_SERVICE_HOST`). */
const SERVICE_LINK = /_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)$/;

export interface UnknownVariable {
  name: string;
  /** The closest known name, when it is plausibly the same word (the "did you mean"). */
  suggestion: string | undefined;
  /**
   * Why it is refused (exit 2, unless CONFIG_ALLOW_UNKNOWN=true); undefined = a warning only.
   * - `near_miss`: one edit from a known name (a letter missing, extra, changed, or two swapped;
   *   case ignored), two in names of 16 characters or more. With one of the sidecar's prefixes, or
   *   without one in names of 12 characters or more (`UPSTRAEM_URL`, `METRIC_ALLOWED_CIDRS`).
   * - `access_control`: named like an access-control setting (`METRICS_ALLOWED_IPS`,
   *   `METRICS_BASIC_AUTH_USER`, `METRICS_API_KEYS`): as written it would be ignored and leave the
   *   endpoint open, so it is refused however far it is from the real name.
   */
  refused: 'near_miss' | 'access_control' | undefined;
}

/** Names of access-control settings and what people call them (case ignored). */
const ACCESS_CONTROL = /^(METRICS_(ALLOW|BASIC_AUTH|API_KEY|AUTH_(USER|PASS)|KUBERNETES_AUTH)|TRUSTED_PROX)/;

/**
 * Variables that look meant for the sidecar but are not among its names: those with its prefixes
 * (case ignored), and near misses of its names without them. Each with the closest known name and
 * whether it is refused (see UnknownVariable).
 */
export function unknownVariables(env: Readonly<Record<string, string | undefined>>): UnknownVariable[] {
  const known = new Set<string>(VARIABLE_NAMES);
  const out: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (known.has(name) || FOREIGN.has(name) || SERVICE_LINK.test(name)) continue;
    const upper = name.toUpperCase();
    // Kubernetes Service links also set `<SERVICE>_PORT=tcp://…` for a Service named like a prefix.
    if (/^(tcp|udp|sctp):\/\//.test(env[name] ?? '')) continue;
    const prefixed = OWN_PREFIXES.some((p) => upper.startsWith(p));
    const near = nearMissOf(upper);
    if (ACCESS_CONTROL.test(upper)) {
      out.push({ name, suggestion: near ?? closest(upper, ACCESS_NAMES), refused: 'access_control' });
    } else if (near !== undefined && (prefixed || name.length >= 12)) {
      out.push({ name, suggestion: near, refused: 'near_miss' });
    } else if (prefixed) {
      out.push({ name, suggestion: closest(upper), refused: undefined });
    } else {
      // Another program's variable, unless it is within two edits of one of the sidecar's names.
      const suggestion = closest(upper, VARIABLE_NAMES, 2);
      if (suggestion !== undefined && name.length >= 8) out.push({ name, suggestion, refused: undefined });
    }
  }
  return out;
}

const ACCESS_NAMES = VARIABLE_NAMES.filter((n) => ACCESS_CONTROL.test(n));

function nearMissOf(upper: string): string | undefined {
  const allowed = upper.length >= 16 ? 2 : 1;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of VARIABLE_NAMES) {
    const d = distance(upper, k, true);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= allowed ? best : undefined;
}

function closest(name: string, among: readonly string[] = VARIABLE_NAMES, most = Math.max(2, Math.floor(name.length / 3))): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of among) {
    const d = distance(name, k, true);
    if (d < bestD) [best, bestD] = [k, d];
  }
  // A suggestion only when it is plausibly the same word: by default at most a third of the name differs.
  return best !== undefined && bestD <= most ? best : undefined;
}

/** Levenshtein distance; with `transpositions`, two swapped neighbours count as one edit (optimal string alignment). */
export function distance(a: string, b: string, transpositions = false): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (transpositions && i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) cur[j] = Math.min(cur[j], before[j - 2] + 1);
    }
    before = prev;
    prev = cur;
  }
  return prev[b.length];
}

/** `--help`: the flags and every variable with its default and meaning. */
export function helpText(version: string): string {
  const plain = (s: string) => s.replace(/\[([^\]]+)\]\([^)]*\)/g, '$1');
  const lines = [
    `metrics-sidecar ${version}`,
    '',
    'Usage: node dist/main.js [--help | --version | --check-config]',
    '',
    'Runs the sidecar, configured only through environment variables.',
    '',
    'Flags:',
    '  --help           print this text and exit',
    '  --version        print the version and exit',
    '  --check-config   read and validate everything a start would (files included), print the',
    '                   effective settings with secrets hidden, exit 0 if valid, 2 if not',
    '',
    'Exit codes: 0 ok or drained, 1 failed at run time, 2 invalid configuration.',
    '',
    'Environment variables:',
  ];
  for (const name of VARIABLE_NAMES) {
    const v = VARIABLES[name] as VariableSpec<unknown>;
    lines.push(`  ${name}  (default: ${plain(v.default)})`, `      ${plain(v.doc)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The configuration table of docs/configuration.md (between its markers; src/config/docs.ts writes it). */
export function markdownTable(): string {
  const rows = ['| variable | default | meaning |', '|---|---|---|'];
  for (const name of VARIABLE_NAMES) {
    const v = VARIABLES[name] as VariableSpec<unknown>;
    const def = v.default === 'none' || /[`( ]/.test(v.default) ? v.default : `\`${v.default}\``;
    rows.push(`| \`${name}\` | ${def} | ${v.doc.replace(/\|/g, '\\|')} |`);
  }
  return `${rows.join('\n')}\n`;
}

/** docs/variables.json: every name the sidecar reads (the chart reserves them). */
export function variablesJson(): string {
  return `${JSON.stringify(
    VARIABLE_NAMES.map((name) => ({
      name,
      default: (VARIABLES[name] as VariableSpec<unknown>).default,
      secret: (VARIABLES[name] as VariableSpec<unknown>).secret === true,
    })),
    null,
    2,
  )}\n`;
}

/** One line of --check-config's effective settings. */
export interface Setting {
  name: VariableName;
  /** The resolved value as the sidecar uses it; secrets as [REDACTED]. */
  value: string;
  source: 'set' | 'default' | 'derived' | 'unused';
}

/**
 * The effective settings for --check-config: each variable's resolved value as readConfig left it
 * (normalised, or derived from others, like SIDECAR_ROLE from LISTEN_PORT), secrets hidden.
 */
export function effectiveSettings(
  env: Readonly<Record<string, string | undefined>>,
  values: ReadonlyMap<VariableName, unknown>,
  unused: ReadonlySet<VariableName> = new Set(),
): Setting[] {
  return VARIABLE_NAMES.map((name): Setting => {
    const raw = env[name]?.trim();
    const set = raw !== undefined && raw !== '';
    const spec = VARIABLES[name] as VariableSpec<unknown>;
    if (spec.secret) return { name, value: set ? '[REDACTED]' : '(unset)', source: set ? 'set' : 'default' };
    // Set, but not read (its feature is off): shown as written, neither validated nor used.
    if (set && unused.has(name)) return { name, value: raw, source: 'unused' };
    return { name, value: shownValue(values.get(name)), source: set ? 'set' : DERIVED.has(name) ? 'derived' : 'default' };
  });
}

/** Unset, these take their value from others (SIDECAR_ROLE from LISTEN_PORT). */
const DERIVED = new Set<VariableName>(['SIDECAR_ROLE']);

function shownValue(v: unknown): string {
  if (v === undefined) return '(unset)';
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.map(shownValue).join(',');
  if (v instanceof URL) return v.href;
  if (typeof v === 'object' && v !== null && 'text' in v) return String((v as { text: unknown }).text);
  return String(v);
}
