/**
 * Turns parsed StatsD lines into series in the shared metric store. Every line ends in exactly one
 * outcome, counted in metrics_sidecar_statsd_lines_total{outcome}: accepted, malformed (bad
 * syntax), dropped (a drop rule, the DB family while ENABLE_DB_METRICS is off, sets, or a family
 * at its series cap) or type_conflict (the name already holds another type, or is one of the
 * sidecar's own families). Nothing a client sends can throw out of here.
 */
import { Counter, Gauge, Histogram, renderLabelPairs, type HistogramSeries, type Registry, type ValueSeries } from '../../metrics/registry';
import { parseLine, parseTags, StatsdParseError, type StatsdLine } from './parser';
import { labelKey, type Kind, type Mapper } from './mapper';

export type Outcome = 'accepted' | 'malformed' | 'dropped' | 'type_conflict';

interface OwnFamily {
  kind: Kind;
  family: Counter | Gauge | Histogram;
  ttlMs: number;
}

/** What a (name, type, tags) triple resolved to, cached so repeated lines skip mapping. */
type Target = { family: OwnFamily; series: ValueSeries | HistogramSeries; scale: number } | Exclude<Outcome, 'accepted'>;

const MAX_CACHED = 100_000;
const KIND: Record<string, Kind> = { c: 'counter', g: 'gauge', ms: 'histogram', h: 'histogram', d: 'histogram' };

export interface StatsdStoreOptions {
  enableDbMetrics: boolean;
  maxSeriesPerFamily: number;
}

export class StatsdStore {
  private readonly families = new Map<string, OwnFamily>();
  /** name → rest of the line (type, rate, tags) → target: two lookups on slices of the line, no key built. */
  private readonly cache = new Map<string, Map<string, Target>>();
  private cached = 0;
  private readonly outcomes: Record<Outcome, ValueSeries>;
  /** A coarse clock for TTLs, advanced by `tick()`: Date.now() per line would cost more. */
  private now = Date.now();

  constructor(
    private readonly registry: Registry,
    private readonly mapper: Mapper,
    private readonly opts: StatsdStoreOptions,
  ) {
    const lines = registry.register(
      new Counter({ name: 'metrics_sidecar_statsd_lines_total', help: 'StatsD lines received, by outcome: accepted, malformed, dropped, type_conflict.', labelNames: ['outcome'] }),
    );
    this.outcomes = {
      accepted: lines.child(['accepted'])!,
      malformed: lines.child(['malformed'])!,
      dropped: lines.child(['dropped'])!,
      type_conflict: lines.child(['type_conflict'])!,
    };
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
    let parsed: StatsdLine;
    try {
      parsed = parseLine(line);
    } catch (err) {
      if (!(err instanceof StatsdParseError)) throw err;
      this.outcomes.malformed.value++;
      return 'malformed';
    }
    const outcome = this.apply(parsed);
    this.outcomes[outcome].value++;
    return outcome;
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
    this.cached = 0;
  }

  private apply(p: StatsdLine): Outcome {
    if (p.type === 's') return 'dropped';
    const sub = p.rest;
    let byName = this.cache.get(p.name);
    let target = byName?.get(sub);
    if (target === undefined) {
      target = this.resolve(p);
      // Capped families are not cached, so their drops keep being counted precisely.
      if (typeof target !== 'string' || target === 'type_conflict') {
        if (this.cached >= MAX_CACHED) this.clearCache();
        if (byName === undefined) this.cache.set(p.name, (byName = new Map()));
        byName.set(sub, target);
        this.cached++;
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
    const kind = KIND[p.type];
    const mapped = this.mapper.map(p.name, kind);
    if (mapped === 'drop') return 'dropped';
    if (mapped.db && !this.opts.enableDbMetrics) return 'dropped';
    // A counter `x_total` is family `x` in OpenMetrics: `x` and `x_total` are one name here.
    const base = kind === 'counter' ? mapped.name.slice(0, -'_total'.length) : mapped.name;
    let own = this.families.get(base);
    if (own === undefined) {
      if (this.registry.taken(mapped.name)) return 'type_conflict'; // one of the sidecar's own families
      own = { kind, family: this.createFamily(mapped.name, kind, mapped.buckets), ttlMs: mapped.ttlMs };
      this.registry.register(own.family);
      this.families.set(base, own);
    } else if (own.kind !== kind) {
      return 'type_conflict';
    }
    let pairs = labelKey(mapped.labels, parseTags(p.tags));
    if (kind === 'histogram') pairs = pairs.map(([k, v]) => [k === 'le' ? 'exported_le' : k, v]);
    const series = own.family.childRendered(renderLabelPairs(pairs.map((x) => x[0]), pairs.map((x) => x[1])));
    if (series === undefined) return 'dropped';
    return { family: own, series, scale: p.type === 'ms' ? 0.001 : 1 };
  }

  private createFamily(name: string, kind: Kind, buckets: readonly number[]): Counter | Gauge | Histogram {
    const base = { name, help: `${name} from StatsD.`, maxSeries: this.opts.maxSeriesPerFamily };
    if (kind === 'counter') return new Counter(base);
    if (kind === 'gauge') return new Gauge(base);
    return new Histogram({ ...base, buckets });
  }
}
