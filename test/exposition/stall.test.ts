/**
 * A scrape of a large exposition must not stall the proxy: rendering is streamed with
 * backpressure and yields to the event loop, so a request forwarded meanwhile is answered while
 * the scrape is still being rendered. The order of events is asserted, never a duration.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { Gauge } from '../../src/metrics/registry';

describe('scrape of 100k series', () => {
  let upstream: Upstream;
  let sc: Running;
  /** What happened, in order: the renderer reading the first and last series, requests completing. */
  const events: string[] = [];
  /** A series whose value records when the renderer reads it (a real series object of the family). */
  const probe = (g: Gauge, id: string, event: string): void => {
    const s = g.child([id, '0'])!;
    Object.defineProperty(s, 'value', {
      get: () => {
        events.push(event);
        return 1;
      },
    });
  };
  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => res.end('ok'));
    // The total series budget (METRICS_MAX_SERIES_TOTAL, 20,000 by default) is raised for this size.
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, METRICS_MAX_SERIES_TOTAL: '200000' });
    const g = sc.sidecar.metrics.registry.register(new Gauge({ name: 'big_family', help: 'Many series.', labelNames: ['id', 'shard'] }));
    probe(g, 'first', 'render:first');
    for (let i = 0; i < 100_000; i++) g.set([`series-${i}`, String(i % 16)], i);
    probe(g, 'last', 'render:last');
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });
  beforeEach(() => {
    events.length = 0;
  });

  it('should answer a proxied request while the scrape is still rendering', async () => {
    // The scrape's client reads its first bytes, then stops reading until the proxied request is
    // answered: a renderer that respects backpressure cannot finish meanwhile (4 MB do not fit in
    // the socket buffers), and one that renders everything before sending has finished already.
    let resume!: () => void;
    const scrape = new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sc.metricsPort, path: '/debug/metrics', agent: false }, (res) => {
          const chunks: Buffer[] = [];
          let paused = false;
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            if (!paused) {
              paused = true;
              res.pause();
              events.push('scrape:first bytes');
              resume = () => res.resume();
            }
          });
          res.on('end', () => {
            events.push('scrape:end');
            resolve(Buffer.concat(chunks).toString('utf8'));
          });
          res.on('error', reject);
        })
        .on('error', reject);
    });
    while (!events.includes('scrape:first bytes')) await new Promise((r) => setImmediate(r));
    const proxied = await request(sc.mainPort, '/while-scraping');
    events.push('proxied');
    resume();
    const text = await scrape;
    expect(proxied.status).toBe(200);
    expect(text.split('\n').filter((l) => l.startsWith('big_family{')).length).toBe(100_002);
    expect(events).toEqual(['render:first', 'scrape:first bytes', 'proxied', 'render:last', 'scrape:end']);
  });

  it('should let the event loop turn while rendering, even for a client that reads at full speed', async () => {
    let turns = 0;
    let counting = true;
    const tick = (): void => {
      if (events.includes('render:first') && !events.includes('render:last')) turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const r = await request(sc.metricsPort, '/debug/metrics');
    counting = false;
    expect(r.status).toBe(200);
    expect(events).toEqual(['render:first', 'render:last']);
    // A synchronous render reads the first and the last series in one turn of the loop.
    expect(turns).toBeGreaterThan(1);
  });

  it('should stream a large exposition, gzipped when asked', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', {
      headers: { 'accept-encoding': 'gzip', accept: 'application/openmetrics-text; version=1.0.0' },
    });
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['transfer-encoding']).toBe('chunked');
    const text = zlib.gunzipSync(r.body).toString('utf8');
    expect(text.split('\n').filter((l) => l.startsWith('big_family{')).length).toBe(100_002);
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  it('should answer HEAD with the headers alone, rendering nothing', async () => {
    const r = await request(sc.metricsPort, '/debug/metrics', { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body.length).toBe(0);
    expect(events).not.toContain('render:last');
  });

  it('should stop rendering when the scraper goes away', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: sc.metricsPort, path: '/debug/metrics', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    });
    // The sidecar stays healthy and serves the next scrape in full.
    const r = await request(sc.metricsPort, '/debug/metrics');
    expect(r.text.split('\n').filter((l) => l.startsWith('big_family{')).length).toBe(100_002);
    expect(events.filter((e) => e === 'render:last')).toEqual(['render:last']);
  });
});
