/**
 * A small metric store built for the proxy's hot path and for cheap scrapes.
 *
 * Each series keeps its label pairs pre-rendered (`method="GET",status="200"`, escaped by the
 * exposition format's rules), so recording is a number update and a scrape copies that text as it
 * is. The store renders none of its families: exposition/render.ts writes the text formats straight
 * into byte buffers and exposition/protobuf.ts the protobuf one, both reading the families' series.
 *
 * Memory is a budget: a family caps its series count, the registry caps the series (and the bytes
 * of label text) of all budgeted families together, and a label value past its byte limit never
 * becomes a series. A label set that would break a limit is not stored: its events go to the
 * family's one overflow series, labelled `otel_metric_overflow="true"` (OpenTelemetry's
 * convention), so totals stay right, and the refusal is reported to the registry's drop hook.
 */

import { exposedNames, isSidecarFamily, OVERFLOW_LABEL, type MetricType, type StoredType } from './contract';
import { escapeLabelValue } from '../formats/exposition';
import type { Exemplar } from './native-types';
import { NativeHistogramBuckets, type NativeHistogramOptions } from './native-histogram';

export type { StoredType } from './contract';

export interface FamilyOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Maximum number of label combinations; further ones go to the overflow series and are counted. */
  maxSeries?: number;
}

/** Why a label set was not stored (it went to the family's overflow series). */
export type DropReason = 'family_cap' | 'series_budget' | 'label_limit';

export type DropHook = (family: string, reason: DropReason) => void;

/** Limits the registry shares among its budgeted families (all but the sidecar's own). */
export interface RegistryLimits {
  /** Series stored across every budgeted family; merged sources take what is left at scrape time. */
  maxSeriesTotal: number;
  /** Characters of rendered label text stored across every budgeted family. */
  maxLabelBytesTotal: number;
  /** UTF-8 bytes of one label value. */
  maxLabelValueBytes: number;
}

const NO_LIMITS: RegistryLimits = { maxSeriesTotal: Infinity, maxLabelBytesTotal: Infinity, maxLabelValueBytes: Infinity };

/** What the budgeted families hold together right now. */
export class SeriesBudget {
  series = 0;
  labelBytes = 0;
  constructor(readonly limits: RegistryLimits) {}

  /** Room for one more series with this much label text? */
  fits(labelBytes: number): boolean {
    return this.series < this.limits.maxSeriesTotal && this.labelBytes + labelBytes <= this.limits.maxLabelBytesTotal;
  }

  /** Series a merged source may still add in this scrape. */
  remaining(): number {
    return Math.max(0, this.limits.maxSeriesTotal - this.series);
  }
}

const OVERFLOW_PAIR = `${OVERFLOW_LABEL}="true"`;

abstract class Family<S extends { labels: string }> {
  abstract readonly type: StoredType;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly maxSeries: number;
  protected readonly series = new Map<string, S>();
  /** The one series holding the events of label sets that were refused; made on first need. */
  private overflowSeries: S | undefined;
  onDrop: DropHook | undefined;
  /** Set by the registry: the shared budget (undefined for the sidecar's own families) and limits. */
  budget: SeriesBudget | undefined;
  limits: RegistryLimits = NO_LIMITS;

  constructor(opts: FamilyOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
    this.maxSeries = opts.maxSeries ?? Infinity;
  }

  /**
   * The series for these label values (in `labelNames` order). A label set that breaks a limit
   * gets the overflow series (never undefined today; the type stays for callers that check).
   */
  child(values: readonly string[] = []): S | undefined {
    // The key is the rendered label text itself (escaping keeps it one-to-one with the values):
    // one string per series, the one the exposition writes, instead of a key and a text (~30 B
    // less per series). Hot paths resolve their series once and keep it (RED routes, StatsD's cache).
    const labels = values.length === 0 && this.labelNames.length === 0 ? '' : renderLabelPairs(this.labelNames, values);
    const s = this.series.get(labels);
    if (s !== undefined) return s;
    const max = this.limits.maxLabelValueBytes;
    if (max !== Infinity) {
      // A UTF-8 byte is at least a UTF-16 unit and at most three: count bytes only when it can matter.
      for (const v of values) if (exceedsBytes(v, max)) return this.overflow('label_limit');
    }
    return this.add(labels, labels);
  }

  /**
   * The series whose label pairs are already rendered (`a="1",b="2"`, names sorted): for sources
   * such as StatsD tags, where each event brings its own label names (the caller checks them
   * against the limits). Gets the overflow series when the family or the budget is full.
   */
  childRendered(labels: string): S | undefined {
    const s = this.series.get(labels);
    return s !== undefined ? s : this.add(labels, labels);
  }

  private add(key: string, labels: string): S {
    if (this.series.size >= this.maxSeries) return this.overflow('family_cap');
    const budget = this.budget;
    if (budget !== undefined) {
      if (!budget.fits(labels.length)) return this.overflow('series_budget');
      budget.series++;
      budget.labelBytes += labels.length;
    }
    const s = this.create(labels);
    this.series.set(key, s);
    return s;
  }

