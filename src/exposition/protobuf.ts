/**
 * The exposition in Prometheus' protobuf format: varint-length-delimited
 * `io.prometheus.client.MetricFamily` messages (client_model's metrics.proto), the only format
 * that carries native histograms. A hand encoder for this one message set, written straight into
 * pooled byte chunks like the text writer (./render); docs/adr/0004-protobuf-writer.md says why
 * not a library, with the figures.
 *
 * A MetricFamily is length-prefixed, and its length is known only once its last metric is
 * written: a family's bytes are held (in pool chunks) until it is complete, then its prefix is
 * written into the 5 bytes reserved in front of it (the gap left by a shorter varint is closed by
 * moving the rest of that one chunk) and its chunks are released. So a chunk goes out only when
 * every family in it is complete, and memory held is bounded by the largest family's encoding.
 * Work is sliced as in the text writer: `next()` does about one chunk's worth and returns either
 * a chunk or, while a large family is still being encoded, an empty buffer (no bytes yet; call
 * again). Each metric is written in one synchronous step, reading its series once.
 *
 * What is written, as client_golang writes it:
 * - counters (`x_total`), gauges: one Metric per series with `counter.value` / `gauge.value`;
 * - histograms: `sample_count` (or `sample_count_float` when not an integer: StatsD sample rates),
 *   `sample_sum`, one Bucket per finite bound (`cumulative_count`, or `cumulative_count_float`;
 *   the +Inf bucket is left out, Prometheus adds it from the count), and, when the `native`
 *   accessor gives a snapshot, `schema`, `zero_threshold`, `zero_count`, spans and deltas in the
 *   same message (an empty one gets a no-op span {0,0} so it is not read as classic only);
 * - exemplars when an accessor gives them: `Counter.exemplar`, `Bucket.exemplar`, `Histogram.exemplars`;
 * - families rendered as text elsewhere (prom-client's runtime metrics, the merged targets) are
 *   parsed back (../ingest/merge/parse) and encoded too, summaries and untyped included, so a
 *   protobuf scrape carries every family the text scrape does. A family that cannot be parsed is
 *   left out and reported to `onSkip` (the handler logs it and counts it).
 * Families without series are left out (client_golang does the same). Names are legacy-valid, so
 * no escaping scheme changes a byte.
 */
import type { AnyFamily, Counter, Histogram, HistogramSeries, ValueSeries } from '../metrics/registry';
import type { Exemplar, NativeSnapshot } from '../metrics/native-types';
import { parseExposition, type ParsedFamily } from '../ingest/merge/parse';
import { sharedPool, type BufferPool } from './render';

/** Optional per-series data the store does not hold yet (native buckets, exemplars): the writer asks for it. */
export interface ProtobufSources {
  /** The native buckets of a histogram series, or undefined for a classic-only one. */
  native?: (family: Histogram, series: HistogramSeries) => NativeSnapshot | undefined;
  /** The exemplar of a counter series. */
  counterExemplar?: (family: Counter, series: ValueSeries) => Exemplar | undefined;
  /** The exemplar of classic bucket `index` (into family.buckets) of a histogram series. */
  bucketExemplar?: (family: Histogram, series: HistogramSeries, index: number) => Exemplar | undefined;
  /** The exemplars of a native histogram (`Histogram.exemplars`; they must carry timestamps). */
  histogramExemplars?: (family: Histogram, series: HistogramSeries) => readonly Exemplar[] | undefined;
}

export interface ProtobufWriterOptions {
  pool?: BufferPool;
  sources?: ProtobufSources;
  /** Told about each family of the text part left out (its name, or `?` when none could be read, and why). */
  onSkip?: (family: string, reason: string) => void;
}

/** What drives a writer: the text writer (ExpositionWriter) and this one both have it. */
export interface ChunkWriter {
  readonly done: boolean;
  /** The next chunk, an empty buffer when work was done but no byte is ready yet, or undefined at the end. */
  next(): Buffer | undefined;
}

