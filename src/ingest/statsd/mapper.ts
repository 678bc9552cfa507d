/**
 * From a StatsD name to a Prometheus family: the operator's mapping rules first
 * (STATSD_MAPPING_FILE), then the built-in rules for the maintained application families, then a
 * sanitised version of the name itself.
 *
 * Mapping file (YAML):
 *
 *     defaults:
 *       buckets: [0.01, 0.1, 1, 10]   # histogram bounds, seconds
 *       ttl: 0                         # seconds an idle series lives; 0 = forever
 *     mappings:
 *       - match: "shop.*.checkout.*"   # glob: * is one dot-separated part
 *         name: "shop_checkout_seconds"
 *         labels: { region: "$1", step: "$2" }
 *         buckets: [0.1, 0.5, 1, 5]
 *         ttl: 600
 *       - match: "debug.*"
 *         action: drop
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { sanitizeLabelName, sanitizeMetricName } from './parser';
import { MAINTAINED_FAMILIES, stripTotal } from '../../metrics/contract';

export type Kind = 'counter' | 'gauge' | 'histogram';

export interface Mapping {
  name: string;
  labels: [string, string][];
  buckets: readonly number[];
  ttlMs: number;
  /** Part of the DB family: exposed only with ENABLE_DB_METRICS=true. */
  db: boolean;
}

interface Rule {
  regex: RegExp;
  name: string | undefined;
  labels: [string, string][];
  buckets: number[] | undefined;
  ttlMs: number | undefined;
  drop: boolean;
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

export interface MappingFile {
  rules: Rule[];
  buckets: number[] | undefined;
  ttlMs: number;
}

export function loadMappingFile(path: string): MappingFile {
  return parseMappingFile(fs.readFileSync(path, 'utf8'));
}

export function parseMappingFile(text: string): MappingFile {
  const doc = (YAML.parse(text) ?? {}) as { defaults?: Record<string, unknown>; mappings?: unknown };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the mapping file must be a YAML mapping with "mappings:"');
  const defaults = doc.defaults ?? {};
  const rawRules = doc.mappings ?? [];
  if (!Array.isArray(rawRules)) throw new Error('"mappings" must be a list');
  const rules = rawRules.map((r: Record<string, unknown>, i: number) => {
    const where = `mappings[${i}]`;
    if (typeof r !== 'object' || r === null || typeof r.match !== 'string' || r.match === '') throw new Error(`${where}: "match" (a glob) is required`);
    const drop = r.action === 'drop';
    if (r.action !== undefined && !drop) throw new Error(`${where}: "action" can only be "drop"`);
    if (!drop && r.name !== undefined && (typeof r.name !== 'string' || !/^[a-zA-Z_:$][a-zA-Z0-9_:${}]*$/.test(r.name)))
      throw new Error(`${where}: "name" is not a metric name`);
    const labels: [string, string][] = [];
    if (r.labels !== undefined) {
      if (typeof r.labels !== 'object' || r.labels === null || Array.isArray(r.labels)) throw new Error(`${where}: "labels" must be a mapping`);
      for (const [k, v] of Object.entries(r.labels)) {
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)) throw new Error(`${where}: label name ${JSON.stringify(k)} is invalid`);
        labels.push([k, String(v)]);
      }
    }
    return {
      regex: globToRegex(r.match),
      name: drop ? undefined : (r.name as string | undefined),
      labels,
      buckets: r.buckets === undefined ? undefined : parseBuckets(r.buckets, where),
      ttlMs: r.ttl === undefined ? undefined : parseTtl(r.ttl, where),
      drop,
    };
  });
  return {
    rules,
    buckets: defaults.buckets === undefined ? undefined : parseBuckets(defaults.buckets, 'defaults'),
    ttlMs: defaults.ttl === undefined ? 0 : parseTtl(defaults.ttl, 'defaults'),
  };
}

function globToRegex(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('([^.]+)');
  return new RegExp(`^${body}$`);
}

function parseBuckets(v: unknown, where: string): number[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((b, i) => typeof b === 'number' && b > 0 && (i === 0 || b > (v[i - 1] as number)))) {
    throw new Error(`${where}: "buckets" must be a list of ascending positive numbers`);
  }
  return v as number[];
}

function parseTtl(v: unknown, where: string): number {
  if (typeof v !== 'number' || !(v >= 0)) throw new Error(`${where}: "ttl" must be a number of seconds`);
  return v * 1000;
}

export class Mapper {
  constructor(
    private readonly file: MappingFile | undefined,
    private readonly defaultBuckets: readonly number[],
  ) {}

  /** The family for a StatsD name and kind, or 'drop'. */
  map(statsdName: string, kind: Kind): Mapping | 'drop' {
    const f = this.file;
    if (f) {
      for (const r of f.rules) {
        const m = r.regex.exec(statsdName);
        if (!m) continue;
        if (r.drop) return 'drop';
        const sub = (s: string) => s.replace(/\$\{?(\d+)\}?/g, (_, n: string) => m[Number(n)] ?? '');
        const name = sanitizeMetricName(r.name ? sub(r.name) : statsdName);
        return {
          name: kind === 'counter' && !name.endsWith('_total') ? `${name}_total` : name,
          labels: r.labels.map(([k, v]) => [k, sub(v)]),
          buckets: r.buckets ?? f.buckets ?? this.defaultBuckets,
          ttlMs: r.ttlMs ?? f.ttlMs,
          db: false,
        };
      }
    }
    const sanitized = sanitizeMetricName(statsdName);
    const builtIn = BUILT_IN[sanitized];
    if (builtIn) return { name: builtIn.name, labels: [], buckets: LATENCY_BUCKETS, ttlMs: f?.ttlMs ?? 0, db: builtIn.db === true };
    return {
      name: kind === 'counter' && !sanitized.endsWith('_total') ? `${sanitized}_total` : sanitized,
      labels: [],
      buckets: f?.buckets ?? this.defaultBuckets,
      ttlMs: f?.ttlMs ?? 0,
      db: false,
    };
  }
}

/** Label pairs merged (mapping labels win over tags), sanitised and sorted, rendered. */
export function labelKey(mapped: [string, string][], tags: [string, string][]): [string, string][] {
  const m = new Map<string, string>();
  for (const [k, v] of tags) m.set(sanitizeLabelName(k), v);
  for (const [k, v] of mapped) m.set(k, v);
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
