/** The metric contract as Prometheus would see it: families, types, labels, formats, promtool. */
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { find, parseExposition, type Parsed } from '../helpers/exposition';
import { OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE } from '../../src/exposition/negotiate';

/** Prometheus's own Accept header (2.x scrape). */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

function labelNames(p: Parsed, name: string): string[][] {
  return [...new Set(find(p, name).map((s) => JSON.stringify(Object.keys(s.labels).sort())))].map((j) => JSON.parse(j) as string[]);
}

describe('metric contract', () => {
  let upstream: Upstream;
  let sc: Running;
  let text: string;
  let parsed: Parsed;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.statusCode = req.url === '/boom' ? 500 : 200;
      res.end('x');
    });
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true', APP_NAME: 'shop' });
    await request(sc.mainPort, '/orders/42');
    await request(sc.mainPort, '/boom', { method: 'POST', body: 'x' });
    text = (await request(sc.metricsPort, '/debug/metrics')).text;
    parsed = parseExposition(text);
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it.each([
    ['flask_http_request_duration_seconds', 'histogram', ['method', 'path', 'status']],
    ['flask_http_request_total', 'counter', ['method', 'status']],
    ['flask_http_request_exceptions_total', 'counter', ['method', 'status']],
    ['metrics_sidecar_info', 'gauge', ['app_name', 'role', 'version']],
  ])('should expose %s as a %s labelled %j', (name, type, labels) => {
    expect(parsed.types.get(name)).toBe(type);
    const sampleName = type === 'histogram' ? `${name}_count` : name;
    expect(labelNames(parsed, sampleName)).toEqual([[...labels].sort()]);
    if (type === 'histogram') {
      expect(labelNames(parsed, `${name}_bucket`)).toEqual([[...labels, 'le'].sort()]);
      expect(find(parsed, `${name}_bucket`, { le: '+Inf' }).length).toBeGreaterThan(0);
    }
  });

  it('should use prometheus-flask-exporter buckets, in seconds', () => {
    const les = find(parsed, 'flask_http_request_duration_seconds_bucket', { path: '/orders/:id' }).map((s) => s.labels.le);
    expect(les).toEqual(['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '+Inf']);
  });

  it('should count an application 500 as an exception', () => {
    expect(find(parsed, 'flask_http_request_exceptions_total', { method: 'POST', status: '500' })[0]?.value).toBe(1);
    expect(find(parsed, 'flask_http_request_exceptions_total', { status: '200' })).toEqual([]);
  });

  it('should identify the sidecar in metrics_sidecar_info', () => {
    expect(find(parsed, 'metrics_sidecar_info')[0]).toMatchObject({ labels: { app_name: 'shop', role: 'web' }, value: 1 });
  });

  it("should prefix its own process metrics so they never collide with an app's", () => {
    for (const n of ['cpu_seconds_total', 'resident_memory_bytes', 'heap_bytes', 'start_time_seconds', 'open_fds']) {
      expect(find(parsed, `metrics_sidecar_process_${n}`)[0]?.value).toBeGreaterThan(0);
    }
    expect([...parsed.types.keys()].filter((n) => n.startsWith('process_') || n.startsWith('nodejs_'))).toEqual([]);
  });

  it("should join prom-client's runtime metrics (event-loop lag, heap spaces, GC) in both formats", async () => {
    expect(parsed.types.get('metrics_sidecar_nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(find(parsed, 'metrics_sidecar_nodejs_heap_space_size_used_bytes').length).toBeGreaterThan(3);
    expect(parsed.types.has('metrics_sidecar_nodejs_active_handles_total')).toBe(false);
    const om = (await request(sc.metricsPort, '/debug/metrics', { headers: { accept: PROMETHEUS_ACCEPT } })).text;
    expect(om).toContain('# TYPE metrics_sidecar_process_cpu_seconds counter\nmetrics_sidecar_process_cpu_seconds_total ');
    expect(om.indexOf('metrics_sidecar_process_cpu_seconds_total')).toBeLessThan(om.indexOf('# EOF'));
    expect(om.match(/# EOF/g)).toHaveLength(1);
  });

  it('should pass promtool check metrics', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('should serve the same exposition on the main port and the metrics port', async () => {
    const main = parseExposition((await request(sc.mainPort, '/debug/metrics')).text);
    expect([...main.types.entries()]).toEqual([...parsed.types.entries()]);
  });

  it('should serve text 0.0.4 by default', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics');
    expect(r.headers['content-type']).toBe(TEXT_CONTENT_TYPE);
    expect(r.text).not.toContain('# EOF');
  });

  it("should serve OpenMetrics 1.0.0 to Prometheus's Accept header", async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', { headers: { accept: PROMETHEUS_ACCEPT } });
    expect(r.headers['content-type']).toBe(OPENMETRICS_CONTENT_TYPE);
    expect(r.text.endsWith('# EOF\n')).toBe(true);
    expect(r.text).toContain('# TYPE flask_http_request counter\n');
    expect(r.text).toContain('# TYPE flask_http_request_exceptions counter\n');
    expect(r.text).toMatch(/^flask_http_request_total\{method="GET",status="200"\} 1$/m);
    expect(r.text).toMatch(/le="1\.0"/);
    expect(r.headers.vary).toMatch(/accept/i);
  });

  it('should prefer text when the client weighs it higher', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', { headers: { accept: 'application/openmetrics-text;q=0.2,text/plain;q=0.9' } });
    expect(r.headers['content-type']).toBe(TEXT_CONTENT_TYPE);
  });

  it('should gzip when Accept-Encoding allows it', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', { headers: { 'accept-encoding': 'gzip, deflate' } });
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(r.body).toString('utf8')).toContain('# TYPE flask_http_request_total counter');
  });

  it('should not gzip when gzip is refused', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', { headers: { 'accept-encoding': 'gzip;q=0, identity' } });
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.text).toContain('# TYPE flask_http_request_total counter');
  });
});

