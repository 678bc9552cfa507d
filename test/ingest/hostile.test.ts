/**
 * The memory/ingest findings of issue 9, each over real sockets against a real sidecar: StatsD
 * lines that used to kill the process, names that claim reserved or maintained families, limits
 * that bound memory (families, labels, values, the cache, the series budget), merged targets that
 * collide through suffixes or repeat series, and a large target parsed while requests flow.
 */
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { freePort, request } from '../helpers/net';
import { spawnSidecar, startSidecar, type Child, type Env, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { find, parseExposition, value, type Parsed } from '../helpers/exposition';
import { Registry, Counter, Histogram, Gauge } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';
import { CHUNK_BYTES, ExpositionWriter } from '../../src/exposition/render';
import { Contract } from '../../src/metrics/contract';
import { Mapper } from '../../src/ingest/statsd/mapper';
import { StatsdRecorder } from '../../src/ingest/statsd/recorder';
import { parseExposition as parseSource, parseExpositionAsync } from '../../src/ingest/merge/parse';
import { promtoolErrors } from './promtool';
import { sendDatagram as sendUdp } from '../helpers/net';

function sendTcp(port: number, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(payload));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

const lines = (p: Parsed, outcome: string) => value(p, 'metrics_sidecar_statsd_lines_total', { outcome });

async function scrapeUntil(port: number, ok: (p: Parsed) => boolean): Promise<Parsed & { text: string }> {
  for (let i = 0; ; i++) {
    const text = (await request(port, '/debug/metrics')).text;
    const p = parseExposition(text);
    if (ok(p) || i > 100) return { ...p, text };
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('StatsD lines that used to kill the process (built sidecar)', () => {
  let sc: Child;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    sc = await spawnSidecar({ LISTEN_PORT: '0', STATSD_PORT: String(port), ENABLE_DB_METRICS: 'true' });
  });
  afterAll(async () => {
    sc.proc.kill('SIGTERM');
    await sc.exited;
  });

  it('should count a maintained name of the wrong type as type_conflict, over UDP and TCP, and stay up', async () => {
    await sendUdp(port, 'github_api_call_latency:1|c');
    await sendTcp(port, 'github_webhook_latency:1|c\nsqlalchemy_query_latency:1|c\n');
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'type_conflict') >= 3);
    expect(lines(p, 'type_conflict')).toBe(3);
    expect(sc.proc.exitCode).toBeNull();
    // The right types are still taken afterwards.
    await sendUdp(port, 'github_api_call_latency:250|ms|#endpoint:/x\ngithub_webhook_latency:0.1|h\nsqlalchemy_query_latency:3|ms');
    const q = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'accepted') >= 3);
    expect(q.types.get('github_api_call_latency')).toBe('histogram');
    expect(find(q, 'github_api_call_latency_sum', { endpoint: '/x' })[0]?.value).toBeCloseTo(0.25);
    expect(q.types.get('sqlalchemy_query_latency_seconds')).toBe('histogram');
    expect(promtoolErrors(q.text)).toBe('');
  });

  it('should keep graphql_requests_total a counter when a timer arrives first', async () => {
    await sendUdp(port, 'graphql_requests:5|ms');
    await sendUdp(port, 'graphql_requests:2|c|#operation:viewer');
    const p = await scrapeUntil(sc.metricsPort, (x) => find(x, 'graphql_requests_total').length > 0);
    expect(p.types.get('graphql_requests_total')).toBe('counter');
    expect(find(p, 'graphql_requests_total', { operation: 'viewer' })[0]?.value).toBe(2);
    expect(lines(p, 'type_conflict')).toBe(4);
  });

  it.each([
    'up:1|g',
    'up:1|c',
    'metrics_sidecar_info:5|g',
    'metrics_sidecar_new_thing:1|c',
    'flask_http_request:1|ms',
    'flask_http_request_duration_seconds_count:1|c',
    'flask_http_request_duration_seconds_bucket:1|g',
    'flask_http_request_duration_seconds_created:1|g',
    'flask_http_request_exceptions:1|c',
    'flask_http_request_total_info:1|g',
  ])('should refuse the reserved %s as type_conflict', async (line) => {
    const before = lines(await scrapeUntil(sc.metricsPort, () => true), 'type_conflict');
    await sendUdp(port, line);
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'type_conflict') > before);
    expect(lines(p, 'type_conflict')).toBe(before + 1);
    expect(promtoolErrors(p.text)).toBe('');
  });
});

