/**
 * Upgrades (issue 9, finding 3): only UPSTREAM_UPGRADE_PROTOCOLS (default `websocket`) reach the
 * application as an upgrade; `h2c` and any other protocol is removed and the request forwarded as
 * a plain HTTP request, over real sockets to an application that would switch to h2c if asked.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { rawRequest, statusOf } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { loadConfig, ConfigError } from '../../src/config';
import { allowedUpgrade } from '../../src/proxy/upgrade';

interface SeenRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  upgrade: boolean;
}

/** An application that switches protocols for any Upgrade it is offered (what an h2c-capable server does). */
async function eagerApp(): Promise<{ port: number; seen: SeenRequest[]; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body, upgrade: false });
      res.end(`plain ${req.method} ${req.url} ${body}`);
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.push({ url: req.url ?? '', headers: req.headers, body: '', upgrade: true });
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\nswitched`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

describe('Upgrade: h2c and other protocols not allowed', () => {
  let app: Awaited<ReturnType<typeof eagerApp>>;
  let sc: Running;

  beforeAll(async () => {
    app = await eagerApp();
    sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${app.port}`, SERVE_PROMETHEUS_ENDPOINT: 'true' });
  });
  afterAll(async () => {
    await sc.stop();
    await app.close();
  });
  beforeEach(() => {
    app.seen.length = 0;
  });

  it('should forward an h2c request as plain HTTP, without Upgrade, HTTP2-Settings or their Connection tokens', async () => {
    const raw = await rawRequest(sc.mainPort, `GET /page HTTP/1.1\r\nHost: a\r\n${H2C}Connection: close\r\n\r\n`);
    expect(statusOf(raw)).toBe(200);
    expect(raw).toContain('plain GET /page');
    expect(raw).not.toContain('101');
    expect(app.seen).toHaveLength(1);
    expect(app.seen[0].upgrade).toBe(false);
    expect(app.seen[0].headers.upgrade).toBeUndefined();
    expect(app.seen[0].headers['http2-settings']).toBeUndefined();
    expect(String(app.seen[0].headers.connection ?? '')).not.toMatch(/upgrade/i);
  });

  it('should forward the body of an h2c request and keep the connection for the next request', async () => {
    const sock = net.connect(sc.mainPort, '127.0.0.1');
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.write(`POST /upload HTTP/1.1\r\nHost: a\r\n${H2C}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    sock.write('6\r\n world\r\n0\r\n\r\n');
    // The next request once the first is answered (the connection is then free for it).
    await new Promise<void>((resolve) => {
      const answered = (): void => {
        if (!got.includes('plain POST /upload hello world')) return;
        sock.off('data', answered);
        resolve();
      };
      sock.on('data', answered);
    });
    sock.write('GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await new Promise((r) => sock.on('close', r));
    expect(got).toContain('plain POST /upload hello world');
    expect(got).toContain('plain GET /second');
    expect(app.seen.map((s) => [s.url, s.upgrade])).toEqual([
      ['/upload', false],
      ['/second', false],
    ]);
  });

  it('should let the sidecar answer a reserved path asked with h2c, never the app', async () => {
    const raw = await rawRequest(sc.mainPort, `GET /debug/metrics HTTP/1.1\r\nHost: a\r\n${H2C}Connection: close\r\n\r\n`);
    expect(statusOf(raw)).toBe(200);
    expect(raw).toContain('# TYPE flask_http_request_total counter');
    expect(app.seen).toEqual([]);
  });

  it('should refuse an h2c request to a dot-segment target with 400', async () => {
    const raw = await rawRequest(sc.mainPort, `GET /debug/.. HTTP/1.1\r\nHost: a\r\n${H2C}\r\n`);
    expect(statusOf(raw)).toBe(400);
    expect(app.seen).toEqual([]);
  });

  it('should remove an h2c Upgrade that Node does not treat as an upgrade (no Connection: upgrade)', async () => {
    const raw = await rawRequest(sc.mainPort, 'GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nConnection: close\r\n\r\n');
    expect(statusOf(raw)).toBe(200);
    expect(app.seen[0].headers.upgrade).toBeUndefined();
    expect(app.seen[0].headers['http2-settings']).toBeUndefined();
  });

  it.each(['h2c', 'TLS/1.0', 'foo, bar', 'HTTP/2.0'])('should never let the app switch protocols for Upgrade: %s', async (proto) => {
    const raw = await rawRequest(sc.mainPort, `GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: ${proto}\r\n\r\n`, 1000);
    expect(statusOf(raw)).toBe(200);
    expect(raw).not.toContain('switched');
    expect(app.seen.every((s) => !s.upgrade)).toBe(true);
  });

  it('should pass a WebSocket upgrade, with only the allowed protocol in Upgrade', async () => {
    const raw = await rawRequest(
      sc.mainPort,
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      1000,
    );
    expect(statusOf(raw)).toBe(101);
    expect(app.seen).toHaveLength(1);
    expect(app.seen[0].upgrade).toBe(true);
    expect(app.seen[0].headers.upgrade).toBe('websocket');
  });
});

describe('UPSTREAM_UPGRADE_PROTOCOLS', () => {
  it('should pass a configured protocol, and remove websocket when it is not listed', async () => {
    const app = await eagerApp();
    const sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${app.port}`, UPSTREAM_UPGRADE_PROTOCOLS: 'My-Proto' });
    try {
      const custom = await rawRequest(sc.mainPort, 'GET /c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: my-proto/2\r\n\r\n', 1000);
      expect(statusOf(custom)).toBe(101);
      const ws = await rawRequest(
        sc.mainPort,
        'GET /w HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        1000,
      );
      expect(statusOf(ws)).toBe(200);
      expect(app.seen.map((s) => [s.url, s.upgrade])).toEqual([
        ['/c', true],
        ['/w', false],
      ]);
    } finally {
      await sc.stop();
      await app.close();
    }
  });

  it('should default to websocket, accept none, and refuse names that are not tokens', () => {
    expect(loadConfig({}).upstreamUpgradeProtocols).toEqual(['websocket']);
    expect(loadConfig({ UPSTREAM_UPGRADE_PROTOCOLS: '' }).upstreamUpgradeProtocols).toEqual(['websocket']);
    expect(loadConfig({ UPSTREAM_UPGRADE_PROTOCOLS: 'None' }).upstreamUpgradeProtocols).toEqual([]);
    expect(loadConfig({ UPSTREAM_UPGRADE_PROTOCOLS: 'WebSocket, x-custom' }).upstreamUpgradeProtocols).toEqual(['websocket', 'x-custom']);
    expect(() => loadConfig({ UPSTREAM_UPGRADE_PROTOCOLS: 'web socket' })).toThrow(ConfigError);
    expect(() => loadConfig({ UPSTREAM_UPGRADE_PROTOCOLS: 'h2c/2' })).toThrow(/UPSTREAM_UPGRADE_PROTOCOLS/);
  });

  it.each([
    ['websocket', 'websocket'],
    ['WebSocket', 'WebSocket'],
    ['h2c', ''],
    ['h2c, websocket/13', 'websocket/13'],
    [' , ', ''],
  ])('should keep the allowed tokens of %j', (value, kept) => {
    expect(allowedUpgrade(value, new Set(['websocket']))).toBe(kept);
  });
});
