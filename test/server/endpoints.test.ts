/** Which listener answers what: the main port's /debug/ tree and the dedicated metrics port. */
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar } from '../helpers/sidecar';

describe('endpoints', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });

  it('should hide /debug/metrics on the main port when SERVE_PROMETHEUS_ENDPOINT is off', async () => {
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const r = await request(sc.mainPort, '/debug/metrics');
      expect(r.status).toBe(404);
      expect(r.text).not.toContain('# TYPE');
      // ...while the metrics port serves it.
      const m = await request(sc.metricsPort, '/debug/metrics');
      expect(m.status).toBe(200);
      expect(m.text).toContain('# TYPE metrics_sidecar_info gauge');
    } finally {
      await sc.stop();
    }
  });

  it('should serve /debug/metrics on the main port when SERVE_PROMETHEUS_ENDPOINT is on', async () => {
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true' });
    try {
      const r = await request(sc.mainPort, '/debug/metrics');
      expect(r.status).toBe(200);
      expect(r.text).toContain('# TYPE flask_http_request_total counter');
      expect((await request(sc.mainPort, '/debug/other')).status).toBe(404);
    } finally {
      await sc.stop();
    }
  });

  it('should serve a custom METRICS_PATH on both listeners', async () => {
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true', METRICS_PATH: '/debug/prom' });
    try {
      expect((await request(sc.mainPort, '/debug/prom')).status).toBe(200);
      expect((await request(sc.metricsPort, '/debug/prom')).status).toBe(200);
      expect((await request(sc.metricsPort, '/debug/metrics')).status).toBe(404);
    } finally {
      await sc.stop();
    }
  });

  it('should answer health and readiness on both listeners, outside the app', async () => {
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url });
    try {
      upstream.seen.length = 0;
      for (const [port, prefix] of [
        [sc.metricsPort, ''],
        [sc.mainPort, '/debug'],
      ] as const) {
        expect((await request(port, `${prefix}/healthz`)).status).toBe(200);
        expect((await request(port, `${prefix}/readyz`)).status).toBe(200);
      }
      expect(upstream.seen).toEqual([]);
    } finally {
      await sc.stop();
    }
  });

  it('should answer 404 for anything else on the metrics port, and 405 for other methods on its paths', async () => {
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url });
    try {
      expect((await request(sc.metricsPort, '/nothing-here')).status).toBe(404);
      expect((await request(sc.metricsPort, '/')).status).toBe(200); // the status page
      expect((await request(sc.metricsPort, '/users/1')).status).toBe(404);
      const post = await request(sc.metricsPort, '/debug/metrics', { method: 'POST', body: 'x' });
      expect(post.status).toBe(405);
      expect(post.text).toBe('method not allowed\n');
      expect(post.headers.allow).toBe('HEAD, GET');
      expect(upstream.seen.filter((s) => s.url === '/users/1')).toEqual([]);
    } finally {
      await sc.stop();
    }
  });

  it('should count forwarded requests in flight, not the scrape reading the gauge', async () => {
    // The app holds the request until the test has read the gauge.
    let arrived!: (answer: () => void) => void;
    const held = new Promise<() => void>((r) => (arrived = r));
    const slow = await startUpstream((_req, res) => arrived(() => res.end('late')));
    const sc = await startSidecar({ UPSTREAM_URL: slow.url });
    try {
      const gauge = async () => /^metrics_sidecar_inflight_requests (\S+)$/m.exec((await request(sc.metricsPort, '/debug/metrics')).text)?.[1];
      expect(await gauge()).toBe('0');
      const pending = request(sc.mainPort, '/slow');
      const answer = await held;
      expect(await gauge()).toBe('1');
      answer();
      await pending;
      expect(await gauge()).toBe('0');
    } finally {
      await sc.stop();
      await slow.close();
    }
  });

  it('should run as a worker with only the metrics port (LISTEN_PORT=0)', async () => {
    const sc = await startSidecar({ LISTEN_PORT: '0' });
    try {
      expect(sc.mainPort).toBe(0);
      const r = await request(sc.metricsPort, '/debug/metrics');
      expect(r.status).toBe(200);
      expect(r.text).toMatch(/metrics_sidecar_info\{[^}]*role="worker"[^}]*\} 1/);
    } finally {
      await sc.stop();
    }
  });
});