describe('StatsD limits', () => {
  const running: Running[] = [];
  afterAll(async () => {
    for (const sc of running) await sc.stop();
  });
  async function sidecar(env: Env): Promise<Running & { statsdPort: number }> {
    const statsdPort = await freePort();
    const sc = await startSidecar({ LISTEN_PORT: '0', STATSD_PORT: String(statsdPort), ...env });
    running.push(sc);
    return { ...sc, statsdPort };
  }

  it('should refuse new families past METRICS_MAX_FAMILIES_PER_SOURCE, counted as limited', async () => {
    const sc = await sidecar({ METRICS_MAX_FAMILIES_PER_SOURCE: '5' });
    await sendTcp(sc.statsdPort, Array.from({ length: 20 }, (_, i) => `fam_${i}:1|c\n`).join(''));
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'accepted') + lines(x, 'limited') >= 20);
    expect(lines(p, 'accepted')).toBe(5);
    expect(lines(p, 'limited')).toBe(15);
    expect([...p.types.keys()].filter((n) => n.startsWith('fam_'))).toHaveLength(5);
  });

  it('should send timers with thousands of tags to the overflow series: scrapes stay 200 and valid', async () => {
    const sc = await sidecar({});
    const tags = (i: number) => Array.from({ length: 2500 }, (_, k) => `t${k}:v${i}_${k}`).join(',');
    let payload = '';
    for (let i = 0; i < 200; i++) payload += `big_timer:${i}|ms|#${tags(i)}\n`;
    await sendTcp(sc.statsdPort, payload);
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'accepted') >= 200);
    expect(lines(p, 'accepted')).toBe(200);
    expect(find(p, 'big_timer_count')).toEqual([{ name: 'big_timer_count', labels: { otel_metric_overflow: 'true' }, value: 200 }]);
    expect(value(p, 'metrics_sidecar_series_dropped_total', { family: 'big_timer', reason: 'label_limit' })).toBe(200);
    expect(p.text.length).toBeLessThan(100_000);
    expect(promtoolErrors(p.text)).toBe('');
  });

  it('should send a label value past METRICS_MAX_LABEL_VALUE_BYTES to the overflow series', async () => {
    const sc = await sidecar({ METRICS_MAX_LABEL_VALUE_BYTES: '32' });
    await sendUdp(sc.statsdPort, [`long_val:1|c|#k:${'x'.repeat(33)}`, `long_val:1|c|#k:${'é'.repeat(17)}`, `long_val:1|c|#k:${'y'.repeat(32)}`].join('\n'));
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'accepted') >= 3);
    expect(find(p, 'long_val_total', { k: 'y'.repeat(32) })[0]?.value).toBe(1);
    expect(find(p, 'long_val_total', { otel_metric_overflow: 'true' })[0]?.value).toBe(2);
  });

  it('should hold the total series budget across families, overflow per family, and count it', async () => {
    const sc = await sidecar({ METRICS_MAX_SERIES_TOTAL: '4' });
    // The sidecar's own families are outside the budget; nothing budgeted exists yet (no upstream).
    await sendUdp(
      sc.statsdPort,
      ['a', 'b', 'c']
        .map((k) => `first:1|c|#k:${k}`)
        .concat(['x', 'y', 'z'].map((k) => `second:1|g|#k:${k}`))
        .join('\n'),
    );
    const p = await scrapeUntil(sc.metricsPort, (x) => lines(x, 'accepted') >= 6);
    expect(find(p, 'first_total').filter((s) => s.labels.k)).toHaveLength(3);
    expect(find(p, 'second').filter((s) => s.labels.k)).toHaveLength(1);
    expect(find(p, 'second', { otel_metric_overflow: 'true' })).toHaveLength(1);
    expect(value(p, 'metrics_sidecar_series_dropped_total', { family: 'second', reason: 'series_budget' })).toBe(2);
    expect(promtoolErrors(p.text)).toBe('');
  });
});