const EMPTY = Buffer.alloc(0);
/** Reserved in front of a family for its length (a varint of up to 2^35 - 1). */
const PREFIX_MAX = 5;

const enum T {
  COUNTER = 0,
  GAUGE = 1,
  SUMMARY = 2,
  UNTYPED = 3,
  HISTOGRAM = 4,
}

/** A metric of a text-rendered family, parsed back. */
interface TextMetric {
  labels: string;
  value: number;
  /** Histogram: [upper bound, cumulative count] of finite bounds; summary: [quantile, value]. */
  points: [number, number][];
  sum: number;
  count: number;
}

interface TextFamily {
  name: string;
  help: string;
  type: T;
  metrics: TextMetric[];
}

export class ProtobufWriter implements ChunkWriter {
  private readonly families: Iterator<AnyFamily>;
  private readonly pool: BufferPool;
  private readonly sources: ProtobufSources;
  private readonly onSkip: ((family: string, reason: string) => void) | undefined;
  /** The text part split by family, each parsed when its turn comes (one per step). */
  private blocks: string[] | undefined;
  private blockAt = 0;
  private stage: 'own' | 'text' | 'flush' | 'done' = 'own';

  // Output: `buf` is being written at `p`; `held` are full chunks of the family in progress;
  // `ready` are chunks whose families are all complete.
  private buf: Buffer;
  private p = 0;
  private held: Buffer[] = [];
  private readonly ready: Buffer[] = [];
  private filled = false;

  // The family in progress.
  private fam: AnyFamily | undefined;
  private series: Iterator<ValueSeries | HistogramSeries> | undefined;
  private lateOverflow = false;
  private famBuf: Buffer | undefined;
  private famAt = 0;
  private famLen = 0;
  private famMetrics = 0;
  /** Per histogram family: `upper_bound` bytes (tag + double) of each finite bound. */
  private bounds: Buffer[] = [];

  constructor(families: Iterable<AnyFamily>, extra = '', opts: ProtobufWriterOptions = {}) {
    this.families = families[Symbol.iterator]();
    this.pool = opts.pool ?? sharedPool;
    this.sources = opts.sources ?? {};
    this.onSkip = opts.onSkip;
    this.extra = extra;
    this.buf = this.pool.take();
  }

  private readonly extra: string;

  get done(): boolean {
    return this.stage === 'done' && this.ready.length === 0;
  }

  next(): Buffer | undefined {
    this.filled = false;
    while (this.ready.length === 0 && !this.filled && this.stage !== 'done') this.step();
    const c = this.ready.shift();
    if (c !== undefined) return c;
    return this.stage === 'done' ? undefined : EMPTY;
  }

  /** The whole exposition as one buffer (small expositions, tests). */
  all(): Buffer {
    const parts: Buffer[] = [];
    for (let c = this.next(); c !== undefined; c = this.next()) {
      parts.push(Buffer.from(c));
      this.pool.give(c);
    }
    return Buffer.concat(parts);
  }

