/**
 * The protobuf writer checked with an independent decoder: protobufjs reading client_model's
 * metrics.proto (vendored in test/fixtures/metrics.proto), compared with the text render of the
 * same store read by the tests' own text parser (test/helpers/exposition).
 */
import zlib from 'node:zlib';
import fc from 'fast-check';
import { Counter, Gauge, Histogram, Registry } from '../../src/metrics/registry';
import { ProtobufWriter, type ProtobufSources } from '../../src/exposition/protobuf';
import { BufferPool, ExpositionWriter } from '../../src/exposition/render';
import { PROTOBUF_CONTENT_TYPE } from '../../src/exposition/negotiate';
import { parseExposition } from '../helpers/exposition';
import { decode, type DecodedFamily, type LabelPair } from '../helpers/protobuf';
import { request } from '../helpers/net';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

const TYPE_NAMES = ['counter', 'gauge', 'summary', 'untyped', 'histogram'];

/** The decoded families as text samples (name, labels, value), +Inf buckets added back from the count. */
function asSamples(fams: DecodedFamily[]): { types: Map<string, string>; help: Map<string, string>; samples: string[] } {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: string[] = [];
  const key = (name: string, labels: LabelPair[] | undefined, extra: [string, string][], v: number) => {
    // An empty label value is no label, to Prometheus (and protobufjs may leave an empty string out).
    const pairs = [...(labels ?? []).map((l) => [l.name, l.value ?? ''] as [string, string]), ...extra]
      .filter(([, v]) => v !== '')
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return JSON.stringify([name, pairs, Object.is(v, -0) ? 0 : v]);
  };
  for (const f of fams) {
    types.set(f.name, TYPE_NAMES[f.type ?? 0]);
    help.set(f.name, f.help);
    for (const m of f.metric) {
      if (m.counter) samples.push(key(f.name, m.label, [], m.counter.value ?? 0));
      else if (m.gauge) samples.push(key(f.name, m.label, [], m.gauge.value ?? 0));
      else if (m.untyped) samples.push(key(f.name, m.label, [], m.untyped.value ?? 0));
      else if (m.summary) {
        for (const q of m.summary.quantile ?? []) samples.push(key(f.name, m.label, [['quantile', String(q.quantile)]], q.value));
        samples.push(key(`${f.name}_sum`, m.label, [], m.summary.sampleSum ?? 0), key(`${f.name}_count`, m.label, [], m.summary.sampleCount ?? 0));
      } else if (m.histogram) {
        const h = m.histogram;
        const count = h.sampleCountFloat || h.sampleCount || 0;
        for (const b of h.bucket ?? [])
          samples.push(key(`${f.name}_bucket`, m.label, [['le', String(b.upperBound)]], b.cumulativeCountFloat || b.cumulativeCount || 0));
        // No +Inf bucket: Prometheus makes it from the count (see textSamples).
        samples.push(key(`${f.name}_sum`, m.label, [], h.sampleSum ?? 0), key(`${f.name}_count`, m.label, [], count));
      }
    }
  }
  return { types, help, samples: samples.sort() };
}

