/**
 * Graceful shutdown of the built sidecar process under load: SIGTERM while requests (slow ones,
 * a long upload, a steady stream of fast ones) are in flight.
 */
import http from 'node:http';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { spawnSidecar } from '../helpers/sidecar';
import { request } from '../helpers/net';

describe('graceful shutdown', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.url?.startsWith('/slow')) {
          req.resume();
          setTimeout(() => res.end('slow done'), 800);
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
    const child = await spawnSidecar({ UPSTREAM_URL: upstream.url, SHUTDOWN_DELAY_MS: '300', SHUTDOWN_TIMEOUT_MS: '10000', LOG_LEVEL: 'info' });
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

    // Slow requests and an upload that will still be running when SIGTERM arrives.
    const slow = Array.from({ length: 5 }, (_, i) => request(child.mainPort, `/slow/${i}`));
    const uploadBytes = 8 * 1024 * 1024;
    const upload = new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: child.mainPort, path: '/upload', method: 'POST', agent: false, headers: { 'content-length': uploadBytes } },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      // Trickle the body so the upload spans the shutdown.
      let sent = 0;
      const chunk = Buffer.alloc(512 * 1024, 'u');
      const timer = setInterval(() => {
        req.write(chunk);
        sent += chunk.length;
        if (sent >= uploadBytes) {
          clearInterval(timer);
          req.end();
        }
      }, 60);
    });

    await new Promise((r) => setTimeout(r, 300));
    expect(upstream.seen.filter((s) => s.url.startsWith('/slow')).length).toBe(5);
    child.proc.kill('SIGTERM');

    // During the drain delay the sidecar still answers, but says it is not ready.
    await new Promise((r) => setTimeout(r, 100));
    expect((await request(child.metricsPort, '/readyz')).status).toBe(503);

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
  }, 30000);

  it('should stop waiting at SHUTDOWN_TIMEOUT_MS and still exit', async () => {
    const hang = await startUpstream(() => undefined); // never answers
    const child = await spawnSidecar({ UPSTREAM_URL: hang.url, SHUTDOWN_TIMEOUT_MS: '300' });
    const pending = request(child.mainPort, '/hang').catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    // The request still hanging at the bound is cut off rather than left to hold the pod.
    expect(await pending).toMatchObject({ code: 'ECONNRESET' });
    expect(child.logs.find((l) => l.msg === 'stopped')).toMatchObject({ forced: true });
    await hang.close();
  });
});
