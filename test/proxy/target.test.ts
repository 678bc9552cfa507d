/**
 * The canonical request target (issue 9, finding 2): hand-picked rules, then the spellings that
 * reached an application's `@app.route('/debug/<path:p>')` before, over real sockets.
 */
import { canonicalize } from '../../src/proxy/target';
import { rawRequest, request, statusOf } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';

describe('canonicalize', () => {
  it.each([
    ['/', '/'],
    ['/users/42?x=1', '/users/42?x=1'],
    ['//users///42//', '/users/42/'],
    ['/%7euser/%2Dx%5f%2E', '/~user/-x_.'],
    ['/%41%62c', '/Abc'],
    ['/a%2fb?q=%2F', null], // encoded slash in the path: refused (see below); in the query: untouched
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a%20b', '/a%20b'],
    ['/Users/ME', '/Users/ME'],
    ['http://app.example/a/b?c', '/a/b?c'],
    ['HTTPS://app.example:8443', '/'],
    ['http://app.example?x=1', '/?x=1'],
    ['/a?b=/../debug&c=%zz', '/a?b=/../debug&c=%zz'],
    ['/file.tar.gz', '/file.tar.gz'],
    ['/a.../b', '/a.../b'],
    ['/.well-known/x', '/.well-known/x'],
  ])('should send %s as %s', (raw, want) => {
    const t = canonicalize(raw);
    if (want === null) expect(t.ok).toBe(false);
    else expect(t).toEqual({ ok: true, path: want.split('?')[0], target: want, reserved: false });
  });

  it.each([
    ['*', 'asterisk'],
    ['/a#b', 'fragment'],
    ['/a?b#c', 'fragment'],
    ['ftp://h/x', 'not_origin_form'],
    ['a/b', 'not_origin_form'],
    ['/a%2', 'bad_escape'],
    ['/a%zz', 'bad_escape'],
    ['/a%', 'bad_escape'],
    ['/a%2fb', 'encoded_slash'],
    ['/a%5Cb', 'encoded_slash'],
    ['/a\\b', 'backslash'],
    ['/a%00', 'control'],
    ['/a%0d%0a', 'control'],
    ['/a%7f', 'control'],
    ['/a%c2%85', 'control'],
    ['/a\u0001', 'control'],
    ['/a b', 'control'],
    ['/a?b c', 'control'],
    ['/ａ', 'non_ascii'],
    ['/a%ff', 'invalid_utf8'],
    ['/a%c0%ae', 'invalid_utf8'],
    ['/a%e2%82', 'invalid_utf8'],
    ['/a%25ff', 'invalid_utf8'],
    ['/.', 'dot_segment'],
    ['/a/./b', 'dot_segment'],
    ['/a/../b', 'dot_segment'],
    ['/a/%2e%2e/b', 'dot_segment'],
    ['/a/.%2E', 'dot_segment'],
    ['/a/..;x/b', 'dot_segment'],
    ['/a/x;..', 'dot_segment'],
    ['/a/%252e%252e/b', 'dot_segment'],
    ['/a/%25252e%25252e', 'dot_segment'],
    ['/a/%ef%bc%8e%ef%bc%8e/b', 'dot_segment'],
    ['/a/%e2%80%a5', 'dot_segment'],
    ['/a/...', 'dot_segment'],
    ['/a/%252F..%252F', 'dot_segment'],
    ['/a/%2525252525', 'deep_encoding'],
  ])('should refuse %s (%s)', (raw, reason) => {
    expect(canonicalize(raw)).toEqual({ ok: false, status: 400, reason });
  });

  it('should answer 414 past 8 KiB', () => {
    expect(canonicalize(`/${'a'.repeat(9000)}`)).toEqual({ ok: false, status: 414, reason: 'too_long' });
  });

  it.each([
    '/debug',
    '/debug/',
    '/DEBUG/metrics',
    '/%64ebug/x',
    '/debug;x/y',
    '/debug./y',
    '/%EF%BD%84%EF%BD%85%EF%BD%82%EF%BD%95%EF%BD%87/x',
    '//debug',
    'http://h/Debug/x',
    '/%2564ebug',
  ])('should reserve %s', (raw) => {
    const t = canonicalize(raw);
    expect(t.ok && t.reserved).toBe(true);
  });
});

/** Issue 9, finding 2: each of these was served by the app's own /debug/ route on the old main. */
export const DOT_SEGMENT_ESCAPES = [
  '/debug/metrics/../..',
  '/debug/metrics/../../',
  '/debug/..',
  '/debug/../',
  '/debug/.',
  '/debug/%2e%2e',
  '/debug/%2E%2E/',
  '/debug/.%2e',
  '/debug/%2e.',
  '/debug/..%2f',
  '/debug/..%2fx',
  '/debug/..;/',
  '/debug/..;x/',
  '/debug/%252e%252e/',
  '/debug/%ef%bc%8e%ef%bc%8e/',
  '//debug//..//',
  '/DEBUG/..',
  '/debug/x/../..',
  '/debug/..%5c',
  'http://other/debug/..',
  'http://other/debug/%2e%2e/',
  'https://other//debug/../',
];

describe('dot segments over the wire (finding 2)', () => {
  let upstream: Upstream;
  let sc: Running;

  beforeAll(async () => {
    upstream = await startUpstream();
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.seen.length = 0;
  });

  it('should list at least the 18 spellings of the finding', () => {
    expect(DOT_SEGMENT_ESCAPES.length).toBeGreaterThanOrEqual(18);
  });

  it.each(DOT_SEGMENT_ESCAPES)('should answer %s with 400 and forward nothing', async (target) => {
    const raw = await rawRequest(sc.mainPort, `GET ${target} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n`);
    expect(statusOf(raw)).toBe(400);
    expect(upstream.seen).toEqual([]);
  });

  it.each(['/debug/..', '/debug/%2e%2e', '/x/%2e%2e/debug/', '/debug/%2fx'])('should refuse a WebSocket upgrade to %s with 400', async (target) => {
    const raw = await rawRequest(
      sc.mainPort,
      `GET ${target} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(statusOf(raw)).toBe(400);
    expect(upstream.seen).toEqual([]);
  });

  it('should send the application exactly the canonical target', async () => {
    const raw = await rawRequest(sc.mainPort, 'GET //users///42/%7euser%2Dx/caf%c3%a9?q=%2F&r=/../debug HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusOf(raw)).toBe(200);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/users/42/~user-x/caf%C3%A9?q=%2F&r=/../debug']);
  });

  it('should serve the metrics path reached through a canonical spelling, and route the access gate on it', async () => {
    const r = await request(sc.mainPort, '//debug///%6detrics');
    expect(r.status).toBe(200);
    expect(r.text).toContain('# TYPE flask_http_request_total counter');
    expect(upstream.seen).toEqual([]);
  });

  it('should record refusals with status 400 under /:unmatched, never as exceptions', async () => {
    const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/:unmatched', status: '400' })).toBeGreaterThanOrEqual(DOT_SEGMENT_ESCAPES.length);
    expect(value(p, 'flask_http_request_exceptions_total')).toBe(0);
    expect(value(p, 'metrics_sidecar_client_errors_total', { reason: 'dot_segment' })).toBeGreaterThanOrEqual(10);
    expect(p.samples.filter((s) => s.labels.path?.includes('..'))).toEqual([]);
  });

  it('should answer 400 on the metrics port too', async () => {
    const raw = await rawRequest(sc.metricsPort, 'GET /debug/metrics/%2e%2e/metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusOf(raw)).toBe(400);
  });
});
