/**
 * The main listener keeps, on each client connection, the responses it has not finished writing
 * (to answer a client error only when no response is on the wire: client-error-mid-response.test.ts).
 * A finished response must leave that list: an idle keep-alive connection, or a socket handed over
 * to a websocket for hours, must not hold the last request and response it served. Driven over a
 * real socket against the real listener; the list is read through its symbol on the server's socket.
 */
import http from 'node:http';
import net from 'node:net';
import Koa from 'koa';
import { createMainServer } from '../../src/server/main-listener';
import { Lifecycle } from '../../src/server/lifecycle';
import { silentLogger } from '../../src/log/logger';

/** The responses the listener still tracks on a server-side socket (that has served a request). */
function tracked(socket: net.Socket): number {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'responses');
  if (sym === undefined) throw new Error('the listener keeps no response list on this socket (renamed, or not tracking?)');
  return (socket as unknown as Record<symbol, unknown[]>)[sym].length;
}

describe('main listener: responses tracked per connection', () => {
  let server: http.Server;
  let port: number;
  const serverSockets: net.Socket[] = [];
  let holdRequest: (release: () => void) => void = () => undefined;
  /** Responses the listener has let go of: our 'close' listener runs after the listener's own. */
  let closed = 0;
  const closeWaiters: (() => void)[] = [];
  const responsesClosed = async (n: number): Promise<void> => {
    while (closed < n) await new Promise<void>((resolve) => closeWaiters.push(resolve));
  };

  beforeAll(async () => {
    const debugApp = new Koa();
    debugApp.use(async (ctx) => {
      // /debug/held (the reserved tree, the debug app's) answers when the test releases it: a response the listener must be tracking meanwhile.
      if (ctx.path === '/debug/held') await new Promise<void>((resolve) => holdRequest(resolve));
      ctx.body = 'ok\n';
    });
    server = createMainServer({
      forwarder: undefined,
      debugApp,
      lifecycle: new Lifecycle(silentLogger),
      keepAliveTimeoutMs: 30_000,
      upgradeProtocols: new Set(),
    });
    server.on('connection', (s: net.Socket) => serverSockets.push(s));
    // Registered after the listener's own request handler, so each response's 'close' reaches the
    // listener's bookkeeping first and this one second.
    server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) =>
      res.on('close', () => {
        closed++;
        for (const w of closeWaiters.splice(0)) w();
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A raw keep-alive connection; `answers(n)` resolves once n complete responses have arrived. */
  function connect(): { sock: net.Socket; answers: (n: number) => Promise<void> } {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    let text = '';
    const waiters: (() => void)[] = [];
    sock.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      for (const w of waiters.splice(0)) w();
    });
    const count = () => (text.match(/HTTP\/1\.1 \d{3}[^\r]*\r\n[\s\S]*?\r\n\r\n/g) ?? []).length;
    const answers = async (n: number): Promise<void> => {
      while (count() < n) await new Promise<void>((resolve) => waiters.push(resolve));
    };
    return { sock, answers };
  }

  /** The server side of the newest connection (it exists once a response to it has closed). */
  const newest = (): net.Socket => serverSockets[serverSockets.length - 1];

  it('should hold no response once 50 keep-alive requests are answered', async () => {
    const start = closed;
    const c = connect();
    for (let i = 1; i <= 50; i++) {
      c.sock.write(`GET /item/${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
      await c.answers(i);
    }
    await responsesClosed(start + 50);
    const s = newest();
    expect(tracked(s)).toBe(0);
    expect(s.destroyed).toBe(false); // still an open keep-alive connection
    c.sock.destroy();
  });

  it('should track a response while it is being answered, and let it go once it is', async () => {
    const start = closed;
    const c = connect();
    const release = await new Promise<() => void>((resolve) => {
      holdRequest = resolve;
      c.sock.write('GET /debug/held HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    expect(tracked(newest())).toBe(1);
    release();
    await c.answers(1);
    await responsesClosed(start + 1);
    expect(tracked(newest())).toBe(0);
    c.sock.destroy();
  });

  it('should hold none once three pipelined requests are answered', async () => {
    const start = closed;
    const c = connect();
    c.sock.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.answers(3);
    await responsesClosed(start + 3);
    expect(tracked(newest())).toBe(0);
    c.sock.destroy();
  });
});
