/**
 * A small metric store built for the proxy's hot path and for cheap scrapes.
 *
 * Each series keeps its label pairs pre-rendered (`method="GET",status="200"`), so recording is a
 * number update and rendering is string concatenation. Families cap their series count; a series
 * that would exceed the cap is not created and the drop is reported to the registry's drop hook.
 */

import { performance } from 'node:perf_hooks';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface FamilyOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Maximum number of label combinations; further ones are dropped and counted. */
  maxSeries?: number;
}

export type DropHook = (family: string) => void;

abstract class Family<S extends { labels: string }> {
  abstract readonly type: MetricType;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly maxSeries: number;
  protected readonly series = new Map<string, S>();
  onDrop: DropHook | undefined;

  constructor(opts: FamilyOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
    this.maxSeries = opts.maxSeries ?? Infinity;
  }

  /** The series for these label values (in `labelNames` order), or undefined when capped. */
  child(values: readonly string[] = []): S | undefined {
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    const s = this.series.get(key);
    return s !== undefined ? s : this.add(key, renderLabelPairs(this.labelNames, values));
  }

  /**
   * The series whose label pairs are already rendered (`a="1",b="2"`, names sorted): for sources
   * such as StatsD tags, where each event brings its own label names. Undefined when capped.
   */
  childRendered(labels: string): S | undefined {
    const s = this.series.get(labels);
    return s !== undefined ? s : this.add(labels, labels);
  }

  private add(key: string, labels: string): S | undefined {
    if (this.series.size >= this.maxSeries) {
      this.onDrop?.(this.name);
      return undefined;
    }
    const s = this.create(labels);
    this.series.set(key, s);
    return s;
  }

