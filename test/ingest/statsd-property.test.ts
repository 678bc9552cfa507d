/**
 * Generated hostile StatsD input through the real store (and a sample of it over real UDP into the
 * built sidecar): random bytes, and well-formed lines that are wrong (maintained names with the
 * wrong type, reserved names and their suffixes, huge tag lists, long values, odd rates). The store
 * never throws, every line is counted exactly once, memory stays within the limits, and promtool
 * takes the exposition after every run.
 */
import dgram from 'node:dgram';
import fc from 'fast-check';
import { Registry } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';
import { Mapper } from '../../src/ingest/statsd/mapper';
import { OUTCOMES, StatsdRecorder, type Outcome } from '../../src/ingest/statsd/recorder';
import { DEFAULT_HTTP_BUCKETS } from '../../src/config';
import { Counter, Histogram } from '../../src/metrics/registry';
import { Contract, exposedNames } from '../../src/metrics/contract';

const contract = new Contract();
import { freePort, request } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';
import { promtoolErrors } from './promtool';

/** The lines the store sees in a packet, split as it splits them. */
function lineCount(text: string): number {
  let n = 0;
  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line !== '') n++;
  }
  return n;
}

const NAMES = [
  // Object's own members: a lookup on a plain object would find them
  'constructor',
  '__proto__',
  'hasOwnProperty',
  'toString',
  'valueOf',
  // maintained, in their StatsD and Prometheus spellings
  'github_api_call_latency',
  'github_webhook_latency',
  'graphql_requests',
  'graphql_requests_total',
  'sqlalchemy_query_latency',
  'sqlalchemy_query_latency_seconds',
  'github_api_call_latency_count',
  'github_api_call_latency_total',
  'graphql_requests_bucket',
  'graphql_requests_created',
  // reserved
  'up',
  'up_total',
  'metrics_sidecar_info',
  'metrics_sidecar_statsd_lines',
  'metrics_sidecar_anything_new',
  'flask_http_request',
  'flask_http_request_total',
  'flask_http_request_duration_seconds',
  'flask_http_request_duration_seconds_count',
  'flask_http_request_duration_seconds_bucket',
  'flask_http_request_duration_seconds_sum',
  'flask_http_request_exceptions',
  'flask_http_request_created',
  // ordinary, and ones that collide with each other through suffixes
  'jobs',
  'jobs_total',
  'jobs_count',
  'jobs_sum',
  'jobs_bucket',
  'jobs_created',
  'jobs.done',
  'queue-depth',
  '1st',
  'a:b',
  'le',
  '__x',
];

const name = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NAMES) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_.]{0,12}$/) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer({ min: 150, max: 3000 }).map((n) => 'n'.repeat(n)) },
);
const num = fc.oneof(
  fc.constantFrom('1', '0', '-1', '+5', '-2.5', '1e308', '1e309', '-1e309', 'NaN', 'Inf', '.5', '5.', '', 'abc', '0x10', '1:2:3', '100:200'),
  fc.double({ noNaN: false }).map(String),
);
const type = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('c', 'g', 'ms', 'h', 'd', 's') },
  { weight: 1, arbitrary: fc.constantFrom('x', 'C', '', 'ms ', 'kv') },
);
const rate = fc.constantFrom('', '|@0.5', '|@1', '|@0', '|@2', '|@-1', '|@abc', '|@1e-300', '|@0.000001', '|@');
const tagKey = fc.oneof(
  fc.constantFrom('le', 'otel_metric_overflow', 'exported_le', 'endpoint', 'status', '__name__', 'a-b', 'a_b', '1x', ''),
  fc.stringMatching(/^[a-z]{1,8}$/),
  fc.integer({ min: 100, max: 400 }).map((n) => 'k'.repeat(n)),
);
const tagValue = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => s.replace(/[,|\n]/g, '')),
  fc.constantFrom('"quoted"', 'back\\slash', 'ünïcödé', '\u0000nul', '\r', ''),
  fc.integer({ min: 200, max: 2000 }).map((n) => 'v'.repeat(n)),
);
const tag = fc.tuple(tagKey, tagValue).map(([k, v]) => (v === '' ? k : `${k}:${v}`));
const tags = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 4, arbitrary: fc.array(tag, { maxLength: 20 }).map((t) => `|#${t.join(',')}`) },
  { weight: 1, arbitrary: fc.integer({ min: 17, max: 2500 }).map((n) => `|#${Array.from({ length: n }, (_, i) => `t${i}:${i}`).join(',')}`) },
);
const extra = fc.constantFrom('', '', '', '|c:abc123', '|T1700000000', '|e:ext', '|zz', '|');
const wrongLine = fc.tuple(name, num, type, rate, tags, extra).map(([n, v, t, r, g, e]) => `${n}:${v}|${t}${r}${g}${e}`);
const randomBytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('utf8'));
const packet = fc.oneof(
  { weight: 5, arbitrary: fc.array(wrongLine, { minLength: 1, maxLength: 8 }).map((l) => l.join('\n')) },
  { weight: 2, arbitrary: randomBytes },
  { weight: 1, arbitrary: fc.array(fc.oneof(wrongLine, randomBytes), { maxLength: 6 }).map((l) => l.join('\r\n')) },
);