  /** Counts a refused label set and returns the series that takes its events instead. */
  overflow(reason: DropReason): S {
    this.onDrop?.(this.name, reason);
    if (this.overflowSeries === undefined) this.overflowSeries = this.create(OVERFLOW_PAIR);
    return this.overflowSeries;
  }

  isOverflow(s: S): boolean {
    return s === this.overflowSeries;
  }

  /** Removes series for which `expired` is true (idle series past their TTL). */
  sweep(expired: (s: S) => boolean): number {
    let n = 0;
    for (const [k, s] of this.series) {
      if (expired(s)) {
        this.series.delete(k);
        this.release(s);
        n++;
      }
    }
    return n;
  }

  private release(s: S): void {
    if (this.budget !== undefined) {
      this.budget.series--;
      this.budget.labelBytes -= s.labels.length;
    }
  }

  /** Label sets stored (at most maxSeries); the overflow series, when there is one, comes on top (see hasOverflow). */
  get size(): number {
    return this.series.size;
  }

  /** True once a refused label set has made the overflow series. */
  get hasOverflow(): boolean {
    return this.overflowSeries !== undefined;
  }

  /** The overflow series, once a refused label set has made it. */
  get overflowed(): S | undefined {
    return this.overflowSeries;
  }

  /** Every series, the overflow series last (live objects, for readers such as the status page: never mutate them). */
  allSeries(): IterableIterator<S> {
    // Whether the overflow series comes last is decided now: a synchronous reader sees one state;
    // the streaming renderer, which reads across event-loop turns, adds a late one itself.
    // The Map's own iterator when there is no overflow series (the usual case): a generator around
    // it costs a resumption and a second result object per series, ~2.5x the young garbage of a
    // 100k-series render (a scavenge every ~3 scrapes instead of every ~7).
    return this.overflowSeries === undefined ? this.series.values() : this.withOverflow(this.overflowSeries);
  }

  private *withOverflow(overflow: S): IterableIterator<S> {
    yield* this.series.values();
    yield overflow;
  }

  protected abstract create(labels: string): S;
}

export interface ValueSeries {
  labels: string;
  value: number;
  /** Last update (ms since epoch), kept only by sources with a TTL. */
  t?: number;
  /** Counters: the latest exemplar (OpenMetrics and protobuf only). */
  ex?: Exemplar;
}

export class Counter extends Family<ValueSeries> {
  readonly type = 'counter';

  constructor(opts: FamilyOptions) {
    super(opts);
    if (!opts.name.endsWith('_total')) throw new Error(`counter ${opts.name} must end in _total`);
  }

  inc(values: readonly string[] = [], by = 1): void {
    const s = this.child(values);
    if (s) s.value += by;
  }

  /** One increment that carries an exemplar (the latest one is kept per series). */
  incWithExemplar(s: ValueSeries, ex: Exemplar): void {
    s.value++;
    s.ex = ex;
  }

  protected create(labels: string): ValueSeries {
    return { labels, value: 0 };
  }
}

export class Gauge extends Family<ValueSeries> {
  readonly type = 'gauge';

  set(values: readonly string[], value: number): void {
    const s = this.child(values);
    if (s) s.value = value;
  }

  protected create(labels: string): ValueSeries {
    return { labels, value: 0 };
  }
}

export interface HistogramSeries {
  labels: string;
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
  t?: number;
  /**
   * Per bucket (same slots as counts), the latest exemplar observed into it; made on the first
   * exemplar, so a series without traces costs nothing. At most buckets + 1 exemplars per series.
   */
  ex?: (Exemplar | undefined)[];
  /** The native (sparse exponential) buckets of the same observations, when the family has them. */
  nh?: NativeHistogramBuckets;
}

export class Histogram extends Family<HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  /** Native buckets beside the classic ones (carried only by the protobuf exposition); undefined = classic only. */
  readonly native: NativeHistogramOptions | undefined;

  constructor(opts: FamilyOptions & { buckets: readonly number[]; native?: NativeHistogramOptions }) {
    super(opts);
    if (opts.labelNames?.includes('le')) throw new Error(`histogram ${opts.name} cannot use the label "le"`);
    this.buckets = opts.buckets;
    this.native = opts.native;
    // Fails here, at registration, on a factor the native buckets refuse.
    if (opts.native !== undefined) new NativeHistogramBuckets(opts.native);
  }

  protected create(labels: string): HistogramSeries {
    const s: HistogramSeries = { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
    if (this.native !== undefined) s.nh = new NativeHistogramBuckets(this.native);
    return s;
  }

  /** Records one observation on a series (the hot-path form: no label lookup). */
  observeOn(s: HistogramSeries, v: number): void {
    this.observeWeighted(s, v, 1);
  }

  /** One observation standing for `weight` events (StatsD sample rates: weight = 1/rate). */
  observeWeighted(s: HistogramSeries, v: number, weight: number): void {
    const i = this.bucketOf(v);
    s.counts[i] += weight;
    s.sum += v * weight;
    s.count += weight;
    if (s.nh !== undefined && weight > 0 && weight < Infinity) s.nh.observe(v, weight);
  }

  /** One observation with its exemplar, which replaces the bucket's previous one. */
  observeWithExemplar(s: HistogramSeries, v: number, ex: Exemplar): void {
    const i = this.bucketOf(v);
    s.counts[i] += 1;
    s.sum += v;
    s.count += 1;
    if (s.nh !== undefined) s.nh.observe(v, 1);
    (s.ex ??= new Array<Exemplar | undefined>(this.buckets.length + 1))[i] = ex;
  }

  /** The slot of a value: the first bucket whose upper bound is at or above it, else +Inf. */
  private bucketOf(v: number): number {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    return i;
  }

  observe(values: readonly string[], v: number): void {
    const s = this.child(values);
    if (s) this.observeOn(s, v);
  }
}

