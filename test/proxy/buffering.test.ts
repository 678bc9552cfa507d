/**
 * The buffering proxy (issue 18, item 2) over real sockets: request bodies read whole before the
 * app sees them, answers read at the app's speed while the client takes its time, bytes never held
 * back (Server-Sent Events flow), `X-Accel-Buffering: no`, and the minimum data rates that cut
 * slow clients as their own fault (408 `slow_upload`, a close for `slow_read`), never as the app's.
 * Every wait is on an event or on a condition read from the sidecar's metrics.
 */
import http from 'node:http';
import net from 'node:net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { request } from '../helpers/net';
import { parseExposition, value } from '../helpers/exposition';

const MiB = 1024 * 1024;
const running: Running[] = [];
const upstreams: Upstream[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const sc of running.splice(0)) await sc.stop();
  for (const u of upstreams.splice(0)) await u.close();
});

async function sidecar(upstream: Upstream, env: Record<string, string> = {}): Promise<Running> {
  const sc = await startSidecar({
    UPSTREAM_URL: upstream.url,
    UPSTREAM_REQUEST_BUFFER_BYTES: String(64 * 1024),
    CLIENT_MIN_DATA_RATE: '1000',
    CLIENT_MIN_DATA_RATE_GRACE_MS: '300',
    ...env,
  });
  running.push(sc);
  return sc;
}

async function metric(sc: Running, name: string, labels: Record<string, string> = {}): Promise<number> {
  const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
  const v = value(p, name, labels);
  return Number.isNaN(v) ? 0 : v;
}

async function until(cond: () => Promise<boolean> | boolean): Promise<void> {
  for (;;) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
}

/** A raw client connection to the main port. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
    sockets.push(s);
  });
}

/** The first bytes the client receives (its answer's head). */
function answer(s: net.Socket): Promise<string> {
  return new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
}

function closed(s: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
}

