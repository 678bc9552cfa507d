/**
 * The reserved /debug/ tree over real sockets: every spelling is sent byte for byte to a running
 * sidecar in front of a real upstream, which records everything that reaches it.
 */
import { rawRequest, statusOf } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { normalizePath } from '../../src/formats/request-path';
import { canonicalize } from '../../src/proxy/target';
import { PUBLIC_TARGETS, RESERVED_SPELLINGS } from './reserved.test';

const get = (target: string, host = 'app.example') => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;

describe.each([
  ['off', 'false'],
  ['on', 'true'],
])('reserved /debug/ with SERVE_PROMETHEUS_ENDPOINT %s', (_name, serve) => {
  let upstream: Upstream;
  let sc: Running;

  beforeAll(async () => {
    upstream = await startUpstream();
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: serve });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.seen.length = 0;
  });

  it.each(RESERVED_SPELLINGS)('should never forward %s', async (target) => {
    // Host `localhost`, as through a port-forward: with the gate open the status page answers no other (test/status/host-check).
    const raw = await rawRequest(sc.mainPort, get(target, 'localhost:8080'));
    const status = statusOf(raw);
    expect(upstream.seen).toEqual([]);
    const normalized = normalizePath(target);
    const isMetrics = normalized === '/debug/metrics';
    // The status page lives beside the metrics (open gate here: served).
    const isStatus = ['/debug', '/debug/', '/debug/status.json', '/debug/status.js'].includes(normalized);
    // Targets the canonical rules refuse (dot segments, encoded slashes, backslashes, controls, `#`) are 400 now.
    const t = canonicalize(target);
    if (!t.ok) {
      expect(status).toBe(400);
    } else if (serve === 'true' && (isMetrics || isStatus) && status !== 400) {
      expect(status).toBe(200);
      if (isMetrics) expect(raw).toContain('# TYPE flask_http_request_total counter');
      else expect(raw).not.toContain('# TYPE');
    } else {
      // 404 from the sidecar, or 400 where Node's parser already refuses the bytes.
      expect([404, 400]).toContain(status);
      expect(raw).not.toContain('# TYPE');
    }
  });

  it.each(PUBLIC_TARGETS)('should forward %s to the application', async (target) => {
    const raw = await rawRequest(sc.mainPort, get(target));
    expect(statusOf(raw)).toBe(200);
    expect(upstream.seen.map((s) => s.url)).toEqual([target]);
  });

  it('should not forward a reserved WebSocket upgrade either', async () => {
    const raw = await rawRequest(
      sc.mainPort,
      'GET /%64ebug/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(statusOf(raw)).toBe(404);
    expect(upstream.seen).toEqual([]);
  });

  it('should not forward a reserved path hidden behind a method the sidecar does not serve', async () => {
    const raw = await rawRequest(sc.mainPort, 'POST /DEBUG/metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi');
    // Served, the metrics path is the sidecar's own (open here: no access method) and read with GET:
    // 405. Not served, /debug/ is hidden: 404. Never the app's either way.
    expect(statusOf(raw)).toBe(serve === 'true' ? 405 : 404);
    expect(upstream.seen).toEqual([]);
  });
});