  /** Removes series for which `expired` is true (idle series past their TTL). */
  sweep(expired: (s: S) => boolean): number {
    let n = 0;
    for (const [k, s] of this.series) {
      if (expired(s)) {
        this.series.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.series.size;
  }

  /** Every series (live objects, for readers such as the status page: never mutate them). */
  allSeries(): IterableIterator<S> {
    return this.series.values();
  }

  reset(): void {
    this.series.clear();
  }

  protected abstract create(labels: string): S;
  /** The exposition of this family: its header, then one piece per series. */
  abstract pieces(openMetrics: boolean): Generator<string>;

  render(out: string[], openMetrics: boolean): void {
    for (const p of this.pieces(openMetrics)) out.push(p);
  }

  protected header(familyName: string, type: string): string {
    return `# HELP ${familyName} ${escapeHelp(this.help)}\n# TYPE ${familyName} ${type}\n`;
  }
}

export interface ValueSeries {
  labels: string;
  value: number;
  /** Last update (ms since epoch), kept only by sources with a TTL. */
  t?: number;
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

  protected create(labels: string): ValueSeries {
    return { labels, value: 0 };
  }

  *pieces(openMetrics: boolean): Generator<string> {
    // OpenMetrics names the family without the _total suffix its samples carry.
    yield this.header(openMetrics ? this.name.slice(0, -'_total'.length) : this.name, 'counter');
    yield* valuePieces(this.name, this.series.values());
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

  *pieces(): Generator<string> {
    yield this.header(this.name, 'gauge');
    yield* valuePieces(this.name, this.series.values());
  }
}

export interface HistogramSeries {
  labels: string;
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
  t?: number;
}

export class Histogram extends Family<HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  private readonly leText: string[];
  private readonly leOpenMetrics: string[];

  constructor(opts: FamilyOptions & { buckets: readonly number[] }) {
    super(opts);
    if (opts.labelNames?.includes('le')) throw new Error(`histogram ${opts.name} cannot use the label "le"`);
    this.buckets = opts.buckets;
    this.leText = [...opts.buckets.map(formatNumber), '+Inf'];
    this.leOpenMetrics = [...opts.buckets.map((b) => (Number.isInteger(b) ? `${b}.0` : formatNumber(b))), '+Inf'];
  }

  protected create(labels: string): HistogramSeries {
    return { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  /** Records one observation on a series (the hot-path form: no label lookup). */
  observeOn(s: HistogramSeries, v: number): void {
    this.observeWeighted(s, v, 1);
  }

  /** One observation standing for `weight` events (StatsD sample rates: weight = 1/rate). */
  observeWeighted(s: HistogramSeries, v: number, weight: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    s.counts[i] += weight;
    s.sum += v * weight;
    s.count += weight;
  }

  observe(values: readonly string[], v: number): void {
    const s = this.child(values);
    if (s) this.observeOn(s, v);
  }

  *pieces(openMetrics: boolean): Generator<string> {
    yield this.header(this.name, 'histogram');
    const le = openMetrics ? this.leOpenMetrics : this.leText;
    const bucket = `${this.name}_bucket{`;
    for (const s of this.series.values()) {
      const sep = s.labels === '' ? '' : ',';
      let acc = 0;
      let text = '';
      for (let i = 0; i < le.length; i++) {
        acc += s.counts[i];
        text += `${bucket}${s.labels}${sep}le="${le[i]}"} ${formatNumber(acc)}\n`;
      }
      const braces = s.labels === '' ? '' : `{${s.labels}}`;
      text += `${this.name}_sum${braces} ${formatNumber(s.sum)}\n${this.name}_count${braces} ${formatNumber(s.count)}\n`;
      yield text;
    }
  }
}

export type AnyFamily = Counter | Gauge | Histogram;

export class Registry {
  private readonly families = new Map<string, AnyFamily>();
  private readonly collectors: (() => void)[] = [];
  onDrop: DropHook | undefined;

  register<F extends AnyFamily>(family: F): F {
    if (this.families.has(family.name)) throw new Error(`metric ${family.name} is already registered`);
    family.onDrop = (name) => this.onDrop?.(name);
    this.families.set(family.name, family);
    return family;
  }

  get(name: string): AnyFamily | undefined {
    return this.families.get(name);
  }

  /** Every registered family, in registration order (readers: the status page, tests). */
  all(): IterableIterator<AnyFamily> {
    return this.families.values();
  }

  /**
   * True when a family already holds this name or its counter twin (`x` and `x_total` are one
   * family, `x`, in OpenMetrics): what StatsD and merged sources may not claim.
   */
  taken(name: string): boolean {
    const base = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
    return this.families.has(base) || this.families.has(`${base}_total`);
  }

  /** Runs before every render (process metrics and other sampled values). */
  addCollector(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** Runs the collectors, as every render does first: for renderers outside this module (exposition/render). */
  collect(): void {
    for (const c of this.collectors) c();
  }

  render(openMetrics: boolean): string {
    for (const c of this.collectors) c();
    const out: string[] = [];
    for (const f of this.families.values()) f.render(out, openMetrics);
    if (openMetrics) out.push('# EOF\n');
    return out.join('');
  }

  /**
   * The same exposition, rendered in slices of about `sliceMs` with the event loop let through
   * between them, so that a large scrape never stalls the requests the sidecar is forwarding.
   * `extra` (families merged from elsewhere, already rendered) goes before OpenMetrics' `# EOF`.
   */
  async renderAsync(openMetrics: boolean, extra = '', sliceMs = 4): Promise<string> {
    return (await this.renderChunks(openMetrics, extra, sliceMs)).join('');
  }

  /**
   * renderAsync's exposition as chunks of about 1,000 series each, to be written out one by one:
   * joining 100k series into one string is itself a long blocking step.
   */
  async renderChunks(openMetrics: boolean, extra = '', sliceMs = 4): Promise<string[]> {
    for (const c of this.collectors) c();
    // Pieces are joined into one chunk per ~1,000 series as we go: a single join of 100k pieces
    // at the end (flattening one huge string tree) blocked the loop for 20-40 ms by itself.
    const out: string[] = [];
    let pending: string[] = [];
    let deadline = performance.now() + sliceMs;
    for (const f of [...this.families.values()]) {
      for (const piece of f.pieces(openMetrics)) {
        pending.push(piece);
        if (pending.length === 1024) {
          out.push(pending.join(''));
          pending = [];
          if (performance.now() > deadline) {
            await new Promise((resolve) => setImmediate(resolve));
            deadline = performance.now() + sliceMs;
          }
        }
      }
    }
    out.push(pending.join(''));
    out.push(extra);
    if (openMetrics) out.push('# EOF\n');
    return out;
  }
}

function* valuePieces(name: string, series: Iterable<ValueSeries>): Generator<string> {
  for (const s of series) {
    yield s.labels === '' ? `${name} ${formatNumber(s.value)}\n` : `${name}{${s.labels}} ${formatNumber(s.value)}\n`;
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

export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatNumber(v: number): string {
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}
