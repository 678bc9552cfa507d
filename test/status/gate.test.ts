/**
 * The status page sits behind the same access gate as the metrics: on the main port a refused
 * client gets 404 (the /debug/ tree stays hidden), on the metrics port 401 with a challenge (or
 * 403 for the allow-list). Only addresses the CIDR rule refused are ever named on the page.
 */
import { startSidecar, type Running } from '../helpers/sidecar';
import { request } from '../helpers/net';

const USER = 'prometheus';
const PASSWORD = 'status-gate-password-91';
const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
const wrong = { authorization: `Basic ${Buffer.from(`${USER}:nope`).toString('base64')}` };

describe('status page behind the access gate', () => {
  let sc: Running;
  beforeAll(async () => {
    sc = await startSidecar({ SERVE_PROMETHEUS_ENDPOINT: 'true', METRICS_BASIC_AUTH_USERNAME: USER, METRICS_BASIC_AUTH_PASSWORD: PASSWORD });
  });
  afterAll(() => sc.stop());

  it.each(['/debug/', '/debug', '/debug/status.json', '/DEBUG/%73tatus.json', '/debug//status.json'])(
    'should answer 404 on the main port for %s without credentials',
    async (p) => {
      const r = await request(sc.mainPort, p);
      expect(r.status).toBe(404);
      expect(r.text).toBe('not found\n');
      expect(r.headers['www-authenticate']).toBeUndefined();
    },
  );

  it.each(['/debug/', '/debug/status.json'])('should answer 404 on the main port for %s with wrong credentials', async (p) => {
    expect((await request(sc.mainPort, p, { headers: wrong })).status).toBe(404);
  });

  it.each(['/', '/status.json'])('should answer 401 with a challenge on the metrics port for %s without credentials', async (p) => {
    const r = await request(sc.metricsPort, p);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('Basic');
    expect(r.text).toBe('unauthorized\n');
  });

  it('should serve the page and status.json on both ports with credentials', async () => {
    for (const [port, page, json, script] of [
      [sc.mainPort, '/debug/', '/debug/status.json', '/debug/status.js'],
      [sc.metricsPort, '/', '/status.json', '/status.js'],
    ] as const) {
      const html = await request(port, page, { headers: auth });
      expect(html.status).toBe(200);
      expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(html.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'; style-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(html.headers['x-content-type-options']).toBe('nosniff');
      expect(html.text).toContain(`<script src="${script}" defer></script>`);
      expect(html.text).toContain(`data-json="${json}"`);
      expect(html.text).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
      expect(html.text).not.toMatch(/\sstyle=|\son[a-z]+=/i); // no inline style attribute or handler
      expect(html.text).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/); // nothing fetched from elsewhere
      const j = await request(port, json, { headers: auth });
      expect(j.status).toBe(200);
      expect(JSON.parse(j.text).schema).toBe(1);
    }
  });

  it('should serve the page at /debug too (no trailing slash), its links being absolute', async () => {
    const r = await request(sc.mainPort, '/debug', { headers: auth });
    expect(r.status).toBe(200);
    expect(r.text).toContain('data-json="/debug/status.json"');
  });

  it('should serve status.js (no data in it) without credentials, cacheable by ETag', async () => {
    const r = await request(sc.metricsPort, '/status.js');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.text).toContain('function createView');
    const again = await request(sc.metricsPort, '/status.js', { headers: { 'if-none-match': String(r.headers.etag) } });
    expect(again.status).toBe(304);
  });

  it('should count the refusals by listener and reason on the page', async () => {
    const doc = JSON.parse((await request(sc.metricsPort, '/status.json', { headers: auth })).text);
    const by = (listener: string, reason: string) =>
      doc.access.refusals.find((r: { listener: string; reason: string }) => r.listener === listener && r.reason === reason);
    expect(by('main', 'missing').total).toBeGreaterThanOrEqual(5);
    expect(by('main', 'bad_credentials').total).toBeGreaterThanOrEqual(2);
    expect(by('metrics', 'missing').total).toBeGreaterThanOrEqual(2);
    expect(doc.access.cidr_refused).toEqual([]); // no allow-list: no address is ever named
    expect(JSON.stringify(doc.access)).not.toContain('127.0.0.1');
  });
});

describe('status page on the main port without SERVE_PROMETHEUS_ENDPOINT', () => {
  it('should not exist there (404 even with credentials), as the metrics do not', async () => {
    const sc = await startSidecar({ METRICS_BASIC_AUTH_USERNAME: USER, METRICS_BASIC_AUTH_PASSWORD: PASSWORD });
    try {
      for (const p of ['/debug/', '/debug/status.json', '/debug/status.js']) expect((await request(sc.mainPort, p, { headers: auth })).status).toBe(404);
      expect((await request(sc.metricsPort, '/', { headers: auth })).status).toBe(200);
    } finally {
      await sc.stop();
    }
  });
});

describe('addresses refused by the CIDR allow-list', () => {
  it('should name them, and only them, on the page', async () => {
    const sc = await startSidecar({
      METRICS_ALLOWED_CIDRS: '10.0.0.0/8',
      TRUSTED_PROXIES: '127.0.0.1/32',
      METRICS_BASIC_AUTH_USERNAME: USER,
      METRICS_BASIC_AUTH_PASSWORD: PASSWORD,
    });
    try {
      const from = (ip: string, extra: Record<string, string> = {}) => ({ headers: { 'x-forwarded-for': ip, ...extra } });
      expect((await request(sc.metricsPort, '/debug/metrics', from('192.0.2.7'))).status).toBe(403);
      expect((await request(sc.metricsPort, '/status.json', from('192.0.2.7'))).status).toBe(403);
      expect((await request(sc.metricsPort, '/debug/metrics', from('10.9.9.9'))).status).toBe(401); // inside the list, no credentials
      const r = await request(sc.metricsPort, '/status.json', from('10.1.2.3', auth));
      expect(r.status).toBe(200);
      const doc = JSON.parse(r.text);
      expect(doc.access.methods).toEqual(['cidr', 'basic']);
      expect(doc.access.cidr_refused).toEqual([{ address: '192.0.2.7', listener: 'metrics', count: 2, last_at: expect.any(String) }]);
      expect(r.text).not.toContain('10.9.9.9');
      expect(doc.access.refusals).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ listener: 'metrics', reason: 'cidr', total: 2 }),
          expect.objectContaining({ listener: 'metrics', reason: 'missing', total: 1 }),
        ]),
      );
    } finally {
      await sc.stop();
    }
  });
});
