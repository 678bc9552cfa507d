/** Forwarding over real sockets: a running sidecar in front of a real upstream server. */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { freePort, request, rawRequest, statusOf } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';

async function scrape(sc: Running) {
  return parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
}

describe('forwarder', () => {
  let upstream: Upstream;
  let sc: Running;

  beforeAll(async () => {
    upstream = await startUpstream((req, res, body) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.startsWith('/status/')) {
        const code = Number(url.pathname.split('/')[2]);
        if (code === 301) res.setHeader('location', '/elsewhere');
        res.writeHead(code, code === 418 ? "I'm a teapot" : undefined);
        res.end(code === 204 || code === 304 ? undefined : `status ${code}`);
        return;
      }
      if (url.pathname === '/cookies') {
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.setHeader('x-hop', 'secret-hop');
        res.setHeader('connection', 'x-hop');
        res.setHeader('keep-alive', 'timeout=5');
        res.end('cookies');
        return;
      }
      if (url.pathname.startsWith('/slow')) {
        // Never answers: the sidecar's timeout, or its client leaving, ends the request.
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: body.toString('utf8') }));
    });
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: '300', ROUTE_PATTERNS: '/items/:name' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it.each(['GET', 'DELETE', 'OPTIONS'])('should forward %s', async (method) => {
    const r = await request(sc.mainPort, '/things/1?x=y', { method });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ method, url: '/things/1?x=y' });
  });

  it.each(['POST', 'PUT', 'PATCH'])('should forward %s with its body', async (method) => {
    const r = await request(sc.mainPort, '/things', { method, body: `{"m":"${method}"}`, headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(r.text)).toMatchObject({ method, body: `{"m":"${method}"}` });
  });

  it('should forward HEAD without a body', async () => {
    const r = await request(sc.mainPort, '/things', { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    expect(upstream.seen.at(-1)?.method).toBe('HEAD');
  });

  it('should forward a chunked request body intact', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: sc.mainPort, path: '/chunked', method: 'POST', agent: false }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      // Two writes, two chunks on the wire (the second once the first has been handed to the kernel).
      req.write('part one, ', () => req.end('part two'));
    });
    const echoed = JSON.parse(body) as { body: string; rawHeaders: string[] };
    expect(echoed.body).toBe('part one, part two');
    // Re-framed for the upstream: chunked while the body streams, or a Content-Length when the
    // whole body had already arrived by the time the upstream connection was ready.
    const lower = echoed.rawHeaders.map((h) => h.toLowerCase());
    expect(lower.includes('chunked') || lower[lower.indexOf('content-length') + 1] === '18').toBe(true);
  });

  it('should keep end-to-end headers, drop hop-by-hop ones and add X-Forwarded-*', async () => {
    const r = await request(sc.mainPort, '/headers', {
      headers: [
        'Host',
        'app.example',
        'X-Dup',
        'one',
        'X-Dup',
        'two',
        'X-Custom',
        'kept',
        'Connection',
        'keep-alive, X-Remove-Me',
        'X-Remove-Me',
        'gone',
        'Keep-Alive',
        'timeout=10',
        'TE',
        'trailers',
        'Proxy-Authorization',
        'Basic Zm9vOmJhcg==',
        'Proxy-Connection',
        'keep-alive',
        'X-Forwarded-For',
        '203.0.113.9',
      ],
    });
    const raw = (JSON.parse(r.text) as { rawHeaders: string[] }).rawHeaders;
    const pairs: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i].toLowerCase(), raw[i + 1]]);
    const get = (n: string) => pairs.filter(([k]) => k === n).map(([, v]) => v);
    expect(get('host')).toEqual(['app.example']);
    expect(get('x-dup')).toEqual(['one', 'two']);
    expect(get('x-custom')).toEqual(['kept']);
    for (const h of ['x-remove-me', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection']) expect(get(h)).toEqual([]);
    // The peer is no trusted proxy: its X-Forwarded-For is replaced, not extended (forwarding-headers.test.ts).
    expect(get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(get('x-forwarded-proto')).toEqual(['http']);
    expect(get('x-forwarded-host')).toEqual(['app.example']);
  });

  it('should replace X-Forwarded-Proto and -Host sent by a peer that is no trusted proxy', async () => {
    const r = await request(sc.mainPort, '/headers', { headers: { host: 'app.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' } });
    const raw = (JSON.parse(r.text) as { rawHeaders: string[] }).rawHeaders.map((h) => h.toLowerCase());
    expect(raw.filter((h) => h === 'x-forwarded-proto' || h === 'x-forwarded-host')).toHaveLength(2);
    expect(raw[raw.indexOf('x-forwarded-proto') + 1]).toBe('http');
    expect(raw[raw.indexOf('x-forwarded-host') + 1]).toBe('app.example');
  });

  it('should send an absolute-form target upstream in origin-form', async () => {
    const raw = await rawRequest(sc.mainPort, 'GET http://app.example/things/7?q=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n');
    expect(statusOf(raw)).toBe(200);
    expect(upstream.seen.at(-1)?.url).toBe('/things/7?q=1');
  });

  it.each([201, 204, 301, 404, 418, 503])('should relay status %i', async (code) => {
    const r = await request(sc.mainPort, `/status/${code}`);
    expect(r.status).toBe(code);
    if (code === 301) expect(r.headers.location).toBe('/elsewhere');
    if (code === 204) expect(r.body.length).toBe(0);
    else expect(r.text).toBe(`status ${code}`);
  });

  it('should relay repeated response headers and drop hop-by-hop ones', async () => {
    const r = await request(sc.mainPort, '/cookies');
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(r.headers['x-hop']).toBeUndefined();
    expect(r.headers['keep-alive']).toBeUndefined();
    expect(r.text).toBe('cookies');
  });

  it('should answer 504 when the upstream is slower than UPSTREAM_TIMEOUT_MS, and count it', async () => {
    const before = value(await scrape(sc), 'flask_http_request_exceptions_total', { status: '504' });
    const r = await request(sc.mainPort, '/slow');
    expect(r.status).toBe(504);
    const after = await scrape(sc);
    expect(value(after, 'flask_http_request_exceptions_total', { method: 'GET', status: '504' })).toBe(before + 1);
    expect(value(after, 'flask_http_request_duration_seconds_count', { path: '/slow', status: '504' })).toBeGreaterThanOrEqual(1);
  });

  it('should abort the upstream request when the client goes away', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    // The app never answers /slow: its response closes only if the sidecar gives up on it.
    const closed = new Promise<void>((resolve) => {
      upstream.server.once('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.on('close', () => resolve());
        arrived();
      });
    });
    const before = value(await scrape(sc), 'flask_http_request_total', { status: '499' });
    const sock = net.connect(sc.mainPort, '127.0.0.1');
    sock.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    await reached;
    sock.destroy();
    await closed;
    // Recorded when the sidecar saw its client leave, before it aborted the upstream request.
    expect(value(await scrape(sc), 'flask_http_request_total', { status: '499' })).toBe(before + 1);
  });

  it('should record RED metrics by route template', async () => {
    await request(sc.mainPort, '/users/123/orders/9f1c2a7e-5b7d-4c1e-9a3b-2f6d8e0c1b4a');
    await request(sc.mainPort, '/users/456/orders/0b8c4e6f-1d2a-4f3b-8c9d-7e6f5a4b3c2d');
    await request(sc.mainPort, '/items/shoes');
    const p = await scrape(sc);
    expect(value(p, 'flask_http_request_duration_seconds_count', { method: 'GET', path: '/users/:id/orders/:id', status: '200' })).toBe(2);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/items/:name' })).toBe(1);
    expect(p.samples.some((s) => s.labels.path?.includes('123'))).toBe(false);
  });
});

