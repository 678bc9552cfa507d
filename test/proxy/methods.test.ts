/**
 * Methods (issue 18, item 5): TRACE is answered 405 by the sidecar (it would echo the client's
 * cookies back: cross-site tracing) unless UPSTREAM_ALLOWED_METHODS lists it; CONNECT always is.
 * The `method` label of the RED families takes OpenTelemetry's known methods and folds every
 * other into `_OTHER`, so one client cannot fill the families with methods; the app still
 * receives the real method.
 */
import http from 'node:http';
import { rawRequest, request, statusOf } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { find, parseExposition, value } from '../helpers/exposition';

const KNOWN = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY'];
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

async function scrape(sc: Running) {
  return parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
}

describe('methods', () => {
  let upstream: Upstream;
  let sc: Running;
  let tracing: Running;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => res.end(`${req.method} ok\n`));
    sc = await startSidecar({ UPSTREAM_URL: upstream.url });
    tracing = await startSidecar({ UPSTREAM_URL: upstream.url, UPSTREAM_ALLOWED_METHODS: 'TRACE' });
  });
  afterAll(async () => {
    await sc.stop();
    await tracing.stop();
    await upstream.close();
  });

  it('should answer TRACE 405 with Allow, without asking the app, and count it as a client error', async () => {
    const before = upstream.seen.length;
    const r = await request(sc.mainPort, '/account', { method: 'TRACE', headers: { cookie: 'session=s3cret' } });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe(ALLOW);
    expect(r.text).toBe('method not allowed\n');
    // As a WebSocket handshake too (the upgrade path).
    const ws = await rawRequest(
      sc.mainPort,
      'TRACE /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(statusOf(ws)).toBe(405);
    expect(ws).toContain(`allow: ${ALLOW}\r\n`);
    expect(upstream.seen.length).toBe(before);
    const p = await scrape(sc);
    expect(value(p, 'metrics_sidecar_client_errors_total', { reason: 'method_not_allowed' })).toBe(2);
    expect(value(p, 'flask_http_request_total', { method: 'TRACE', status: '405' })).toBe(2);
    expect(value(p, 'flask_http_request_exceptions_total', { method: 'TRACE', status: '405' })).toBe(0);
  });

  it('should forward TRACE only where UPSTREAM_ALLOWED_METHODS lists it', async () => {
    expect((await request(sc.mainPort, '/account', { method: 'TRACE' })).status).toBe(405);
    const before = upstream.seen.length;
    const r = await request(tracing.mainPort, '/account', { method: 'TRACE' });
    expect(r.status).toBe(200);
    expect(upstream.seen.slice(before).map((s) => s.method)).toEqual(['TRACE']);
  });

  it('should answer CONNECT 405, its Allow naming TRACE where TRACE is allowed', async () => {
    for (const [s, allow] of [
      [sc, ALLOW],
      [tracing, `${ALLOW}, TRACE`],
    ] as const) {
      const raw = await rawRequest(s.mainPort, 'CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n');
      expect(statusOf(raw)).toBe(405);
      expect(raw).toContain(`allow: ${allow}\r\n`);
    }
  });

  it('should give 100 methods that are not known at most one more method label, _OTHER, and the app the real ones', async () => {
    const labels = async (): Promise<Set<string>> => new Set(find(await scrape(sc), 'flask_http_request_total').map((s) => s.labels.method));
    const before = await labels();
    // Every method Node's parser accepts that OpenTelemetry does not know (PROPFIND, MKCOL, ...),
    // then valid tokens (RFC 9110 tchar) that no server knows, up to 100.
    const parsed = http.METHODS.filter((m) => !KNOWN.includes(m));
    const TCHAR = "!#$%&'*+-.^_`|~";
    const invented = Array.from({ length: 100 - parsed.length }, (_, i) => `X${i}${TCHAR[i % TCHAR.length]}INVENTED`);
    const seenBefore = upstream.seen.length;
    const statuses = new Map<string, number>();
    for (const [i, m] of [...parsed, ...invented].entries()) {
      statuses.set(m, statusOf(await rawRequest(sc.mainPort, `${m} /things/${i} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`)));
    }
    const after = await labels();
    const added = [...after].filter((m) => !before.has(m));
    expect(added.length).toBeLessThanOrEqual(1);
    expect(added.filter((m) => m !== '_OTHER')).toEqual([]);
    for (const m of after) expect([...KNOWN, '_OTHER']).toContain(m);
    // The app received each method Node's parser let through, as sent; the rest were 400 before any request existed.
    expect(upstream.seen.slice(seenBefore).map((s) => s.method)).toEqual(parsed);
    for (const m of parsed) expect(statuses.get(m)).toBe(200);
    for (const m of invented) expect(statuses.get(m)).toBe(400);
    const p = await scrape(sc);
    expect(value(p, 'flask_http_request_total', { method: '_OTHER', status: '200' })).toBe(parsed.length);
  });
});
