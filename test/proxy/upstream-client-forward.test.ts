/**
 * The upstream client inside the sidecar: what a client sees when the app misbehaves at the
 * byte level (a running sidecar in front of a raw `net` server).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { request, rawRequest, statusOf } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';

describe('forwarding through the upstream client', () => {
  let srv: net.Server;
  let sc: Running;
  /** The answer the raw app gives, chosen by the request's path. */
  const answers: Record<string, string> = {
    '/ok': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: 1\r\n\r\nok',
    '/chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    '/early-hints': 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal',
    '/cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    '/two-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
    '/bad-status': 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n',
    '/bad-header': 'HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 0\r\n\r\n',
  };

  beforeAll(async () => {
    srv = net.createServer((s) => {
      let buf = '';
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const path = buf.slice(0, end).split(' ')[1];
        buf = '';
        if (path === '/cut') {
          // Head and part of the body, then the connection drops.
          s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
          return;
        }
        s.write(answers[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` });
  });
  afterAll(async () => {
    await sc.stop();
    await new Promise((r) => srv.close(r));
  });

  it('should relay well-formed answers: Content-Length, chunked, after a 103', async () => {
    const ok = await request(sc.mainPort, '/ok');
    expect([ok.status, ok.text, ok.headers['x-app']]).toEqual([200, 'ok', '1']);
    expect((await request(sc.mainPort, '/chunked')).text).toBe('abcde');
    const hints = await request(sc.mainPort, '/early-hints');
    expect([hints.status, hints.text]).toEqual([200, 'final']);
  });

  it.each(['/cl-te', '/two-cl', '/bad-status', '/bad-header'])('should answer 502 to a malformed answer (%s) and count an exception', async (path) => {
    const r = await request(sc.mainPort, path);
    expect(r.status).toBe(502);
    expect(r.text).toBe('upstream unavailable\n');
    const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
    expect(value(p, 'flask_http_request_exceptions_total', { method: 'GET', status: '502' })).toBeGreaterThanOrEqual(1);
    expect(sc.logs.some((l) => l.msg === 'upstream failed' && l.code === 'UPSTREAM_BAD_RESPONSE')).toBe(true);
  });

  it('should cut the client off when the app drops the connection mid-body', async () => {
    const raw = await rawRequest(sc.mainPort, 'GET /cut HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(statusOf(raw)).toBe(200);
    // The status went out with the app's Content-Length; the body stops short and the connection closes.
    expect(raw.endsWith('partial')).toBe(true);
    expect(raw).toMatch(/content-length: 100/i);
  });
});
