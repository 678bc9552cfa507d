/**
 * The exposition rendered straight into byte buffers, for scrapes that cost the proxy nothing.
 *
 * The plain way to render (one template string per series, joined; the tests keep it as their
 * oracle, test/helpers/text-oracle.ts) makes, on 100k series, ~200k short-lived strings and
 * several MB of flattened text per scrape, and the garbage it leaves is what stalled forwarded
 * requests (a back-to-back scrape put the proxy's p99 at ~60 ms). This writer produces the same
 * bytes without a string per series: names and `le` pieces are encoded once per family and
 * copied, label text (stored once per series) is copied into the buffer with `Buffer#write`,
 * integers are written digit by digit, and histogram lines after the first copy their label bytes
 * from the first.
 * Buffers are 64 KB and come from a small free list, so a scrape allocates almost nothing.
 *
 * `ExpositionWriter` is synchronous and knows nothing about time; `streamExposition` drives it in
 * slices of about a millisecond with `setImmediate` between them, writing each chunk to the
 * response (or to a gzip stream, whose compression runs on libuv's thread pool) with backpressure.
 * Output is byte-identical to that oracle in both formats (test/exposition/render.test.ts). The
 * format's rules (names, numbers, `le`, escaping, exemplars) are formats/exposition.ts's.
 */
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import type { AnyFamily, HistogramSeries, ValueSeries } from '../metrics/registry';
import { asciiWrite, EXEMPLAR_MAX_BYTES, exemplarText, familyHeader, familyName, formatLe, NUMBER_MAX_BYTES, writeNumber } from '../formats/exposition';
import type { ChunkWriter } from './protobuf';

/** Size of one output chunk: what a socket or zlib takes in one write. */
export const CHUNK_BYTES = 64 * 1024;
/** Buffers kept for reuse between writes and scrapes (4 MB of 64 KB chunks at most). */
const POOL_MAX = 64;

const NL = 10;
const SPACE = 32;
const CLOSE = 125; // }
const COMMA = 44;

/** A free list of equal-sized chunk buffers: a chunk goes back once its consumer is done with it. */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  /** Buffers allocated because the free list was empty (tests and benchmarks read it). */
  allocated = 0;

  /** `size`: bytes per chunk; tests use small ones to cross chunk boundaries often. */
  constructor(readonly size = CHUNK_BYTES) {
    if (size < 64) throw new Error(`chunk buffers of ${size} bytes are too small (64 at least)`);
  }

  take(): Buffer {
    const ab = this.free.pop();
    if (ab !== undefined) return Buffer.from(ab, 0, this.size);
    this.allocated++;
    return Buffer.allocUnsafeSlow(this.size);
  }

  /** Returns a chunk (or a view of one) taken from this pool; oversize chunks are left to GC. */
  give(chunk: Buffer): void {
    const ab = chunk.buffer;
    // Any view of a pool buffer (the protobuf writer's chunks may start past its first byte).
    if (ab.byteLength === this.size && this.free.length < POOL_MAX && ab instanceof ArrayBuffer) this.free.push(ab);
  }
}

/** The process's pool: scrapes are rarely concurrent, so a few buffers serve all of them. */
export const sharedPool = new BufferPool();

/** A family's fixed byte pieces for one scrape, encoded once instead of once per series. */
interface Plan {
  family: AnyFamily;
  header: string;
  /** Counter/gauge: `name{` and `name `. Histogram: `name_bucket{` and unused. */
  open: Buffer;
  bare: Buffer;
  /** Histogram only. */
  le?: Buffer[]; // `le="x"} ` per bucket, last +Inf
  sumOpen?: Buffer; // `name_sum{`
  sumBare?: Buffer; // `name_sum `
  countOpen?: Buffer;
  countBare?: Buffer;
}

/**
 * Renders a registry's families (then `extra`, then `# EOF` in OpenMetrics) into successive byte
 * chunks. Series are read through the families' public iteration, so a series added or removed
 * between two chunks is rendered or skipped as a Map iterator sees it; a series is never split
 * between two states (each is written in one synchronous step).
 */
