/**
 * The shapes shared by the native histogram store (./native-histogram), the exemplar store and
 * the protobuf writer (../exposition/protobuf), so each can be built and tested on its own.
 * Field meanings follow client_model's `io.prometheus.client.Histogram` and `Exemplar`.
 */

/** A run of consecutive bucket indexes; `offset` is the gap from the previous span's end (or from 0). */
export interface BucketSpan {
  offset: number;
  length: number;
}

/** A native histogram's buckets as the exposition carries them (counts as deltas). */
export interface NativeSnapshot {
  /** Resolution: bucket boundaries are powers of 2^(2^-schema); -4..8. */
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  positiveSpans: BucketSpan[];
  /** Each bucket's count minus the previous bucket's (the first is absolute), for integer counts. */
  positiveDeltas: number[];
  negativeSpans: BucketSpan[];
  negativeDeltas: number[];
}

export type { Exemplar } from '../formats/exposition';
