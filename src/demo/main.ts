/**
 * `npm run demo`: the demo app on 127.0.0.1:8000, a web-role sidecar in front of it on :8080
 * (serving /debug/metrics and the status page /debug/ on the main port), a worker-role sidecar on
 * :8491 (status page at /), and a little traffic, then the lines to try. The app sends StatsD for
 * the requests it serves to the web sidecar (:9125) and its worker loop sends StatsD for the jobs
 * it processes to the worker sidecar (:9126); both sidecars merge the app's own /metrics
 * (MERGE_TARGETS). Ctrl-C stops everything. The sidecars are the real `node dist/main.js`,
 * configured only through their environment, as in a pod. Everything listens on 127.0.0.1 only.
 * Ports: DEMO_APP_PORT, DEMO_WEB_PORT, DEMO_WORKER_PORT, DEMO_WEB_STATSD_PORT,
 * DEMO_WORKER_STATSD_PORT. DEMO_DURATION_S stops it after N s.
 *
 * Nothing is left running: the sidecars run in their own process group (a terminal's Ctrl-C
 * reaches the demo only, which then sends each sidecar exactly one SIGTERM, so they drain once),
 * and any failure path (a port taken, a sidecar that dies, an exception) stops them before exiting.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createDemoApp, createStatsdSender, DemoAppMetrics, randomPath, startDemoWorker, type StatsdSender } from './app';

const HOST = '127.0.0.1';
const mainJs = path.join(__dirname, '..', 'main.js');

interface Ports {
  app: number;
  web: number;
  worker: number;
  webStatsd: number;
  workerStatsd: number;
}

class DemoError extends Error {}

/** Seconds until the demo stops by itself (0 = never), within what a Node timer can wait. */
function durationFrom(name: string): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 2_000_000) throw new DemoError(`${name}=${JSON.stringify(raw)} is not a number of seconds (0-2000000)`);
  return n;
}

function portFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new DemoError(`${name}=${JSON.stringify(raw)} is not a port number (1-65535)`);
  return n;
}

/**
 * Fails with a message naming the variable when a port is taken, before anything is started.
 * StatsD ports are checked for UDP too: the sidecar listens on both.
 */
async function checkFree(port: number, variable: string, udp = false): Promise<void> {
  const failed = (err: NodeJS.ErrnoException, proto: string) =>
    new DemoError(
      err.code === 'EADDRINUSE'
        ? `${proto} port ${port} on ${HOST} is already in use; choose another with ${variable}=<port> (e.g. ${variable}=${port + 1000} npm run demo)`
        : `cannot listen on ${HOST}:${port} (${proto}, ${variable}): ${err.code ?? err.message}`,
    );
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err: NodeJS.ErrnoException) => reject(failed(err, 'TCP')));
    probe.listen({ port, host: HOST, exclusive: true }, () => probe.close(() => resolve()));
  });
  if (!udp) return;
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.close();
      reject(failed(err, 'UDP'));
    });
    socket.bind(port, HOST, () => socket.close(() => resolve()));
  });
}

function startSidecar(name: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [mainJs], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', LISTEN_HOST: HOST, STATSD_HOST: HOST, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    // Its own process group: a terminal's Ctrl-C (SIGINT to the foreground group) reaches the
    // demo only; the demo then stops the sidecar with one SIGTERM.
    detached: true,
  });
  child.stdout?.on('data', (c: Buffer) => {
    for (const line of c.toString('utf8').trimEnd().split('\n')) {
      // The open-endpoint warning is expected in the demo; show anything else.
      if (!line.includes('metrics endpoints are open')) process.stdout.write(`[${name}] ${line}\n`);
    }
  });
  return child;
}