export class ExpositionWriter implements ChunkWriter {
  private readonly families: Iterator<AnyFamily>;
  private plan: Plan | undefined;
  private series: Iterator<ValueSeries | HistogramSeries> | undefined;
  /** A series taken from the iterator that did not fit in the last chunk: the next one starts with it. */
  private held: ValueSeries | HistogramSeries | undefined;
  private stage: 'families' | 'extra' | 'eof' | 'done' = 'families';
  /** How much of `extra` has been written. */
  private extraAt = 0;
  private pendingHeader = false;
  /**
   * The family had no overflow series when its rendering started (its series iterator will not
   * yield one): if a refusal makes one before the iterator ends, it is written last all the same.
   */
  private lateOverflow = false;

  constructor(
    families: Iterable<AnyFamily>,
    private readonly openMetrics: boolean,
    private readonly extra = '',
    private readonly pool: BufferPool = sharedPool,
  ) {
    this.families = families[Symbol.iterator]();
  }

  get done(): boolean {
    return this.stage === 'done';
  }

  /**
   * The next chunk (a view of a pool buffer, or a buffer of its own for an item larger than a
   * chunk), or undefined when the exposition is complete. Hand the chunk back to the pool once
   * its consumer is done with it, or drop it.
   */
  next(): Buffer | undefined {
    if (this.stage === 'done') return undefined;
    const buf = this.pool.take();
    const n = this.fill(buf);
    if (n > 0) return buf.subarray(0, n);
    this.pool.give(buf);
    if (this.done) return undefined;
    // The next item does not fit in an empty chunk: it gets a buffer of its own.
    const big = Buffer.allocUnsafeSlow(this.nextItemBound());
    const m = this.fill(big);
    return big.subarray(0, m);
  }

  /** The whole exposition as one buffer (small expositions, tests). */
  all(): Buffer {
    const parts: Buffer[] = [];
    for (let c = this.next(); c !== undefined; c = this.next()) parts.push(Buffer.from(c));
    return Buffer.concat(parts);
  }

  // ---- item bookkeeping: an item is a family header, one series, the extra text or `# EOF`.

  private boundCache = 0;

  /** Upper bound in bytes of the item fill() stopped at (set by fill when it did not fit). */
  private nextItemBound(): number {
    return this.boundCache;
  }

  /** Renders whole items into buf from offset 0 until the next does not fit; returns the bytes written. */
  private fill(buf: Buffer): number {
    let p = 0;
    const end = buf.length;
    for (;;) {
      if (this.stage === 'families') {
        if (this.plan === undefined) {
          const r = this.families.next();
          if (r.done) {
            this.stage = 'extra';
            continue;
          }
          this.plan = makePlan(r.value, this.openMetrics);
          this.series = r.value.allSeries();
          this.lateOverflow = !r.value.hasOverflow;
          this.pendingHeader = true;
        }
        const plan = this.plan;
        if (this.pendingHeader) {
          const bound = plan.header.length * 3;
          if (p + bound > end) return this.stop(p, bound);
          p += buf.write(plan.header, p);
          this.pendingHeader = false;
        }
        const it = this.series!;
        if (plan.le === undefined) {
          // Counter or gauge: `name{labels} value\n` or `name value\n`.
          const open = plan.open;
          const bare = plan.bare;
          const fixed = open.length + NUMBER_MAX_BYTES + 3;
          for (;;) {
            const s = (this.held ?? it.next().value ?? this.takeLateOverflow(plan.family)) as ValueSeries | undefined;
            this.held = undefined;
            if (s === undefined) break;
            const labels = s.labels;
            const ex = this.openMetrics && s.ex !== undefined ? exemplarText(s.ex) : undefined;
            const bound = fixed + labels.length * 3 + (ex === undefined ? 0 : EXEMPLAR_MAX_BYTES);
            if (p + bound > end) {
              this.held = s;
              return this.stop(p, bound);
            }
            p = writeValueLine(buf, p, open, bare, labels, s.value, ex);
          }
        } else {
          const le = plan.le;
          const perLine = plan.open.length + NUMBER_MAX_BYTES + 16 + maxLength(le);
          for (;;) {
            const s = (this.held ?? it.next().value ?? this.takeLateOverflow(plan.family)) as HistogramSeries | undefined;
            this.held = undefined;
            if (s === undefined) break;
            const exemplars = this.openMetrics ? s.ex : undefined;
            const bound = (le.length + 2) * (perLine + s.labels.length * 3 + (exemplars === undefined ? 0 : EXEMPLAR_MAX_BYTES));
            if (p + bound > end) {
              this.held = s;
              return this.stop(p, bound);
            }
            p = writeHistogram(buf, p, plan, s, exemplars);
          }
        }
        this.plan = undefined;
        this.series = undefined;
        continue;
      }
      if (this.stage === 'extra') {
        // Merged text can be megabytes: it is copied piece by piece into as many chunks as it takes.
        const extra = this.extra;
        while (this.extraAt < extra.length) {
          // Room for 2 units at least (a surrogate pair is never split); the last unit alone may
          // be taken too: stopping on `take < 2` left a final lone unit to a fresh chunk, which
          // stopped again at offset 0, and the writer handed out empty chunks for ever.
          const room = Math.floor((end - p) / 3);
          if (room < 2) return p; // the next chunk goes on
          let take = Math.min(extra.length - this.extraAt, room);
          let to = this.extraAt + take;
          // Never split a surrogate pair between two chunks (each half would become U+FFFD).
          const last = extra.charCodeAt(to - 1);
          if (to < extra.length && last >= 0xd800 && last <= 0xdbff) {
            to--;
            take--;
          }
          p += buf.write(take === extra.length ? extra : extra.slice(this.extraAt, to), p);
          this.extraAt = to;
        }
        this.stage = this.openMetrics ? 'eof' : 'done';
        continue;
      }
      if (this.stage === 'eof') {
        if (p + 6 > end) return this.stop(p, 6);
        p += asciiWrite(buf, '# EOF\n', p);
        this.stage = 'done';
        continue;
      }
      return p; // done
    }
  }

