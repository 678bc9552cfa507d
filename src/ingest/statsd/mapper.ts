/**
 * From a StatsD name to a Prometheus family: the operator's mapping rules first
 * (STATSD_MAPPING_FILE, statsd_exporter's format: see config/statsd-mapping.ts), then the
 * built-in rules for the maintained application families, then a sanitised version of the name
 * itself.
 */
import { sanitizeLabelName, sanitizeMetricName } from './parser';
import { findRule, type MappingFile, type NativeRuleOptions } from '../../config/statsd-mapping';
import { MAINTAINED_FAMILIES, type StoredType } from '../../metrics/contract';
import { stripTotal } from '../../formats/exposition';

export interface Mapping {
  name: string;
  labels: [string, string][];
  buckets: readonly number[];
  /** The mapping rule's (or the file's defaults') native histogram options, if any: applied over NATIVE_HISTOGRAM_*. */
  native?: NativeRuleOptions;
  ttlMs: number;
  /** Part of the DB family: exposed only with ENABLE_DB_METRICS=true. */
  db: boolean;
  /** The rule's `help`, if it has one. */
  help?: string;
}

/** Second-based buckets for the maintained latency families (API calls, webhooks, queries). */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The built-in rules: each maintained family (src/metrics/contract.ts, which also fixes its type)
 * under its own name and its StatsD spelling (`graphql_requests`, `sqlalchemy_query_latency`).
 */
const BUILT_IN: Record<string, { name: string; db: boolean }> = Object.fromEntries(
  MAINTAINED_FAMILIES.flatMap((f) =>
    [f.name, stripTotal(f.name), f.name.replace(/_seconds$/, '')].map((alias) => [alias, { name: f.name, db: f.db === true }]),
  ),
);

export class Mapper {
  constructor(
    private readonly file: MappingFile | undefined,
    private readonly defaultBuckets: readonly number[],
  ) {}

  /** The family for a StatsD name and kind, or 'drop'. */
  map(statsdName: string, kind: StoredType): Mapping | 'drop' {
    const f = this.file;
    if (f) {
      const hit = findRule(f, statsdName, kind);
      if (hit) {
        const r = hit.rule;
        if (r.drop) return 'drop';
        const name = sanitizeMetricName(r.name ? hit.expand(r.name) : statsdName);
        return {
          name: familyNameOf(name, kind),
          labels: r.labels.map(([k, v]) => [k, hit.expand(v)]),
          buckets: r.buckets ?? f.buckets ?? this.defaultBuckets,
          ttlMs: r.ttlMs || f.ttlMs, // statsd_exporter: a rule's ttl of 0 takes the default's
          db: false,
          ...(r.native !== undefined || f.native !== undefined ? { native: { ...f.native, ...r.native } } : {}),
          ...(r.help !== undefined ? { help: r.help } : {}),
        };
      }
    }
    const sanitized = sanitizeMetricName(statsdName);
    // Own keys only: `constructor` or `__proto__` from a client must not find Object's members.
    const builtIn = Object.hasOwn(BUILT_IN, sanitized) ? BUILT_IN[sanitized] : undefined;
    if (builtIn) return { name: builtIn.name, labels: [], buckets: LATENCY_BUCKETS, ttlMs: f?.ttlMs ?? 0, db: builtIn.db === true };
    return {
      name: familyNameOf(sanitized, kind),
      labels: [],
      buckets: f?.buckets ?? this.defaultBuckets,
      ttlMs: f?.ttlMs ?? 0,
      db: false,
      ...(f?.native !== undefined ? { native: f.native } : {}),
    };
  }
}

/** A counter's family ends in `_total` (OpenMetrics), added when the mapped name lacks it. */
function familyNameOf(name: string, kind: StoredType): string {
  return kind === 'counter' && !name.endsWith('_total') ? `${name}_total` : name;
}

/** Label pairs merged (mapping labels win over tags), sanitised and sorted, rendered. */
export function labelKey(mapped: [string, string][], tags: [string, string][]): [string, string][] {
  const m = new Map<string, string>();
  for (const [k, v] of tags) m.set(sanitizeLabelName(k), v);
  for (const [k, v] of mapped) m.set(k, v);
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