const LIMITS = { maxSeriesTotal: 300, maxLabelBytesTotal: 64 * 1024, maxLabelValueBytes: 64 };

function makeStore(enableDbMetrics: boolean): { registry: Registry; store: StatsdRecorder } {
  const registry = new Registry(LIMITS);
  const dropped = registry.register(new Counter({ name: 'metrics_sidecar_series_dropped_total', help: 'Drops.', labelNames: ['family', 'reason'] }));
  registry.onDrop = (family, reason) => dropped.inc([family, reason]);
  // The RED families, as the forwarder registers them: StatsD must not land beside them.
  registry.register(new Histogram({ name: 'flask_http_request_duration_seconds', help: 'd', labelNames: ['path'], buckets: [1] })).observe(['/'], 0.5);
  registry.register(new Counter({ name: 'flask_http_request_total', help: 't' })).inc();
  registry.register(new Counter({ name: 'flask_http_request_exceptions_total', help: 'e' })).inc();
  const store = new StatsdRecorder(registry, new Mapper(undefined, DEFAULT_HTTP_BUCKETS), {
    enableDbMetrics,
    maxSeriesPerFamily: 20,
    maxFamilies: 40,
    maxLabels: 8,
    maxLabelValueBytes: LIMITS.maxLabelValueBytes,
  });
  return { registry, store };
}

const total = (c: Record<Outcome, number>) => OUTCOMES.reduce((a, o) => a + c[o], 0);