describe('request bodies', () => {
  it.each([
    ['with a Content-Length', (n: number) => `content-length: ${n}\r\n`, (b: string) => b, (b: string) => b],
    [
      'chunked',
      () => 'transfer-encoding: chunked\r\n',
      (b: string) => `${b.length.toString(16)}\r\n${b}\r\n`,
      (b: string) => `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
    ],
  ])('should be read whole before the app sees the request (%s), and sent with their length', async (_what, framing, first, last) => {
    const up = await startUpstream();
    upstreams.push(up);
    const sc = await sidecar(up);
    const s = await connect(sc.mainPort);
    const half = 'a'.repeat(5000);
    s.write(`POST /orders HTTP/1.1\r\nhost: app\r\n${framing(10000)}\r\n${first(half)}`);
    await until(async () => (await metric(sc, 'metrics_sidecar_proxy_buffered_bytes')) === 5000);
    expect(up.seen).toEqual([]);
    const answered = answer(s);
    s.write(last(half));
    expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0].body.length).toBe(10000);
    expect(up.seen[0].headers['content-length']).toBe('10000');
    expect(up.seen[0].headers['transfer-encoding']).toBeUndefined();
    expect(await metric(sc, 'metrics_sidecar_proxy_buffered_bytes')).toBe(0);
  });

  it('should stream a body larger than UPSTREAM_REQUEST_BUFFER_BYTES: the app sees the request before its end', async () => {
    let started!: () => void;
    const reached = new Promise<void>((r) => (started = r));
    const up = await startUpstream(
      (req, res) => {
        started();
        req.resume();
        req.on('end', () => res.end('ok'));
      },
      { stream: true },
    );
    upstreams.push(up);
    const sc = await sidecar(up);
    const s = await connect(sc.mainPort);
    s.write(`POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 200000\r\n\r\n${'b'.repeat(70000)}`);
    await reached;
    const answered = answer(s);
    s.write('b'.repeat(130000));
    expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('should answer an upload below the minimum rate 408 as the client’s fault: the app never sees it, no exception', async () => {
    const up = await startUpstream();
    upstreams.push(up);
    const sc = await sidecar(up);
    const s = await connect(sc.mainPort);
    const answer = closed(s);
    s.write('POST /orders HTTP/1.1\r\nhost: app\r\ncontent-length: 50000\r\n\r\n0123456789');
    expect(await answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(up.seen).toEqual([]);
    expect(await metric(sc, 'metrics_sidecar_client_errors_total', { reason: 'slow_upload' })).toBe(1);
    expect(await metric(sc, 'flask_http_request_exceptions_total', { method: 'POST', status: '408' })).toBe(0);
    expect(await metric(sc, 'flask_http_request_total', { method: 'POST', status: '408' })).toBe(1);
    expect(sc.logs.filter((l) => (l.level === 'warn' || l.level === 'error') && !String(l.msg).startsWith('metrics endpoints are open'))).toEqual([]);
  });

  it('should count a streamed upload that stalls while the app waits as the client’s 408, not a 504 of the app', async () => {
    const up = await startUpstream(
      (req) => {
        req.resume(); // waits for a body that never ends
      },
      { stream: true },
    );
    upstreams.push(up);
    // No minimum rate: the upstream timeout is what notices the stall.
    const sc = await sidecar(up, { CLIENT_MIN_DATA_RATE: '0', UPSTREAM_TIMEOUT_MS: '300', UPSTREAM_REQUEST_BUFFER_BYTES: '0' });
    const s = await connect(sc.mainPort);
    const answer = closed(s);
    s.write('POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 1000\r\n\r\nabc');
    expect(await answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(await metric(sc, 'metrics_sidecar_client_errors_total', { reason: 'slow_upload' })).toBe(1);
    expect(await metric(sc, 'flask_http_request_exceptions_total', { method: 'POST', status: '504' })).toBe(0);
    expect(sc.logs.filter((l) => l.msg === 'upstream timed out')).toEqual([]);
  });
});

describe('answers', () => {
  /** An app that writes `bytes` and says when its answer is finished (its worker free). */
  async function bigApp(bytes: number): Promise<{ up: Upstream; finished: Promise<void> }> {
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes) });
      const block = Buffer.alloc(64 * 1024, 120);
      let left = bytes;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(block.length, left);
          left -= n;
          if (!res.write(n === block.length ? block : block.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('finish', done);
      pump();
    });
    upstreams.push(up);
    return { up, finished };
  }

  // Big enough that the kernel's socket buffers on both sides (a few MiB each on loopback) cannot hide it.
  const BIG = 48 * MiB;
  const BIG_ENV = { UPSTREAM_RESPONSE_BUFFER_BYTES: String(64 * MiB), PROXY_BUFFER_BYTES_TOTAL: String(96 * MiB) };

  it('should read a 48 MiB answer at the app’s speed while the client reads nothing (the worker is free)', async () => {
    const { up, finished } = await bigApp(BIG);
    const sc = await sidecar(up, BIG_ENV);
    const s = await connect(sc.mainPort);
    s.pause();
    s.write('GET /export HTTP/1.1\r\nhost: app\r\n\r\n');
    await finished;
    // Most of it waits in the sidecar for the client (the rest in the kernel's socket buffers).
    expect(await metric(sc, 'metrics_sidecar_proxy_buffered_bytes')).toBeGreaterThan(16 * MiB);
    // (A paused socket still reads one buffer's worth from the kernel.)
    expect(s.bytesRead).toBeLessThanOrEqual(64 * 1024);
  });

  it('should not hold an answer the app marks X-Accel-Buffering: no, nor pass the header on', async () => {
    let blocked!: () => void;
    const backedUp = new Promise<void>((r) => (blocked = r));
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': String(BIG), 'x-accel-buffering': 'no' });
      const block = Buffer.alloc(64 * 1024, 120);
      let left = BIG;
      const pump = (): void => {
        while (left > 0) {
          left -= block.length;
          if (!res.write(block)) {
            blocked();
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    upstreams.push(up);
    const sc = await sidecar(up, BIG_ENV);
    const s = await connect(sc.mainPort);
    s.pause();
    s.write('GET /export HTTP/1.1\r\nhost: app\r\n\r\n');
    await backedUp;
    // Nothing of it is held for the client beyond Node's own stream buffer: plain backpressure.
    expect(await metric(sc, 'metrics_sidecar_proxy_buffered_bytes')).toBe(0);
    const head = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    s.resume();
    expect(await head).not.toMatch(/x-accel-buffering/i);
  });

  it('should never hold bytes back: each Server-Sent Event reaches the client before the app writes the next', async () => {
    let next: () => void = () => undefined;
    const up = await startUpstream(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let n = 0;
        next = () => {
          if (++n > 3) res.end();
          else res.write(`data: ${n}\n\n`);
        };
        next();
      },
      { stream: true },
    );
    upstreams.push(up);
    const sc = await sidecar(up);
    const events: string[] = [];
    await new Promise<void>((resolve) => {
      http.get({ host: '127.0.0.1', port: sc.mainPort, path: '/events', agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          events.push(d.trim());
          // The app writes the next event only once this one has arrived.
          next();
        });
        res.on('end', () => resolve());
      });
    });
    expect(events).toEqual(['data: 1', 'data: 2', 'data: 3']);
  });

  it('should cut a client that does not take its answer past the grace period (slow_read), recording the app’s status, no exception', async () => {
    const { up, finished } = await bigApp(BIG);
    const sc = await sidecar(up, BIG_ENV);
    const s = await connect(sc.mainPort);
    s.pause();
    s.write('GET /export HTTP/1.1\r\nhost: app\r\n\r\n');
    await finished;
    await until(async () => (await metric(sc, 'metrics_sidecar_client_errors_total', { reason: 'slow_read' })) === 1);
    // The client sees the cut once it reads what reached it (a paused socket holds its end back).
    const gone = new Promise<void>((r) => s.on('close', () => r()));
    s.resume();
    await gone;
    expect(s.bytesRead).toBeLessThan(BIG);
    await until(async () => (await metric(sc, 'flask_http_request_total', { method: 'GET', status: '200' })) === 1);
    expect(await metric(sc, 'flask_http_request_exceptions_total', { method: 'GET', status: '200' })).toBe(0);
    expect(await metric(sc, 'metrics_sidecar_proxy_buffered_bytes')).toBe(0);
  });
});
