/**
 * Graceful shutdown of the built sidecar process under load: SIGTERM while requests (slow ones,
 * a long upload, a steady stream of fast ones) are in flight. The app holds the slow requests and
 * the test sends the upload's second half only once the drain has begun, so both are in flight
 * during the drain by construction, not by timing.
 */
import http from 'node:http';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { spawnSidecar, waitForLog } from '../helpers/sidecar';
import { request } from '../helpers/net';

describe('graceful shutdown', () => {
  let upstream: Upstream;
  /** The slow requests the app holds, answered when the test says so. */
  const held: (() => void)[] = [];
  let heldChanged: () => void = () => undefined;
  const untilHeld = async (n: number) => {
    while (held.length < n) await new Promise<void>((r) => (heldChanged = r));
  };

  beforeAll(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.url?.startsWith('/slow')) {
          req.resume();
          held.push(() => res.end('slow done'));
          heldChanged();
          return;
        }
        if (req.url === '/upload') {
          let n = 0;
          req.on('data', (c: Buffer) => (n += c.length));
          req.on('end', () => res.end(String(n)));
          return;
        }
        req.resume();
        req.on('end', () => res.end('fast'));
      },
      { stream: true },
    );
  });
  afterAll(async () => {
    await upstream.close();
  });

  it('should finish every in-flight request, report not-ready, then exit 0', async () => {
    // The delay is the window in which the sidecar still accepts and says it is not ready.
    const child = await spawnSidecar({ UPSTREAM_URL: upstream.url, SHUTDOWN_DELAY_MS: '2000', SHUTDOWN_TIMEOUT_MS: '30000', LOG_LEVEL: 'info' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

    // A steady load of fast requests over keep-alive connections.
    let stopLoad = false;
    const fast = { ok: 0, failed: 0, started: 0 };
    const loop = async (): Promise<void> => {
      while (!stopLoad) {
        fast.started++;
        try {
          const r = await request(child.mainPort, '/fast', { agent });
          if (r.status === 200) fast.ok++;
          else fast.failed++;
        } catch {
          // Connections refused after the listener closed are expected; in-flight ones are not.
          break;
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];

    // Slow requests the app holds, and an upload whose second half is sent during the drain.
    const slow = Array.from({ length: 5 }, (_, i) => request(child.mainPort, `/slow/${i}`));
    const uploadBytes = 8 * 1024 * 1024;
    const half = Buffer.alloc(uploadBytes / 2, 'u');
    let uploadReq!: http.ClientRequest;
    const upload = new Promise<string>((resolve, reject) => {
      uploadReq = http.request(
        { host: '127.0.0.1', port: child.mainPort, path: '/upload', method: 'POST', agent: false, headers: { 'content-length': uploadBytes } },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(b));
        },
      );
      uploadReq.on('error', reject);
    });
    await new Promise<void>((resolve) => uploadReq.write(half, () => resolve()));

    await untilHeld(5);
    child.proc.kill('SIGTERM');
    await waitForLog(child, (l) => l.msg === 'draining');

    // During the drain delay the sidecar still answers, but says it is not ready.
    expect((await request(child.metricsPort, '/readyz')).status).toBe(503);
    uploadReq.end(half);
    for (const answer of held) answer();

    // Answered in full, all released after the drain had begun.
    const slowReplies = await Promise.all(slow);
    expect(slowReplies.map((r) => [r.status, r.text])).toEqual(Array(5).fill([200, 'slow done']));
    expect(await upload).toBe(String(uploadBytes));

    const code = await child.exited;
    stopLoad = true;
    await Promise.all(loops);
    agent.destroy();

    expect(code).toBe(0);
    expect(fast.ok).toBeGreaterThan(10);
    expect(fast.failed).toBe(0);
    const msgs = child.logs.map((l) => l.msg);
    expect(msgs).toEqual(expect.arrayContaining(['shutdown requested', 'draining', 'stopped']));
    expect(child.logs.find((l) => l.msg === 'stopped')).toMatchObject({ forced: false });
  });

  it('should stop waiting at SHUTDOWN_TIMEOUT_MS and still exit', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const hang = await startUpstream(() => arrived()); // never answers
    const child = await spawnSidecar({ UPSTREAM_URL: hang.url, SHUTDOWN_TIMEOUT_MS: '300' });
    const pending = request(child.mainPort, '/hang').catch((e: Error) => e);
    await reached;
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    // The request still hanging at the bound is cut off rather than left to hold the pod.
    expect(await pending).toMatchObject({ code: 'ECONNRESET' });
    expect(child.logs.find((l) => l.msg === 'stopped')).toMatchObject({ forced: true });
    await hang.close();
  });
});