  /** The family's overflow series when it appeared after its rendering started, once; else undefined. */
  private takeLateOverflow(family: AnyFamily): ValueSeries | HistogramSeries | undefined {
    if (!this.lateOverflow) return undefined;
    this.lateOverflow = false;
    return family.overflowed;
  }

  private stop(p: number, bound: number): number {
    this.boundCache = bound;
    return p;
  }
}

function maxLength(bufs: Buffer[]): number {
  let m = 0;
  for (const b of bufs) if (b.length > m) m = b.length;
  return m;
}

function makePlan(family: AnyFamily, openMetrics: boolean): Plan {
  const name = family.name;
  const header = familyHeader(familyName(name, family.type, openMetrics), family.type, family.help, openMetrics);
  if (family.type !== 'histogram') return { family, header, open: Buffer.from(`${name}{`), bare: Buffer.from(`${name} `) };
  const le = [...family.buckets.map((b) => formatLe(b, openMetrics)), '+Inf'].map((t) => Buffer.from(`le="${t}"} `));
  return {
    family,
    header,
    open: Buffer.from(`${name}_bucket{`),
    bare: Buffer.alloc(0),
    le,
    sumOpen: Buffer.from(`${name}_sum{`),
    sumBare: Buffer.from(`${name}_sum `),
    countOpen: Buffer.from(`${name}_count{`),
    countBare: Buffer.from(`${name}_count `),
  };
}

function writeValueLine(buf: Buffer, p: number, open: Buffer, bare: Buffer, labels: string, value: number, ex?: string): number {
  if (labels.length === 0) {
    buf.set(bare, p);
    p += bare.length;
  } else {
    buf.set(open, p);
    p += open.length;
    p = writeText(buf, p, labels);
    buf[p++] = CLOSE;
    buf[p++] = SPACE;
  }
  p = writeNumber(buf, p, value);
  if (ex !== undefined) p += buf.write(ex, p);
  buf[p++] = NL;
  return p;
}