  /** One family header or one metric (or the end of a family, or the text part's next family). */
  private step(): void {
    if (this.stage === 'own') {
      if (this.fam === undefined) {
        const r = this.families.next();
        if (r.done) {
          this.stage = 'text';
          return;
        }
        const f = r.value;
        if (f.size === 0 && !f.hasOverflow) return;
        this.fam = f;
        this.series = f.allSeries();
        this.lateOverflow = !f.hasOverflow;
        this.bounds = f.type === 'histogram' ? f.buckets.map((b) => doubleField(0x11, b)) : [];
        this.beginFamily(f.name, f.help, f.type === 'counter' ? T.COUNTER : f.type === 'gauge' ? T.GAUGE : T.HISTOGRAM);
        return;
      }
      const f = this.fam;
      let s = this.series!.next().value as ValueSeries | HistogramSeries | undefined;
      if (s === undefined && this.lateOverflow) {
        this.lateOverflow = false;
        s = f.overflowed;
      }
      if (s === undefined) {
        this.endFamily();
        this.fam = undefined;
        this.series = undefined;
        return;
      }
      if (f.type === 'histogram') this.histogram(f, s as HistogramSeries);
      else if (f.type === 'counter') this.value(T.COUNTER, s as ValueSeries, this.sources.counterExemplar?.(f, s as ValueSeries));
      else this.value(T.GAUGE, s as ValueSeries, undefined);
      return;
    }
    if (this.stage === 'text') {
      this.blocks ??= splitFamilies(this.extra);
      const block = this.blocks[this.blockAt++];
      if (block === undefined) {
        this.stage = 'flush';
        return;
      }
      for (const tf of this.parseBlock(block)) {
        if (tf.metrics.length === 0) continue;
        this.beginFamily(tf.name, tf.help, tf.type);
        for (const m of tf.metrics) this.textMetric(tf.type, m);
        this.endFamily();
      }
      return;
    }
    // flush
    if (this.p > 0) this.ready.push(this.buf.subarray(0, this.p));
    else this.pool.give(this.buf);
    this.p = 0;
    this.stage = 'done';
  }

  // ---- output buffers

  /** Room for n bytes at p, in the current buffer or a fresh one (one of its own when n exceeds a chunk). */
  private ensure(n: number): void {
    if (this.p + n <= this.buf.length) return;
    if (this.p > 0) {
      // Held while a family is open (its length is not known yet); between families (a header
      // that does not fit), everything in the buffer is complete.
      (this.famBuf !== undefined ? this.held : this.ready).push(this.buf.subarray(0, this.p));
      this.filled = true;
    } else {
      this.pool.give(this.buf);
    }
    this.buf = n <= this.pool.size ? this.pool.take() : Buffer.allocUnsafeSlow(n);
    this.p = 0;
  }

  private beginFamily(name: string, help: string, type: T): void {
    const nb = Buffer.byteLength(name);
    const hb = Buffer.byteLength(help);
    const header = 1 + varintSize(nb) + nb + 1 + varintSize(hb) + hb + 2;
    this.ensure(PREFIX_MAX + header);
    this.famBuf = this.buf;
    this.famAt = this.p;
    this.famMetrics = 0;
    let p = this.p + PREFIX_MAX;
    const buf = this.buf;
    p = writeString(buf, p, 0x0a, name, nb);
    p = writeString(buf, p, 0x12, help, hb);
    buf[p++] = 0x18;
    buf[p++] = type;
    this.p = p;
    this.famLen = header;
  }

  private endFamily(): void {
    const famBuf = this.famBuf!;
    this.famBuf = undefined;
    if (this.famMetrics === 0 && this.held.length === 0) {
      // Every series went away while it was being written: nothing of it is sent.
      this.p = this.famAt;
      return;
    }
    const len = this.famLen;
    const k = varintSize(len);
    const gap = PREFIX_MAX - k;
    const at = this.famAt;
    writeVarint(famBuf, at, len);
    if (famBuf === this.buf) {
      famBuf.copyWithin(at + k, at + PREFIX_MAX, this.p);
      this.p -= gap;
    } else {
      const first = this.held[0];
      famBuf.copyWithin(at + k, at + PREFIX_MAX, first.length);
      this.held[0] = first.subarray(0, first.length - gap);
    }
    for (const c of this.held) this.ready.push(c);
    this.held = [];
  }

  /** Starts a Metric of `inner` bytes (labels and its value message included): returns where to write it. */
  private openMetric(size: number): number {
    const total = 1 + varintSize(size) + size;
    this.ensure(total);
    this.famLen += total;
    this.famMetrics++;
    const buf = this.buf;
    let p = this.p;
    buf[p++] = 0x22;
    p = writeVarint(buf, p, size);
    return p;
  }

