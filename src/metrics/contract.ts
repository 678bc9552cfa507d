/**
 * The metric contract in code: every family the sidecar itself exports, the maintained application
 * families with their fixed types, and the rule that says which names StatsD and merged sources
 * may not claim. The registry, the StatsD store and the merger all decide with this module, so a
 * name is reserved (or a maintained type fixed) in exactly one place.
 *
 * A family owns more names than its own: its samples' suffixes (`_bucket`, `_sum`, `_count`,
 * `_total`, `_created`) and the spellings another format gives it (`x` and `x_total` are one
 * counter in OpenMetrics, `x_info` one info family). Two families collide when those name sets
 * meet; Prometheus then refuses the exposition ("second TYPE line").
 */
import { stripTotal } from '../formats/exposition';

/** The types the sidecar's own store holds (StatsD and RED series). */
export type StoredType = 'counter' | 'gauge' | 'histogram';
/** Every type a family can have here: merged sources also bring summaries and untyped families. */
export type MetricType = StoredType | 'summary' | 'untyped';

export interface ContractFamily {
  name: string;
  type: MetricType;
  labels: readonly string[];
  /** Where it comes from (the "source" column of docs/metrics.md). */
  source: string;
}

/** Every family of the sidecar's own health starts with this; the whole prefix is reserved. */
export const SIDECAR_PREFIX = 'metrics_sidecar_';

/** The label of the one series per family that holds what its cap refused (OpenTelemetry's convention). */
export const OVERFLOW_LABEL = 'otel_metric_overflow';

/** Suffixes that name a family's samples or its other spellings. */
export const SUFFIXES = ['_total', '_count', '_sum', '_bucket', '_created', '_info'] as const;

/** The RED families, named from HTTP_METRICS_PREFIX. */
export function redFamilies(prefix: string): ContractFamily[] {
  return [
    { name: `${prefix}_duration_seconds`, type: 'histogram', labels: ['method', 'path', 'status'], source: 'forwarder' },
    { name: `${prefix}_total`, type: 'counter', labels: ['method', 'status'], source: 'forwarder' },
    { name: `${prefix}_exceptions_total`, type: 'counter', labels: ['method', 'status'], source: 'forwarder' },
  ];
}

