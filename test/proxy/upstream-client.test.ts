/**
 * The upstream client over real sockets: raw `net` servers that answer exactly the bytes a test
 * gives them (well-formed, split at odd places, or broken on purpose).
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import {
  UpstreamClient,
  UPSTREAM_BAD_RESPONSE,
  UPSTREAM_BODY_TIMEOUT,
  UPSTREAM_CLOSED,
  UPSTREAM_HEADERS_TIMEOUT,
  type Controller,
  type UpstreamClientOptions,
  type UpstreamRequest,
} from '../../src/proxy/upstream-client';
import { turnLoop } from '../helpers/handles';

interface RawServer {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Every request head (and body bytes) received, per connection, as latin1 text. */
  received: string[];
  sockets: net.Socket[];
  /** Resolves once `cond()` holds, checked again whenever bytes arrive or a connection opens or closes. */
  until(cond: () => boolean): Promise<void>;
  close(): Promise<void>;
}

/**
 * A server that calls `onRequest(socket, text, n)` each time a complete request head has arrived
 * on a connection (n = 1 for the first request on it). Bodies are appended to `received` only.
 */
async function rawServer(onRequest: (s: net.Socket, head: string, n: number, conn: number) => void): Promise<RawServer> {
  const waiters: (() => void)[] = [];
  const changed = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  const state: RawServer = {
    port: 0,
    connections: 0,
    received: [],
    sockets: [],
    until: async (cond) => {
      while (!cond()) await new Promise<void>((r) => waiters.push(r));
    },
    close: async () => undefined,
  };
  const srv = net.createServer((s) => {
    const conn = state.connections++;
    state.sockets.push(s);
    state.received[conn] = '';
    let buf = '';
    let n = 0;
    s.on('error', () => undefined);
    s.on('close', changed);
    s.on('data', (d: Buffer) => {
      const text = d.toString('latin1');
      state.received[conn] += text;
      buf += text;
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end);
        buf = '';
        onRequest(s, head, ++n, conn);
      }
      changed();
    });
    changed();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  state.port = (srv.address() as AddressInfo).port;
  state.close = () =>
    new Promise((resolve) => {
      for (const s of state.sockets) s.destroy();
      srv.close(() => resolve());
    });
  return state;
}

interface Result {
  status: number;
  statusMessage: string;
  headers: string[];
  body: Buffer;
  error?: Error & { code?: string };
  /** The response had started when the error came. */
  started: boolean;
}

function call(
  client: UpstreamClient,
  req: Partial<UpstreamRequest> = {},
  hooks: { onStart?: (c: Controller) => void; onData?: (c: Controller, chunk: Buffer) => void } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const r: Result = { status: 0, statusMessage: '', headers: [], body: Buffer.alloc(0), started: false };
    const chunks: Buffer[] = [];
    client.dispatch(
      { method: 'GET', path: '/', headers: ['host', 'app'], body: null, ...req },
      {
        onRequestStart: hooks.onStart,
        onResponseStart: (_c, status, headers, statusMessage) => {
          r.started = true;
          r.status = status;
          r.headers = headers;
          r.statusMessage = statusMessage;
        },
        onResponseData: (c, chunk) => {
          chunks.push(Buffer.from(chunk));
          hooks.onData?.(c, chunk);
        },
        onResponseEnd: () => {
          r.body = Buffer.concat(chunks);
          resolve(r);
        },
        onResponseError: (_c, err) => {
          r.body = Buffer.concat(chunks);
          r.error = err;
          resolve(r);
        },
      },
    );
  });
}