  // ---- metrics

  private value(type: T, s: ValueSeries, ex: Exemplar | undefined): void {
    const labels = scanLabels(s.labels);
    const exSize = ex === undefined ? 0 : exemplarSize(ex);
    const inner = 9 + (ex === undefined ? 0 : 1 + varintSize(exSize) + exSize);
    const size = labels + 1 + varintSize(inner) + inner;
    let p = this.openMetric(size);
    const buf = this.buf;
    p = writeLabels(buf, p, s.labels);
    buf[p++] = type === T.COUNTER ? 0x1a : type === T.GAUGE ? 0x12 : 0x2a;
    p = writeVarint(buf, p, inner);
    buf[p++] = 0x09;
    buf.writeDoubleLE(s.value, p);
    p += 8;
    if (ex !== undefined) {
      buf[p++] = 0x12;
      p = writeVarint(buf, p, exSize);
      p = writeExemplar(buf, p, ex);
    }
    this.p = p;
  }

  private histogram(f: Histogram, s: HistogramSeries): void {
    const src = this.sources;
    const native = src.native?.(f, s);
    const exs = src.histogramExemplars?.(f, s);
    const bounds = this.bounds;
    const counts = s.counts;
    const labels = scanLabels(s.labels);
    // Sizes first (the nested lengths), reading each count once into `cum`.
    const cum = cumScratch(bounds.length);
    const bucketSizes = sizeScratch(bounds.length);
    const bucketExs: (Exemplar | undefined)[] | undefined = src.bucketExemplar ? [] : undefined;
    let acc = 0;
    let inner = countSize(s.count) + 9;
    for (let i = 0; i < bounds.length; i++) {
      acc += counts[i];
      cum[i] = acc;
      let b = countSize(acc) + 9;
      const ex = bucketExs ? (bucketExs[i] = src.bucketExemplar!(f, s, i)) : undefined;
      if (ex !== undefined) {
        const e = exemplarSize(ex);
        b += 1 + varintSize(e) + e;
      }
      bucketSizes[i] = b;
      inner += 1 + varintSize(b) + b;
    }
    const nativeSize = native === undefined ? 0 : nativeFieldsSize(native);
    inner += nativeSize;
    let exsSize = 0;
    if (exs !== undefined) {
      for (const ex of exs) {
        const e = exemplarSize(ex);
        exsSize += 2 + varintSize(e) + e;
      }
      inner += exsSize;
    }
    const size = labels + 1 + varintSize(inner) + inner;
    let p = this.openMetric(size);
    const buf = this.buf;
    p = writeLabels(buf, p, s.labels);
    buf[p++] = 0x3a;
    p = writeVarint(buf, p, inner);
    p = writeCount(buf, p, 0x08, 0x21, s.count);
    buf[p++] = 0x11;
    buf.writeDoubleLE(s.sum, p);
    p += 8;
    for (let i = 0; i < bounds.length; i++) {
      buf[p++] = 0x1a;
      p = writeVarint(buf, p, bucketSizes[i]);
      p = writeCount(buf, p, 0x08, 0x21, cum[i]);
      buf.set(bounds[i], p);
      p += 9;
      const ex = bucketExs?.[i];
      if (ex !== undefined) {
        buf[p++] = 0x1a;
        p = writeVarint(buf, p, exemplarSize(ex));
        p = writeExemplar(buf, p, ex);
      }
    }
    if (native !== undefined) p = writeNative(buf, p, native);
    if (exs !== undefined) {
      for (const ex of exs) {
        buf[p++] = 0x82;
        buf[p++] = 0x01;
        p = writeVarint(buf, p, exemplarSize(ex));
        p = writeExemplar(buf, p, ex);
      }
    }
    this.p = p;
  }

