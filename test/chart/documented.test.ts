/**
 * The documented configurations: every configuration that the documentation users already follow
 * (../shared/seeds/, beside the clone, as CI has it) and this README show, rendered by the real
 * helm, every object checked against its Kubernetes / Prometheus Operator model, and each
 * workload's sidecar started as the real process (dist/main.js) from the environment and mounted
 * files the chart gives its container, then asked what the documentation promises.
 *
 * These tests are the contract with existing users: the values are the documents' own words (the
 * chart's own documentation is read out of the seed file itself), and they never change to fit
 * the chart. What the test changes is only what a pod would get from the cluster: ports are moved
 * to free ones, UPSTREAM_URL points at a local app on a free port, and where the documents give
 * credentials (Stalwart's username and secret, Tiled's dummy key), they are put into the Secret a
 * Kubernetes user creates for them. Where the product differs from a document on purpose, the test
 * says so and checks the difference (a metrics path on the main port must be under /debug/).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { CHART, FULLNAME, ROOT, get, find, ofKind, parseManifests, helm, templateArgs, type Loose, type Manifest } from './helm';
import { validateModels } from './models';
import { container, containers, envValue, podEnvironment, port, secretData } from './pod';
import { freePort, request, sendDatagram, type Reply } from '../helpers/net';
import { killAll, spawnSidecar, type Child } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { eventually } from '../helpers/attack';

const SEEDS = path.join(ROOT, '..', 'shared', 'seeds');
const WEB = `${FULLNAME}-web`;
const WORKER = `${FULLNAME}-worker`;

/** A seed document by its number (`003`), read from ../shared/seeds. */
function seed(number: string): string {
  if (!fs.existsSync(SEEDS)) throw new Error(`the product documentation is read from ${SEEDS} (beside the clone, as CI has it); it is missing`);
  const file = fs.readdirSync(SEEDS).find((f) => f.startsWith(`${number}_`));
  if (!file) throw new Error(`no seed ${number}_* in ${SEEDS}`);
  return fs.readFileSync(path.join(SEEDS, file), 'utf8');
}

/** The body of the first fenced code block after the line `heading` (or after the first line starting with it). */
function blockAfter(text: string, heading: string): string {
  const at = text.split('\n').findIndex((l) => l.startsWith(heading));
  if (at === -1) throw new Error(`no line starting with ${JSON.stringify(heading)}`);
  const rest = text.split('\n').slice(at + 1);
  const open = rest.findIndex((l) => l.startsWith('```'));
  const close = rest.findIndex((l, i) => i > open && l.startsWith('```'));
  if (open === -1 || close === -1) throw new Error(`no fenced block after ${JSON.stringify(heading)}`);
  return `${rest.slice(open + 1, close).join('\n')}\n`;
}

/** The chart's own documentation (seed 003): how operators turn the web pods' endpoint on. */
const SEED_ENDPOINT_ON = () => blockAfter(seed('003'), '## Web application server');
/** This README's install example (the `# my-values.yaml` block). */
const README_INSTALL = () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /```yaml\n(# my-values\.yaml\n[\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README has no `# my-values.yaml` block');
  return m[1];
};

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

/** A Secret the user creates before installing (`kubectl create secret generic ...`). */
function userSecret(name: string, data: Record<string, string>): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'apps' },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
  };
}

/** A workload's sidecar, running as the real process from what the chart rendered for it. */
interface Pod {
  child: Child;
  /** The environment the chart gave the container (before ports were moved). */
  rendered: Record<string, string>;
  /** The port that serves the metrics path: the main port (SERVE_PROMETHEUS_ENDPOINT) or the dedicated one. */
  metricsPort: number;
  mainPort: number;
  statsdPort: number;
  metricsPath: string;
}

interface Started {
  docs: Manifest[];
  upstream: Upstream;
  web?: Pod;
  worker?: Pod;
}