describe('forwarder failures', () => {
  it('should answer 502 when the upstream refuses connections, and count an exception', async () => {
    const port = await freePort();
    const sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${port}` });
    try {
      const r = await request(sc.mainPort, '/anything', { method: 'POST', body: 'x' });
      expect(r.status).toBe(502);
      const p = await scrape(sc);
      expect(value(p, 'flask_http_request_exceptions_total', { method: 'POST', status: '502' })).toBe(1);
      expect(value(p, 'flask_http_request_total', { method: 'POST', status: '502' })).toBe(1);
      expect(sc.logs.some((l) => l.msg === 'upstream failed' && l.code === 'ECONNREFUSED')).toBe(true);
    } finally {
      await sc.stop();
    }
  });

  it('should answer 502 when the upstream resets the connection mid-request', async () => {
    const srv = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` });
    try {
      const r = await request(sc.mainPort, '/reset', { method: 'POST', body: 'x' });
      expect(r.status).toBe(502);
    } finally {
      await sc.stop();
      srv.close();
    }
  });

  it('should retry an idempotent request once when a pooled keep-alive socket turns out closed', async () => {
    // An upstream that answers the first request on each connection and silently drops the
    // connection on the second: exactly what a keep-alive socket closed by the app looks like.
    let connections = 0;
    const srv = net.createServer((s) => {
      connections++;
      let n = 0;
      s.on('data', () => {
        n++;
        if (n === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else s.destroy();
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` });
    try {
      expect((await request(sc.mainPort, '/a')).status).toBe(200);
      expect((await request(sc.mainPort, '/b')).status).toBe(200);
      expect(connections).toBe(2);
    } finally {
      await sc.stop();
      srv.close();
    }
  });

  it('should answer 404 on the main port when no UPSTREAM_URL is set', async () => {
    const sc = await startSidecar({});
    try {
      expect((await request(sc.mainPort, '/x')).status).toBe(404);
    } finally {
      await sc.stop();
    }
  });
});
