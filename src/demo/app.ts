/**
 * The demo application: a small web app with the shapes RED metrics care about (ids in paths,
 * slow routes, errors) and its own `/debug/` page that the sidecar must keep from the public; a
 * worker loop beside it that processes jobs; StatsD lines from both (plain UDP, as an app's
 * DogStatsD client sends them) for the maintained families; and the app's own Prometheus endpoint,
 * `/metrics`, which the sidecars merge (MERGE_TARGETS).
 */
import http from 'node:http';
import crypto from 'node:crypto';
import dgram from 'node:dgram';

/** Fire-and-forget StatsD over UDP, as a DogStatsD client does: nothing waits, nothing fails. */
export interface StatsdSender {
  /** A timer in milliseconds (`|ms`), with DogStatsD tags. */
  timing(name: string, ms: number, tags: Record<string, string>): void;
  /** A counter increment (`|c`), with DogStatsD tags. */
  increment(name: string, tags: Record<string, string>): void;
  close(): void;
}

export function createStatsdSender(port: number, host = '127.0.0.1'): StatsdSender {
  const socket = dgram.createSocket('udp4');
  // A sidecar that is not listening (yet, or any more) loses the lines, as in a pod; never an exception.
  socket.on('error', () => undefined);
  socket.unref();
  let closed = false;
  const send = (line: string): void => {
    if (!closed) socket.send(line, port, host, () => undefined);
  };
  const tagText = (tags: Record<string, string>): string => {
    const pairs = Object.entries(tags).map(([k, v]) => `${k}:${v}`);
    return pairs.length === 0 ? '' : `|#${pairs.join(',')}`;
  };
  return {
    timing: (name, ms, tags) => send(`${name}:${Math.round(ms * 10) / 10}|ms${tagText(tags)}`),
    increment: (name, tags) => send(`${name}:1|c${tagText(tags)}`),
    close: () => {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}

/** What the app's own `/metrics` reports. */
export class DemoAppMetrics {
  readonly jobsProcessed = new Map<string, number>([
    ['webhooks', 0],
    ['mail', 0],
  ]);
  queueLength = 0;

  /** The app's exposition (Prometheus text 0.0.4), as a prometheus_client app would serve it. */
  render(): string {
    const out = [
      '# HELP demo_app_jobs_processed_total Jobs the demo worker processed, by queue.',
      '# TYPE demo_app_jobs_processed_total counter',
      ...[...this.jobsProcessed].map(([queue, n]) => `demo_app_jobs_processed_total{queue="${queue}"} ${n}`),
      '# HELP demo_app_queue_length Jobs waiting in the demo queue.',
      '# TYPE demo_app_queue_length gauge',
      `demo_app_queue_length ${this.queueLength}`,
    ];
    return `${out.join('\n')}\n`;
  }
}

const noStatsd: StatsdSender = { timing: () => undefined, increment: () => undefined, close: () => undefined };

/** A latency in ms around `base`, for the simulated calls. */
const jitter = (base: number): number => base * (0.5 + Math.random());

export function createDemoApp(opts: { statsd?: StatsdSender; metrics?: DemoAppMetrics } = {}): http.Server {
  const statsd = opts.statsd ?? noStatsd;
  const metrics = opts.metrics ?? new DemoAppMetrics();
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const p = url.pathname;
    if (p === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(metrics.render());
      return;
    }
    if (p === '/') {
      statsd.increment('graphql_requests', { operation: 'viewer' });
      return send(200, { hello: 'from the demo app' });
    }
    if (/^\/users\/\d+$/.test(p)) {
      // The app looks the user up on GitHub: what github_api_call_latency measures.
      statsd.timing('github_api_call_latency', jitter(120), { endpoint: '/users/{username}', status: '200' });
      return send(200, { user: p.split('/')[2] });
    }
    if (/^\/orders\/[0-9a-f-]{36}$/.test(p)) {
      statsd.increment('graphql_requests', { operation: 'order' });
      return send(200, { order: p.split('/')[2] });
    }
    if (p === '/slow') {
      const ms = 50 + Math.floor(Math.random() * 250);
      setTimeout(() => {
        statsd.timing('github_api_call_latency', ms, { endpoint: '/repos/{owner}/{repo}', status: '200' });
        send(200, { slow: true });
      }, ms);
      return;
    }
    if (p === '/error') {
      statsd.timing('github_api_call_latency', jitter(900), { endpoint: '/repos/{owner}/{repo}', status: '502' });
      return send(500, { error: 'something broke' });
    }
    if (p.startsWith('/debug/')) return send(200, { secret: "the app's own debug page: the sidecar never lets the public reach it" });
    return send(404, { error: 'not found' });
  });
}

const EVENTS = ['push', 'pull_request', 'issues'];

/**
 * The demo worker: every `everyMs` it takes a job (a GitHub webhook to handle, or a mail to send),
 * reports it over StatsD to the worker sidecar, and counts it in the app's own metrics.
 */
export function startDemoWorker(statsd: StatsdSender, metrics: DemoAppMetrics, everyMs = 200): { stop(): void } {
  const timer = setInterval(() => {
    metrics.queueLength = Math.floor(Math.random() * 10);
    if (Math.random() < 0.7) {
      statsd.timing('github_webhook_latency', jitter(80), { event: EVENTS[Math.floor(Math.random() * EVENTS.length)] });
      statsd.timing('github_api_call_latency', jitter(150), { endpoint: '/repos/{owner}/{repo}/statuses/{sha}', status: '201' });
      metrics.jobsProcessed.set('webhooks', (metrics.jobsProcessed.get('webhooks') ?? 0) + 1);
    } else {
      metrics.jobsProcessed.set('mail', (metrics.jobsProcessed.get('mail') ?? 0) + 1);
    }
  }, everyMs);
  return { stop: () => clearInterval(timer) };
}

/** A random request path for the traffic generator. */
export function randomPath(): string {
  const r = Math.random();
  if (r < 0.35) return `/users/${1 + Math.floor(Math.random() * 500)}`;
  if (r < 0.55) return `/orders/${crypto.randomUUID()}`;
  if (r < 0.7) return '/slow';
  if (r < 0.78) return '/error';
  if (r < 0.85) return '/missing';
  return '/';
}