function writeHistogram(buf: Buffer, p: number, plan: Plan, s: HistogramSeries, exemplars: HistogramSeries['ex']): number {
  const le = plan.le!;
  const open = plan.open;
  const counts = s.counts;
  const hasLabels = s.labels.length > 0;
  // The label bytes are encoded once, on the first bucket line, and copied for the others.
  let labelsAt = -1;
  let labelsLen = 0;
  let acc = 0;
  for (let i = 0; i < le.length; i++) {
    acc += counts[i];
    buf.set(open, p);
    p += open.length;
    if (hasLabels) {
      if (labelsAt < 0) {
        labelsAt = p;
        labelsLen = writeText(buf, p, s.labels) - p;
      } else {
        buf.copyWithin(p, labelsAt, labelsAt + labelsLen);
      }
      p += labelsLen;
      buf[p++] = COMMA;
    }
    buf.set(le[i], p);
    p += le[i].length;
    p = writeNumber(buf, p, acc);
    const ex = exemplars?.[i];
    if (ex !== undefined) p += buf.write(exemplarText(ex), p);
    buf[p++] = NL;
  }
  p = writeSumCount(buf, p, hasLabels ? plan.sumOpen! : plan.sumBare!, hasLabels, labelsAt, labelsLen, s.sum);
  p = writeSumCount(buf, p, hasLabels ? plan.countOpen! : plan.countBare!, hasLabels, labelsAt, labelsLen, s.count);
  return p;
}

function writeSumCount(buf: Buffer, p: number, head: Buffer, hasLabels: boolean, labelsAt: number, labelsLen: number, v: number): number {
  buf.set(head, p);
  p += head.length;
  if (hasLabels) {
    buf.copyWithin(p, labelsAt, labelsAt + labelsLen);
    p += labelsLen;
    buf[p++] = CLOSE;
    buf[p++] = SPACE;
  }
  p = writeNumber(buf, p, v);
  buf[p++] = NL;
  return p;
}

/**
 * Writes a string as UTF-8 at p and returns the new offset. Label text is short and nearly always
 * ASCII: a JS loop over it is cheaper than a call into Buffer#write, which takes the rest.
 */
function writeText(buf: Buffer, p: number, text: string): number {
  const n = text.length;
  if (n <= 64) {
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) return p + buf.write(text, p);
      buf[p + i] = c;
    }
    return p + n;
  }
  return p + buf.write(text, p);
}

export interface StreamOptions {
  /** Work done in one go before the event loop is let through (default 1 ms). */
  sliceMs?: number;
  pool?: BufferPool;
}

/**
 * Writes the writer's chunks to `out` (a response or a gzip stream in front of one), then ends it.
 * Rendering runs in slices of about `sliceMs`, with `setImmediate` between them so forwarded
 * requests are served in between, and stops while `out` is full (backpressure: at most one chunk
 * or so is buffered, however slow the client). A chunk's buffer goes back to the pool once `out`
 * has consumed it (its write callback: zlib has compressed it, or the socket has taken it).
 * `first` are chunks already rendered. Any ChunkWriter: the text writer or the protobuf one. Resolves when `out` has finished; rejects when it fails or
 * closes early (the client went away): the writer is then simply dropped.
 */
export function streamExposition(writer: ChunkWriter, out: Writable, opts: StreamOptions = {}, first: Buffer[] = []): Promise<void> {
  const sliceMs = opts.sliceMs ?? 1;
  const pool = opts.pool ?? sharedPool;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      out.off('error', onError);
      out.off('close', onClose);
      out.off('finish', onFinish);
      out.off('drain', slice);
      if (err) reject(err);
      else resolve();
    };
    const onError = (err: Error) => settle(err);
    const onClose = () => settle(new Error('the response closed before the exposition was complete'));
    const onFinish = () => settle();
    out.on('error', onError);
    out.on('close', onClose);
    out.on('finish', onFinish);

    const write = (chunk: Buffer): boolean =>
      out.write(chunk, (err) => {
        if (!err) pool.give(chunk);
      });

    function slice(): void {
      if (settled || out.destroyed) return;
      try {
        const deadline = performance.now() + sliceMs;
        for (;;) {
          const chunk = first.length > 0 ? first.shift() : writer.next();
          if (chunk === undefined) {
            out.end();
            return;
          }
          // An empty chunk: the writer worked but has no byte ready yet (a protobuf family in progress).
          if (chunk.length === 0) {
            if (performance.now() >= deadline) {
              setImmediate(slice);
              return;
            }
            continue;
          }
          if (!write(chunk)) {
            out.once('drain', slice);
            return;
          }
          if (performance.now() >= deadline) {
            setImmediate(slice);
            return;
          }
        }
      } catch (err) {
        out.destroy(err as Error);
      }
    }
    slice();
  });
}
