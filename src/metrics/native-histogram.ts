/**
 * Prometheus native (sparse exponential) histogram buckets, computed exactly as client_golang
 * does it (prometheus/histogram.go at commit 89c60c0554699c74fa3d4eec472b98a3108905e3; the
 * functions named below are that file's). Pure: no clock, no registry, no I/O; the registry and
 * the protobuf writer (../exposition/protobuf) integrate it.
 *
 * Buckets. Schema s (-4..8) gives base = 2^(2^-s); bucket i holds (base^(i-1), base^i], so an
 * exact power of two lands in the bucket whose upper bound it equals, and index 0 is the bucket
 * whose upper bound is 1. Negative values use the same index on |v| in separate buckets; |v| <=
 * zeroThreshold goes to the zero bucket. ±Inf go one bucket above the one holding ±MAX_VALUE
 * (histogramCounts.observe: "Pretend v is MaxFloat64 but later increment key by one"), whose upper
 * bound Prometheus reports as MAX_VALUE (getLe; model/histogram/generic.go getBoundExponential).
 * NaN is counted in count (and makes sum NaN) but lands in no bucket (histogram.observe: "Do not
 * add to sparse buckets for NaN observations"), nor does it trigger the bucket limit.
 *
 * Bucket limit. When more than maxBuckets buckets (positive and negative together; the zero
 * bucket does not count) are populated after an observation, the schema drops by one and bucket i
 * merges into ceil(i/2) (histogram.limitBuckets -> doubleBucketWidth: `if key > 0 { key++ };
 * key /= 2` with Go's truncating division). Like client_golang this happens once per observation
 * that finds the limit exceeded, and not below schema -4, so the count can stay above maxBuckets
 * until later observations (merging can leave sparse buckets unmerged). The hard ceiling is what
 * schema -4 can hold: 2^16-wide buckets over the doubles' exponent range, about 134 per sign plus
 * the Inf bucket, so at most ~270 buckets whatever maxBuckets says. Not done: client_golang's
 * other two strategies. Reset (maybeReset, NativeHistogramMinResetDuration) needs a clock and a
 * created timestamp the caller owns; widening the zero bucket (maybeWidenZeroBucket) is off in
 * client_golang unless NativeHistogramMaxZeroThreshold is set, and it is off here.
 *
 * Weights. observe(v, weight) adds `weight` (a StatsD sample rate 0.1 gives weight 10) and weights
 * may be fractional, so counts are doubles. With integer weights every count is an integer and the
 * snapshot's deltas are exact (protobuf `positive_delta`, sint64). With fractional weights the
 * deltas are float differences whose re-summation may not give the counts back bit for bit: the
 * writer should then send the absolute counts (`positiveCounts` -> protobuf `positive_count`,
 * double; `zero_count_float`, `sample_count_float`). `integerCounts` in the snapshot says which.
 *
 * Memory (bench/native-memory.mjs: 20,000 histograms each, V8 heapUsed + arrayBuffers after forced
 * GCs, Node 20.20 x64, two runs): empty 165-177 bytes per series, 1 bucket 418-442, 10 buckets 633,
 * 160 buckets 4,471-4,472. Buckets are kept per sign in one Float64Array of interleaved
 * (index, count) pairs sorted by index, grown by doubling (16 bytes a bucket, at most twice what is
 * used); a sign with no bucket has no array. Most of the 1-bucket cost is the typed array's own
 * objects (~230 bytes); bytesEstimate() adds that per array to the measured empty size.
 */
import { NATIVE_HISTOGRAM_BOUNDS } from './native-bounds';
import type { BucketSpan, NativeSnapshot } from './native-types';

export const NATIVE_SCHEMA_MIN = -4;
export const NATIVE_SCHEMA_MAX = 8;
/** 2^-128: a bucket boundary at every schema (client_golang DefNativeHistogramZeroThreshold). */
export const DEFAULT_ZERO_THRESHOLD = 2 ** -128;

/** Measured heap of an empty histogram (see the module comment), rounded up. */
export const NATIVE_BYTES_EMPTY = 180;
/** Measured fixed cost of one sign's Float64Array (view, buffer, backing store header). */
export const NATIVE_BYTES_PER_ARRAY = 230;

const BOUNDS: readonly Float64Array[] = NATIVE_HISTOGRAM_BOUNDS.map((row) => Float64Array.from(row));