describe('StatsD store under generated hostile input', () => {
  it('should count every line exactly once, never throw, stay within its limits and keep the exposition valid', () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 40 }), fc.boolean(), (packets, db) => {
        const { registry, store } = makeStore(db);
        let sent = 0;
        for (const p of packets) {
          const before = total(store.counts());
          store.handlePacket(p);
          const n = lineCount(p);
          sent += n;
          expect(total(store.counts()) - before).toBe(n);
        }
        expect(total(store.counts())).toBe(sent);
        expect(store.internalErrors).toBe(0);
        expect([...registry.all()].map((f) => f.name)).not.toContain('Object');
        expect(registry.budget.series).toBeLessThanOrEqual(LIMITS.maxSeriesTotal);
        expect(registry.budget.labelBytes).toBeLessThanOrEqual(LIMITS.maxLabelBytesTotal);
        expect([...registry.all()].filter((f) => !f.name.startsWith('metrics_sidecar_')).length).toBeLessThanOrEqual(40);
        for (const f of registry.all()) expect(f.size).toBeLessThanOrEqual(Math.min(f.maxSeries, 10_000) + 1);
        // No StatsD family took a reserved name or a maintained name with another type, and no two share a sample name.
        const owner = new Map<string, string>();
        for (const f of registry.all()) {
          if (!f.name.startsWith('metrics_sidecar_') && !f.name.startsWith('flask_http_request'))
            expect([f.name, contract.refuse(f.name, f.type)]).toEqual([f.name, undefined]);
          for (const n of exposedNames(f.name, f.type)) {
            expect([n, owner.get(n)]).toEqual([n, undefined]);
            owner.set(n, f.name);
          }
        }
        expect(promtoolErrors(renderText(registry, false))).toBe('');
        expect(promtoolErrors(renderText(registry, true))).toBe('');
      }),
      { numRuns: 60 },
    );
  });

  it('should give the maintained families their contract types, whatever arrives first', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(
          [
            'graphql_requests:5|ms',
            'graphql_requests:1|g',
            'graphql_requests:2|c',
            'github_api_call_latency:1|c',
            'github_api_call_latency:3|ms',
            'github_webhook_latency:1|g',
            'github_webhook_latency:0.2|h',
          ],
          { minLength: 7 },
        ),
        (lines) => {
          const { registry, store } = makeStore(true);
          const outcomes = Object.fromEntries(lines.map((l) => [l, store.handleLine(l)]));
          expect(outcomes['graphql_requests:2|c']).toBe('accepted');
          expect(outcomes['github_api_call_latency:3|ms']).toBe('accepted');
          expect(outcomes['github_webhook_latency:0.2|h']).toBe('accepted');
          expect(outcomes['graphql_requests:5|ms']).toBe('type_conflict');
          expect(outcomes['graphql_requests:1|g']).toBe('type_conflict');
          expect(outcomes['github_api_call_latency:1|c']).toBe('type_conflict');
          expect(outcomes['github_webhook_latency:1|g']).toBe('type_conflict');
          const types = Object.fromEntries([...registry.all()].map((f) => [f.name, f.type]));
          expect(types).toMatchObject({ graphql_requests_total: 'counter', github_api_call_latency: 'histogram', github_webhook_latency: 'histogram' });
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('generated hostile StatsD over real UDP into the built sidecar', () => {
  let sc: Child;
  let statsdPort: number;
  beforeAll(async () => {
    statsdPort = await freePort();
    sc = await spawnSidecar({ LISTEN_PORT: '0', STATSD_PORT: String(statsdPort), ENABLE_DB_METRICS: 'true', METRICS_MAX_SERIES_PER_FAMILY: '50' });
  });
  afterAll(async () => {
    sc.proc.kill('SIGTERM');
    await sc.exited;
  });

  it('should stay up and count every line it received once', async () => {
    const packets = fc.sample(packet, { numRuns: 300, seed: 9125 });
    const sock = dgram.createSocket('udp4');
    let sent = 0;
    for (const p of packets) {
      const bytes = Buffer.from(p, 'utf8');
      if (bytes.length > 60_000) continue;
      // What the sidecar decodes is what it counts: the same decoding here.
      sent += lineCount(bytes.toString('utf8'));
      await new Promise<void>((resolve, reject) => sock.send(bytes, statsdPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    }
    sock.close();
    let counted = 0;
    let text = '';
    for (let i = 0; i < 100 && counted < sent; i++) {
      await new Promise((r) => setTimeout(r, 50));
      text = (await request(sc.metricsPort, '/debug/metrics')).text;
      const parsed = parseExposition(text);
      counted = OUTCOMES.reduce((a, o) => a + value(parsed, 'metrics_sidecar_statsd_lines_total', { outcome: o }), 0);
    }
    expect(counted).toBe(sent);
    expect(sc.proc.exitCode).toBeNull();
    expect((await request(sc.metricsPort, '/healthz')).status).toBe(200);
    expect(promtoolErrors(text)).toBe('');
  }, 30_000);
});