/** The text render read by the tests' parser, in the same shape (le and quantile as numbers). */
function textSamples(text: string): { types: Map<string, string>; help: Map<string, string>; samples: string[] } {
  const p = parseExposition(text);
  // The text's +Inf bucket is the running sum of the bucket counts, which with fractional weights
  // (StatsD sample rates) may differ from _count in the last bits; protobuf sends the count only.
  const infs = p.samples.filter((s) => s.labels.le === '+Inf');
  for (const inf of infs) {
    const count = p.samples.find(
      (s) => s.name === inf.name.replace(/_bucket$/, '_count') && JSON.stringify({ ...s.labels, le: '+Inf' }) === JSON.stringify(inf.labels),
    );
    expect(count).toBeDefined();
    expect(Math.abs(count!.value - inf.value)).toBeLessThanOrEqual(Math.abs(count!.value) * 1e-12);
  }
  const samples = p.samples
    .filter((s) => s.labels.le !== '+Inf')
    .map((s) => {
      const pairs = Object.entries(s.labels)
        .map(([k, v]) => [k, k === 'le' || k === 'quantile' ? String(v === '+Inf' ? Infinity : Number(v)) : v] as [string, string])
        .filter(([, v]) => v !== '')
        .sort((a, b) => (a[0] < b[0] ? -1 : 1));
      return JSON.stringify([s.name, pairs, Object.is(s.value, -0) ? 0 : s.value]);
    });
  // Families without samples are not sent in protobuf.
  const withSamples = new Set(p.samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  const keep = <V>(m: Map<string, V>) => new Map([...m].filter(([n]) => withSamples.has(n) || p.samples.some((s) => s.name === n)));
  // The text's HELP is escaped (\\ and \n); protobuf carries it plain.
  const help = new Map([...keep(p.help)].map(([n, h]) => [n, h.replace(/\\([\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c))]));
  return { types: keep(p.types), help, samples: samples.sort() };
}

const labelValue = fc.oneof(
  fc.constantFrom('', 'GET', '/a/b', 'x"y', 'back\\slash', 'new\nline', 'é', '日本', '😀'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
);
const value = fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.double({ noNaN: true }), fc.constantFrom(0, -0, 0.5, 1e-9, 2 ** 53, Infinity, -Infinity, NaN));
const observation = fc.oneof(fc.double({ min: -10, max: 1e4, noNaN: true }), fc.constantFrom(0, 0.1, 1, 5));

interface StoreSpec {
  counters: { labels: string[]; by: number }[];
  gauges: { labels: string[]; v: number }[];
  hist: { labels: string[]; obs: number[]; weight: number }[];
}

const storeSpec: fc.Arbitrary<StoreSpec> = fc.record({
  counters: fc.array(
    fc.record({ labels: fc.array(labelValue, { minLength: 2, maxLength: 2 }), by: fc.oneof(fc.nat(1e6), fc.double({ min: 0, max: 1e9, noNaN: true })) }),
    { maxLength: 20 },
  ),
  gauges: fc.array(fc.record({ labels: fc.array(labelValue, { minLength: 1, maxLength: 1 }), v: value }), { maxLength: 20 }),
  hist: fc.array(
    fc.record({
      labels: fc.array(labelValue, { minLength: 1, maxLength: 1 }),
      obs: fc.array(observation, { maxLength: 20 }),
      weight: fc.constantFrom(1, 1, 2, 10, 1 / 3),
    }),
    { maxLength: 10 },
  ),
});

function build(spec: StoreSpec): Registry {
  const r = new Registry();
  const c = r.register(new Counter({ name: 'c_total', help: 'a counter\nwith "help" \\ text é', labelNames: ['a', 'b'] }));
  const g = r.register(new Gauge({ name: 'g', help: 'a gauge', labelNames: ['a'] }));
  const h = r.register(new Histogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['path'], buckets: [0.005, 0.1, 1, 2.5, 1000] }));
  r.register(new Gauge({ name: 'empty', help: 'no series' }));
  for (const x of spec.counters) c.inc(x.labels, x.by);
  for (const x of spec.gauges) g.set(x.labels, x.v);
  for (const x of spec.hist) {
    const s = h.child(x.labels)!;
    for (const o of x.obs) h.observeWeighted(s, o, x.weight);
  }
  return r;
}

const EXTRA =
  '# HELP ext_gc_seconds GC.\n# TYPE ext_gc_seconds histogram\next_gc_seconds_bucket{kind="minor",le="0.001"} 2\next_gc_seconds_bucket{kind="minor",le="+Inf"} 3\next_gc_seconds_sum{kind="minor"} 0.5\next_gc_seconds_count{kind="minor"} 3\n' +
  '# HELP app_latency Latency.\n# TYPE app_latency summary\napp_latency{quantile="0.5"} 0.2\napp_latency{quantile="0.99"} 1.5\napp_latency_sum 12\napp_latency_count 40\n' +
  '# HELP app_jobs Jobs.\n# TYPE app_jobs untyped\napp_jobs{q="a\\"b"} 7\n' +
  '# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\napp_requests_total{code="200"} 9\n';