/**
 * client_golang pickSchema: the largest schema n in -4..8 with 2^(2^-n) <= bucketFactor; factors
 * below 2^(2^-8) (but > 1) still give 8. 1.1 -> 3. Throws where pickSchema panics (factor <= 1),
 * and for NaN, which Go would turn into an undefined conversion.
 */
export function schemaForFactor(factor: number): number {
  if (!(factor > 1)) {
    throw new RangeError(`native histogram bucket factor must be a number > 1, got ${factor}`);
  }
  const floor = Math.floor(Math.log2(Math.log2(factor)));
  if (floor <= -8) return NATIVE_SCHEMA_MAX;
  if (floor >= 4) return NATIVE_SCHEMA_MIN;
  return 0 - floor; // not -0 for factor 2..4
}

const view = new DataView(new ArrayBuffer(8));
let frexpFrac = 0;

/**
 * Go's math.Frexp for finite non-zero x: returns exp and leaves frac (sign of x, |frac| in
 * [0.5, 1), x = frac * 2^exp) in frexpFrac. Subnormals are first scaled by 2^52, as Go's
 * normalize does, so their frac keeps full precision.
 */
function frexpInto(x: number): number {
  view.setFloat64(0, x);
  let hi = view.getUint32(0);
  let biased = (hi >>> 20) & 0x7ff;
  let exp = -1022;
  if (biased === 0) {
    view.setFloat64(0, x * 2 ** 52);
    hi = view.getUint32(0);
    biased = (hi >>> 20) & 0x7ff;
    exp -= 52;
  }
  exp += biased;
  view.setUint32(0, (hi & 0x800fffff) | (1022 << 20));
  frexpFrac = view.getFloat64(0);
  return exp;
}

/** Go's math.Frexp: [frac, exp] with x = frac * 2^exp, |frac| in [0.5, 1); 0, ±Inf, NaN give [x, 0]. */
export function frexp(x: number): [number, number] {
  if (x === 0 || !Number.isFinite(x)) return [x, 0];
  const exp = frexpInto(x);
  return [frexpFrac, exp];
}

/** Index for finite |v| > 0; the body of histogramCounts.observe's key computation. */
function indexOfAbs(abs: number, schema: number): number {
  const exp = frexpInto(abs);
  const frac = frexpFrac;
  if (schema > 0) {
    const bounds = BOUNDS[schema];
    // sort.SearchFloat64s: the first bound >= frac.
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bounds[mid] < frac) lo = mid + 1;
      else hi = mid;
    }
    return lo + (exp - 1) * bounds.length;
  }
  let key = exp;
  if (frac === 0.5) key--;
  const shift = -schema;
  return (key + (1 << shift) - 1) >> shift;
}

function checkSchema(schema: number): void {
  if (!Number.isInteger(schema) || schema < NATIVE_SCHEMA_MIN || schema > NATIVE_SCHEMA_MAX) {
    throw new RangeError(`native histogram schema must be an integer in -4..8, got ${schema}`);
  }
}

/**
 * The bucket index of v at schema: bucket i covers (base^(i-1), base^i], base = 2^(2^-schema),
 * exactly as histogramCounts.observe computes it from math.Frexp (the nativeHistogramBounds
 * search for schema > 0, the exponent shift otherwise). v must be finite and > 0 (observe handles
 * sign, zero and ±Inf itself); anything else throws a RangeError.
 */
export function bucketIndex(v: number, schema: number): number {
  checkSchema(schema);
  if (!(v > 0) || v === Infinity) {
    throw new RangeError(`bucketIndex needs a finite value > 0, got ${v}`);
  }
  return indexOfAbs(v, schema);
}

/** The bucket index ±Inf observations get at schema: one above MAX_VALUE's. */
export function infBucketIndex(schema: number): number {
  checkSchema(schema);
  return indexOfAbs(Number.MAX_VALUE, schema) + 1;
}

/** One sign's buckets: interleaved (index, count) pairs sorted by index. */
class SparseBuckets {
  data: Float64Array | null = null;
  n = 0;

