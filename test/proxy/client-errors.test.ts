/**
 * Client errors are the client's (issue 9, finding 7): `*` targets, two Host headers, bad framing,
 * oversized targets and headers get 4xx from the sidecar, are never forwarded, are recorded with
 * their status but never in `flask_http_request_exceptions_total`, and log no warning.
 */
import net from 'node:net';
import { rawRequest, request, statusOf } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value, type Parsed } from '../helpers/exposition';
import { classifyClientError } from '../../src/server/main-listener';

const OPEN_WARNING = 'metrics endpoints are open to any client: no allow-list or credentials are configured';

describe('client errors', () => {
  let upstream: Upstream;
  let sc: Running;

  const scrape = async (): Promise<Parsed> => parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
  const warnings = (): unknown[] => sc.logs.filter((l) => (l.level === 'warn' || l.level === 'error') && l.msg !== OPEN_WARNING);

  beforeAll(async () => {
    upstream = await startUpstream();
    sc = await startSidecar({ UPSTREAM_URL: upstream.url });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.seen.length = 0;
  });

  it.each([
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 'OPTIONS', 'asterisk'],
    ['GET *', 'GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 'GET', 'asterisk'],
    ['two Host headers', 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n', 'GET', 'duplicate_host'],
    ['two Host headers, other case', 'GET /x HTTP/1.1\r\nhost: a\r\nHOST: a\r\nConnection: close\r\n\r\n', 'GET', 'duplicate_host'],
    ['a fragment', 'GET /x#y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 'GET', 'fragment'],
    ['a bad escape', 'POST /x%zz HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi', 'POST', 'bad_escape'],
  ])("should answer %s with 400, record it as the client's and forward nothing", async (_name, bytes, method, reason) => {
    const before = await scrape();
    const raw = await rawRequest(sc.mainPort, bytes);
    expect(statusOf(raw)).toBe(400);
    expect(upstream.seen).toEqual([]);
    const after = await scrape();
    expect(value(after, 'flask_http_request_total', { method, status: '400' })).toBe(value(before, 'flask_http_request_total', { method, status: '400' }) + 1);
    expect(value(after, 'flask_http_request_duration_seconds_count', { method, path: '/:unmatched', status: '400' })).toBe(
      value(before, 'flask_http_request_duration_seconds_count', { method, path: '/:unmatched', status: '400' }) + 1,
    );
    expect(value(after, 'metrics_sidecar_client_errors_total', { reason })).toBe(value(before, 'metrics_sidecar_client_errors_total', { reason }) + 1);
    expect(value(after, 'flask_http_request_exceptions_total')).toBe(0);
    expect(warnings()).toEqual([]);
  });

  it('should answer 414 for a target past 8 KiB', async () => {
    const raw = await rawRequest(sc.mainPort, `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(statusOf(raw)).toBe(414);
    expect(upstream.seen).toEqual([]);
    const p = await scrape();
    expect(value(p, 'flask_http_request_total', { status: '414' })).toBe(1);
    expect(value(p, 'metrics_sidecar_client_errors_total', { reason: 'too_long' })).toBe(1);
  });

  it.each([
    ['header overflow', `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431, 'header_overflow'],
    ['two Content-Length', 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400, 'unexpected_content_length'],
    ['a bad request line', 'GET /x HTTP/9.9x\r\nHost: a\r\n\r\n', 400, undefined],
    ['a control byte in the target', 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'invalid_url'],
    [
      'Transfer-Encoding with Content-Length (smuggling)',
      'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /debug/metrics HTTP/1.1\r\nHost: a\r\n\r\n',
      400,
      undefined,
    ],
    ['an obs-folded header', 'GET /a HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n', 400, undefined],
    ['bad chunked framing', 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, undefined],
  ])('should answer %s before a request exists, and count it by reason', async (_name, bytes, status, reason) => {
    const before = await scrape();
    const raw = await rawRequest(sc.mainPort, bytes);
    expect(statusOf(raw)).toBe(status);
    expect(upstream.seen).toEqual([]);
    const after = await scrape();
    const total = (p: Parsed) => value(p, 'metrics_sidecar_client_errors_total');
    expect(total(after)).toBe(total(before) + 1);
    if (reason !== undefined)
      expect(value(after, 'metrics_sidecar_client_errors_total', { reason })).toBe(value(before, 'metrics_sidecar_client_errors_total', { reason }) + 1);
    expect(value(after, 'flask_http_request_exceptions_total')).toBe(0);
    expect(warnings()).toEqual([]);
  });

  it('should answer CONNECT with 405 instead of dropping the connection', async () => {
    const raw = await rawRequest(sc.mainPort, 'CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n');
    expect(statusOf(raw)).toBe(405);
    expect(upstream.seen).toEqual([]);
  });

  it('should keep the connection after a refusal without a body, and close it after one with a body', async () => {
    const both = await rawRequest(sc.mainPort, 'GET * HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(both.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 400', 'HTTP/1.1 200']);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/after']);
    const closed = await rawRequest(sc.mainPort, 'POST /%zz HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(closed.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 400']);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/after']);
  });

  it('should not count a client that breaks its own upload as the application failing', async () => {
    const before = await scrape();
    const sock = net.connect(sc.mainPort, '127.0.0.1');
    sock.on('error', () => undefined);
    sock.resume();
    sock.write('POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await new Promise((r) => setTimeout(r, 100));
    sock.write('zz-not-a-chunk-size\r\n');
    await new Promise((r) => sock.on('close', r));
    // Let the sidecar finish its bookkeeping for the broken request.
    await new Promise((r) => setTimeout(r, 100));
    const after = await scrape();
    expect(value(after, 'flask_http_request_exceptions_total')).toBe(value(before, 'flask_http_request_exceptions_total'));
    expect(value(after, 'flask_http_request_total', { status: '502' })).toBe(0);
    expect(warnings()).toEqual([]);
  });

  it('should survive clients that reset the connection right after an upgrade or CONNECT request', async () => {
    const requests = [
      'GET /debug/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      'GET /debug/.. HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n',
      'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n',
    ];
    const closed: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const sock = net.connect(sc.mainPort, '127.0.0.1');
      sock.on('error', () => undefined);
      closed.push(new Promise((r) => sock.on('close', r)));
      sock.write(requests[i % requests.length], () => sock.resetAndDestroy());
    }
    await Promise.all(closed);
    // Still serving: an uncaught socket error would have ended this process.
    expect((await request(sc.mainPort, '/still-here')).status).toBe(200);
  });

  it.each([
    ['HPE_HEADER_OVERFLOW', 431, 'header_overflow'],
    ['HPE_INVALID_METHOD', 400, 'invalid_method'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'timeout'],
    ['ECONNRESET', 0, 'reset'],
    ['SOMETHING_ELSE', 400, 'other'],
    ['HPE_' + 'X'.repeat(100), 400, 'other'],
  ])('should classify %s as %d %s', (code, status, reason) => {
    expect(classifyClientError(Object.assign(new Error('x'), { code }))).toEqual({ status, reason });
  });
});
