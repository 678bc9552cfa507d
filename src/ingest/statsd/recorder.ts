/**
 * Turns parsed StatsD lines into series in the shared metric store. Every line ends in exactly one
 * outcome, counted in metrics_sidecar_statsd_lines_total{outcome}:
 * - accepted: stored (possibly in its family's overflow series, when the label set broke a limit);
 * - malformed: bad syntax;
 * - dropped: a drop rule, the DB family while ENABLE_DB_METRICS is off, or a set;
 * - type_conflict: the name holds another type (maintained families have fixed types, whatever
 *   arrives first), or is reserved (`up`, the sidecar's own families and all their spellings);
 * - limited: a limit refused it (a name past MAX_NAME_CHARS, or a new family past
 *   METRICS_MAX_FAMILIES_PER_SOURCE).
 * Nothing a client sends can throw out of here, and nothing it sends is kept whole: names, label
 * text and cache keys are copied out of the line (a slice would keep the whole line alive) and the
 * cache of resolved lines is bounded in characters.
 */
import { Counter, exceedsBytes, Gauge, Histogram, renderLabelPairs, type HistogramSeries, type Registry, type ValueSeries } from '../../metrics/registry';
import { Contract, OVERFLOW_LABEL, stripTotal, type StoredType } from '../../metrics/contract';
import { parseLine, parseTags, StatsdParseError, type StatsdLine } from './parser';
import { labelKey, type Mapper } from './mapper';

export type Outcome = 'accepted' | 'malformed' | 'dropped' | 'type_conflict' | 'limited';
export const OUTCOMES: readonly Outcome[] = ['accepted', 'malformed', 'dropped', 'type_conflict', 'limited'];

interface OwnFamily {
  kind: StoredType;
  family: Counter | Gauge | Histogram;
  ttlMs: number;
}

/** What a (name, type, tags) triple resolved to, cached so repeated lines skip mapping. */
type Target = { family: OwnFamily; series: ValueSeries | HistogramSeries; scale: number } | Exclude<Outcome, 'accepted'>;

/** Metric and label names longer than this are refused (Datadog's own limit for names is 200). */
export const MAX_NAME_CHARS = 200;
/** The cache of resolved lines holds at most this many characters of keys, then starts over. */
const CACHE_MAX_CHARS = 4 * 1024 * 1024;
/** Keys longer than this are resolved every time rather than cached. */
const CACHE_MAX_KEY_CHARS = 1024;
/** Per cached entry, beyond its key: Map slots and the target (rough, for the bound). */
const CACHE_ENTRY_OVERHEAD = 64;
const KIND: Record<string, StoredType> = { c: 'counter', g: 'gauge', ms: 'histogram', h: 'histogram', d: 'histogram' };

export interface StatsdRecorderOptions {
  enableDbMetrics: boolean;
  maxSeriesPerFamily: number;
  /** Families StatsD may create (METRICS_MAX_FAMILIES_PER_SOURCE). */
  maxFamilies?: number;
  /** Labels on one series, tags and mapping labels together (METRICS_MAX_LABELS_PER_SERIES). */
  maxLabels?: number;
  /** UTF-8 bytes of one label value (METRICS_MAX_LABEL_VALUE_BYTES). */
  maxLabelValueBytes?: number;
  /** Names reserved by the sidecar and maintained types; defaults to the default HTTP prefix's. */
  contract?: Contract;
}

/** A flat copy of a string: a slice of a received line would keep the whole line in memory. */
export function detach(s: string): string {
  return s.length === 0 ? '' : (JSON.parse(JSON.stringify(s)) as string);
}

export class StatsdRecorder {
  private readonly families = new Map<string, OwnFamily>();
  /** name → rest of the line (type, rate, tags) → target: two lookups on slices of the line, no key built. */
  private readonly cache = new Map<string, Map<string, Target>>();
  /** Characters (keys plus overhead) the cache holds. */
  private cachedChars = 0;
  private readonly outcomes: Record<Outcome, ValueSeries>;
  private readonly contract: Contract;
  private readonly maxFamilies: number;
  private readonly maxLabels: number;
  private readonly maxLabelValueBytes: number;
  /** Lines whose handling threw unexpectedly (a bug): counted as malformed, and here for tests. */
  internalErrors = 0;
  /** A coarse clock for TTLs, advanced by `tick()`: Date.now() per line would cost more. */
  private now = Date.now();

