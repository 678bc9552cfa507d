/**
 * STATSD_MAPPING_FILE in prometheus/statsd_exporter's format, so a mapping file written for it
 * loads unchanged and maps the same way (pkg/mapper in statsd_exporter is the reference):
 *
 *     defaults:
 *       observer_type: histogram        # summary is accepted: observed as a histogram here (logged)
 *       match_type: glob                # or regex
 *       glob_disable_ordering: false
 *       ttl: 0                          # a duration: 30s, 5m, 1h30m; 0 = forever
 *       histogram_options:
 *         buckets: [0.01, 0.1, 1, 10]
 *         native_histogram_bucket_factor: 1.1   # native buckets beside the classic ones; 0 = none
 *         native_histogram_max_buckets: 160
 *     mappings:
 *       - match: "test.dispatcher.*.*.*"        # glob: * is one whole dot-separated component
 *         name: "dispatcher_events_total"
 *         labels: { processor: "$1", action: "$2", outcome: "$3", job: "test_dispatcher" }
 *       - match: "(.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count"
 *         match_type: regex                     # Go/RE2 syntax, unanchored; $1, ${1}, ${name}
 *         name: "request_total"
 *         labels: { service: "$1", status: "$4" }
 *       - match: "*.signup.*.*"
 *         match_metric_type: counter            # counter | gauge | observer
 *         name: "signup_events_total"
 *         help: "Signups by provider and outcome."
 *         ttl: 5m
 *         histogram_options: { buckets: [1, 2, 5] }
 *       - match: "debug.*"
 *         action: drop
 *         name: "dropped"
 *
 * Precedence, as statsd_exporter: glob rules first, the first matching one in file order (with
 * `glob_disable_ordering: true`, the most specific one: exact components before `*`, left to
 * right); then regex rules in file order. A mapping whose match_metric_type differs is skipped.
 *
 * The project's older spelling keeps working where it cannot be misread: `buckets` directly in a
 * rule or in `defaults` (statsd_exporter's own deprecated form). A bare number as `ttl` is
 * refused unless it is 0: statsd_exporter reads it as nanoseconds, this project used to read it
 * as seconds, so the error asks for a duration (`600s`).
 *
 * Differences that remain: counters get `_total` appended when their name lacks it (OpenMetrics),
 * summaries are histograms, and a rule's labels win over the line's tags.
 */
import type * as YamlModule from 'yaml';
import type { StoredType } from '../metrics/contract';

export interface Rule {
  /** The match text, for messages. */
  match: string;
  matchType: 'glob' | 'regex';
  regex: RegExp;
  /** Glob components (`*` or a literal), for glob_disable_ordering. */
  components: string[] | undefined;
  metricType: StoredType | undefined;
  name: string | undefined;
  labels: [string, string][];
  help: string | undefined;
  buckets: number[] | undefined;
  /** `histogram_options.native_histogram_*`: what the rule sets of its native buckets (factor 0 = none). */
  native: NativeRuleOptions | undefined;
  ttlMs: number | undefined;
  drop: boolean;
}

/** statsd_exporter's `native_histogram_bucket_factor` / `native_histogram_max_buckets`, as set (either may be absent). */
export interface NativeRuleOptions {
  bucketFactor?: number;
  maxBuckets?: number;
}

export interface MappingFile {
  /** Glob rules first, then regex rules, each in file order (the order they are tried in). */
  rules: Rule[];
  globDisableOrdering: boolean;
  buckets: number[] | undefined;
  native: NativeRuleOptions | undefined;
  ttlMs: number;
  /** Things worth a log line at start (summaries observed as histograms, ignored options). */
  notes: string[];
}

const METRIC_NAME_TEMPLATE = /^([a-zA-Z_:]|\$\{?\d+\}?)([a-zA-Z0-9_:]|\$\{?\d+\}?)*$/;
const REGEX_NAME_TEMPLATE = /^([a-zA-Z_:]|\$\{?\w+\}?)([a-zA-Z0-9_:]|\$\{?\w+\}?)*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const GLOB_COMPONENT = /^(\*|[a-zA-Z0-9_:-]+)$/;