interface Documented {
  /** What the documents call it. */
  name: string;
  /** Where the documents show it. */
  source: string;
  /** The values, in the documents' words. */
  values: () => string;
  /** Objects the documents tell the user to create first (existing Secrets). */
  existing?: Manifest[];
  /** What the documents promise, asked of the running sidecars. */
  check: (s: Started) => Promise<void>;
}

const children: Child[] = [];
const upstreams: Upstream[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'documented-'));

afterAll(async () => {
  await killAll(children);
  for (const u of upstreams) await u.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function renderText(values: string, extra: string[] = []): Manifest[] {
  const file = path.join(tmp, `values-${Math.random().toString(16).slice(2)}.yaml`);
  fs.writeFileSync(file, values);
  const r = helm(templateArgs([file], extra));
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Starts the sidecar of one Deployment from its rendered container: env, mounted files, ports. */
async function startPod(docs: Manifest[], name: string, upstream: Upstream): Promise<Pod> {
  const d = get(docs, 'Deployment', name);
  const s = container(d, 'metrics-sidecar');
  const root = fs.mkdtempSync(path.join(tmp, 'pod-'));
  const rendered = podEnvironment(docs, d, s, root);
  const env = { ...rendered };
  const moved = async (v: string | undefined) => (v === undefined || v === '0' ? '0' : String(await freePort()));
  env.LISTEN_PORT = await moved(rendered.LISTEN_PORT);
  env.PROMETHEUS_PORT = await moved(rendered.PROMETHEUS_PORT);
  env.STATSD_PORT = await moved(rendered.STATSD_PORT);
  if (rendered.UPSTREAM_URL !== undefined) {
    // The chart points the sidecar at the app on the pod's loopback; here the app is a local one.
    expect(new URL(rendered.UPSTREAM_URL).hostname).toBe('127.0.0.1');
    env.UPSTREAM_URL = upstream.url;
  }
  const child = await spawnSidecar(env);
  children.push(child);
  const onMain = rendered.SERVE_PROMETHEUS_ENDPOINT === 'true';
  return {
    child,
    rendered,
    mainPort: Number(env.LISTEN_PORT),
    metricsPort: Number(onMain ? env.LISTEN_PORT : env.PROMETHEUS_PORT),
    statsdPort: Number(env.STATSD_PORT),
    metricsPath: rendered.METRICS_PATH,
  };
}

async function start(c: Documented): Promise<Started> {
  const docs = [...(c.existing ?? []), ...renderText(c.values())];
  const upstream = await startUpstream();
  upstreams.push(upstream);
  const s: Started = { docs, upstream };
  if (find(docs, 'Deployment', WEB)) s.web = await startPod(docs, WEB, upstream);
  if (find(docs, 'Deployment', WORKER)) s.worker = await startPod(docs, WORKER, upstream);
  return s;
}

const scrape = (pod: Pod, headers: Record<string, string> = {}): Promise<Reply> => request(pod.metricsPort, pod.metricsPath, { headers });

/** Waits until a scrape (with these headers) holds `text`. */
async function scrapeHolds(pod: Pod, text: string, headers: Record<string, string> = {}): Promise<string> {
  let last = '';
  const ok = await eventually(async () => {
    last = (await scrape(pod, headers)).text;
    return last.includes(text);
  }, pod.child);
  if (!ok) throw new Error(`no ${text} in the scrape of port ${pod.metricsPort}: ${last.slice(0, 2000)}`);
  return last;
}

/** Every container of every Deployment: the name and its env value of `name`. */
function everyContainer(docs: Manifest[], name: string): [string, string | undefined][] {
  return ofKind(docs, 'Deployment').flatMap((d) => containers(d).map((c): [string, string | undefined] => [`${d.metadata.name}/${c.name}`, envValue(c, name)]));
}

/** The web pods serve the documented path on the main port, proxy the app and hide the rest of /debug/. */
async function webServesOnMainPort(s: Started, headers: Record<string, string> = {}): Promise<void> {
  const web = s.web!;
  expect(web.rendered.SERVE_PROMETHEUS_ENDPOINT).toBe('true');
  expect(web.rendered.PROMETHEUS_PORT).toBe('0');
  expect(web.metricsPort).toBe(web.mainPort);
  expect((await request(web.mainPort, '/orders/42')).status).toBe(200);
  const text = await scrapeHolds(web, 'flask_http_request_total{method="GET",status="200"} 1', headers);
  expect(text).toContain('path="/orders/:id"');
  expect((await request(web.mainPort, '/debug/pprof')).status).toBe(404);
  const reached = s.upstream.seen.map((r) => r.url);
  expect(reached).toContain('/orders/42');
  expect(reached.filter((u) => u.toLowerCase().includes('debug'))).toEqual([]);
}

const DOCUMENTED: Documented[] = [
  {
    name: 'the web pods’ endpoint on the main port, the worker’s on 8491',
    source: 'seed 003 “Web application server” (values.yaml, verbatim) and “Background worker server”',
    values: SEED_ENDPOINT_ON,
    check: async (s) => {
      await webServesOnMainPort(s);
      // Every container sees the variable (common.env), the app included.
      expect(everyContainer(s.docs, 'SERVE_PROMETHEUS_ENDPOINT').filter(([c]) => !c.endsWith('/metrics-sidecar'))).toEqual([
        [`${WEB}/app`, 'true'],
        [`${WORKER}/worker`, 'true'],
      ]);
      expect(port(container(get(s.docs, 'Deployment', WEB), 'metrics-sidecar'), 'metrics')).toBeUndefined();
      // The worker serves 8491 (PROMETHEUS_PORT), at /debug/metrics, and has no main port.
      const worker = s.worker!;
      expect(worker.rendered.PROMETHEUS_PORT).toBe('8491');
      expect(worker.rendered.LISTEN_PORT).toBe('0');
      expect(worker.metricsPath).toBe('/debug/metrics');
      const w = await scrape(worker);
      expect(w.status).toBe(200);
      expect(w.text).toContain('# TYPE metrics_sidecar_info gauge');
      // The DB family stays off unless ENABLE_DB_METRICS says otherwise: a DB timer is dropped, a
      // GitHub timer sent after it arrives.
      await sendDatagram(s.web!.statsdPort, 'sqlalchemy_query_latency_seconds:12|ms|#statement:select');
      await sendDatagram(s.web!.statsdPort, 'github_api_call_latency:30|ms|#endpoint:repos,status:200');
      expect(await scrapeHolds(s.web!, 'github_api_call_latency_count{endpoint="repos",status="200"} 1')).not.toContain('sqlalchemy_query_latency_seconds');
      // With a ServiceMonitor on, it scrapes the port and path that serve metrics.
      const withMonitor = renderText(SEED_ENDPOINT_ON(), ['--set', 'serviceMonitor.enabled=true']);
      const endpoint = (name: string) => (get(withMonitor, 'ServiceMonitor', name).spec.endpoints as Loose[])[0] as { port: string; path: string };
      expect(endpoint(WEB)).toMatchObject({ port: 'http', path: '/debug/metrics' });
      expect(endpoint(WORKER)).toMatchObject({ port: 'metrics', path: '/debug/metrics' });
    },
  },
  {
    name: 'DB query latency with ENABLE_DB_METRICS',
    source: 'seed 003 “Exposed metrics”: sqlalchemy_query_latency_seconds is enabled when ENABLE_DB_METRICS is true',
    values: () => 'common:\n  env:\n    - name: "SERVE_PROMETHEUS_ENDPOINT"\n      value: "true"\n    - name: "ENABLE_DB_METRICS"\n      value: "true"\n',
    check: async (s) => {
      // The app, the worker and both sidecars see it.
      for (const [c, v] of everyContainer(s.docs, 'ENABLE_DB_METRICS')) expect([c, v]).toEqual([c, 'true']);
      for (const pod of [s.web!, s.worker!]) {
        await sendDatagram(pod.statsdPort, 'sqlalchemy_query_latency_seconds:12|ms|#statement:select');
        const text = await scrapeHolds(pod, 'sqlalchemy_query_latency_seconds_count{statement="select"} 1');
        expect(text).toContain('sqlalchemy_query_latency_seconds_bucket{statement="select",le="0.025"} 1');
      }
    },
  },
  {
    name: 'basic auth with the username and secret of the documents, on a custom path',
    source: 'seed 002 (Stalwart): username "prometheus", secret "password123", endpoint /metrics/prometheus; seed 000 “Authentication”',
    existing: [userSecret('metrics-basic-auth', { username: 'prometheus', password: 'password123' })],
    values: () => 'metrics:\n  path: /metrics/prometheus\n  basicAuth:\n    enabled: true\n    existingSecret: metrics-basic-auth\n',
    check: async (s) => {
      for (const pod of [s.web!, s.worker!]) {
        expect(pod.metricsPath).toBe('/metrics/prometheus');
        const none = await scrape(pod);
        expect(none.status).toBe(401);
        expect(none.headers['www-authenticate']).toContain('Basic realm="metrics"');
        expect((await scrape(pod, { authorization: basic('prometheus', 'wrong') })).status).toBe(401);
        const ok = await scrape(pod, { authorization: basic('prometheus', 'password123') });
        expect(ok.status).toBe(200);
        expect(ok.text).toContain('# TYPE metrics_sidecar_info gauge');
      }
    },
  },
  {
    name: 'basic auth with a generated password, scraped by the ServiceMonitor, endpoint on the main port',
    source: 'seed 000 (Speedtest Tracker) “Use Basic Authentication”, with seed 003’s values.yaml form',
    values: () => `${SEED_ENDPOINT_ON()}metrics:\n  basicAuth:\n    enabled: true\nserviceMonitor:\n  enabled: true\n`,
    check: async (s) => {
      // What the ServiceMonitor sends is what the sidecar accepts.
      const ep = (get(s.docs, 'ServiceMonitor', WEB).spec.endpoints as Loose[])[0] as {
        port: string;
        path: string;
        basicAuth: { username: { name: string; key: string }; password: { name: string; key: string } };
      };
      expect(ep).toMatchObject({ port: 'http', path: '/debug/metrics' });
      const user = secretData(s.docs, ep.basicAuth.username.name, ep.basicAuth.username.key)!;
      const password = secretData(s.docs, ep.basicAuth.password.name, ep.basicAuth.password.key)!;
      expect(user).toBe('prometheus');
      expect(password.length).toBeGreaterThanOrEqual(16);
      const auth = { authorization: basic(user, password) };
      await webServesOnMainPort(s, auth);
      // The main port hides the path from anyone without the credentials.
      expect((await scrape(s.web!)).status).toBe(404);
      expect((await scrape(s.web!, { authorization: basic(user, 'password123') })).status).toBe(404);
      expect((await scrape(s.worker!, auth)).status).toBe(200);
      expect((await scrape(s.worker!)).status).toBe(401);
    },
  },
  {
    name: 'a single allowed IP, with a custom metrics path on the dedicated port',
    source: 'seed 001 (Speedtest Tracker) “Allowed IPs”: single IPs; scrape config metrics_path: /prometheus',
    values: () => 'metrics:\n  path: /prometheus\n  allowedCidrs: ["127.0.0.1"]\n',
    check: async (s) => {
      for (const pod of [s.web!, s.worker!]) {
        expect(pod.rendered.METRICS_ALLOWED_CIDRS).toBe('127.0.0.1');
        expect(pod.metricsPath).toBe('/prometheus');
        const r = await scrape(pod);
        expect(r.status).toBe(200);
        expect(r.text).toContain('# TYPE metrics_sidecar_info gauge');
      }
      // The document scrapes /prometheus on the app's own port. The main port reserves /debug/ (it
      // is hidden from the public and never forwarded), so there the path must be under it: refused.
      const onMain = helm(templateArgs([], ['--set', 'metrics.path=/prometheus', '--set', 'metrics.serveOnMainPort=true']));
      expect(onMain.status).not.toBe(0);
      expect(onMain.stderr).toContain('metrics.path must be under /debug/');
    },
  },
  {
    name: 'allowed CIDR ranges',
    source: 'seed 001 (Speedtest Tracker) “Allowed IPs”: entire CIDR ranges',
    values: () => 'metrics:\n  allowedCidrs: ["10.0.0.0/8", "127.0.0.0/8", "fd00::/8"]\n',
    check: async (s) => {
      for (const pod of [s.web!, s.worker!]) {
        expect(pod.rendered.METRICS_ALLOWED_CIDRS).toBe('10.0.0.0/8,127.0.0.0/8,fd00::/8');
        // 127.0.0.1 is inside 127.0.0.0/8, and equal to no entry.
        expect((await scrape(pod)).status).toBe(200);
      }
    },
  },
  {
    name: 'an address outside the allowed IPs and ranges',
    source: 'seed 001 (Speedtest Tracker) “Allowed IPs”: only accessible from specific IP addresses or networks',
    values: () => 'metrics:\n  allowedCidrs: ["192.168.1.10", "10.0.0.0/8"]\n',
    check: async (s) => {
      for (const pod of [s.web!, s.worker!]) {
        const r = await scrape(pod);
        expect(r.status).toBe(403);
        expect(r.text).not.toContain('# TYPE');
      }
    },
  },
  {
    name: 'the chart’s defaults: no endpoint on the web pods’ main port, the worker’s on 8491',
    source:
      'seed 003: “By default, the web application server won’t serve the metrics endpoint”; “By default, the background worker server exposes the metrics endpoint”',
    values: () => '',
    check: async (s) => {
      expect(s.web!.rendered.SERVE_PROMETHEUS_ENDPOINT).toBe('false');
      const main = await request(s.web!.mainPort, '/debug/metrics');
      expect(main.status).toBe(404);
      expect(main.text).not.toContain('# TYPE');
      expect(s.upstream.seen).toEqual([]);
      expect(s.worker!.rendered.PROMETHEUS_PORT).toBe('8491');
      expect((await scrape(s.worker!)).status).toBe(200);
    },
  },
  {
    name: 'an API key with the metrics scope, generated, sent by the ServiceMonitor',
    source: 'seed 004 (Tiled): an API key with the `metrics` scope should be used',
    values: () => 'metrics:\n  apiKeys:\n    enabled: true\nserviceMonitor:\n  enabled: true\n',
    check: async (s) => {
      const ep = (get(s.docs, 'ServiceMonitor', WORKER).spec.endpoints as Loose[])[0] as {
        authorization: { type: string; credentials: { name: string; key: string } };
      };
      expect(ep.authorization.type).toBe('Bearer');
      const key = secretData(s.docs, ep.authorization.credentials.name, ep.authorization.credentials.key)!;
      for (const pod of [s.web!, s.worker!]) {
        expect((await scrape(pod, { authorization: `Bearer ${key}` })).status).toBe(200);
        expect((await scrape(pod)).status).toBe(401);
        expect((await scrape(pod, { authorization: `Bearer ${key}x` })).status).toBe(401);
      }
    },
  },
  {
    name: 'the API keys of a multi-user deployment, sent as Tiled’s Prometheus example sends them',
    source: 'seed 004 (Tiled): the dummy credential `secret`, and keys with and without the `metrics` scope',
    existing: [
      userSecret('tiled-api-keys', {
        'api-keys': '# name      key                scopes\nprometheus  plain:secret       metrics\ngrafana     plain:dashboards   read\n',
        'prometheus-key': 'secret',
      }),
    ],
    values: () => 'metrics:\n  apiKeys:\n    enabled: true\n    existingSecret: tiled-api-keys\nserviceMonitor:\n  enabled: true\n',
    check: async (s) => {
      // The ServiceMonitor sends the Secret's client key (Tiled's `secret`), which the keys file grants `metrics`.
      const ep = (get(s.docs, 'ServiceMonitor', WEB).spec.endpoints as Loose[])[0] as { authorization: { credentials: { name: string; key: string } } };
      expect(secretData(s.docs, ep.authorization.credentials.name, ep.authorization.credentials.key)).toBe('secret');
      for (const pod of [s.web!, s.worker!]) {
        // Tiled's prometheus.yml: authorization {type: Apikey, credentials: secret}.
        expect((await scrape(pod, { authorization: 'Apikey secret' })).status).toBe(200);
        expect((await scrape(pod, { authorization: 'Bearer secret' })).status).toBe(200);
        expect((await scrape(pod, { authorization: 'Apikey dashboards' })).status).toBe(403);
        expect((await scrape(pod)).status).toBe(401);
      }
    },
  },
  {
    name: 'a worker-only release',
    source: 'seed 003 “Background worker server”: by default the worker exposes the metrics endpoint on 8491',
    values: () => 'web:\n  enabled: false\n',
    check: async (s) => {
      expect(s.web).toBeUndefined();
      expect(find(s.docs, 'Service', WEB)).toBeUndefined();
      expect(s.worker!.rendered.PROMETHEUS_PORT).toBe('8491');
      const r = await scrape(s.worker!);
      expect(r.status).toBe(200);
      expect(r.text).toContain('# TYPE metrics_sidecar_info gauge');
    },
  },
  {
    name: 'this README’s install example',
    source: 'README “Install” (my-values.yaml)',
    values: README_INSTALL,
    check: async (s) => {
      for (const [c, v] of everyContainer(s.docs, 'ENABLE_DB_METRICS')) expect([c, v]).toEqual([c, 'true']);
      const user = secretData(s.docs, `${FULLNAME}-basic-auth`, 'username')!;
      const password = secretData(s.docs, `${FULLNAME}-basic-auth`, 'password')!;
      await webServesOnMainPort(s, { authorization: basic(user, password) });
      expect((await scrape(s.web!)).status).toBe(404);
      expect(ofKind(s.docs, 'ServiceMonitor').map((m) => m.metadata.labels?.release)).toEqual(['kube-prometheus-stack', 'kube-prometheus-stack']);
      expect(ofKind(s.docs, 'PrometheusRule')).toHaveLength(1);
    },
  },
];

describe('the chart’s own documentation, verbatim', () => {
  it('should be the values file of a ci scenario, byte for byte', () => {
    expect(fs.readFileSync(path.join(CHART, 'ci', 'documented-endpoint-on-values.yaml'), 'utf8')).toBe(SEED_ENDPOINT_ON());
  });

  it('should be the values.yaml snippet operators copy', () => {
    // What the document shows, as a user would read it: the endpoint turned on for every container.
    expect(YAML.parse(SEED_ENDPOINT_ON())).toEqual({ common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'true' }] } });
  });
});

describe.each(DOCUMENTED.map((c) => [c.name, c] as const))('documented: %s', (_name, c) => {
  let started: Started;

  beforeAll(async () => {
    started = await start(c);
  });

  it(`should render, with every object valid for its model (${c.source})`, () => {
    const results = validateModels(started.docs);
    expect(results.filter((r) => r.error !== null)).toEqual([]);
    expect(results.length).toBe(started.docs.length);
  });

  it('should answer as documented', async () => {
    await c.check(started);
  });
});
