/**
 * A scrape of a large exposition must not stall the proxy: rendering yields to the event loop,
 * so a request forwarded meanwhile is answered long before the scrape is.
 */
import zlib from 'node:zlib';
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { Gauge } from '../../src/metrics/registry';

describe('scrape of 100k series', () => {
  let upstream: Upstream;
  let sc: Running;
  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => res.end('ok'));
    // The total series budget (METRICS_MAX_SERIES_TOTAL, 20,000 by default) is raised for this size.
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, METRICS_MAX_SERIES_TOTAL: '200000' });
    const g = sc.sidecar.metrics.registry.register(new Gauge({ name: 'big_family', help: 'Many series.', labelNames: ['id', 'shard'] }));
    for (let i = 0; i < 100_000; i++) g.set([`series-${i}`, String(i % 16)], i);
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it('should answer a proxied request while the scrape is still rendering', async () => {
    const events: string[] = [];
    const scrape = request(sc.metricsPort, '/debug/metrics').then((r) => {
      events.push('scrape');
      return r;
    });
    // Let the scrape start rendering, then send a request through the proxy.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const proxied = await request(sc.mainPort, '/while-scraping');
    events.push('proxied');
    const r = await scrape;
    expect(proxied.status).toBe(200);
    expect(r.text.split('\n').filter((l) => l.startsWith('big_family{')).length).toBe(100_000);
    expect(events).toEqual(['proxied', 'scrape']);
  });

  it('should stream a large exposition, gzipped when asked', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', {
      headers: { 'accept-encoding': 'gzip', accept: 'application/openmetrics-text; version=1.0.0' },
    });
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['transfer-encoding']).toBe('chunked');
    const text = zlib.gunzipSync(r.body).toString('utf8');
    expect(text.split('\n').filter((l) => l.startsWith('big_family{')).length).toBe(100_000);
    expect(text.endsWith('# EOF\n')).toBe(true);
  });
});
