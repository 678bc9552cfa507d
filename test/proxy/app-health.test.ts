/**
 * App-aware health (UPSTREAM_HEALTH_PATH), over real sockets with a real app that is stopped and
 * started again on the same port: readiness on both listeners follows the app with hysteresis, the
 * probe never calls the app itself, and /app-health relays the app's answer.
 */
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { ConfigError, loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { Registry } from '../../src/metrics/registry';
import { AppHealth, RELAY_MAX_BODY, type CheckOutcome } from '../../src/proxy/app-health';
import { freePort, request } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';

/** A controllable app on a fixed port: its health answer can change, and it can stop and restart. */
class App {
  health: { status: number; body: string; delayMs?: number; hold?: Promise<void> } = { status: 200, body: 'ok\n' };
  healthRequests = 0;
  private server: http.Server | undefined;
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      if (req.url === '/healthz') {
        this.healthRequests++;
        const { status, body, delayMs, hold } = this.health;
        const reply = () => res.writeHead(status, { 'content-type': 'text/plain', location: '/elsewhere' }).end(body);
        if (hold) void hold.then(reply);
        else if (delayMs) setTimeout(reply, delayMs).unref();
        else reply();
        return;
      }
      res.end('app\n');
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** Polls until `fn` returns true (no wall-clock limit: Jest's test timeout bounds it). */
async function until(fn: () => Promise<boolean>, pauseMs = 20): Promise<void> {
  while (!(await fn())) await new Promise((r) => setTimeout(r, pauseMs));
}

function counter(text: string, name: string, outcome: string): number {
  const m = new RegExp(`^${name}\\{outcome="${outcome}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const FAILURES = 3;
const SUCCESSES = 2;

describe('app-aware health (UPSTREAM_HEALTH_PATH)', () => {
  let app: App;
  let sc: Running;

  beforeEach(async () => {
    app = new App(await freePort());
    await app.start();
  });
  afterEach(async () => {
    await sc?.stop();
    await app.stop();
  });

  const start = (env: Record<string, string> = {}) =>
    startSidecar({
      UPSTREAM_URL: `http://127.0.0.1:${app.port}`,
      UPSTREAM_HEALTH_PATH: '/healthz',
      UPSTREAM_HEALTH_INTERVAL_MS: '100',
      UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
      UPSTREAM_HEALTH_FAILURE_THRESHOLD: String(FAILURES),
      UPSTREAM_HEALTH_SUCCESS_THRESHOLD: String(SUCCESSES),
      ...env,
    });
  const readyz = async () => [(await request(sc.metricsPort, '/readyz')).status, (await request(sc.mainPort, '/debug/readyz')).status];
  const checks = async (outcome: string) => counter((await request(sc.metricsPort, '/debug/metrics')).text, 'metrics_sidecar_app_health_checks_total', outcome);

  it('should turn /readyz and /debug/readyz 503 after the configured failed checks when the app stops, and 200 again once it is back', async () => {
    sc = await start();
    await until(async () => (await readyz()).every((s) => s === 200));
    expect((await request(sc.metricsPort, '/debug/metrics')).text).toMatch(/^metrics_sidecar_app_healthy 1$/m);

    await app.stop();
    await until(async () => (await readyz()).includes(503));
    // Both listeners agree, and it took at least FAILURES failed checks to get here.
    expect(await readyz()).toEqual([503, 503]);
    expect(await checks('error')).toBeGreaterThanOrEqual(FAILURES);
    const body = (await request(sc.metricsPort, '/readyz')).text;
    expect(body).toMatch(/^app unhealthy: ECONNREFUSED/);
    expect((await request(sc.metricsPort, '/debug/metrics')).text).toMatch(/^metrics_sidecar_app_healthy 0$/m);
    // Liveness is the sidecar's own: a down app must not get the sidecar restarted.
    expect((await request(sc.metricsPort, '/healthz')).status).toBe(200);
    expect((await request(sc.mainPort, '/debug/healthz')).status).toBe(200);

    const okBefore = await checks('ok');
    await app.start();
    await until(async () => (await readyz()).every((s) => s === 200));
    expect(await checks('ok')).toBeGreaterThanOrEqual(okBefore + SUCCESSES);
    expect(sc.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['app is unhealthy: readiness answers 503', 'app is healthy: readiness follows the sidecar again']),
    );
  });

  it('should count an error status and a timeout of the health path as failures', async () => {
    sc = await start({ UPSTREAM_HEALTH_TIMEOUT_MS: '200' });
    await until(async () => (await readyz()).every((s) => s === 200));
    app.health = { status: 500, body: 'db down\n' };
    await until(async () => (await readyz()).every((s) => s === 503));
    expect(await checks('bad_status')).toBeGreaterThanOrEqual(FAILURES);
    app.health = { status: 204, body: '' };
    await until(async () => (await readyz()).every((s) => s === 200));
    app.health = { status: 200, body: 'ok\n', delayMs: 2000 };
    await until(async () => (await readyz()).every((s) => s === 503));
    expect(await checks('timeout')).toBeGreaterThanOrEqual(FAILURES);
  });

  it('should stay unready at start until the app answers', async () => {
    await app.stop();
    sc = await start();
    await until(async () => (await checks('error')) >= 2);
    expect(await readyz()).toEqual([503, 503]);
    await app.start();
    await until(async () => (await readyz()).every((s) => s === 200));
  });

  it('should never call the app on the probe’s own request path', async () => {
    sc = await start({ UPSTREAM_HEALTH_INTERVAL_MS: '3600000', UPSTREAM_HEALTH_SUCCESS_THRESHOLD: '1' });
    await until(async () => (await readyz()).every((s) => s === 200));
    const seen = app.healthRequests;
    for (let i = 0; i < 20; i++) await readyz();
    expect(app.healthRequests).toBe(seen);
  });

  it('should relay the app’s health status and body on /app-health and /debug/app-health', async () => {
    sc = await start({ UPSTREAM_HEALTH_TIMEOUT_MS: '300' });
    for (const [port, p] of [
      [sc.metricsPort, '/app-health'],
      [sc.mainPort, '/debug/app-health'],
    ] as const) {
      app.health = { status: 200, body: 'ok\n' };
      let r = await request(port, p);
      expect([r.status, r.text]).toEqual([200, 'ok\n']);
      expect(r.headers['cache-control']).toBe('no-store');
      app.health = { status: 503, body: '{"db":"down"}' };
      r = await request(port, p);
      expect([r.status, r.text]).toEqual([503, '{"db":"down"}']);
      // A redirect is healthy for the kubelet; its Location (the app's) is not passed on.
      app.health = { status: 302, body: '' };
      r = await request(port, p);
      expect(r.status).toBe(302);
      expect(r.headers.location).toBeUndefined();
      // Long bodies are cut.
      app.health = { status: 200, body: 'x'.repeat(100_000) };
      r = await request(port, p);
      expect([r.status, r.body.length]).toEqual([200, RELAY_MAX_BODY]);
      app.health = { status: 200, body: 'late', delayMs: 1500 };
      r = await request(port, p);
      expect(r.status).toBe(504);
    }
    await app.stop();
    expect((await request(sc.metricsPort, '/app-health')).status).toBe(502);
    expect((await request(sc.mainPort, '/debug/app-health')).status).toBe(502);
    const text = (await request(sc.metricsPort, '/debug/metrics')).text;
    expect(counter(text, 'metrics_sidecar_app_health_relays_total', 'ok')).toBe(6);
    expect(counter(text, 'metrics_sidecar_app_health_relays_total', 'timeout')).toBe(2);
    expect(counter(text, 'metrics_sidecar_app_health_relays_total', 'error')).toBe(2);
  });

  it('should relay a status outside 200-599 as 502 (the app answered something no HTTP client expects)', async () => {
    sc = await start();
    app.health = { status: 600, body: 'odd\n' };
    expect((await request(sc.metricsPort, '/app-health')).status).toBe(502);
    expect((await request(sc.mainPort, '/debug/app-health')).status).toBe(502);
  });

  it('should send the app one request for relays that arrive while one is in flight, and give each the answer', async () => {
    sc = await start({ UPSTREAM_HEALTH_INTERVAL_MS: '3600000', UPSTREAM_HEALTH_SUCCESS_THRESHOLD: '1', UPSTREAM_HEALTH_TIMEOUT_MS: '60000' });
    await until(async () => (await readyz()).every((s) => s === 200));
    const seen = app.healthRequests;
    let release!: () => void;
    app.health = { status: 200, body: 'shared\n', hold: new Promise<void>((r) => (release = r)) };
    const callers = Array.from({ length: 20 }, (_, i) => request(i % 2 ? sc.mainPort : sc.metricsPort, i % 2 ? '/debug/app-health' : '/app-health'));
    // Every caller is in flight at the sidecar before the app answers.
    await until(async () => sc.sidecar.lifecycle.openResponses >= 20);
    expect(app.healthRequests).toBe(seen + 1);
    release();
    const replies = await Promise.all(callers);
    expect(replies.map((r) => [r.status, r.text])).toEqual(Array.from({ length: 20 }, () => [200, 'shared\n']));
    expect(app.healthRequests).toBe(seen + 1);
    // The next relay asks the app again.
    app.health = { status: 503, body: 'down\n' };
    expect((await request(sc.metricsPort, '/app-health')).status).toBe(503);
    expect(app.healthRequests).toBe(seen + 2);
  });

  it('should answer 404 on /app-health without UPSTREAM_HEALTH_PATH, and keep readiness the sidecar’s own', async () => {
    sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${app.port}` });
    await app.stop();
    expect((await request(sc.metricsPort, '/app-health')).status).toBe(404);
    expect((await request(sc.mainPort, '/debug/app-health')).status).toBe(404);
    expect(await readyz()).toEqual([200, 200]);
    expect(app.healthRequests).toBe(0);
  });
});

describe('app-aware health with an IPv6 upstream', () => {
  it('should check and relay an app on [::1] (the URL brackets are not part of the address)', async () => {
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('v6 ok\n'));
    await new Promise<void>((resolve) => server.listen(0, '::1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const sc = await startSidecar({ UPSTREAM_URL: `http://[::1]:${port}`, UPSTREAM_HEALTH_PATH: '/healthz', UPSTREAM_HEALTH_INTERVAL_MS: '100' });
    try {
      await until(async () => (await request(sc.metricsPort, '/readyz')).status === 200);
      const relayed = await request(sc.metricsPort, '/app-health');
      expect([relayed.status, relayed.text]).toEqual([200, 'v6 ok\n']);
    } finally {
      await sc.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('AppHealth.stop()', () => {
  it('should end the check and the relay in flight: the app sees both connections close, and the relay answers at once', async () => {
    // An app that reads health requests and never answers them.
    const sockets = new Set<net.Socket>();
    let requests = 0;
    let wake = (): void => undefined;
    const changed = (): void => wake();
    const until = async (cond: () => boolean): Promise<void> => {
      while (!cond()) await new Promise<void>((r) => (wake = r));
    };
    const app = net.createServer((s) => {
      sockets.add(s);
      s.on('data', (d: Buffer) => {
        if (d.includes('\r\n\r\n')) requests++;
        changed();
      });
      s.on('close', () => {
        sockets.delete(s);
        changed();
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const port = (app.address() as net.AddressInfo).port;
    try {
      const h = new AppHealth(
        // Neither the interval nor the timeout can end anything during the test: only stop() can.
        { url: new URL(`http://127.0.0.1:${port}/healthz`), intervalMs: 600_000, timeoutMs: 60_000, failureThreshold: 1, successThreshold: 1 },
        new Registry(),
        createLogger('error', () => undefined),
      );
      h.start();
      const relay = h.relay();
      await until(() => requests === 2);
      h.stop();
      expect(await relay).toEqual({ status: 502, body: 'app health path unreachable (stopped)\n' });
      await until(() => sockets.size === 0);
      // A relay after the stop does not reach the app.
      expect((await h.relay()).status).toBe(502);
      expect(requests).toBe(2);
    } finally {
      await new Promise((r) => app.close(r));
    }
  });
});

describe('AppHealth hysteresis', () => {
  it('should follow the model: unready at start, ready after S successes in a row, unready after F failures in a row', () => {
    const outcomes: CheckOutcome[] = ['ok', 'bad_status', 'timeout', 'error'];
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.array(fc.constantFrom(...outcomes), { maxLength: 60 }), (F, S, seq) => {
        const h = new AppHealth(
          { url: new URL('http://127.0.0.1:1/h'), intervalMs: 1000, timeoutMs: 100, failureThreshold: F, successThreshold: S },
          new Registry(),
          createLogger('error', () => undefined),
        );
        let ready = false;
        let ok = 0;
        let bad = 0;
        for (const o of seq) {
          h.record({ outcome: o });
          if (o === 'ok') {
            ok++;
            bad = 0;
            if (ok >= S) ready = true;
          } else {
            bad++;
            ok = 0;
            if (bad >= F) ready = false;
          }
          expect(h.ready()).toBe(ready);
        }
      }),
    );
  });
});

describe('UPSTREAM_HEALTH_PATH configuration', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => p.variable);
      throw err;
    }
  };

  it('should build the health URL on UPSTREAM_URL, keeping a query', () => {
    const c = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:8000', UPSTREAM_HEALTH_PATH: '/health?full=1' });
    expect(c.appHealth?.url.href).toBe('http://127.0.0.1:8000/health?full=1');
    expect(c.appHealth).toMatchObject({ intervalMs: 5000, timeoutMs: 2000, failureThreshold: 3, successThreshold: 1 });
    expect(loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:8000' }).appHealth).toBeUndefined();
  });

  it.each([
    ['no UPSTREAM_URL', { UPSTREAM_HEALTH_PATH: '/healthz' }, 'UPSTREAM_HEALTH_PATH'],
    ['a relative path', { UPSTREAM_URL: 'http://127.0.0.1:8000', UPSTREAM_HEALTH_PATH: 'healthz' }, 'UPSTREAM_HEALTH_PATH'],
    ['another host', { UPSTREAM_URL: 'http://127.0.0.1:8000', UPSTREAM_HEALTH_PATH: '//evil.example/h' }, 'UPSTREAM_HEALTH_PATH'],
    [
      'a zero threshold',
      { UPSTREAM_URL: 'http://127.0.0.1:8000', UPSTREAM_HEALTH_PATH: '/h', UPSTREAM_HEALTH_FAILURE_THRESHOLD: '0' },
      'UPSTREAM_HEALTH_FAILURE_THRESHOLD',
    ],
  ])('should refuse %s', (_what, env, variable) => {
    expect(problems(env)).toContain(variable);
  });
});