/** The sidecar's own health families (`metrics_sidecar_*`). */
export const SIDECAR_FAMILIES: readonly ContractFamily[] = [
  { name: 'metrics_sidecar_info', type: 'gauge', labels: ['version', 'app_name', 'role'], source: 'sidecar' },
  { name: 'metrics_sidecar_build_info', type: 'gauge', labels: ['version', 'nodejs_version'], source: 'sidecar' },
  { name: 'metrics_sidecar_scrapes_total', type: 'counter', labels: ['listener', 'format'], source: 'sidecar' },
  { name: 'metrics_sidecar_series_dropped_total', type: 'counter', labels: ['family', 'reason'], source: 'sidecar' },
  { name: 'metrics_sidecar_inflight_requests', type: 'gauge', labels: [], source: 'sidecar' },
  { name: 'metrics_sidecar_client_errors_total', type: 'counter', labels: ['reason'], source: 'main listener' },
  { name: 'metrics_sidecar_proxy_buffered_bytes', type: 'gauge', labels: [], source: 'forwarder' },
  { name: 'metrics_sidecar_route_templates_refused_total', type: 'counter', labels: ['reason'], source: 'RED recorder' },
  { name: 'metrics_sidecar_route_cache_resets_total', type: 'counter', labels: [], source: 'RED recorder' },
  { name: 'metrics_sidecar_route_positions_learned_total', type: 'counter', labels: [], source: 'RED recorder' },
  { name: 'metrics_sidecar_route_learning_refused_total', type: 'counter', labels: ['reason'], source: 'RED recorder' },
  { name: 'metrics_sidecar_route_openapi_loads_total', type: 'counter', labels: ['outcome'], source: 'OpenAPI source' },
  { name: 'metrics_sidecar_route_openapi_templates', type: 'gauge', labels: [], source: 'OpenAPI source' },
  { name: 'metrics_sidecar_auth_failures_total', type: 'counter', labels: ['listener', 'reason'], source: 'access gate' },
  { name: 'metrics_sidecar_auth_duration_seconds', type: 'histogram', labels: ['listener'], source: 'access gate' },
  { name: 'metrics_sidecar_kubernetes_auth_cache_total', type: 'counter', labels: ['result'], source: 'access gate' },
  { name: 'metrics_sidecar_statsd_lines_total', type: 'counter', labels: ['outcome'], source: 'StatsD listener' },
  { name: 'metrics_sidecar_statsd_udp_receive_drops_total', type: 'counter', labels: [], source: 'StatsD listener' },
  { name: 'metrics_sidecar_statsd_tcp_open_connections', type: 'gauge', labels: [], source: 'StatsD listener' },
  { name: 'metrics_sidecar_statsd_tcp_buffered_bytes', type: 'gauge', labels: [], source: 'StatsD listener' },
  { name: 'metrics_sidecar_statsd_tcp_connections_closed_total', type: 'counter', labels: ['reason'], source: 'StatsD listener' },
  { name: 'metrics_sidecar_app_health_checks_total', type: 'counter', labels: ['outcome'], source: 'app health' },
  { name: 'metrics_sidecar_app_health_relays_total', type: 'counter', labels: ['outcome'], source: 'app health' },
  { name: 'metrics_sidecar_app_healthy', type: 'gauge', labels: [], source: 'app health' },
  { name: 'metrics_sidecar_merge_up', type: 'gauge', labels: ['target'], source: 'merger' },
  { name: 'metrics_sidecar_merge_duration_seconds', type: 'gauge', labels: ['target'], source: 'merger' },
  { name: 'metrics_sidecar_merge_families_dropped_total', type: 'counter', labels: ['target', 'reason'], source: 'merger' },
  // prom-client's collectDefaultMetrics under the prefix (src/metrics/sidecar.ts); `*_total` gauges left out.
  ...(
    [
      ['process_cpu_user_seconds_total', 'counter'],
      ['process_cpu_system_seconds_total', 'counter'],
      ['process_cpu_seconds_total', 'counter'],
      ['process_start_time_seconds', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'],
      ['process_virtual_memory_bytes', 'gauge'],
      ['process_heap_bytes', 'gauge'],
      ['process_open_fds', 'gauge'],
      ['process_max_fds', 'gauge'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
      ['nodejs_eventloop_lag_min_seconds', 'gauge'],
      ['nodejs_eventloop_lag_max_seconds', 'gauge'],
      ['nodejs_eventloop_lag_mean_seconds', 'gauge'],
      ['nodejs_eventloop_lag_stddev_seconds', 'gauge'],
      ['nodejs_eventloop_lag_p50_seconds', 'gauge'],
      ['nodejs_eventloop_lag_p90_seconds', 'gauge'],
      ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
      ['nodejs_active_resources', 'gauge'],
      ['nodejs_active_handles', 'gauge'],
      ['nodejs_active_requests', 'gauge'],
      ['nodejs_heap_size_total_bytes', 'gauge'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
      ['nodejs_external_memory_bytes', 'gauge'],
      ['nodejs_heap_space_size_total_bytes', 'gauge'],
      ['nodejs_heap_space_size_used_bytes', 'gauge'],
      ['nodejs_heap_space_size_available_bytes', 'gauge'],
      ['nodejs_version_info', 'gauge'],
      ['nodejs_gc_duration_seconds', 'histogram'],
    ] as const
  ).map(([n, type]): ContractFamily => ({ name: `metrics_sidecar_${n}`, type, labels: [], source: 'sidecar (prom-client)' })),
];

/**
 * The maintained application families: their names and types are fixed, whatever arrives first.
 * `help` is their `# HELP` text whichever way they arrive (a StatsD line, a mapping rule without
 * `help`, a merged endpoint without a HELP line), so dashboards' tooltips and `promtool check
 * metrics` see the same description everywhere.
 */
export const MAINTAINED_FAMILIES: readonly (ContractFamily & { db?: boolean; help: string })[] = [
  {
    name: 'github_api_call_latency',
    type: 'histogram',
    labels: ['endpoint', 'status'],
    source: 'StatsD',
    help: 'Latency of GitHub API calls made by the application, in seconds, by endpoint and status.',
  },
  {
    name: 'github_webhook_latency',
    type: 'histogram',
    labels: ['event'],
    source: 'StatsD',
    help: 'Time the application took to handle a GitHub webhook, in seconds, by event.',
  },
  { name: 'graphql_requests_total', type: 'counter', labels: ['operation'], source: 'StatsD', help: 'GraphQL requests the application served, by operation.' },
  {
    name: 'sqlalchemy_query_latency_seconds',
    type: 'histogram',
    labels: ['statement'],
    source: 'StatsD',
    db: true,
    help: "Latency of the application's database queries (SQLAlchemy), in seconds, by statement.",
  },
];

const MAINTAINED_HELP = new Map(MAINTAINED_FAMILIES.map((f) => [f.name, f.help]));

/** The contract's help text of a maintained family (by its text-format name), or undefined for any other name. */
export function maintainedHelp(name: string): string | undefined {
  return MAINTAINED_HELP.get(name);
}

/** The sample names a family of this type puts in the exposition (and the family name itself). */
export function exposedNames(name: string, type: MetricType): string[] {
  switch (type) {
    case 'counter': {
      const base = stripTotal(name);
      return [base, `${base}_total`, `${base}_created`];
    }
    case 'histogram':
      return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`, `${name}_created`];
    case 'summary':
      return [name, `${name}_sum`, `${name}_count`, `${name}_created`];
    default:
      return [name];
  }
}

/** A family's name, its counter base and every suffixed spelling of both: what it keeps for itself. */
export function spellings(name: string): string[] {
  const out = new Set<string>();
  for (const base of [name, stripTotal(name)]) {
    out.add(base);
    for (const s of SUFFIXES) out.add(`${base}${s}`);
  }
  return [...out];
}

export type Refusal = 'reserved' | 'type_conflict';

/**
 * Decides for StatsD and merged sources, before anything is stored: a name the sidecar reserves
 * (`up`, its own families, the RED families, each with every spelling) is `reserved`; a name that
 * touches a maintained family with another type (or another spelling) is a `type_conflict`.
 */
export class Contract {
  private readonly reserved = new Set<string>();
  private readonly maintained = new Map<string, { family: string; type: MetricType }>();

  constructor(httpPrefix = 'flask_http_request') {
    for (const f of [{ name: 'up' }, ...SIDECAR_FAMILIES, ...redFamilies(httpPrefix)]) for (const s of spellings(f.name)) this.reserved.add(s);
    for (const f of MAINTAINED_FAMILIES) for (const s of spellings(f.name)) this.maintained.set(s, { family: f.name, type: f.type });
  }

  /** Why a source may not have a family of this name and type, or undefined when it may. */
  refuse(name: string, type: MetricType): Refusal | undefined {
    if (name.startsWith(SIDECAR_PREFIX)) return 'reserved';
    const names = exposedNames(name, type);
    for (const n of names) if (this.reserved.has(n)) return 'reserved';
    for (const n of names) {
      const m = this.maintained.get(n);
      if (m !== undefined && (m.family !== name || m.type !== type)) return 'type_conflict';
    }
    return undefined;
  }
}

/** True for the sidecar's own families: bounded by construction, so exempt from the series budget. */
export function isSidecarFamily(name: string): boolean {
  return name.startsWith(SIDECAR_PREFIX);
}