const clients: UpstreamClient[] = [];
const servers: RawServer[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function setup(
  onRequest: Parameters<typeof rawServer>[0],
  opts: Partial<UpstreamClientOptions> = {},
): Promise<{ srv: RawServer; client: UpstreamClient }> {
  const srv = await rawServer(onRequest);
  servers.push(srv);
  const client = new UpstreamClient({ host: '127.0.0.1', port: srv.port, timeoutMs: 5000, maxConnections: 0, ...opts });
  clients.push(client);
  return { srv, client };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: yes\r\n\r\nhello';

/** Writes `parts` one by one, a macrotask apart, so they tend to arrive as separate reads. */
function writeSlowly(s: net.Socket, parts: (string | Buffer)[], end = false): void {
  const next = (i: number): void => {
    if (s.destroyed) return;
    if (i === parts.length) {
      if (end) s.end();
      return;
    }
    s.write(typeof parts[i] === 'string' ? Buffer.from(parts[i] as string, 'latin1') : (parts[i] as Buffer));
    setTimeout(() => next(i + 1), 1);
  };
  next(0);
}

describe('upstream client: happy paths', () => {
  it('should send one well-formed head and read a Content-Length body', async () => {
    const { srv, client } = await setup((s) => s.write(OK));
    const r = await call(client, { method: 'GET', path: '/a/b?c=d', headers: ['Host', 'app.example', 'X-Dup', '1', 'X-Dup', '2'] });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(200);
    expect(r.statusMessage).toBe('OK');
    expect(r.headers).toEqual(['content-length', '5', 'x-app', 'yes']);
    expect(r.body.toString()).toBe('hello');
    expect(srv.received[0]).toBe('GET /a/b?c=d HTTP/1.1\r\nHost: app.example\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n');
  });

  it('should reuse an idle keep-alive connection for the next request', async () => {
    const { srv, client } = await setup((s) => s.write(OK));
    for (let i = 0; i < 5; i++) expect((await call(client)).status).toBe(200);
    expect(srv.connections).toBe(1);
    expect(client.connections).toBe(1);
  });

  it('should reuse the most recently freed connection first (LIFO)', async () => {
    const order: number[] = [];
    // The first request on each connection waits here until the test answers it.
    const held: net.Socket[] = [];
    const { srv, client } = await setup((s, _h, n, conn) => {
      order.push(conn);
      if (n === 1) held[conn] = s;
      else s.write(OK);
    });
    const both = [call(client), call(client)];
    await srv.until(() => held.filter(Boolean).length === 2);
    // Connection 1 answers first and is freed first; connection 0 is freed last.
    held[1].write(OK);
    await Promise.race(both);
    held[0].write(OK);
    await Promise.all(both);
    expect(srv.connections).toBe(2);
    order.length = 0;
    await call(client);
    expect(order).toEqual([0]);
  });

  it('should read a response head and body split into single bytes', async () => {
    const bytes = OK.split('');
    const { client } = await setup((s) => writeSlowly(s, bytes));
    const r = await call(client);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello');
  });

  it('should decode a chunked body with extensions and trailers, and reuse the connection', async () => {
    const resp = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n';
    const { srv, client } = await setup((s) => s.write(resp));
    const r = await call(client);
    expect(r.error).toBeUndefined();
    expect(r.body.toString()).toBe('hello, world');
    expect((await call(client)).body.toString()).toBe('hello, world');
    expect(srv.connections).toBe(1);
  });

  it('should decode any split of a chunked response into the same body (property)', async () => {
    let current: Buffer[] = [];
    const { client } = await setup((s) => writeSlowly(s, current));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 0, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 8 }),
        async (chunks, cuts) => {
          const body = Buffer.concat(chunks.map((c) => Buffer.from(c)));
          const framed = Buffer.concat([
            Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'),
            ...chunks.map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), Buffer.from(c), Buffer.from('\r\n')])),
            Buffer.from('0\r\n\r\n'),
          ]);
          const parts: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < framed.length; i++) {
            const n = cuts[i % cuts.length];
            parts.push(framed.subarray(at, at + n));
            at += n;
          }
          current = parts;
          const r = await call(client);
          expect(r.error).toBeUndefined();
          expect(r.body.equals(body)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('should give back any well-formed head exactly: names lower-cased, values trimmed, order kept (property)', async () => {
    const token = fc
      .stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}$/)
      .filter((n) => !/^(content-length|transfer-encoding|connection|keep-alive)$/i.test(n));
    const value = fc.stringMatching(/^[\x21-\x7e]([\t\x20-\x7e]{0,30}[\x21-\x7e])?$/);
    let head = '';
    const { client } = await setup((s) => s.write(head));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(token, value, fc.constantFrom('', ' ', '\t ')), { maxLength: 12 }),
        fc.integer({ min: 200, max: 599 }),
        async (fields, status) => {
          head = `HTTP/1.1 ${status} Whatever\r\n${fields.map(([n, v, ows]) => `${n}:${ows}${v}${ows}\r\n`).join('')}content-length: 0\r\n\r\n`;
          const r = await call(client);
          expect(r.error).toBeUndefined();
          expect(r.status).toBe(status);
          expect(r.headers).toEqual([...fields.flatMap(([n, v]) => [n.toLowerCase(), v]), 'content-length', '0']);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('should end every exchange, with an answer or an error, whatever bytes come back (property)', async () => {
    let bytes = Buffer.alloc(0);
    const { client } = await setup((s) => s.end(bytes));
    const prefix = fc.constantFrom(
      '',
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n',
    );
    await fc.assert(
      fc.asyncProperty(prefix, fc.uint8Array({ maxLength: 200 }), async (p, tail) => {
        bytes = Buffer.concat([Buffer.from(p, 'latin1'), Buffer.from(tail)]);
        const r = await call(client);
        expect(r.error !== undefined || r.status >= 200).toBe(true);
        if (r.error) expect([UPSTREAM_BAD_RESPONSE, UPSTREAM_CLOSED]).toContain(r.error.code);
      }),
      { numRuns: 100 },
    );
  });

  it('should read a close-delimited body to the end and not reuse the connection', async () => {
    let upstream: net.Socket | undefined;
    const { srv, client } = await setup((s) => {
      upstream = s;
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ');
    });
    // The rest, and the close that ends the body, once the first part has been delivered.
    const r = await call(client, {}, { onData: () => upstream?.end('close') });
    expect(r.error).toBeUndefined();
    expect(r.body.toString()).toBe('until close');
    await call(client);
    expect(srv.connections).toBe(2);
  });

  it('should read no body for HEAD, 204 and 304 whatever the framing headers say', async () => {
    const { srv, client } = await setup((s, head) => {
      if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
      else if (head.includes('/204')) s.write('HTTP/1.1 204 No Content\r\n\r\n');
      else s.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n');
    });
    const h = await call(client, { method: 'HEAD' });
    expect([h.status, h.body.length, h.error]).toEqual([200, 0, undefined]);
    expect((await call(client, { path: '/204' })).status).toBe(204);
    expect((await call(client, { path: '/304' })).status).toBe(304);
    // Bodyless by rule, and what apps most often get wrong: the socket after each is not reused.
    expect(srv.connections).toBe(3);
  });

  it('should skip 1xx informational heads and deliver the final one', async () => {
    const { client } = await setup((s) => writeSlowly(s, ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n', OK]));
    const r = await call(client);
    expect([r.status, r.body.toString()]).toEqual([200, 'hello']);
  });

  it('should refuse an answer that sends 1xx heads without end (each would restart the idle timer)', async () => {
    const { client } = await setup((s) => s.write('HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(17) + 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'));
    const r = await call(client);
    expect(r.error?.message).toMatch(/too many 1xx/);
    const { client: ok } = await setup((s) => s.write('HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(16) + OK));
    expect((await call(ok)).status).toBe(200);
  });

  it('should send a body with Content-Length as is, and one without chunked', async () => {
    const { srv, client } = await setup((s, _h, n) => {
      // Answer once the whole body is in: the first by its length, the second (chunked) by its last chunk.
      const end = n === 1 ? 'abcdef' : '0\r\n\r\n';
      void srv.until(() => srv.received[0].endsWith(end)).then(() => s.write(OK));
    });
    await call(client, { method: 'POST', headers: ['host', 'a', 'content-length', '6'], body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
    expect(srv.received[0]).toBe('POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 6\r\n\r\nabcdef');
    const r = await call(client, { method: 'POST', headers: ['host', 'a'], body: Readable.from([Buffer.from('abc'), Buffer.from('de')]) });
    expect(r.status).toBe(200);
    expect(srv.received[0].slice(srv.received[0].indexOf('abcdef') + 6)).toBe(
      'POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    );
  });

  it('should close the connection after `Connection: close` and a short Keep-Alive hint', async () => {
    const { srv, client } = await setup((s, _h, _n, conn) => {
      if (conn === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      else if (conn === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=1\r\n\r\n');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    await call(client);
    await call(client);
    await call(client);
    await call(client);
    expect(srv.connections).toBe(3);
  });

  it('should treat an HTTP/1.0 answer as closing unless it says keep-alive', async () => {
    const { srv, client } = await setup((s, _h, _n, conn) => {
      s.write(conn === 0 ? 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok' : 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
    });
    await call(client);
    await call(client);
    await call(client);
    expect(srv.connections).toBe(2);
  });

  it('should queue requests beyond UPSTREAM_MAX_CONNECTIONS and serve them in order', async () => {
    const { srv, client } = await setup((s) => s.write(OK), { maxConnections: 2 });
    const all = Array.from({ length: 6 }, () => call(client));
    expect(client.queued).toBe(4);
    const rs = await Promise.all(all);
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(srv.connections).toBe(2);
  });

  it('should time out a request queued behind a stalled app after UPSTREAM_TIMEOUT_MS, not after the requests ahead of it', async () => {
    // One connection, and an app that never answers: the first request times out on its socket;
    // the queued ones must time out in the queue, at about the same time, not one timeout each.
    const { srv, client } = await setup(() => undefined, { maxConnections: 1, timeoutMs: 200 });
    const all = Array.from({ length: 5 }, () => call(client));
    expect(client.queued).toBe(4);
    const rs = await Promise.all(all);
    expect(rs.map((r) => (r.error as (Error & { code?: string }) | undefined)?.code)).toEqual(Array(5).fill('UPSTREAM_HEADERS_TIMEOUT'));
    expect(client.queued).toBe(0);
    // Each queued request used to get the connection freed by the one before it, and a timeout of its own.
    expect(srv.connections).toBe(1);
  });

  it('should stop reading while paused and deliver everything after resume', async () => {
    const size = 16 * 1024 * 1024;
    const { client } = await setup((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
      s.write(Buffer.alloc(size, 'b'));
    });
    let ctrl: Controller | undefined;
    let received = 0;
    let onPause!: () => void;
    const pausedNow = new Promise<void>((r) => (onPause = r));
    const done = call(
      client,
      {},
      {
        onData: (c, chunk) => {
          received += chunk.length;
          if (ctrl === undefined) {
            ctrl = c;
            c.pause();
            onPause();
          }
        },
      },
    );
    // 16 MiB were written at once: the kernel has bytes ready for the client on every turn of the
    // loop. Paused, none is delivered however many turns pass (unpaused, the next turn would).
    await pausedNow;
    const whilePaused = received;
    await turnLoop(() => false, 200);
    expect(received).toBe(whilePaused);
    expect(received).toBeLessThan(size);
    ctrl!.resume();
    const r = await done;
    expect(r.error).toBeUndefined();
    expect(r.body.length).toBe(size);
  });

  it('should send an idempotent bodiless request again when a reused socket turns out closed', async () => {
    const { srv, client } = await setup((s, _h, n) => {
      if (n === 1) s.write(OK);
      else s.destroy();
    });
    expect((await call(client)).status).toBe(200);
    const r = await call(client);
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(200);
    expect(srv.connections).toBe(2);
  });

  it('should not send a POST again', async () => {
    const { srv, client } = await setup((s, _h, n) => {
      if (n === 1) s.write(OK);
      else s.destroy();
    });
    await call(client);
    const post = await call(client, { method: 'POST', headers: ['content-length', '1'], body: Readable.from([Buffer.from('x')]) });
    expect(post.error?.code).toBe(UPSTREAM_CLOSED);
    expect(srv.connections).toBe(1);
  });

  it('should not send again a request whose fresh socket closed', async () => {
    const { srv, client } = await setup((s) => s.destroy());
    expect((await call(client)).error?.code).toBe(UPSTREAM_CLOSED);
    expect(srv.connections).toBe(1);
  });

  it('should drop an idle connection that sends unasked-for bytes', async () => {
    const { srv, client } = await setup((s) => s.write(OK));
    await call(client);
    expect(client.connections).toBe(1);
    // Idle now: bytes nobody asked for, and the client hangs up (the app's end sees it close).
    srv.sockets[0].write('HTTP/1.1 200 OK\r\n\r\n');
    await srv.until(() => srv.sockets[0].destroyed);
    await turnLoop(() => client.connections === 0);
    expect(client.connections).toBe(0);
  });

  it('should fail the exchange and drop the connection when the request body breaks', async () => {
    const { srv, client } = await setup(() => undefined);
    const body = new Readable({ read() {} });
    const pending = call(client, { method: 'POST', headers: ['content-length', '10'], body });
    body.push(Buffer.from('abc'));
    await srv.until(() => srv.received[0]?.endsWith('abc') === true);
    body.destroy(Object.assign(new Error('client aborted'), { code: 'ECONNRESET' }));
    const r = await pending;
    expect(r.error?.message).toBe('client aborted');
    expect(srv.received[0]).toMatch(/\r\n\r\nabc$/);
    expect(client.connections).toBe(0);
  });

  it('should report a refused connection with its socket error code', async () => {
    const srv = await rawServer(() => undefined);
    await srv.close();
    const client = new UpstreamClient({ host: '127.0.0.1', port: srv.port, timeoutMs: 1000, maxConnections: 0 });
    clients.push(client);
    expect((await call(client)).error?.code).toBe('ECONNREFUSED');
    expect(client.connections).toBe(0);
  });

  it('should abort: the socket is closed and nothing more is delivered', async () => {
    let closed!: () => void;
    const gone = new Promise<void>((r) => (closed = r));
    const { client } = await setup((s) => {
      s.on('close', () => closed());
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab');
    });
    const r = await call(client, {}, { onData: (c) => c.abort(new Error('client left')) });
    expect(r.error?.message).toBe('client left');
    await gone;
    expect(client.connections).toBe(0);
  });
});

describe('upstream client: misbehaving upstreams are errors', () => {
  it.each([
    ['a status that is not three digits', 'HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n'],
    ['another protocol', 'ICY 200 OK\r\n\r\n'],
    ['HTTP/2 in a status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['a control byte in a header value', 'HTTP/1.1 200 OK\r\nX-A: b\x01c\r\nContent-Length: 0\r\n\r\n'],
    ['a space in a header name', 'HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['an obsolete folded header line', 'HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n'],
    ['a bare CR inside the head', 'HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n'],
    ['a duplicate Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'],
    ['conflicting Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok'],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['an unknown Transfer-Encoding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
    ['two Transfer-Encoding headers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size too large', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['a chunk longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size line ending in a bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n'],
    ['an unasked-for 101', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
  ])('should fail on %s', async (_what, resp) => {
    const { client } = await setup((s) => writeSlowly(s, [resp.slice(0, 7), resp.slice(7)]));
    const r = await call(client);
    expect(r.error?.code).toBe(UPSTREAM_BAD_RESPONSE);
    expect(client.connections).toBe(0);
  });

  it('should fail on a response head larger than the limit', async () => {
    const { client } = await setup(
      (s) => {
        s.write('HTTP/1.1 200 OK\r\n');
        for (let i = 0; i < 100; i++) s.write(`X-Filler-${i}: ${'f'.repeat(200)}\r\n`);
      },
      { maxHeadBytes: 8192 },
    );
    const r = await call(client);
    expect(r.error?.code).toBe(UPSTREAM_BAD_RESPONSE);
    expect(r.error?.message).toMatch(/too large/);
  });

  it('should fail when the upstream closes before the end of a Content-Length body', async () => {
    const { client } = await setup((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'));
    const r = await call(client);
    expect(r.started).toBe(true);
    expect(r.body.toString()).toBe('only this');
    expect(r.error?.code).toBe(UPSTREAM_CLOSED);
  });

  it('should fail when the upstream closes in the middle of a chunked body', async () => {
    const { client } = await setup((s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'));
    const r = await call(client);
    expect(r.error?.code).toBe(UPSTREAM_CLOSED);
  });

  it('should time out a head that never comes', async () => {
    const { client } = await setup(() => undefined, { timeoutMs: 150 });
    const r = await call(client);
    expect(r.error?.code).toBe(UPSTREAM_HEADERS_TIMEOUT);
    expect(client.connections).toBe(0);
  });

  it('should time out a body that stalls, but not one that keeps moving slowly', async () => {
    const { client } = await setup(
      (s, head) => {
        if (head.includes('/stall')) {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
          return;
        }
        // 10 bytes, one every 50 ms: 500 ms in all, far beyond the 200 ms idle limit.
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
        let i = 0;
        const t = setInterval(() => {
          if (s.destroyed || i === 10) return clearInterval(t);
          s.write(String(i++));
        }, 50);
      },
      { timeoutMs: 200 },
    );
    const stalled = await call(client, { path: '/stall' });
    expect(stalled.error?.code).toBe(UPSTREAM_BODY_TIMEOUT);
    expect(stalled.body.toString()).toBe('abc');
    const slow = await call(client, { path: '/slow' });
    expect(slow.error).toBeUndefined();
    expect(slow.body.toString()).toBe('0123456789');
  });

  it('should not reuse a connection that sent bytes after the end of a response', async () => {
    const { srv, client } = await setup((s) => s.write(`${OK}JUNK`));
    expect((await call(client)).body.toString()).toBe('hello');
    expect((await call(client)).body.toString()).toBe('hello');
    expect(srv.connections).toBe(2);
  });

  it('should fail requests in flight and queued when closed', async () => {
    const { client } = await setup(() => undefined, { maxConnections: 1 });
    const a = call(client);
    const b = call(client);
    client.close();
    expect((await a).error?.code).toBe(UPSTREAM_CLOSED);
    expect((await b).error?.code).toBe(UPSTREAM_CLOSED);
  });
});

describe('upstream client: a connection belongs to one client connection (issue 18)', () => {
  /** Which server connection (0, 1, ...) answered: the app writes it into the body. */
  const byConn = (s: net.Socket, _head: string, _n: number, conn: number): void => {
    const body = `conn ${conn}`;
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  };
  const closedCount = (srv: RawServer): number => srv.sockets.filter((s) => s.destroyed || s.readableEnded).length;

  it('should reuse a connection for the same owner, and never for another', async () => {
    const { srv, client } = await setup(byConn);
    const a = {};
    const b = {};
    expect((await call(client, { owner: a })).body.toString()).toBe('conn 0');
    expect((await call(client, { owner: a })).body.toString()).toBe('conn 0');
    expect((await call(client, { owner: b })).body.toString()).toBe('conn 1');
    expect((await call(client, { owner: a })).body.toString()).toBe('conn 0');
    expect(srv.connections).toBe(2);
  });

  it('should close an owner’s idle connections when it is dropped, and a busy one when its answer ends', async () => {
    let hold: net.Socket | undefined;
    const { srv, client } = await setup((s, head, n, conn) => {
      if (head.includes('/hold')) hold = s;
      else byConn(s, head, n, conn);
    });
    const a = {};
    const b = {};
    await call(client, { owner: a });
    const pending = call(client, { owner: b, path: '/hold' });
    await srv.until(() => hold !== undefined);
    client.dropOwner(a);
    client.dropOwner(b);
    // a's idle connection goes at once; b's stays until its answer has been read.
    await srv.until(() => closedCount(srv) === 1);
    expect(srv.sockets[0].readableEnded || srv.sockets[0].destroyed).toBe(true);
    hold!.write(OK);
    expect((await pending).status).toBe(200);
    await srv.until(() => closedCount(srv) === 2);
    expect(client.connections).toBe(0);
  });

  it('should close another owner’s idle connection to make room at UPSTREAM_MAX_CONNECTIONS', async () => {
    const { srv, client } = await setup(byConn, { maxConnections: 1 });
    expect((await call(client, { owner: {} })).body.toString()).toBe('conn 0');
    expect((await call(client, { owner: {} })).body.toString()).toBe('conn 1');
    await srv.until(() => closedCount(srv) === 1);
    expect(client.connections).toBe(1);
  });

  it('should not hand a freed connection to a queued request of another owner, but open it a new one', async () => {
    let hold: net.Socket | undefined;
    const { srv, client } = await setup((s, head, n, conn) => {
      if (head.includes('/hold')) hold = s;
      else byConn(s, head, n, conn);
    });
    const capped = new UpstreamClient({ host: '127.0.0.1', port: srv.port, timeoutMs: 5000, maxConnections: 1 });
    clients.push(capped, client);
    const first = call(capped, { owner: {}, path: '/hold' });
    await srv.until(() => hold !== undefined);
    const second = call(capped, { owner: {} });
    expect(capped.queued).toBe(1);
    hold!.write(OK);
    expect((await first).status).toBe(200);
    expect((await second).body.toString()).toBe('conn 1');
    expect(srv.connections).toBe(2);
  });

  it('should open a connection per request with keepAlive false, each asking Connection: close', async () => {
    const { srv, client } = await setup(byConn, { keepAlive: false });
    const a = {};
    for (let i = 0; i < 3; i++) expect((await call(client, { owner: a })).body.toString()).toBe(`conn ${i}`);
    expect(srv.received.every((r) => /\r\nconnection: close\r\n/i.test(r))).toBe(true);
    await srv.until(() => closedCount(srv) === 3);
  });
});
