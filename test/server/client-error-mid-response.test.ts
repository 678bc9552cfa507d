/**
 * A client error reported by Node's parser on a keep-alive connection (bytes after a request that
 * are no request) is answered with a status line only while no response on that connection has
 * sent its head: a `400` written into a response already on the wire would corrupt it. The main
 * listener tracks the responses of each connection itself (Node offers no public way from the
 * socket to the response it is writing), so each case is driven here over a real socket.
 */
import net from 'node:net';
import type http from 'node:http';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';

const GARBAGE = 'NOT A REQUEST\r\n\r\n';

/** A raw connection to the main port: what it received so far, and whether it closed. */
function connect(port: number): { sock: net.Socket; text: () => string; closed: Promise<void>; until: (re: RegExp) => Promise<void> } {
  const sock = net.connect(port, '127.0.0.1');
  let received = '';
  const waiters: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    received += c.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => undefined);
  const until = async (re: RegExp): Promise<void> => {
    while (!re.test(received)) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { sock, text: () => received, closed, until };
}

describe('a client error on a connection with a response in progress', () => {
  let upstream: Upstream;
  let sc: Running;
  /** Responses the app holds open, by path, until the test ends them. */
  const held = new Map<string, http.ServerResponse>();
  /** Resolves when the app holds a response for `path` (the request has reached it). */
  const holding = new Map<string, () => void>();
  const whenHeld = (path: string) => new Promise<void>((resolve) => (held.has(path) ? resolve() : holding.set(path, resolve)));

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === '/streaming') {
        res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
        res.write('first part\n');
        held.set(req.url, res);
      } else if (req.url === '/waiting') {
        held.set(req.url, res);
        holding.get(req.url)?.();
      } else {
        res.end('done\n');
      }
    });
    sc = await startSidecar({ UPSTREAM_URL: upstream.url });
  });
  afterAll(async () => {
    for (const res of held.values()) res.destroy();
    await sc.stop();
    await upstream.close();
  });

  it('should close the connection, writing nothing more, when the response has sent its head', async () => {
    const c = connect(sc.mainPort);
    c.sock.write('GET /streaming HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until(/first part\n/);
    c.sock.write(GARBAGE);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.text()).not.toMatch(/HTTP\/1\.1 400/);
  });

  it('should answer 400 when the response has not sent its head yet', async () => {
    const c = connect(sc.mainPort);
    c.sock.write('GET /waiting HTTP/1.1\r\nHost: a\r\n\r\n');
    await whenHeld('/waiting');
    c.sock.write(GARBAGE);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('should answer 400 after a response that has finished', async () => {
    const c = connect(sc.mainPort);
    c.sock.write('GET /quick HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until(/done\n/);
    c.sock.write(GARBAGE);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 [^]*done\nHTTP\/1\.1 400 Bad Request\r\n/);
  });
});