export type AnyFamily = Counter | Gauge | Histogram;

export class Registry {
  private readonly families = new Map<string, AnyFamily>();
  /** Every sample name (and OpenMetrics spelling) a family puts in the exposition → that family. */
  private readonly claims = new Map<string, string>();
  private readonly collectors: (() => void)[] = [];
  /** Families rendered elsewhere (prom-client's process metrics), joined in after ours. */
  private readonly externals: ((openMetrics: boolean) => Promise<string>)[] = [];
  readonly budget: SeriesBudget;
  onDrop: DropHook | undefined;

  constructor(limits: Partial<RegistryLimits> = {}) {
    this.budget = new SeriesBudget({ ...NO_LIMITS, ...limits });
  }

  register<F extends AnyFamily>(family: F): F {
    if (this.families.has(family.name)) throw new Error(`metric ${family.name} is already registered`);
    const names = exposedNames(family.name, family.type);
    const clash = names.find((n) => this.claims.has(n));
    if (clash !== undefined) throw new Error(`metric ${family.name} collides with ${this.claims.get(clash)} (both expose ${clash})`);
    for (const n of names) this.claims.set(n, family.name);
    family.onDrop = (name, reason) => this.onDrop?.(name, reason);
    family.limits = this.budget.limits;
    // The sidecar's own families are bounded by construction; everything a client can grow is budgeted.
    family.budget = isSidecarFamily(family.name) ? undefined : this.budget;
    this.families.set(family.name, family);
    return family;
  }

  /** The family registered under this name (readers such as the status page). */
  get(name: string): AnyFamily | undefined {
    return this.families.get(name);
  }

  /** Every registered family, in registration order (readers: the status page, tests). */
  all(): IterableIterator<AnyFamily> {
    return this.families.values();
  }

  /**
   * The registered family a new family of this name and type would collide with (same name, or
   * any of their sample names and spellings meet: `x_count` against histogram `x`, `x` against
   * counter `x_total`), or undefined: what StatsD and merged sources check before claiming a name.
   */
  collision(name: string, type: MetricType): string | undefined {
    if (this.families.has(name)) return name;
    for (const n of exposedNames(name, type)) {
      const owner = this.claims.get(n);
      if (owner !== undefined) return owner;
    }
    return undefined;
  }

  /** Runs before every render (process metrics and other sampled values). */
  addCollector(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** Runs the collectors, as every render does first: for renderers outside this module (exposition/render). */
  collect(): void {
    for (const c of this.collectors) c();
  }

  /**
   * Joins an exposition rendered elsewhere into what is served (the exposition handler asks for
   * it with renderExternals): its families must not be registered here, and their names must not
   * collide with ours.
   */
  addExternal(render: (openMetrics: boolean) => Promise<string>): void {
    this.externals.push(render);
  }

  /** The externals' exposition text (prom-client's process metrics), to go after our families. */
  async renderExternals(openMetrics: boolean): Promise<string> {
    let out = '';
    for (const render of this.externals) out += await render(openMetrics);
    return out;
  }
}

export function renderLabelPairs(names: readonly string[], values: readonly string[]): string {
  if (names.length !== values.length) {
    throw new Error(`expected ${names.length} label values (${names.join(', ')}), got ${values.length}`);
  }
  // join() makes one flat string; `+=` would keep a tree of fragments alive per series (~2x heap).
  const parts: string[] = new Array<string>(names.length);
  for (let i = 0; i < names.length; i++) parts[i] = `${names[i]}="${escapeLabelValue(values[i])}"`;
  return parts.join(',');
}

/**
 * True when `v` is more than `max` bytes of UTF-8. A UTF-16 unit is at most 3 bytes, so short
 * strings are decided by their length alone and only the rest are measured.
 */
export function exceedsBytes(v: string, max: number): boolean {
  return v.length > max || (v.length * 3 > max && Buffer.byteLength(v) > max);
}