  private textMetric(type: T, m: TextMetric): void {
    if (type !== T.HISTOGRAM && type !== T.SUMMARY) {
      this.value(type, m, undefined);
      return;
    }
    const labels = scanLabels(m.labels);
    let inner = countSize(m.count) + 9;
    const pointSize = type === T.HISTOGRAM ? countSize : () => 9;
    for (const [, c] of m.points) {
      const b = pointSize(c) + 9;
      inner += 1 + varintSize(b) + b;
    }
    const size = labels + 1 + varintSize(inner) + inner;
    let p = this.openMetric(size);
    const buf = this.buf;
    p = writeLabels(buf, p, m.labels);
    buf[p++] = type === T.HISTOGRAM ? 0x3a : 0x22;
    p = writeVarint(buf, p, inner);
    // Summary.sample_count is a uint64 only: a fractional count is rounded (it never is, from these sources).
    p = type === T.HISTOGRAM ? writeCount(buf, p, 0x08, 0x21, m.count) : writeUint(buf, p, 0x08, Math.round(m.count));
    buf[p++] = 0x11;
    buf.writeDoubleLE(m.sum, p);
    p += 8;
    for (const [x, c] of m.points) {
      buf[p++] = 0x1a;
      if (type === T.HISTOGRAM) {
        p = writeVarint(buf, p, countSize(c) + 9);
        p = writeCount(buf, p, 0x08, 0x21, c);
        buf[p++] = 0x11;
        buf.writeDoubleLE(x, p);
      } else {
        // Quantile { quantile = 1; value = 2 }
        buf[p++] = 18;
        buf[p++] = 0x09;
        buf.writeDoubleLE(x, p);
        p += 8;
        buf[p++] = 0x11;
        buf.writeDoubleLE(c, p);
      }
      p += 8;
    }
    this.p = p;
  }

  // ---- the text part