/** The property: decoded protobuf = text render, whatever the chunk size. */
function checkRoundTrip(spec: StoreSpec, chunk: number): void {
  const r = build(spec);
  const pool = new BufferPool(chunk);
  const pb = new ProtobufWriter(r.all(), EXTRA, { pool }).all();
  const text = new ExpositionWriter(r.all(), false, EXTRA, pool).all().toString('utf8');
  const got = asSamples(decode(pb));
  const want = textSamples(text);
  expect(got.samples).toEqual(want.samples);
  expect([...got.types]).toEqual([...want.types]);
  expect([...got.help]).toEqual([...want.help]);
  // The same bytes whatever the chunk size.
  expect(new ProtobufWriter(build(spec).all(), EXTRA).all().equals(pb)).toBe(true);
}

describe('ProtobufWriter', () => {
  it('should decode (protobufjs, metrics.proto) to what the text render says, across chunk boundaries', () => {
    fc.assert(fc.property(storeSpec, fc.integer({ min: 64, max: 700 }), checkRoundTrip), { numRuns: Number(process.env.PB_RUNS ?? 150) });
  });

  it('should hand out chunks no larger than the pool size, empty ones only while a family is held', () => {
    const r = new Registry();
    const c = r.register(new Counter({ name: 'big_total', help: 'h', labelNames: ['i'] }));
    for (let i = 0; i < 2000; i++) c.inc([`series-${i}`], i);
    const pool = new BufferPool(256);
    const w = new ProtobufWriter(r.all(), '', { pool });
    const parts: Buffer[] = [];
    let empties = 0;
    for (let ch = w.next(); ch !== undefined; ch = w.next()) {
      expect(ch.length).toBeLessThanOrEqual(256);
      if (ch.length === 0) empties++;
      else parts.push(Buffer.from(ch));
      pool.give(ch);
    }
    expect(w.done).toBe(true);
    expect(empties).toBeGreaterThan(0); // the one family spans many chunks: its bytes wait for its length
    const fams = decode(Buffer.concat(parts));
    expect(fams).toHaveLength(1);
    expect(fams[0].metric).toHaveLength(2000);
    expect(fams[0].metric[1999]).toEqual({ label: [{ name: 'i', value: 'series-1999' }], counter: { value: 1999 } });
  });

  it('should carry native buckets and exemplars from the accessors, classic buckets in the same message', () => {
    const r = new Registry();
    const c = r.register(new Counter({ name: 'req_total', help: 'r', labelNames: ['m'] }));
    c.inc(['GET'], 2);
    const h = r.register(new Histogram({ name: 'd_seconds', help: 'd', labelNames: ['m'], buckets: [0.1, 1] }));
    h.observe(['GET'], 0.05);
    h.observe(['GET'], 0.7);
    h.observe(['PUT'], 0.7);
    const ex = {
      labels: [['trace_id', '4bf92f3577b34da6a3ce929d0e0e4736'] as const, ['span_id', '00f067aa0ba902b7'] as const],
      value: 0.7,
      timestampMs: 1700000000123,
    };
    const sources: ProtobufSources = {
      native: (_f, s) =>
        s.labels === 'm="GET"'
          ? {
              schema: 3,
              zeroThreshold: 2 ** -128,
              zeroCount: 1,
              positiveSpans: [
                { offset: -34, length: 2 },
                { offset: 3, length: 1 },
              ],
              positiveDeltas: [1, -1, 2],
              negativeSpans: [{ offset: 0, length: 1 }],
              negativeDeltas: [1],
            }
          : { schema: -4, zeroThreshold: 0, zeroCount: 0, positiveSpans: [], positiveDeltas: [], negativeSpans: [], negativeDeltas: [] },
      counterExemplar: () => ex,
      bucketExemplar: (_f, _s, i) => (i === 1 ? ex : undefined),
      histogramExemplars: (_f, s) => (s.labels === 'm="GET"' ? [ex, ex] : undefined),
    };
    const fams = decode(new ProtobufWriter(r.all(), '', { sources }).all());
    const exDecoded = {
      label: [
        { name: 'trace_id', value: '4bf92f3577b34da6a3ce929d0e0e4736' },
        { name: 'span_id', value: '00f067aa0ba902b7' },
      ],
      value: 0.7,
      timestamp: { seconds: 1700000000, nanos: 123000000 },
    };
    expect(fams[0].metric[0].counter).toEqual({ value: 2, exemplar: exDecoded });
    const [get, put] = fams[1].metric;
    expect(get.histogram).toEqual({
      sampleCount: 2,
      sampleSum: 0.75,
      bucket: [
        { cumulativeCount: 1, upperBound: 0.1 },
        { cumulativeCount: 2, upperBound: 1, exemplar: exDecoded },
      ],
      schema: 3,
      zeroThreshold: 2 ** -128,
      zeroCount: 1,
      negativeSpan: [{ offset: 0, length: 1 }],
      negativeDelta: [1],
      positiveSpan: [
        { offset: -34, length: 2 },
        { offset: 3, length: 1 },
      ],
      positiveDelta: [1, -1, 2],
      exemplars: [exDecoded, exDecoded],
    });
    // An empty native histogram carries the no-op span, so it is not read as classic only.
    expect(put.histogram?.schema).toBe(-4);
    expect(put.histogram?.positiveSpan).toEqual([{ offset: 0, length: 0 }]);
  });

  it('should leave out a text family it cannot parse and say which', () => {
    const skipped: string[] = [];
    const extra = '# HELP ok_total fine\n# TYPE ok_total counter\nok_total 1\n# HELP bad broken\n# TYPE bad gauge\nbad{x="1" 2\n';
    const fams = decode(new ProtobufWriter(new Registry().all(), extra, { onSkip: (f) => skipped.push(f) }).all());
    expect(fams.map((f) => f.name)).toEqual(['ok_total']);
    expect(skipped).toEqual(['bad']);
  });
});