  constructor(
    private readonly registry: Registry,
    private readonly mapper: Mapper,
    private readonly opts: StatsdRecorderOptions,
  ) {
    const lines = registry.register(
      new Counter({
        name: 'metrics_sidecar_statsd_lines_total',
        help: 'StatsD lines received, by outcome: accepted, malformed, dropped, type_conflict, limited.',
        labelNames: ['outcome'],
      }),
    );
    this.outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, lines.child([o])!])) as Record<Outcome, ValueSeries>;
    this.contract = opts.contract ?? new Contract();
    this.maxFamilies = opts.maxFamilies ?? Infinity;
    this.maxLabels = opts.maxLabels ?? Infinity;
    this.maxLabelValueBytes = opts.maxLabelValueBytes ?? Infinity;
  }

  /** Handles one packet or TCP chunk of newline-separated lines. */
  handlePacket(text: string): void {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      let line = text.slice(start, end);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line !== '') this.handleLine(line);
      start = end + 1;
    }
  }

  handleLine(line: string): Outcome {
    let outcome: Outcome;
    try {
      outcome = this.apply(parseLine(line));
    } catch (err) {
      // A parse error is the client's; anything else is ours, and still must not reach the event loop.
      if (!(err instanceof StatsdParseError)) this.internalErrors++;
      outcome = 'malformed';
    }
    this.outcomes[outcome].value++;
    return outcome;
  }

  /** Lines counted so far, by outcome (tests and benchmarks). */
  counts(): Record<Outcome, number> {
    return Object.fromEntries(OUTCOMES.map((o) => [o, this.outcomes[o].value])) as Record<Outcome, number>;
  }

  /** Counts a line refused before parsing (an over-long TCP line). */
  countMalformed(): void {
    this.outcomes.malformed.value++;
  }

  /** Advances the TTL clock and removes series idle past their family's TTL. */
  tick(now = Date.now()): number {
    this.now = now;
    let removed = 0;
    for (const f of this.families.values()) {
      if (f.ttlMs > 0) removed += f.family.sweep((s) => (s.t ?? now) + f.ttlMs <= now);
    }
    // Cached series may be among those removed: resolve again from now on.
    if (removed > 0) this.clearCache();
    return removed;
  }

  private clearCache(): void {
    this.cache.clear();
    this.cachedChars = 0;
  }

  private apply(p: StatsdLine): Outcome {
    if (p.type === 's') return 'dropped';
    const sub = p.rest;
    let byName = this.cache.get(p.name);
    let target = byName?.get(sub);
    if (target === undefined) {
      target = this.resolve(p);
      // Overflow targets are not cached, so each line sent there is counted as a refusal; long
      // keys are not cached at all, so the cache stays small whatever the lines look like.
      // Refusals are final: families are never removed, so a name past the family limit stays there.
      const cacheable = typeof target === 'string' || !target.family.family.isOverflow(target.series as never);
      if (cacheable && p.name.length + sub.length <= CACHE_MAX_KEY_CHARS) {
        const cost = sub.length + CACHE_ENTRY_OVERHEAD + (byName === undefined ? p.name.length + CACHE_ENTRY_OVERHEAD : 0);
        if (this.cachedChars + cost > CACHE_MAX_CHARS) {
          this.clearCache();
          byName = undefined;
        }
        if (byName === undefined) {
          this.cache.set(detach(p.name), (byName = new Map()));
          this.cachedChars += p.name.length + CACHE_ENTRY_OVERHEAD;
        }
        byName.set(detach(sub), target);
        this.cachedChars += sub.length + CACHE_ENTRY_OVERHEAD;
      }
    }
    if (typeof target === 'string') return target;

    const { family, series, scale } = target;
    const weight = 1 / p.rate;
    if (family.ttlMs > 0) series.t = this.now;
    switch (family.kind) {
      case 'counter':
        for (const v of p.values) (series as ValueSeries).value += v * weight;
        break;
      case 'gauge':
        for (const v of p.values) (series as ValueSeries).value = p.delta ? (series as ValueSeries).value + v : v;
        break;
      case 'histogram':
        for (const v of p.values) (family.family as Histogram).observeWeighted(series as HistogramSeries, v * scale, weight);
        break;
    }
    return 'accepted';
  }

  private resolve(p: StatsdLine): Target {
    if (p.name.length > MAX_NAME_CHARS) return 'limited';
    const kind = KIND[p.type];
    const mapped = this.mapper.map(p.name, kind);
    if (mapped === 'drop') return 'dropped';
    if (mapped.db && !this.opts.enableDbMetrics) return 'dropped';
    if (mapped.name.length > MAX_NAME_CHARS) return 'limited';
    // A counter `x_total` is family `x` in OpenMetrics: `x` and `x_total` are one name here.
    const base = kind === 'counter' ? stripTotal(mapped.name) : mapped.name;
    let own = this.families.get(base);
    if (own === undefined) {
      // The contract first (reserved names, maintained types), then every family already there.
      if (this.contract.refuse(mapped.name, kind) !== undefined) return 'type_conflict';
      if (this.registry.collision(mapped.name, kind) !== undefined) return 'type_conflict';
      if (this.families.size >= this.maxFamilies) return 'limited';
      const name = detach(mapped.name);
      own = { kind, family: this.createFamily(name, kind, mapped.buckets, mapped.help), ttlMs: mapped.ttlMs };
      this.registry.register(own.family);
      this.families.set(detach(base), own);
    } else if (own.kind !== kind) {
      return 'type_conflict';
    }
    const scale = p.type === 'ms' ? 0.001 : 1;
    const pairs = this.labels(mapped.labels, p.tags, kind);
    if (pairs === undefined) return { family: own, series: own.family.overflow('label_limit'), scale };
    const series = own.family.childRendered(
      detach(
        renderLabelPairs(
          pairs.map((x) => x[0]),
          pairs.map((x) => x[1]),
        ),
      ),
    );
    return { family: own, series: series!, scale };
  }

  /**
   * The label pairs of a line (mapping labels win over tags), or undefined when they break a
   * limit: too many labels, a name past MAX_NAME_CHARS or a value past its byte limit.
   */
  private labels(mapped: [string, string][], tags: string, kind: StoredType): [string, string][] | undefined {
    const parsed = parseTags(tags);
    // Cheap first: the tag count alone can already exceed the limit (duplicates only shrink it).
    if (parsed.length > this.maxLabels * 4 + mapped.length) return undefined;
    const pairs = labelKey(mapped, parsed);
    if (pairs.length > this.maxLabels) return undefined;
    const max = this.maxLabelValueBytes;
    for (const pair of pairs) {
      if (pair[0].length > MAX_NAME_CHARS) return undefined;
      if (exceedsBytes(pair[1], max)) return undefined;
      // Names the exposition gives a meaning to are renamed, as Prometheus does for clashing target labels.
      if ((kind === 'histogram' && pair[0] === 'le') || pair[0] === OVERFLOW_LABEL) pair[0] = `exported_${pair[0]}`;
    }
    if (pairs.some((x) => x[0].startsWith('exported_'))) {
      // Renaming can have made two equal names (a tag `le` and a tag `exported_le`): keep the first, sorted again.
      const seen = new Map<string, string>();
      for (const [k, v] of pairs) if (!seen.has(k)) seen.set(k, v);
      return [...seen.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    }
    return pairs;
  }

  /** `help` is the mapping rule's (statsd_exporter's `help:`), else a generic line. */
  private createFamily(name: string, kind: StoredType, buckets: readonly number[], help?: string): Counter | Gauge | Histogram {
    const base = { name, help: help ?? `${name} from StatsD.`, maxSeries: this.opts.maxSeriesPerFamily };
    if (kind === 'counter') return new Counter(base);
    if (kind === 'gauge') return new Gauge(base);
    return new Histogram({ ...base, buckets });
  }
}
