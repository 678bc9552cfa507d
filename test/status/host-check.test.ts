/**
 * The status page and status.json against DNS rebinding (issue 18, item 6). With no credential
 * method configured, they answer only a `Host` that names an IP literal, `localhost` (what
 * `kubectl port-forward` sends) or a name in STATUS_ALLOWED_HOSTS; any other gets 403 on the
 * metrics port and 404 on the main port, counted as `auth_failures_total{reason="host"}`. With
 * credentials configured the gate decides, as before. The metrics path answers any Host.
 */
import { request } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';
import { hostOf, statusHostAllowed } from '../../src/status/host-check';

const PAGES = [
  ['metrics', '/'],
  ['metrics', '/status.json'],
  ['main', '/debug/'],
  ['main', '/debug/status.json'],
] as const;

describe('status page Host check, gate open', () => {
  let sc: Running;
  const port = (l: 'main' | 'metrics') => (l === 'main' ? sc.mainPort : sc.metricsPort);

  beforeAll(async () => {
    sc = await startSidecar({ SERVE_PROMETHEUS_ENDPOINT: 'true', STATUS_ALLOWED_HOSTS: 'status.example.com' });
  });
  afterAll(() => sc.stop());

  it.each(['evil.example', 'evil.example:8491', 'status.example.com.evil.example', 'localhost.evil.example', '127.0.0.1.nip.io:8491', 'example.com:8491@evil'])(
    'should refuse Host %s (403 on the metrics port, 404 on the main port) and count it',
    async (host) => {
      const before = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      for (const [listener, path] of PAGES) {
        const r = await request(port(listener), path, { headers: { host } });
        expect([path, r.status]).toEqual([path, listener === 'main' ? 404 : 403]);
        expect(r.text).not.toContain('"schema"');
        expect(r.text).not.toContain('<html');
      }
      const after = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      for (const listener of ['main', 'metrics']) {
        const labels = { listener, reason: 'host' };
        expect(value(after, 'metrics_sidecar_auth_failures_total', labels) - value(before, 'metrics_sidecar_auth_failures_total', labels)).toBe(2);
      }
    },
  );

  it.each([
    ['localhost:8491', 'localhost.evil.example:8491'],
    ['localhost', 'evil.example'],
    ['LocalHost:8080', 'evil-localhost:8080'],
    ['127.0.0.1:8491', '127.0.0.1.nip.io:8491'],
    ['10.42.0.17:8491', '10.42.0.17.sslip.io:8491'],
    ['[::1]:8491', 'ip6-localhost:8491'],
    ['status.example.com', 'status.example.com.evil.example'],
    ['Status.Example.COM:8491', 'status-example.com:8491'],
  ])('should serve the page and status.json for Host %s, and refuse its look-alike %s', async (host, lookalike) => {
    for (const [listener, path] of PAGES) {
      expect([path, host, (await request(port(listener), path, { headers: { host } })).status]).toEqual([path, host, 200]);
      const refused = listener === 'main' ? 404 : 403;
      expect([path, lookalike, (await request(port(listener), path, { headers: { host: lookalike } })).status]).toEqual([path, lookalike, refused]);
    }
  });

  it('should refuse status.json to any Host but keep serving status.js and the metrics path to it (scrapers use Service names)', async () => {
    expect((await request(sc.metricsPort, '/status.json', { headers: { host: 'evil.example' } })).status).toBe(403);
    for (const [p, path] of [
      [sc.metricsPort, '/status.js'],
      [sc.metricsPort, '/debug/metrics'],
      [sc.mainPort, '/debug/metrics'],
      [sc.mainPort, '/debug/healthz'],
    ] as const) {
      expect([path, (await request(p, path, { headers: { host: 'evil.example' } })).status]).toEqual([path, 200]);
    }
  });

  it('should show the refusals on the page, by listener, with reason host', async () => {
    await request(sc.metricsPort, '/status.json', { headers: { host: 'rebind.example' } });
    const doc = JSON.parse((await request(sc.metricsPort, '/status.json', { headers: { host: 'localhost:8491' } })).text) as {
      access: { refusals: { listener: string; reason: string; total: number }[] };
    };
    expect(doc.access.refusals.find((r) => r.listener === 'metrics' && r.reason === 'host')?.total).toBeGreaterThanOrEqual(1);
  });
});

describe('status page Host check with an allow-list only (no credentials)', () => {
  let sc: Running;
  beforeAll(async () => {
    sc = await startSidecar({ METRICS_ALLOWED_CIDRS: '127.0.0.0/8' });
  });
  afterAll(() => sc.stop());

  it("should refuse a rebound Host even from an allowed address (the operator's own browser through a port-forward)", async () => {
    expect((await request(sc.metricsPort, '/status.json', { headers: { host: 'evil.example:8491' } })).status).toBe(403);
    expect((await request(sc.metricsPort, '/status.json', { headers: { host: 'localhost:8491' } })).status).toBe(200);
  });
});

describe('status page Host check with credentials configured', () => {
  const USER = 'prometheus';
  const PASSWORD = 'host-check-password-17';
  const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
  let sc: Running;
  beforeAll(async () => {
    sc = await startSidecar({ SERVE_PROMETHEUS_ENDPOINT: 'true', METRICS_BASIC_AUTH_USERNAME: USER, METRICS_BASIC_AUTH_PASSWORD: PASSWORD });
  });
  afterAll(() => sc.stop());

  it('should leave the decision to the gate: any Host with credentials gets the page, none without', async () => {
    for (const [listener, path] of PAGES) {
      const p = listener === 'main' ? sc.mainPort : sc.metricsPort;
      expect([path, (await request(p, path, { headers: { host: 'status.internal.example:8491', ...auth } })).status]).toEqual([path, 200]);
      expect([path, (await request(p, path, { headers: { host: 'status.internal.example:8491' } })).status]).toEqual([path, listener === 'main' ? 404 : 401]);
    }
  });
});

describe('Host parsing', () => {
  it.each([
    ['localhost:8491', { name: 'localhost', ip: false }],
    ['LOCALHOST.', { name: 'localhost', ip: false }],
    ['127.0.0.1', { name: '127.0.0.1', ip: true }],
    ['[::1]:8491', { name: '::1', ip: true }],
    ['[::ffff:127.0.0.1]', { name: '::ffff:127.0.0.1', ip: true }],
    ['Example.COM:80', { name: 'example.com', ip: false }],
  ])('%s → %j', (header, parsed) => {
    expect(hostOf(header)).toEqual(parsed);
  });

  it.each(['', ':8491', '::1', '[::1', '[example.com]:80', '[::1]x', 'localhost:84x1', 'localhost:8491:1', '127.0.0.1:123456'])(
    '%j is not a Host',
    (header) => {
      expect(hostOf(header)).toBeUndefined();
      expect(statusHostAllowed(header, new Set())).toBe(false);
    },
  );

  it('should allow any Host with *, and a request without Host (HTTP/1.0: not a browser)', () => {
    expect(statusHostAllowed('evil.example', new Set(['*']))).toBe(true);
    expect(statusHostAllowed(undefined, new Set())).toBe(true);
  });
});
