/**
 * A failure inside a metrics endpoint is a 500 to the client and an `error` line in the log
 * (Koa's app is `silent`; without its error listener the 500 went unlogged), with the cause chain
 * and without the request's credentials. ACCESS_LOG=true writes one line per request.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { createSidecarMetrics } from '../../src/metrics/sidecar';
import { Lifecycle } from '../../src/server/lifecycle';
import { AccessGate } from '../../src/access/gate';
import { createEndpointsApp } from '../../src/server/endpoints-app';
import type { Merger } from '../../src/ingest/merge/merger';
import { request } from '../helpers/net';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

describe('errors on the sidecar endpoints', () => {
  it('should log a failing metrics endpoint as an error with its cause, and answer 500', async () => {
    const config = loadConfig({ LISTEN_PORT: '0', STATSD_PORT: '0' });
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', (l) => lines.push(JSON.parse(l)));
    const metrics = createSidecarMetrics(config);
    const lifecycle = new Lifecycle(logger);
    const gate = new AccessGate(config, logger, metrics.registry);
    const failing = {
      collect: async () => {
        throw new Error('merge exploded', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
      },
    } as unknown as Merger;
    const app = createEndpointsApp({ listener: 'metrics', config, metrics, state: lifecycle, gate, merger: failing, logger });
    const server = http.createServer(app.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await request(port, '/debug/metrics', { headers: { authorization: 'Bearer never-logged-token' } });
      expect(r.status).toBe(500);
      expect(r.text).not.toContain('merge exploded');
      const entry = lines.find((l) => l.msg === 'endpoint failed');
      expect(entry).toMatchObject({
        level: 'error',
        listener: 'metrics',
        path: '/debug/metrics',
        err: { message: 'merge exploded', cause: { code: 'ECONNRESET', message: 'socket hang up' } },
      });
      expect(JSON.stringify(lines)).not.toContain('never-logged-token');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('ACCESS_LOG', () => {
  it('should write one line per request on both listeners, without the query string', async () => {
    const sc = await startSidecar({ ACCESS_LOG: 'true', SERVE_PROMETHEUS_ENDPOINT: 'true' });
    try {
      await request(sc.mainPort, '/debug/metrics?api_key=query-secret');
      await request(sc.metricsPort, '/healthz');
      await request(sc.mainPort, '/not-forwarded');
      // A line is written when its response closes: all have once the sidecar has stopped.
      await sc.stop();
      const access = sc.logs.filter((l) => l.msg === 'request');
      expect(access.map((l) => [l.listener, l.method, l.path, l.status])).toEqual([
        ['main', 'GET', '/debug/metrics', 200],
        ['metrics', 'GET', '/healthz', 200],
        ['main', 'GET', '/not-forwarded', 404],
      ]);
      expect(typeof access[0].duration_ms).toBe('number');
      expect(JSON.stringify(sc.logs)).not.toContain('query-secret');
    } finally {
      await sc.stop();
    }
  });

  it('should log a proxied request with its bytes, and a token in the path as :id', async () => {
    const upstream = await startUpstream();
    const sc = await startSidecar({ ACCESS_LOG: 'true', UPSTREAM_URL: upstream.url });
    try {
      const r = await request(sc.mainPort, '/reset-password/xK-3nF_q8Rz0aY7Bv2LmWc?next=/home');
      expect(r.status).toBe(200);
      await sc.stop();
      const [entry] = sc.logs.filter((l) => l.msg === 'request');
      expect(entry).toMatchObject({ listener: 'main', method: 'GET', path: '/reset-password/:id', status: 200 });
      expect(entry.bytes).toBeGreaterThan(r.text.length);
      expect(JSON.stringify(sc.logs)).not.toContain('xK-3nF_q8Rz0aY7Bv2LmWc');
    } finally {
      await sc.stop();
      await upstream.close();
    }
  });

  it('should write nothing per request by default', async () => {
    const sc = await startSidecar({});
    try {
      await request(sc.metricsPort, '/healthz');
      await sc.stop();
      expect(sc.logs.filter((l) => l.msg === 'request')).toEqual([]);
    } finally {
      await sc.stop();
    }
  });
});