async function waitHealthy(port: number, p: string, child: ChildProcess, variable: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new DemoError(`the sidecar on port ${port} (${variable}) exited before it was ready (${child.exitCode ?? child.signalCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get({ host: HOST, port, path: p, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        })
        .on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new DemoError(`nothing healthy on port ${port} (${variable})`);
}

const children: ChildProcess[] = [];
let app: http.Server | undefined;
let traffic: NodeJS.Timeout | undefined;
let worker: { stop(): void } | undefined;
const senders: StatsdSender[] = [];
let stopping: Promise<void> | undefined;

/** Stops traffic and the worker loop, each sidecar once (SIGTERM, then SIGKILL past a bound), and the app; idempotent. */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    if (traffic) clearInterval(traffic);
    worker?.stop();
    for (const s of senders) s.close();
    const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of alive) c.kill('SIGTERM');
    await Promise.all(
      alive.map(
        (c) =>
          new Promise<void>((resolve) => {
            const force = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(force);
              resolve();
            });
          }),
      ),
    );
    await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
  })();
  return stopping;
}

// Last resort (an exception on the way out): never leave a sidecar behind.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function main(): Promise<void> {
  const ports: Ports = {
    app: portFrom('DEMO_APP_PORT', 8000),
    web: portFrom('DEMO_WEB_PORT', 8080),
    worker: portFrom('DEMO_WORKER_PORT', 8491),
    webStatsd: portFrom('DEMO_WEB_STATSD_PORT', 9125),
    workerStatsd: portFrom('DEMO_WORKER_STATSD_PORT', 9126),
  };
  const duration = durationFrom('DEMO_DURATION_S');
  const names: [keyof Ports, string][] = [
    ['app', 'DEMO_APP_PORT'],
    ['web', 'DEMO_WEB_PORT'],
    ['worker', 'DEMO_WORKER_PORT'],
    ['webStatsd', 'DEMO_WEB_STATSD_PORT'],
    ['workerStatsd', 'DEMO_WORKER_STATSD_PORT'],
  ];
  for (const [i, [k, variable]] of names.entries()) {
    const clash = names.slice(0, i).find(([other]) => ports[other] === ports[k]);
    if (clash) throw new DemoError(`${variable} and ${clash[1]} are both ${ports[k]}; give each its own port`);
  }
  for (const [k, variable] of names) await checkFree(ports[k], variable, k === 'webStatsd' || k === 'workerStatsd');

  let exit: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (exit = resolve));
  const onSignal = () => exit(0);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal); // the terminal closed: the sidecars, in their own group, would not hear it

  const appMetrics = new DemoAppMetrics();
  const webStatsd = createStatsdSender(ports.webStatsd, HOST);
  const workerStatsd = createStatsdSender(ports.workerStatsd, HOST);
  senders.push(webStatsd, workerStatsd);
  app = createDemoApp({ statsd: webStatsd, metrics: appMetrics });
  await new Promise<void>((resolve, reject) => app!.once('error', reject).listen(ports.app, HOST, resolve));

  // In a pod each sidecar would merge its own container's endpoint; here one app plays both.
  const appMetricsUrl = `http://${HOST}:${ports.app}/metrics`;
  const web = startSidecar('web', {
    LISTEN_PORT: String(ports.web),
    UPSTREAM_URL: `http://${HOST}:${ports.app}`,
    SERVE_PROMETHEUS_ENDPOINT: 'true',
    PROMETHEUS_PORT: '0',
    STATSD_PORT: String(ports.webStatsd),
    MERGE_TARGETS: appMetricsUrl,
    APP_NAME: 'demo',
  });
  const workerSidecar = startSidecar('worker', {
    LISTEN_PORT: '0',
    PROMETHEUS_PORT: String(ports.worker),
    STATSD_PORT: String(ports.workerStatsd),
    MERGE_TARGETS: appMetricsUrl,
    APP_NAME: 'demo-worker',
  });
  children.push(web, workerSidecar);
  for (const [c, what] of [
    [web, `the web sidecar (port ${ports.web}, DEMO_WEB_PORT)`],
    [workerSidecar, `the worker sidecar (port ${ports.worker}, DEMO_WORKER_PORT)`],
  ] as const) {
    c.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`${what} exited (${code ?? signal}); stopping the demo`);
      exit(1);
    });
  }

  await Promise.race([
    (async () => {
      await waitHealthy(ports.web, '/debug/healthz', web, 'DEMO_WEB_PORT');
      await waitHealthy(ports.worker, '/healthz', workerSidecar, 'DEMO_WORKER_PORT');
    })(),
    finished.then(() => {
      throw new DemoError('stopped before the sidecars were ready');
    }),
  ]);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  traffic = setInterval(() => {
    http.get({ host: HOST, port: ports.web, path: randomPath(), agent }, (res) => res.resume()).on('error', () => undefined);
  }, 100);
  worker = startDemoWorker(workerStatsd, appMetrics);

  const base = `http://${HOST}:${ports.web}`;
  const workerBase = `http://${HOST}:${ports.worker}`;
  console.log(`
metrics-sidecar demo is running (Ctrl-C to stop)

  demo app (the "application")  http://${HOST}:${ports.app}     (not exposed in a pod; its own metrics at /metrics)
  web sidecar, main port         ${base}   -> forwards to the app, records RED metrics
                                 StatsD on ${HOST}:${ports.webStatsd} (UDP/TCP), merges ${appMetricsUrl}
  worker sidecar, metrics port   ${workerBase}
                                 StatsD on ${HOST}:${ports.workerStatsd} (UDP/TCP), merges ${appMetricsUrl}

Traffic is flowing: the app sends StatsD to the web sidecar for the requests it serves, its worker
loop to the worker sidecar for the jobs it processes. Try:

  Status pages (open in a browser): what each sidecar sees, its StatsD lines and merge target
    ${`${base}/debug/`.padEnd(40)}the web sidecar's (main port, /debug/)
    ${`${workerBase}/`.padEnd(40)}the worker sidecar's (metrics port, /)

  curl -s ${base}/users/42                                # forwarded to the app
  curl -s ${base}/debug/metrics | grep flask_http_request_total   # RED, from the forwarder
  curl -s ${base}/debug/metrics | grep 'path="/users/:id"' | head -3
  curl -s -o /dev/null -w '%{http_code}\\n' ${base}/debug/secret   # 404: the app's /debug/ is hidden
  curl -s -o /dev/null -w '%{http_code}\\n' --path-as-is '${base}/%64ebug/secret'   # 404 too
  curl -s -H 'Accept: application/openmetrics-text; version=1.0.0' ${base}/debug/metrics | tail -3

  From StatsD: github_api_call_latency and graphql_requests_total (web), github_webhook_latency
  and github_api_call_latency (worker); merged from the app's /metrics (MERGE_TARGETS):
  demo_app_jobs_processed_total and demo_app_queue_length (both):
  curl -s ${base}/debug/metrics | grep -E '^(github_api_call_latency_count|graphql_requests_total)'
  curl -s ${workerBase}/debug/metrics | grep -E '^(github_webhook_latency_count|demo_app_)'
  curl -s ${base}/debug/metrics | grep -E '^# HELP (demo_app_|graphql)'
  printf 'graphql_requests:1|c|#operation:mine\\n' > /dev/udp/${HOST}/${ports.webStatsd}   # send your own (bash)
  curl -s ${workerBase}/debug/metrics | grep metrics_sidecar_info
  curl -s ${workerBase}/readyz
`);

  if (duration > 0) setTimeout(() => exit(0), duration * 1000).unref();
  const code = await finished;
  agent.destroy();
  await stopAll();
  process.exitCode = code;
}

main()
  .catch(async (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exitCode = 1;
  })
  .finally(() => {
    // Everything is stopped; a stray handle must not keep the demo from exiting.
    setTimeout(() => process.exit(), 2000).unref();
  });
