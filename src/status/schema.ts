/**
 * The shape of `status.json` (schema 1), the document the status page is a view of. Stable:
 * fields are only ever added; a change of meaning bumps `schema`. Documented in docs/status-page.md
 * ("Status page") and pinned by test/status/status-json.test.ts.
 *
 * Conventions: rates per second, durations in seconds, times as ISO 8601 strings; `null` when a
 * value is unknown (nothing sampled yet, a source switched off, not Linux).
 */

export const STATUS_SCHEMA_VERSION = 1;

export interface StatusDocument {
  schema: 1;
  generated_at: string;
  sampling: Sampling;
  identity: Identity;
  traffic: Traffic;
  sources: Sources;
  cardinality: Cardinality;
  access: Access;
  /** Effective settings, redacted: dotted config keys → printable values. */
  config: Record<string, string | number | boolean | null>;
}

export interface Sampling {
  /** When the sampler started (it starts on the first status request, stops after 15 idle minutes). */
  since: string;
  interval_s: number;
  /** Seconds actually covered by the "1m" and "15m" windows (less while the sampler warms up; since start when nothing older exists). */
  covered_1m_s: number;
  covered_15m_s: number;
}

export interface Identity {
  app_name: string;
  role: string;
  version: string;
  node_version: string;
  started_at: string;
  uptime_s: number;
  ready: boolean;
  draining: boolean;
  /** The app the main port forwards to (origin only), or null when nothing is forwarded. */
  upstream: { url: string; health: { healthy: boolean; detail: string | null } | null } | null;
}

export interface Window {
  requests: number;
  rps: number;
  /** Share of requests answered 5xx (by the app or by the sidecar on its behalf). */
  error_ratio: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface Route {
  method: string;
  /** The route template (the `path` label), `(overflow)` for the family's overflow series. */
  route: string;
  /** The app's OpenAPI operationId for this method on this template, null when its document names none. */
  operation: string | null;
  m1: Window;
  m15: Window;
  /** One point per minute over the last 15 minutes, oldest first (the last one is the minute in progress). */
  spark: { rps: number[]; p99: (number | null)[] };
}

export interface Traffic {
  /** The duration histogram the routes are read from. */
  family: string;
  routes: Route[];
  routes_total: number;
  totals: { m1: Window; m15: Window };
  /** The `path` templates by source, in matching order; null when the sidecar records no RED metrics (nothing wired). */
  templates: RouteTemplates | null;
}

/** Some templates of one source (at most 100, in the source's order) and how many it has. */
export interface TemplateList {
  templates: string[];
  total: number;
}

/** Where the `path` label's templates come from, in the order a path is matched (docs/metrics.md). */
export interface RouteTemplates {
  /** ROUTE_PATTERNS. */
  configured: TemplateList;
  /** The app's OpenAPI document (most specific first); null when none is configured. */
  openapi:
    | (TemplateList & {
        /** The file, or the path on the app. */
        source: string;
        /** The document's `openapi` / `swagger` version; null until one has loaded. */
        version: string | null;
        operations: number;
        /** Templates cut at ROUTE_TEMPLATE_MAX_SEGMENTS / ROUTE_TEMPLATE_MAX_LENGTH (they end in `/:rest`). */
        templates_cut: number;
        loaded_at: string | null;
        /** The last read's outcome (`loaded`, `unchanged`, `unreachable`, `bad_status`, `refused`) and why it failed. */
        last_outcome: string | null;
        last_error: string | null;
      })
    | null;
  /** Positions collapsed by the learned caps (`/tags/:id`), in the order they were learned. */
  learned: TemplateList & { max_values: number };
  /** Templates the heuristics admitted, in the order they were. */
  heuristic: TemplateList;
  /** Templates admitted as `path` values (all sources; `/:unmatched` and `/:overflow` aside) and their bound, ROUTE_TEMPLATES_MAX. */
  admitted: number;
  max: number;
}

export type StatsdOutcome = 'accepted' | 'malformed' | 'dropped' | 'type_conflict';

export interface Sources {
  statsd: {
    /** Lines per second by outcome. */
    m1: Record<StatsdOutcome, number>;
    m15: Record<StatsdOutcome, number>;
    /** Lines since start by outcome. */
    total: Record<StatsdOutcome, number>;
    udp: {
      /** Datagrams the kernel dropped (socket receive buffer full) since the socket opened; null when unknown (not Linux). */
      receive_drops_total: number | null;
      receive_drops_15m: number | null;
      /** Bytes queued in the socket right now. */
      rx_queue_bytes: number | null;
      /** The effective SO_RCVBUF. */
      receive_buffer_bytes: number | null;
    };
  } | null;
  merge: MergeTarget[];
}

export interface MergeTarget {
  /** The target URL without credentials or query. */
  target: string;
  /** null until the first scrape fetched it (targets are fetched at scrape time). */
  up: boolean | null;
  last_fetch_at: string | null;
  last_duration_s: number | null;
  last_size_bytes: number | null;
  last_error: string | null;
  families_dropped_total: number;
}

export interface FamilyCardinality {
  name: string;
  type: string;
  series: number;
  /** The family's series cap, null when uncapped. */
  cap: number | null;
  /** New series refused at the cap since start, and over the last 15 minutes. */
  dropped_total: number;
  dropped_15m: number;
  /** Value (or observation count) carried by the family's overflow series, if it has one. */
  overflow: number | null;
}

export interface Cardinality {
  total_series: number;
  /** The total series budget across all sources, null when none is configured. */
  budget: number | null;
  families_total: number;
  dropped_total: number;
  dropped_15m: number;
  /** The largest families first (at most 25), then any other family that dropped series. */
  families: FamilyCardinality[];
}

export interface Access {
  open: boolean;
  methods: string[];
  refusals: { listener: string; reason: string; last_15m: number; total: number }[];
  /** Client addresses refused by METRICS_ALLOWED_CIDRS in the last 15 minutes (only those: no other refusal shows an address). */
  cidr_refused: { address: string; listener: string; count: number; last_at: string }[];
}
