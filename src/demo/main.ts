/**
 * `npm run demo`: the demo app on 127.0.0.1:8000, a web-role sidecar in front of it on :8080
 * (serving /debug/metrics on the main port), a worker-role sidecar on :8491, and a little
 * traffic, then the curl lines to try. Ctrl-C stops everything. The sidecars are the real
 * `node dist/main.js`, configured only through their environment, as in a pod.
 * Ports: DEMO_APP_PORT, DEMO_WEB_PORT, DEMO_WORKER_PORT. DEMO_DURATION_S stops it after N s.
 */
import http from 'node:http';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createDemoApp, randomPath } from './app';

const appPort = Number(process.env.DEMO_APP_PORT ?? 8000);
const webPort = Number(process.env.DEMO_WEB_PORT ?? 8080);
const workerPort = Number(process.env.DEMO_WORKER_PORT ?? 8491);
const duration = Number(process.env.DEMO_DURATION_S ?? 0);
const mainJs = path.join(__dirname, '..', 'main.js');

function startSidecar(name: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [mainJs], {
    env: { PATH: process.env.PATH ?? '', STATSD_PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout?.on('data', (c: Buffer) => {
    for (const line of c.toString('utf8').trimEnd().split('\n')) {
      // The open-endpoint warning is expected in the demo; show anything else.
      if (!line.includes('metrics endpoints are open')) process.stdout.write(`[${name}] ${line}\n`);
    }
  });
  return child;
}

async function waitHealthy(port: number, p: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      }).on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing healthy on port ${port}`);
}

async function main(): Promise<void> {
  const app = createDemoApp();
  await new Promise<void>((resolve, reject) => app.once('error', reject).listen(appPort, '127.0.0.1', resolve));

  const web = startSidecar('web', {
    LISTEN_PORT: String(webPort),
    UPSTREAM_URL: `http://127.0.0.1:${appPort}`,
    SERVE_PROMETHEUS_ENDPOINT: 'true',
    PROMETHEUS_PORT: '0',
    APP_NAME: 'demo',
  });
  const worker = startSidecar('worker', { LISTEN_PORT: '0', PROMETHEUS_PORT: String(workerPort), APP_NAME: 'demo-worker' });
  const children = [web, worker];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(traffic);
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    app.close();
    process.exit(code);
  };
  for (const c of children) c.once('exit', (code) => !stopping && (console.error(`a sidecar exited (${code}); stopping the demo`), void stop(1)));

  await waitHealthy(webPort, '/debug/healthz');
  await waitHealthy(workerPort, '/healthz');

  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const traffic = setInterval(() => {
    http.get({ host: '127.0.0.1', port: webPort, path: randomPath(), agent }, (res) => res.resume()).on('error', () => undefined);
  }, 100);

  const base = `http://127.0.0.1:${webPort}`;
  console.log(`
metrics-sidecar demo is running (Ctrl-C to stop)

  demo app (the "application")  http://127.0.0.1:${appPort}     (not exposed in a pod)
  web sidecar, main port         ${base}   -> forwards to the app, records RED metrics
  worker sidecar, metrics port   http://127.0.0.1:${workerPort}

Traffic is flowing. Try:

  curl -s ${base}/users/42                                # forwarded to the app
  curl -s ${base}/debug/metrics | grep flask_http_request_total
  curl -s ${base}/debug/metrics | grep 'path="/users/:id"' | head -3
  curl -s -o /dev/null -w '%{http_code}\\n' ${base}/debug/secret   # 404: the app's /debug/ is hidden
  curl -s -o /dev/null -w '%{http_code}\\n' --path-as-is '${base}/%64ebug/secret'   # 404 too
  curl -s -H 'Accept: application/openmetrics-text; version=1.0.0' ${base}/debug/metrics | tail -3
  curl -s http://127.0.0.1:${workerPort}/debug/metrics | grep metrics_sidecar_info
  curl -s http://127.0.0.1:${workerPort}/readyz
`);

  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  if (duration > 0) setTimeout(() => void stop(0), duration * 1000);
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