export function parseMappingFile(text: string): MappingFile {
  let doc: unknown;
  try {
    // Loaded only when a mapping file is used: yaml is ~70 modules, a large share of start-up.
    const YAML = require('yaml') as typeof YamlModule;
    doc = YAML.parse(text) ?? {};
  } catch (err) {
    throw new Error(`not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('the mapping file must be a YAML mapping with "mappings:"');
  const { defaults: rawDefaults = {}, mappings: rawRules = [] } = doc as { defaults?: unknown; mappings?: unknown };
  if (typeof rawDefaults !== 'object' || rawDefaults === null || Array.isArray(rawDefaults)) throw new Error('"defaults" must be a mapping');
  if (!Array.isArray(rawRules)) throw new Error('"mappings" must be a list');
  const notes: string[] = [];
  const defaults = rawDefaults as Record<string, unknown>;
  // Every mistake is reported in one run (an AggregateError): each default and each rule is read on
  // its own, and a bad one does not hide the next.
  const errors: Error[] = [];
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (err) {
      errors.push(err as Error);
      return fallback;
    }
  };

  const defaultMatchType: 'glob' | 'regex' = attempt(() => oneOf(defaults.match_type, ['glob', 'regex'] as const, 'defaults.match_type'), undefined) ?? 'glob';
  attempt(() => observerType(defaults.observer_type ?? defaults.timer_type, 'defaults', notes), undefined);
  if (defaults.summary_options !== undefined || defaults.quantiles !== undefined)
    notes.push('defaults: summary options are ignored (summaries are observed as histograms)');
  const defaultBuckets = attempt(() => bucketsOf(defaults, 'defaults'), undefined);
  const defaultNative = attempt(() => nativeOf(defaults, 'defaults'), undefined);
  const ttlMs = defaults.ttl === undefined ? 0 : attempt(() => duration(defaults.ttl, 'defaults.ttl'), 0);
  const globDisableOrdering = defaults.glob_disable_ordering === true;

  const globs: Rule[] = [];
  const regexes: Rule[] = [];
  rawRules.forEach((raw: unknown, i: number) => attempt(() => readRule(raw, i), undefined));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('; '));
  return { rules: [...globs, ...regexes], globDisableOrdering, buckets: defaultBuckets, native: defaultNative, ttlMs, notes };

  function readRule(raw: unknown, i: number): void {
    const where = `mappings[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: must be a mapping with "match"`);
    const r = raw as Record<string, unknown>;
    if (typeof r.match !== 'string' || r.match === '') throw new Error(`${where}: "match" is required`);
    const at = `${where} (match ${JSON.stringify(r.match)})`;
    const action = oneOf(r.action, ['map', 'drop'], `${at}: "action"`) ?? 'map';
    const drop = action === 'drop';
    const matchType = oneOf(r.match_type, ['glob', 'regex'], `${at}: "match_type"`) ?? defaultMatchType;
    const mt = oneOf(r.match_metric_type, ['counter', 'gauge', 'observer', 'timer', 'histogram', 'distribution'], `${at}: "match_metric_type"`);
    const metricType: StoredType | undefined = mt === undefined ? undefined : mt === 'counter' || mt === 'gauge' ? mt : 'histogram';

    let name: string | undefined;
    if (r.name !== undefined && r.name !== '') {
      if (typeof r.name !== 'string' || !(matchType === 'regex' ? REGEX_NAME_TEMPLATE : METRIC_NAME_TEMPLATE).test(r.name)) {
        throw new Error(`${at}: "name" ${JSON.stringify(r.name)} is not a metric name (letters, digits, _ and :, with $1 or \${1} captures)`);
      }
      name = checkTemplate(r.name, `${at}: "name"`);
    } else if (!drop) {
      throw new Error(`${at}: "name" is required (unless action: drop)`);
    }

    const labels: [string, string][] = [];
    if (r.labels !== undefined && r.labels !== null) {
      if (typeof r.labels !== 'object' || Array.isArray(r.labels)) throw new Error(`${at}: "labels" must be a mapping`);
      for (const [k, v] of Object.entries(r.labels)) {
        if (!LABEL_NAME.test(k)) throw new Error(`${at}: label name ${JSON.stringify(k)} is invalid`);
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new Error(`${at}: label ${k} must be a string`);
        labels.push([k, checkTemplate(String(v), `${at}: label ${k}`)]);
      }
    }
    if (r.help !== undefined && typeof r.help !== 'string') throw new Error(`${at}: "help" must be a string`);
    observerType(r.observer_type ?? r.timer_type, at, notes);
    if (r.summary_options !== undefined || r.quantiles !== undefined) notes.push(`${at}: summary options are ignored (summaries are observed as histograms)`);

    let regex: RegExp;
    let components: string[] | undefined;
    if (matchType === 'glob') {
      components = r.match.split('.');
      if (!components.every((c) => GLOB_COMPONENT.test(c))) {
        throw new Error(`${at}: invalid glob: each dot-separated part must be * or a name (letters, digits, _, -, :)`);
      }
      regex = new RegExp(`^${components.map((c) => (c === '*' ? '([^.]*)' : escapeRegex(c))).join('\\.')}$`);
    } else {
      try {
        // RE2's named groups (?P<name>...) are JavaScript's (?<name>...).
        regex = new RegExp(r.match.replace(/\(\?P</g, '(?<'));
      } catch (err) {
        throw new Error(`${at}: invalid regex: ${(err as Error).message}`, { cause: err });
      }
    }
    const rule: Rule = {
      match: r.match,
      matchType,
      regex,
      components,
      metricType,
      name: drop ? undefined : name,
      labels,
      // An empty help is none: a bare `# HELP name` line is what promtool calls "no help text".
      help: typeof r.help === 'string' && r.help.trim() !== '' ? r.help : undefined,
      buckets: bucketsOf(r, at),
      native: nativeOf(r, at),
      ttlMs: r.ttl === undefined ? undefined : duration(r.ttl, `${at}: "ttl"`),
      drop,
    };
    (matchType === 'glob' ? globs : regexes).push(rule);
  }
}

export interface RuleMatch {
  rule: Rule;
  /** Expands `$1`, `${1}` (and, for regex rules, `${name}`) with this match's captures. */
  expand(template: string): string;
}

/** The rule a StatsD name of this kind maps through, with statsd_exporter's precedence. */
export function findRule(file: MappingFile, statsdName: string, kind: StoredType): RuleMatch | undefined {
  let best: { rule: Rule; m: RegExpExecArray } | undefined;
  for (const rule of file.rules) {
    if (rule.matchType === 'regex' && best) break; // a glob matched: regex rules are not tried
    if (rule.metricType !== undefined && rule.metricType !== kind) continue;
    const m = rule.regex.exec(statsdName);
    if (!m) continue;
    if (rule.matchType === 'regex' || !file.globDisableOrdering) {
      best = { rule, m };
      break;
    }
    if (!best || moreSpecific(rule.components!, best.rule.components!)) best = { rule, m };
  }
  if (!best) return undefined;
  const { rule, m } = best;
  return {
    rule,
    expand: (template) =>
      template.replace(/\$\$|\$\{(\w+)\}|\$(\w+)/g, (all, braced: string | undefined, bare: string | undefined) => {
        if (all === '$$') return '$';
        const ref = braced ?? bare!;
        if (/^\d+$/.test(ref)) return m[Number(ref)] ?? '';
        return rule.matchType === 'regex' ? (m.groups?.[ref] ?? '') : '';
      }),
  };
}

/** Exact components beat `*`, the first difference from the left deciding (the FSM's walk). */
function moreSpecific(a: string[], b: string[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    if (a[i] !== '*' && b[i] === '*') return true;
    if (a[i] === '*' && b[i] !== '*') return false;
  }
  return false;
}

/**
 * `$2_seconds` reads, in statsd_exporter as in Go's regexp, as a reference to a capture named
 * "2_seconds", which is empty; this project once read it as `${2}_seconds`. Rather than map such a
 * file differently from either, say how to write it.
 */
function checkTemplate(t: string, where: string): string {
  const m = /\$(\d+)([A-Za-z_]\w*)/.exec(t.replace(/\$\$/g, ''));
  if (m) throw new Error(`${where}: "$${m[1]}${m[2]}" refers to a capture named "${m[1]}${m[2]}" (empty); write "\${${m[1]}}${m[2]}"`);
  return t;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], where: string): T | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new Error(`${where} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
}

function observerType(v: unknown, where: string, notes: string[]): void {
  const t = oneOf(v, ['histogram', 'summary'], `${where}: "observer_type"`);
  if (t === 'summary') notes.push(`${where}: observer_type summary is observed as a histogram (the sidecar exposes no summaries)`);
}

/** `histogram_options.buckets`, or the older top-level `buckets`; both at once is an error, as in statsd_exporter. */
/** Buckets one histogram rule may declare (Prometheus' own histograms rarely exceed 30). */
const MAX_BUCKETS = 100;

function bucketsOf(r: Record<string, unknown>, where: string): number[] | undefined {
  const opts = r.histogram_options;
  if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts)))
    throw new Error(`${where}: "histogram_options" must be a mapping`);
  const nested = (opts as Record<string, unknown> | undefined | null)?.buckets;
  if (nested !== undefined && r.buckets !== undefined)
    throw new Error(`${where}: "buckets" and "histogram_options.buckets" are both set; use histogram_options.buckets`);
  const v = nested ?? r.buckets;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length === 0 || !v.every((b, i) => typeof b === 'number' && Number.isFinite(b) && (i === 0 || b > (v[i - 1] as number)))) {
    throw new Error(`${where}: buckets must be a non-empty list of ascending numbers`);
  }
  // Every series of the family holds one counter per bucket, and a series counts as one in the budgets.
  if (v.length > MAX_BUCKETS) throw new Error(`${where}: ${v.length} buckets; at most ${MAX_BUCKETS}`);
  return v as number[];
}

/** `histogram_options.native_histogram_bucket_factor` (0, or above 1) and `native_histogram_max_buckets` (a positive integer). */
function nativeOf(r: Record<string, unknown>, where: string): NativeRuleOptions | undefined {
  const opts = r.histogram_options as Record<string, unknown> | undefined | null;
  if (opts === undefined || opts === null || typeof opts !== 'object') return undefined;
  const out: NativeRuleOptions = {};
  const f = opts.native_histogram_bucket_factor;
  if (f !== undefined && f !== null) {
    if (typeof f !== 'number' || !(f === 0 || (f > 1 && f <= 65536)))
      throw new Error(`${where}: "histogram_options.native_histogram_bucket_factor" must be 0 (no native buckets) or a number above 1, at most 65536`);
    out.bucketFactor = f;
  }
  const m = opts.native_histogram_max_buckets;
  if (m !== undefined && m !== null) {
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 1 || m > 100_000)
      throw new Error(`${where}: "histogram_options.native_histogram_max_buckets" must be an integer from 1 to 100000`);
    out.maxBuckets = m;
  }
  return out.bucketFactor === undefined && out.maxBuckets === undefined ? undefined : out;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (`30s`, `5m`, `1h30m`, `250ms`) in milliseconds; `0` alone is allowed bare. */
export function duration(v: unknown, where: string): number {
  if (v === 0 || v === '0') return 0;
  if (typeof v === 'number') {
    throw new Error(`${where}: ${v} is a bare number; write a duration such as "${v}s" (statsd_exporter would read ${v} as nanoseconds)`);
  }
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    throw new Error(`${where}: ${JSON.stringify(v)} is not a duration (e.g. 30s, 5m, 1h30m)`);
  }
  let ms = 0;
  for (const [, n, unit] of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit];
  return ms;
}