describe('protobuf through the sidecar', () => {
  const ACCEPT =
    'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

  it.each([false, true])('should answer a protobuf Accept with decodable protobuf (gzip %p)', async (gz) => {
    const upstream = await startUpstream((_req, res) => res.end('ok'));
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true' });
    try {
      await request(sc.mainPort, '/orders/1');
      // Families with samples in a text scrape just before and just after: prom-client's GC
      // histogram, say, has none until the first collection, which may come between the scrapes.
      const familiesOf = (text: string): string[] => {
        const parsed = parseExposition(text);
        return [...parsed.types.keys()].filter((n) => parsed.samples.some((s) => s.name === n || s.name.startsWith(`${n}_`)));
      };
      const before = familiesOf((await request(sc.metricsPort, '/debug/metrics')).text);
      const r = await request(sc.metricsPort, '/debug/metrics', { headers: { accept: ACCEPT, 'accept-encoding': gz ? 'gzip' : 'identity' } });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe(PROTOBUF_CONTENT_TYPE);
      expect(r.headers['content-encoding']).toBe(gz ? 'gzip' : undefined);
      const fams = decode(gz ? zlib.gunzipSync(r.body) : r.body);
      const names = fams.map((f) => f.name);
      expect(names).toContain('flask_http_request_duration_seconds');
      expect(names).toContain('metrics_sidecar_process_cpu_seconds_total'); // prom-client's, parsed back from text
      const after = familiesOf((await request(sc.metricsPort, '/debug/metrics')).text);
      // Every family the text had before is in the protobuf answer, and nothing the text lacks after.
      expect(before.filter((n) => !names.includes(n))).toEqual([]);
      expect(names.filter((n) => !after.includes(n))).toEqual([]);
      const scrapes = fams.find((f) => f.name === 'metrics_sidecar_scrapes_total')!;
      expect(scrapes.metric.some((m) => m.label?.some((l) => l.name === 'format' && l.value === 'protobuf'))).toBe(true);
    } finally {
      await sc.stop();
      await upstream.close();
    }
  });
});