  /** Adds weight to bucket key; true when the bucket is new (client_golang addToBucket). */
  add(key: number, weight: number): boolean {
    let data = this.data;
    const n = this.n;
    let lo = 0;
    let hi = n;
    if (data !== null) {
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const k = data[mid * 2];
        if (k < key) lo = mid + 1;
        else if (k > key) hi = mid;
        else {
          data[mid * 2 + 1] += weight;
          return false;
        }
      }
    }
    if (data === null || data.length < (n + 1) * 2) {
      const grown = new Float64Array(Math.max(2, n * 2) * 2);
      if (data !== null) grown.set(data.subarray(0, n * 2));
      this.data = data = grown;
    }
    data.copyWithin((lo + 1) * 2, lo * 2, n * 2);
    data[lo * 2] = key;
    data[lo * 2 + 1] = weight;
    this.n = n + 1;
    return true;
  }

  /** doubleBucketWidth's merge: bucket i goes to ceil(i/2); sums counts that meet. */
  halve(): void {
    const data = this.data;
    if (data === null) return;
    let out = -1;
    for (let i = 0; i < this.n; i++) {
      const key = (data[i * 2] + 1) >> 1; // floor((i+1)/2) = ceil(i/2), and no -0
      const count = data[i * 2 + 1];
      if (out >= 0 && data[out * 2] === key) {
        data[out * 2 + 1] += count;
      } else {
        out++;
        data[out * 2] = key;
        data[out * 2 + 1] = count;
      }
    }
    this.n = out + 1;
  }

  /** client_golang makeBuckets: gaps of one or two buckets are filled with empty buckets. */
  spans(): { spans: BucketSpan[]; deltas: number[]; counts: number[] } {
    const spans: BucketSpan[] = [];
    const deltas: number[] = [];
    const counts: number[] = [];
    const data = this.data;
    if (data === null || this.n === 0) return { spans, deltas, counts };
    let prev = 0;
    let nextI = 0;
    let span: BucketSpan | undefined;
    for (let n = 0; n < this.n; n++) {
      const i = data[n * 2];
      const count = data[n * 2 + 1];
      const gap = i - nextI;
      if (span === undefined || gap > 2) {
        span = { offset: gap, length: 0 };
        spans.push(span);
      } else {
        for (let j = 0; j < gap; j++) {
          span.length++;
          deltas.push(0 - prev);
          counts.push(0);
          prev = 0;
        }
      }
      span.length++;
      deltas.push(count - prev);
      counts.push(count);
      prev = count;
      nextI = i + 1;
    }
    return { spans, deltas, counts };
  }

  entries(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let n = 0; n < this.n; n++) out.push([this.data![n * 2], this.data![n * 2 + 1]]);
    return out;
  }

  bytes(): number {
    return this.data === null ? 0 : NATIVE_BYTES_PER_ARRAY + this.data.byteLength;
  }
}

export interface NativeHistogramOptions {
  /** Largest bucket growth factor wanted; the schema is schemaForFactor(bucketFactor). Default 1.1 (schema 3). */
  bucketFactor?: number;
  /** Populated buckets (both signs) above which resolution is halved; 0 = no limit. Default 160. */
  maxBuckets?: number;
  /**
   * |v| <= zeroThreshold counts in the zero bucket. Default 2^-128. Unlike client_golang's option,
   * 0 means a zero bucket of width zero (client_golang spells that NativeHistogramZeroThresholdZero).
   */
  zeroThreshold?: number;
}

/** A snapshot with what the protobuf writer needs to choose between integer and float counts. */
export interface NativeHistogramSnapshot extends NativeSnapshot {
  /** Sum of weights of all observations, NaN ones included (protobuf sample_count / sample_count_float). */
  count: number;
  sum: number;
  /**
   * True when every weight so far was an integer and the count is a safe integer: the deltas are
   * then exact integers for positive_delta/negative_delta and zero_count. Otherwise send
   * positiveCounts/negativeCounts as positive_count/negative_count (double) and the float count fields.
   */
  integerCounts: boolean;
  /** Absolute count per bucket, aligned with the spans (filled gap buckets are 0). */
  positiveCounts: number[];
  negativeCounts: number[];
}

/** One native histogram's sparse buckets (one series). Not thread-aware: Node has one. */
export class NativeHistogramBuckets {
  private schemaNow: number;
  readonly zeroThreshold: number;
  readonly maxBuckets: number;
  private readonly positive = new SparseBuckets();
  private readonly negative = new SparseBuckets();
  private zeroBucket = 0;
  private total = 0;
  private sumOfValues = 0;
  private allIntegerWeights = true;

