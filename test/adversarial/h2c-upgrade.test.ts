/**
 * Issue 9, finding 3: `Upgrade: h2c` forwarded to the app.
 *
 * An app that accepts h2c would then serve HTTP/2 streams (for `/debug/*` too) through a tunnel
 * the sidecar can no longer see into. The upstream here is a raw TCP server that records every
 * request head it receives and, like such an app, answers `101 Switching Protocols` to any
 * `Upgrade` it is offered. Required (DESIGN.md): only the protocols of UPSTREAM_UPGRADE_PROTOCOLS
 * (default `websocket`) pass; any other `Upgrade` header is removed before forwarding, so the
 * client never gets 101 for h2c. The WebSocket control shows the upstream would switch.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { rawRequest, statusOf } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { alive } from '../helpers/attack';

jest.setTimeout(60_000);

interface Head {
  requestLine: string;
  headers: [string, string][];
}

/** A raw upstream: records request heads; 101 for any Upgrade (echoing it), else a small 200. */
async function startRawUpstream(): Promise<{ port: number; heads: Head[]; close(): Promise<void> }> {
  const heads: Head[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const [requestLine, ...lines] = buf.slice(0, end).split('\r\n');
        buf = buf.slice(end + 4);
        const headers = lines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
        heads.push({ requestLine, headers });
        const upgrade = headers.find(([k]) => k === 'upgrade')?.[1];
        if (upgrade !== undefined) {
          sock.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n\r\n`);
          // An h2c server would now speak HTTP/2 (its SETTINGS frame first): bytes the client can see.
          if (/h2c/i.test(upgrade)) sock.write(Buffer.from('000000040000000000', 'hex'));
          return;
        }
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
let sc: Child;

beforeAll(async () => {
  upstream = await startRawUpstream();
  sc = await spawnSidecar({ UPSTREAM_URL: `http://127.0.0.1:${upstream.port}`, PROMETHEUS_PORT: '0' });
});

afterAll(async () => {
  sc?.proc.kill('SIGKILL');
  await sc?.exited;
  await upstream?.close();
});

const upgradeOf = (h: Head): string | undefined => h.headers.find(([k]) => k === 'upgrade')?.[1];

describe('finding 3: Upgrade: h2c never reaches the app', () => {
  it('control: a WebSocket upgrade is still passed through and switched', async () => {
    const raw = await rawRequest(
      sc.mainPort,
      'GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      1500,
    );
    expect(statusOf(raw)).toBe(101);
    expect(upstream.heads.some((h) => h.requestLine.startsWith('GET /ws ') && upgradeOf(h) === 'websocket')).toBe(true);
  });

  it.each([
    [
      'h2c on GET /',
      false,
      'GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    ],
    [
      'h2c on POST',
      false,
      'POST /form HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    ],
    ['H2C in capitals', false, 'GET /caps HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: H2C\r\n\r\n'],
    [
      'h2c offered beside websocket (only websocket may pass)',
      true,
      'GET /list HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ],
    ['an unknown protocol', false, 'GET /tls HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n'],
  ])('%s: no h2c (or other unlisted protocol) in what the app receives', async (_name, websocketOffered, bytes) => {
    const before = upstream.heads.length;
    const raw = await rawRequest(sc.mainPort, bytes, 1500);
    const received = upstream.heads.slice(before);
    expect(alive(sc)).toBe(true);
    // The request may be refused or forwarded as a plain request; either way no foreign Upgrade.
    const foreign = (u: string): boolean => u.split(',').some((t) => !/^\s*websocket\s*$/i.test(t));
    expect(received.map((h) => ({ line: h.requestLine, upgrade: upgradeOf(h) })).filter((h) => h.upgrade !== undefined && foreign(h.upgrade))).toEqual([]);
    // Without a WebSocket offer there is nothing the app may switch to.
    if (!websocketOffered) expect(statusOf(raw)).not.toBe(101);
  });
});