  /** One family's text (rarely more: a block is cut at `# HELP`), parsed; what fails is reported and left out. */
  private parseBlock(block: string): TextFamily[] {
    let parsed: ParsedFamily[];
    try {
      parsed = parseExposition(block).families;
    } catch (err) {
      this.onSkip?.(/^# (?:HELP|TYPE) (\S+)/.exec(block)?.[1] ?? '?', (err as Error).message);
      return [];
    }
    const out: TextFamily[] = [];
    for (const f of parsed) {
      try {
        out.push(toTextFamily(f));
      } catch (err) {
        this.onSkip?.(f.name, (err as Error).message);
      }
    }
    return out;
  }
}

/** The text split before each `# HELP` line (every family rendered here starts with one). */
function splitFamilies(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const at = text.indexOf('\n# HELP ', start);
    if (at === -1) break;
    out.push(text.slice(start, at + 1));
    start = at + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

const TYPES: Record<string, T> = { counter: T.COUNTER, gauge: T.GAUGE, summary: T.SUMMARY, untyped: T.UNTYPED, histogram: T.HISTOGRAM };

function toTextFamily(f: ParsedFamily): TextFamily {
  const type = TYPES[f.type];
  const metrics: TextMetric[] = [];
  if (type !== T.HISTOGRAM && type !== T.SUMMARY) {
    for (const line of f.samples) {
      const { labels, value } = splitSample(line);
      metrics.push({ labels, value, points: [], sum: 0, count: 0 });
    }
  } else {
    const key = type === T.HISTOGRAM ? 'le' : 'quantile';
    const byLabels = new Map<string, TextMetric>();
    for (const line of f.samples) {
      const { name, labels, value } = splitSample(line);
      const pairs = labelPairs(labels);
      const point = pairs.find(([n]) => n === key);
      const rest = renderPairs(pairs.filter(([n]) => n !== key));
      let m = byLabels.get(rest);
      if (m === undefined) byLabels.set(rest, (m = { labels: rest, value: 0, points: [], sum: 0, count: 0 }));
      const suffix = name.slice(f.name.length);
      if (suffix === '_sum') m.sum = value;
      else if (suffix === '_count') m.count = value;
      else if (point !== undefined) {
        const x = parseNumber(point[1]);
        // The +Inf bucket is the count, which Prometheus adds back itself.
        if (!(type === T.HISTOGRAM && x === Infinity)) m.points.push([x, value]);
      } else throw new Error(`sample ${name} without its "${key}" label`);
    }
    for (const m of byLabels.values()) m.points.sort((a, b) => a[0] - b[0]);
    metrics.push(...byLabels.values());
  }
  return { name: f.name, help: f.help ?? '', type, metrics };
}

/** `name{labels} value` → its parts (labels without braces); the line was validated by the parser. */
function splitSample(line: string): { name: string; labels: string; value: number } {
  const sp = line.lastIndexOf(' ');
  const value = parseNumber(line.slice(sp + 1));
  const brace = line.indexOf('{');
  if (brace === -1 || brace > sp) return { name: line.slice(0, sp), labels: '', value };
  return { name: line.slice(0, brace), labels: line.slice(brace + 1, line.lastIndexOf('}', sp)), value };
}

function parseNumber(t: string): number {
  if (t === '+Inf' || t === 'Inf' || t === '+inf' || t === 'inf') return Infinity;
  if (t === '-Inf' || t === '-inf') return -Infinity;
  return Number(t); // NaN for NaN
}

/** Label text → [name, raw (still escaped) value] pairs. */
function labelPairs(text: string): [string, string][] {
  scanLabels(text);
  const n = scratch.count;
  const out: [string, string][] = [];
  for (let i = 0; i < n; i++) out.push([text.slice(scratch.at[i * 4], scratch.at[i * 4 + 1]), text.slice(scratch.at[i * 4 + 2], scratch.at[i * 4 + 3])]);
  return out;
}

function renderPairs(pairs: [string, string][]): string {
  return pairs.map(([n, v]) => `${n}="${v}"`).join(',');
}

// ---- label text → LabelPair messages, without a string per label in the common case

/**
 * The pairs of the last scanned label text: for pair i, at[4i..4i+3] = name start, name end, value
 * start, value end (escaped text), vbytes[i] its UTF-8 length unescaped, and unescaped[i] the
 * value's text when it cannot be copied char by char (escapes or non-ASCII), else undefined.
 */
const scratch = {
  count: 0,
  at: new Int32Array(64 * 4),
  vbytes: new Int32Array(64),
  unescaped: [] as (string | undefined)[],
};

/** Scans label text (`a="1",b="2"`) into `scratch`; returns the bytes of its LabelPair fields. */
function scanLabels(text: string): number {
  const n = text.length;
  let count = 0;
  let size = 0;
  let i = 0;
  while (i < n) {
    if (count * 4 >= scratch.at.length) {
      const at = new Int32Array(scratch.at.length * 2);
      at.set(scratch.at);
      scratch.at = at;
      const vb = new Int32Array(scratch.vbytes.length * 2);
      vb.set(scratch.vbytes);
      scratch.vbytes = vb;
    }
    const ns = i;
    while (i < n && text.charCodeAt(i) !== 61 /* = */) i++;
    const ne = i;
    i += 2; // ="
    const vs = i;
    let plain = true;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 34 || i >= n) break;
      if (c === 92) {
        plain = false;
        i += 2;
        continue;
      }
      if (c >= 0x80) plain = false;
      i++;
    }
    const ve = i;
    i += 2; // ", (or the end)
    const at = count * 4;
    scratch.at[at] = ns;
    scratch.at[at + 1] = ne;
    scratch.at[at + 2] = vs;
    scratch.at[at + 3] = ve;
    let vb: number;
    if (plain) {
      scratch.unescaped[count] = undefined;
      vb = ve - vs;
    } else {
      const raw = text.slice(vs, ve);
      const v = raw.includes('\\') ? raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)) : raw;
      scratch.unescaped[count] = v;
      vb = Buffer.byteLength(v);
    }
    scratch.vbytes[count] = vb;
    const nb = ne - ns;
    const pair = 2 + varintSize(nb) + nb + varintSize(vb) + vb;
    size += 1 + varintSize(pair) + pair;
    count++;
  }
  scratch.count = count;
  return size;
}