  constructor(options: NativeHistogramOptions = {}) {
    const { bucketFactor = 1.1, maxBuckets = 160, zeroThreshold = DEFAULT_ZERO_THRESHOLD } = options;
    this.schemaNow = schemaForFactor(bucketFactor);
    if (!Number.isInteger(maxBuckets) || maxBuckets < 0) {
      throw new RangeError(`native histogram maxBuckets must be an integer >= 0, got ${maxBuckets}`);
    }
    if (!(zeroThreshold >= 0) || zeroThreshold === Infinity) {
      throw new RangeError(`native histogram zeroThreshold must be a finite number >= 0, got ${zeroThreshold}`);
    }
    this.maxBuckets = maxBuckets;
    this.zeroThreshold = zeroThreshold;
  }

  /** Current schema (drops when the bucket limit is hit). */
  get schema(): number {
    return this.schemaNow;
  }
  get count(): number {
    return this.total;
  }
  get sum(): number {
    return this.sumOfValues;
  }
  get zeroCount(): number {
    return this.zeroBucket;
  }

  /**
   * Records v with the given weight (> 0 and finite, else RangeError: the caller validates
   * sample rates before they get here). See the module comment for NaN, ±Inf and the limit.
   */
  observe(v: number, weight = 1): void {
    if (!(weight > 0) || weight === Infinity) {
      throw new RangeError(`native histogram weight must be a finite number > 0, got ${weight}`);
    }
    if (this.allIntegerWeights && !Number.isInteger(weight)) this.allIntegerWeights = false;
    this.total += weight;
    this.sumOfValues += weight === 1 ? v : v * weight;
    if (v !== v) return; // NaN: count and sum only.
    const abs = v < 0 ? -v : v;
    if (abs <= this.zeroThreshold) {
      this.zeroBucket += weight;
      return;
    }
    const key = abs === Infinity ? indexOfAbs(Number.MAX_VALUE, this.schemaNow) + 1 : indexOfAbs(abs, this.schemaNow);
    (v > 0 ? this.positive : this.negative).add(key, weight);
    if (this.maxBuckets > 0 && this.positive.n + this.negative.n > this.maxBuckets) {
      this.doubleBucketWidth();
    }
  }

  /** One schema step down, merging bucket i into ceil(i/2) (client_golang doubleBucketWidth). */
  private doubleBucketWidth(): void {
    if (this.schemaNow === NATIVE_SCHEMA_MIN) return;
    this.schemaNow--;
    this.positive.halve();
    this.negative.halve();
  }

  /** Populated buckets, both signs (the number limited by maxBuckets). */
  bucketCount(): number {
    return this.positive.n + this.negative.n;
  }

  /** Approximate V8 heap bytes this series holds, for series budgets (the module comment's figures: 180 + per sign in use 230 + 16 per allocated bucket). */
  bytesEstimate(): number {
    return NATIVE_BYTES_EMPTY + this.positive.bytes() + this.negative.bytes();
  }

  /** index -> count per sign, ascending by index (for tests and debugging). */
  buckets(): { positive: Array<[number, number]>; negative: Array<[number, number]> } {
    return { positive: this.positive.entries(), negative: this.negative.entries() };
  }

  /**
   * The exposition shape (histogram.Write + makeBuckets). An empty histogram with a zero threshold
   * of 0 gets one no-op span {offset: 0, length: 0}, exactly the case client_golang adds it for
   * ("Otherwise, a native histogram would look like a classic histogram to scrapers"): Prometheus'
   * isNativeHistogram (model/textparse/protobufparse.go) also accepts zero_threshold > 0 or
   * zero_count > 0, so with a non-zero threshold no span is needed and none is sent, as in
   * client_golang. The writer must therefore always write zero_threshold when it is non-zero.
   */
  snapshot(): NativeHistogramSnapshot {
    const pos = this.positive.spans();
    const neg = this.negative.spans();
    const snap: NativeHistogramSnapshot = {
      schema: this.schemaNow,
      zeroThreshold: this.zeroThreshold,
      zeroCount: this.zeroBucket,
      positiveSpans: pos.spans,
      positiveDeltas: pos.deltas,
      negativeSpans: neg.spans,
      negativeDeltas: neg.deltas,
      count: this.total,
      sum: this.sumOfValues,
      integerCounts: this.allIntegerWeights && Number.isSafeInteger(this.total),
      positiveCounts: pos.counts,
      negativeCounts: neg.counts,
    };
    if (this.zeroThreshold === 0 && this.zeroBucket === 0 && pos.spans.length === 0 && neg.spans.length === 0) {
      snap.positiveSpans = [{ offset: 0, length: 0 }];
    }
    return snap;
  }
}