describe('StatsD store memory', () => {
  it('should not keep refused 60 KB lines: retained heap stays small (built store, forced GC)', () => {
    // In a fresh `node --expose-gc`: 5,000 type_conflict lines and 5,000 new names, each line 60 KB
    // (300 MB each in all). Before, slices of each line were kept in the cache and as family names.
    const script = `
      const { Registry } = require('./dist/metrics/registry');
      const { Mapper } = require('./dist/ingest/statsd/mapper');
      const { StatsdRecorder } = require('./dist/ingest/statsd/recorder');
      const store = new StatsdRecorder(new Registry(), new Mapper(undefined, [1]), { enableDbMetrics: false, maxSeriesPerFamily: 10, maxFamilies: 100000 });
      store.handleLine('conflicted:1|c');
      const collect = () => { for (let i = 0; i < 4; i++) global.gc(); };
      collect();
      const before = process.memoryUsage().heapUsed;
      const pad = 'x'.repeat(60000);
      for (let i = 0; i < 5000; i++) store.handleLine('conflicted:1|g|#k:' + i + pad.slice(i % 7));
      for (let i = 0; i < 5000; i++) store.handleLine('other_' + i + ':1|ms|c:' + pad.slice(i % 7));
      collect();
      process.stdout.write(JSON.stringify({ retained: process.memoryUsage().heapUsed - before, counts: store.counts() }));
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { retained: number; counts: Record<string, number> };
    expect(out.counts).toMatchObject({ accepted: 5001, type_conflict: 5000 });
    expect(out.retained).toBeLessThan(30 * 1024 * 1024);
  });

  it('should bound the resolved-line cache in characters whatever the lines', () => {
    const store = new StatsdRecorder(new Registry(), new Mapper(undefined, [1]), { enableDbMetrics: false, maxSeriesPerFamily: 100_000, maxFamilies: 10 });
    for (let i = 0; i < 20_000; i++) store.handleLine(`n${i % 10}:1|c|#k:${i}${'z'.repeat(900)}`);
    expect((store as unknown as { cachedChars: number }).cachedChars).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});

describe('Registry budgets and chunked render', () => {
  it('should render in chunks of at most CHUNK_BYTES, never one string of the whole exposition', () => {
    const r = new Registry();
    const g = r.register(new Gauge({ name: 'wide', help: 'w', labelNames: ['a', 'b'] }));
    for (let i = 0; i < 20_000; i++) g.set([`value-${i}`, 'y'.repeat(100)], i);
    const chunks: string[] = [];
    const writer = new ExpositionWriter(r.all(), false);
    for (let c = writer.next(); c !== undefined; c = writer.next()) chunks.push(c.toString('utf8'));
    expect(chunks.length).toBeGreaterThan(20);
    for (const c of chunks) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(CHUNK_BYTES);
    expect(chunks.join('')).toBe(renderText(r, false));
  });

  it('should budget label text across families and refuse values past the byte limit', () => {
    const r = new Registry({ maxLabelBytesTotal: 40, maxLabelValueBytes: 10 });
    const reasons: string[] = [];
    r.onDrop = (f, why) => reasons.push(`${f}:${why}`);
    const c = r.register(new Counter({ name: 'c_total', help: 'c', labelNames: ['k'] }));
    const h = r.register(new Histogram({ name: 'h', help: 'h', labelNames: ['k'], buckets: [1] }));
    c.inc(['aaaaaaaaaa']); // 14 chars of label text
    c.inc(['aaaaaaaaaaa']); // 11 bytes: over the value limit
    h.observe(['bbbbbbbbbb'], 1); // 28
    h.observe(['cccccccccc'], 1); // 42 > 40: over the budget
    expect(reasons).toEqual(['c_total:label_limit', 'h:series_budget']);
    expect(r.budget.labelBytes).toBe(28);
    expect(renderText(r, false)).toContain('h_bucket{otel_metric_overflow="true",le="1"} 1\n');
  });

  it('should refuse to register a family that collides with another through a suffix', () => {
    const r = new Registry();
    r.register(new Histogram({ name: 'x', help: 'x', buckets: [1] }));
    expect(() => r.register(new Gauge({ name: 'x_count', help: 'x' }))).toThrow(/collides with x/);
    expect(r.collision('x_bucket', 'gauge')).toBe('x');
    expect(r.collision('x', 'counter')).toBe('x');
    expect(r.collision('y', 'gauge')).toBeUndefined();
  });
});

describe('Contract', () => {
  const c = new Contract('flask_http_request');
  it.each([
    ['up', 'gauge', 'reserved'],
    ['up_total', 'counter', 'reserved'],
    ['metrics_sidecar_whatever', 'gauge', 'reserved'],
    ['flask_http_request_duration_seconds_count', 'gauge', 'reserved'],
    ['flask_http_request_duration_seconds', 'histogram', 'reserved'],
    ['flask_http_request', 'summary', 'reserved'],
    ['flask_http_request_exceptions_created', 'gauge', 'reserved'],
    ['github_api_call_latency', 'counter', 'type_conflict'],
    ['github_api_call_latency_count', 'gauge', 'type_conflict'],
    ['graphql_requests_total', 'histogram', 'type_conflict'],
    ['graphql_requests', 'gauge', 'type_conflict'],
    ['github_api_call_latency', 'histogram', undefined],
    ['graphql_requests_total', 'counter', undefined],
    ['flask_http_request_duration', 'gauge', undefined],
    ['app_jobs_total', 'counter', undefined],
  ] as const)('%s as a %s: %s', (name, type, refusal) => {
    expect(c.refuse(name, type)).toBe(refusal);
  });
});

describe('merge parser limits', () => {
  it('should drop duplicate series inside one source and count them', () => {
    const r = parseSource('# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\na{x="2"} 3\n# TYPE b counter\nb_total 1\nb_total 2\n');
    expect(r.families.map((f) => [f.name, f.samples])).toEqual([
      ['a', ['a{x="1"} 1', 'a{x="2"} 3']],
      ['b_total', ['b_total 1']],
    ]);
    expect(r.dropped.duplicate_series).toBe(2);
  });

  it('should leave out families with too many labels or too long a value, and past the family limit', () => {
    const r = parseSource('a{x="1",y="2",z="3"} 1\nb{x="long value"} 1\nc{x="ok"} 1\nd 1\ne 1\n', { maxLabels: 2, maxLabelValueBytes: 5, maxFamilies: 4 });
    expect(r.families.map((f) => f.name)).toEqual(['c', 'd']);
    expect(r.dropped).toEqual({ duplicate_series: 0, label_limit: 2, family_limit: 1 });
  });

  it('should remember families past the limit without holding anything of theirs, and refuse a source naming ten times more', () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => `a${i} 1\n`).join('');
    const r = parseSource(lines(35), { maxLabels: 16, maxLabelValueBytes: 256, maxFamilies: 4 });
    expect(r.families.map((f) => f.name)).toEqual(['a0', 'a1', 'a2', 'a3']);
    expect(r.dropped.family_limit).toBe(31);
    // A 4 MB body of one-sample families (~500k names) is not a metrics endpoint: refused whole, early.
    expect(() => parseSource(lines(500_000), { maxLabels: 16, maxLabelValueBytes: 256, maxFamilies: 1000 })).toThrow(/more than 10000 metric names/);
  });

  it('should let the event loop through while parsing a large body', async () => {
    const body = Array.from({ length: 50_000 }, (_, i) => `g{i="${i}"} ${i}\n`).join('');
    let ticks = 0;
    let parsing = true;
    const spin = () => {
      if (!parsing) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const r = await parseExpositionAsync(body, undefined, 0);
    parsing = false;
    expect(r.families[0].samples).toHaveLength(50_000);
    expect(ticks).toBeGreaterThan(10);
  });

  it('should keep numeric le and quantile values in every spelling Prometheus accepts', () => {
    const r = parseSource(
      '# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="1e3"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n# TYPE s summary\ns{quantile="0.99"} 1\ns_sum 1\ns_count 1\n',
    );
    expect(r.families.map((f) => [f.name, f.samples.length])).toEqual([
      ['h', 5],
      ['s', 3],
    ]);
  });

  it.each([
    ['a label given twice', 'a{x="1",x="2"} 1\n'],
    ['an unknown escape', 'a{x="\\t"} 1\n'],
    ['an unterminated value', 'a{x="1} 1\n'],
    ['a bad timestamp', 'a 1 soon\n'],
    // Prometheus reads these as numbers anywhere in the family; promtool fails the scrape otherwise.
    ['a histogram sample whose le is not a number', '# TYPE h histogram\nh_sum{le="x"} 1\nh_bucket{le="+Inf"} 1\nh_count 1\n'],
    ['a histogram bucket without le', '# TYPE h histogram\nh_bucket{} 1\nh_sum 1\nh_count 1\n'],
    ['a summary quantile that is not a number', '# TYPE s summary\ns{quantile="p99"} 1\ns_sum 1\ns_count 1\n'],
  ])('should refuse %s', (_what, body) => {
    expect(() => parseSource(body)).toThrow();
  });
});

describe('MERGE_TARGETS collisions, duplicates and size (real targets over HTTP)', () => {
  let targets: http.Server;
  let targetPort: number;
  let upstream: Upstream;
  let sc: Running;
  const bodies: Record<string, string> = {
    '/suffixes': [
      '# TYPE flask_http_request_duration_seconds_count gauge',
      'flask_http_request_duration_seconds_count 1',
      '# TYPE flask_http_request_duration_seconds_sum gauge',
      'flask_http_request_duration_seconds_sum 1',
      '# TYPE up gauge',
      'up 1',
      '# TYPE metrics_sidecar_fake gauge',
      'metrics_sidecar_fake 1',
      '# TYPE github_api_call_latency gauge',
      'github_api_call_latency 1',
      '# TYPE shared histogram',
      'shared_bucket{le="+Inf"} 1',
      'shared_sum 1',
      'shared_count 1',
      '# TYPE dups gauge',
      'dups{a="1"} 1',
      'dups{a="1"} 2',
      'dups{a="2"} 3',
      '',
    ].join('\n'),
    '/other': [
      '# TYPE shared_count gauge',
      'shared_count 5',
      '# TYPE shared_total counter',
      'shared_total 5',
      '# TYPE dups gauge',
      'dups{a="2"} 9',
      'dups{a="3"} 4',
      '# TYPE fine gauge',
      'fine 7',
      '',
    ].join('\n'),
  };
  const url = (p: string) => `http://127.0.0.1:${targetPort}${p}`;
  /** Called when the /big target has handed its whole body to the kernel. */
  let bigSent: () => void = () => undefined;

  beforeAll(async () => {
    let big = '# TYPE big_gauge gauge\n';
    const parts: string[] = [];
    for (let i = 0; i < 60_000; i++) parts.push(`big_gauge{instance="host-${i}",path="/api/v1/items/${i}"} ${i}\n`);
    big += parts.join('');
    bodies['/big'] = big;
    targets = http.createServer((req, res) => res.end(bodies[req.url ?? ''] ?? '', () => (req.url === '/big' ? bigSent() : undefined)));
    await new Promise<void>((resolve) => targets.listen(0, '127.0.0.1', resolve));
    targetPort = (targets.address() as AddressInfo).port;
    upstream = await startUpstream((_req, res) => res.end('ok'));
  });
  afterAll(async () => {
    await sc?.stop();
    await upstream.close();
    await new Promise((r) => targets.close(r));
  });

  it('should drop suffix collisions in both directions, reserved names, wrong maintained types and duplicates, and count each', async () => {
    sc = await startSidecar({ LISTEN_PORT: '0', MERGE_TARGETS: [url('/suffixes'), url('/other')].join(',') });
    const text = (await request(sc.metricsPort, '/debug/metrics')).text;
    const p = parseExposition(text);
    expect(promtoolErrors(text)).toBe('');
    const dropped = (path: string, reason: string) => value(p, 'metrics_sidecar_merge_families_dropped_total', { target: url(path), reason });
    expect(dropped('/suffixes', 'name_collision')).toBe(4);
    expect(dropped('/suffixes', 'type_conflict')).toBe(1);
    expect(dropped('/suffixes', 'duplicate_series')).toBe(1);
    expect(dropped('/other', 'name_collision')).toBe(2);
    expect(dropped('/other', 'duplicate_series')).toBe(1);
    expect(find(p, 'up')).toEqual([]);
    expect(find(p, 'metrics_sidecar_fake')).toEqual([]);
    expect(p.types.get('shared')).toBe('histogram');
    expect(p.types.has('shared_count')).toBe(false);
    expect(find(p, 'dups').map((s) => [s.labels.a, s.value])).toEqual([
      ['1', 1],
      ['2', 3],
      ['3', 4],
    ]);
    expect(find(p, 'fine')[0]?.value).toBe(7);
    await sc.stop();
  });

  it('should parse a large target in slices: a proxied request is answered before the scrape', async () => {
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, MERGE_TARGETS: url('/big'), METRICS_MAX_SERIES_TOTAL: '100000' });
    const events: string[] = [];
    const sent = new Promise<void>((r) => (bigSent = r));
    const scrape = request(sc.metricsPort, '/debug/metrics').then((r) => {
      events.push('scrape');
      return r;
    });
    // The target has sent its 60,000 series: the sidecar is reading and parsing them now.
    await sent;
    const proxied = await request(sc.mainPort, '/while-merging');
    expect(proxied.status).toBe(200);
    events.push('proxied');
    const r = await scrape;
    expect(events).toEqual(['proxied', 'scrape']);
    expect(r.text.split('\n').filter((l) => l.startsWith('big_gauge{')).length).toBe(60_000);
    expect(promtoolErrors(r.text)).toBe('');
  });

  it('should leave a target out when its series do not fit in the total budget, and count it', async () => {
    await sc.stop();
    sc = await startSidecar({ LISTEN_PORT: '0', MERGE_TARGETS: [url('/other'), url('/big')].join(','), METRICS_MAX_SERIES_TOTAL: '1000' });
    const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
    expect(value(p, 'metrics_sidecar_merge_families_dropped_total', { target: url('/big'), reason: 'series_budget' })).toBe(1);
    expect(find(p, 'big_gauge')).toEqual([]);
    expect(find(p, 'fine')[0]?.value).toBe(7);
  });
});