describe('metric options', () => {
  it('should name the RED families after HTTP_METRICS_PREFIX', async () => {
    const upstream = await startUpstream();
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, HTTP_METRICS_PREFIX: 'shop_http_request' });
    try {
      await request(sc.mainPort, '/');
      const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      expect(p.types.get('shop_http_request_duration_seconds')).toBe('histogram');
      expect(p.types.get('shop_http_request_total')).toBe('counter');
      expect(p.types.has('flask_http_request_total')).toBe(false);
    } finally {
      await sc.stop();
      await upstream.close();
    }
  });

  it('should cap series per family and count what it drops', async () => {
    const upstream = await startUpstream();
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, METRICS_MAX_SERIES_PER_FAMILY: '3', METRICS_EXCLUDE_PATHS: '/healthz,/internal/*' });
    try {
      for (const p of ['/a', '/b', '/c', '/d', '/e', '/healthz', '/internal/x']) await request(sc.mainPort, p);
      const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      expect(find(p, 'flask_http_request_duration_seconds_count').map((s) => s.labels.path ?? JSON.stringify(s.labels))).toEqual([
        '/a',
        '/b',
        '/c',
        '{"otel_metric_overflow":"true"}',
      ]);
      // The refused label sets' requests are in the overflow series: the family's total stays right.
      expect(find(p, 'flask_http_request_duration_seconds_count', { otel_metric_overflow: 'true' })[0]?.value).toBe(2);
      expect(find(p, 'metrics_sidecar_series_dropped_total', { family: 'flask_http_request_duration_seconds', reason: 'family_cap' })[0]?.value).toBe(2);
      // Excluded paths are forwarded but not recorded.
      expect(upstream.seen.map((s) => s.url)).toContain('/internal/x');
      expect(find(p, 'flask_http_request_total')[0]?.value).toBe(5);
    } finally {
      await sc.stop();
      await upstream.close();
    }
  });
});
