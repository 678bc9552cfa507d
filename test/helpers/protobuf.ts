/**
 * An independent reader of the protobuf exposition for tests: protobufjs on client_model's
 * metrics.proto (vendored in test/fixtures), decoding varint-delimited MetricFamily messages.
 */
import path from 'node:path';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(path.join(__dirname, '../fixtures/metrics.proto'));
const MetricFamily = root.lookupType('io.prometheus.client.MetricFamily');

export interface LabelPair {
  name: string;
  value: string;
}
export interface DecodedExemplar {
  label?: LabelPair[];
  value?: number;
  timestamp?: { seconds?: number; nanos?: number };
}
export interface DecodedMetric {
  label?: LabelPair[];
  counter?: { value?: number; exemplar?: DecodedExemplar };
  gauge?: { value?: number };
  untyped?: { value?: number };
  summary?: { sampleCount?: number; sampleSum?: number; quantile?: { quantile: number; value: number }[] };
  histogram?: {
    sampleCount?: number;
    sampleCountFloat?: number;
    sampleSum?: number;
    bucket?: { cumulativeCount?: number; cumulativeCountFloat?: number; upperBound: number; exemplar?: DecodedExemplar }[];
    schema?: number;
    zeroThreshold?: number;
    zeroCount?: number;
    positiveSpan?: { offset: number; length: number }[];
    positiveDelta?: number[];
    negativeSpan?: { offset: number; length: number }[];
    negativeDelta?: number[];
    exemplars?: DecodedExemplar[];
  };
}
export interface DecodedFamily {
  name: string;
  help: string;
  type?: number;
  metric: DecodedMetric[];
}

export function decode(buf: Buffer): DecodedFamily[] {
  const r = protobuf.Reader.create(buf);
  const out: DecodedFamily[] = [];
  while (r.pos < r.len) out.push(MetricFamily.toObject(MetricFamily.decodeDelimited(r), { longs: Number, enums: Number, defaults: false }) as DecodedFamily);
  return out;
}