/** Writes the LabelPairs of `text`, which must be the text scanLabels scanned last. */
function writeLabels(buf: Buffer, p: number, text: string): number {
  const at = scratch.at;
  for (let k = 0; k < scratch.count; k++) {
    const ns = at[k * 4];
    const ne = at[k * 4 + 1];
    const vs = at[k * 4 + 2];
    const ve = at[k * 4 + 3];
    const nb = ne - ns;
    const vb = scratch.vbytes[k];
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, 2 + varintSize(nb) + nb + varintSize(vb) + vb);
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, nb);
    for (let i = ns; i < ne; i++) buf[p++] = text.charCodeAt(i);
    buf[p++] = 0x12;
    p = writeVarint(buf, p, vb);
    const u = scratch.unescaped[k];
    if (u === undefined) for (let i = vs; i < ve; i++) buf[p++] = text.charCodeAt(i);
    else p += buf.write(u, p);
  }
  return p;
}

// ---- native histograms and exemplars

function spansSize(spans: readonly { offset: number; length: number }[]): number {
  let n = 0;
  for (const s of spans) {
    const inner = 2 + varintSize(zigzag(s.offset)) + varintSize(s.length);
    n += 1 + varintSize(inner) + inner;
  }
  return n;
}

function deltasSize(deltas: readonly number[]): number {
  let n = 0;
  for (const d of deltas) n += 1 + varintSize(zigzag(d));
  return n;
}

function nativeFieldsSize(h: NativeSnapshot): number {
  let n = 1 + varintSize(zigzag(h.schema)) + 9 + countSize(h.zeroCount);
  n += spansSize(h.negativeSpans) + deltasSize(h.negativeDeltas);
  n +=
    h.positiveSpans.length === 0 && h.negativeSpans.length === 0 && h.zeroCount === 0
      ? NOOP_SPAN.length
      : spansSize(h.positiveSpans) + deltasSize(h.positiveDeltas);
  return n;
}

/** positive_span { offset: 0, length: 0 }: client_golang's mark of an empty native histogram. */
const NOOP_SPAN = Buffer.from([0x62, 0x04, 0x08, 0x00, 0x10, 0x00]);

function writeSpans(buf: Buffer, p: number, tag: number, spans: readonly { offset: number; length: number }[]): number {
  for (const s of spans) {
    const o = zigzag(s.offset);
    buf[p++] = tag;
    p = writeVarint(buf, p, 2 + varintSize(o) + varintSize(s.length));
    buf[p++] = 0x08;
    p = writeVarint(buf, p, o);
    buf[p++] = 0x10;
    p = writeVarint(buf, p, s.length);
  }
  return p;
}

function writeDeltas(buf: Buffer, p: number, tag: number, deltas: readonly number[]): number {
  for (const d of deltas) {
    buf[p++] = tag;
    p = writeVarint(buf, p, zigzag(d));
  }
  return p;
}

function writeNative(buf: Buffer, p: number, h: NativeSnapshot): number {
  buf[p++] = 0x28;
  p = writeVarint(buf, p, zigzag(h.schema));
  buf[p++] = 0x31;
  buf.writeDoubleLE(h.zeroThreshold, p);
  p += 8;
  p = writeCount(buf, p, 0x38, 0x41, h.zeroCount);
  p = writeSpans(buf, p, 0x4a, h.negativeSpans);
  p = writeDeltas(buf, p, 0x50, h.negativeDeltas);
  if (h.positiveSpans.length === 0 && h.negativeSpans.length === 0 && h.zeroCount === 0) {
    buf.set(NOOP_SPAN, p);
    return p + NOOP_SPAN.length;
  }
  p = writeSpans(buf, p, 0x62, h.positiveSpans);
  return writeDeltas(buf, p, 0x68, h.positiveDeltas);
}

function timestampSize(ms: number): number {
  const { seconds, nanos } = splitMs(ms);
  return (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
}

function splitMs(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

function exemplarSize(ex: Exemplar): number {
  let n = 9;
  for (const [name, value] of ex.labels) {
    const nb = Buffer.byteLength(name);
    const vb = Buffer.byteLength(value);
    const pair = 2 + varintSize(nb) + nb + varintSize(vb) + vb;
    n += 1 + varintSize(pair) + pair;
  }
  const t = timestampSize(ex.timestampMs);
  return n + 1 + varintSize(t) + t;
}

/** A length-delimited string field: its tag byte, its UTF-8 length `bytes` (known to the caller), its bytes. */
function writeString(buf: Buffer, p: number, tag: number, s: string, bytes: number): number {
  buf[p++] = tag;
  p = writeVarint(buf, p, bytes);
  return p + buf.write(s, p);
}

function writeExemplar(buf: Buffer, p: number, ex: Exemplar): number {
  for (const [name, value] of ex.labels) {
    const nb = Buffer.byteLength(name);
    const vb = Buffer.byteLength(value);
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, 2 + varintSize(nb) + nb + varintSize(vb) + vb);
    p = writeString(buf, p, 0x0a, name, nb);
    p = writeString(buf, p, 0x12, value, vb);
  }
  buf[p++] = 0x11;
  buf.writeDoubleLE(ex.value, p);
  p += 8;
  const { seconds, nanos } = splitMs(ex.timestampMs);
  buf[p++] = 0x1a;
  p = writeVarint(buf, p, timestampSize(ex.timestampMs));
  if (seconds !== 0) {
    // int64 seconds: a negative one would need 10 bytes; timestamps here are after 1970.
    buf[p++] = 0x08;
    p = writeVarint(buf, p, seconds);
  }
  if (nanos !== 0) {
    buf[p++] = 0x10;
    p = writeVarint(buf, p, nanos);
  }
  return p;
}

// ---- scalars

/** A count as uint64 (integer) or as the `_float` double field (fractional, or past 2^53). */
function countSize(v: number): number {
  return Number.isSafeInteger(v) && v >= 0 ? 1 + varintSize(v) : 9;
}

function writeCount(buf: Buffer, p: number, intTag: number, floatTag: number, v: number): number {
  if (Number.isSafeInteger(v) && v >= 0) return writeUint(buf, p, intTag, v);
  buf[p++] = floatTag;
  buf.writeDoubleLE(v, p);
  return p + 8;
}

function writeUint(buf: Buffer, p: number, tag: number, v: number): number {
  buf[p++] = tag;
  return writeVarint(buf, p, v);
}

function doubleField(tag: number, v: number): Buffer {
  const b = Buffer.alloc(9);
  b[0] = tag;
  b.writeDoubleLE(v, 1);
  return b;
}

/** zigzag for sint32/sint64 within ±2^52. */
function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

/** Bytes of the varint of a non-negative safe integer. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  v = Math.floor(v / 0x10000000);
  while (v > 0) {
    n++;
    v = Math.floor(v / 128);
  }
  return n;
}

/** Writes the varint of a non-negative safe integer at p; returns the new offset. */
export function writeVarint(buf: Buffer, p: number, v: number): number {
  while (v >= 0x80) {
    buf[p++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[p++] = v;
  return p;
}

let cumBuf = new Float64Array(32);
function cumScratch(n: number): Float64Array {
  if (cumBuf.length < n) cumBuf = new Float64Array(n * 2);
  return cumBuf;
}
let sizeBuf = new Int32Array(32);
function sizeScratch(n: number): Int32Array {
  if (sizeBuf.length < n) sizeBuf = new Int32Array(n * 2);
  return sizeBuf;
}
