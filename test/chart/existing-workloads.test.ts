/**
 * Running next to any workload (issue 10): the native sidecar and the regular container, rendered
 * with `helm template --kube-version`; the three ways to add the sidecar to what already exists —
 * a parent chart using the named templates (`helm dependency build` from the local path), the
 * kustomize component (the real `kubectl kustomize` over a plain nginx-style Deployment), the
 * YAML of docs/existing-workloads.md (what the chart renders) — each validated against the Kubernetes models; the app
 * health wiring; and the chart conventions (generated README, no internal comments, no chart
 * version in pod labels, lint without notes).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../src/config';
import { CHART, FULLNAME, ROOT, get, helm, ofKind, parseManifests, render, renderValues, templateArgs, type Manifest } from './helm';
import { validateModels } from './models';

const { ensureKubectl } = require('../helpers/helm-binary.cjs') as { ensureKubectl: () => string };

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  restartPolicy?: string;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { name?: string; containerPort: number }[];
  lifecycle?: unknown;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  [key: string]: unknown;
}

const WEB = `${FULLNAME}-web`;
const WORKER = `${FULLNAME}-worker`;

const spec = (d: Manifest) =>
  d.spec.template.spec as { initContainers?: Container[]; containers: Container[]; volumes?: { name: string }[]; [k: string]: unknown };
const env = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '(valueFrom)']));
const expectValid = (docs: Manifest[]) => {
  const results = validateModels(docs);
  expect(results.filter((r) => r.error !== null)).toEqual([]);
  expect(results.length).toBe(docs.length);
};

/** The sidecar container of a pod, wherever it is, and the app containers. */
function pod(d: Manifest): { sidecar: Container; native: boolean; apps: Container[] } {
  const s = spec(d);
  const init = (s.initContainers ?? []).find((c) => c.name === 'metrics-sidecar');
  const regular = s.containers.find((c) => c.name === 'metrics-sidecar');
  if ((init === undefined) === (regular === undefined)) throw new Error(`${d.metadata.name}: expected the sidecar once, as init or regular container`);
  return { sidecar: (init ?? regular)!, native: init !== undefined, apps: s.containers.filter((c) => c.name !== 'metrics-sidecar') };
}

/** The sidecar's port a Service port reaches (by name or number), if any. */
function sidecarPortOf(sidecar: Container, targetPort: string | number): number | undefined {
  return sidecar.ports?.find((p) => p.name === targetPort || p.containerPort === targetPort)?.containerPort;
}

/** Asserts what every way of adding the sidecar must give: app + sidecar in one pod, Service → sidecar, ServiceMonitor → Service. */
function expectSidecarWiring(docs: Manifest[], deploymentName: string, serviceName: string) {
  const d = get(docs, 'Deployment', deploymentName);
  const { sidecar, native, apps } = pod(d);
  expect(apps.length).toBeGreaterThanOrEqual(1);
  if (native) expect(sidecar.restartPolicy).toBe('Always');
  // The sidecar forwards to an app port on localhost and its config validates.
  const e = env(sidecar);
  expect(e.UPSTREAM_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(() => loadConfig(Object.fromEntries(Object.entries(e).filter(([k]) => !k.endsWith('_FILE') && !k.startsWith('METRICS_BASIC_AUTH'))))).not.toThrow();
  // Port names are unique in the pod (the app's own `http` would clash with the sidecar's).
  const names = [...(spec(d).initContainers ?? []), ...spec(d).containers].flatMap((c) => (c.ports ?? []).map((p) => p.name)).filter(Boolean);
  expect(new Set(names).size).toBe(names.length);
  // The Service's traffic port reaches the sidecar's main port, and selects this pod.
  const svc = get(docs, 'Service', serviceName);
  expect(d.spec.template.metadata.labels).toMatchObject(svc.spec.selector as Record<string, string>);
  const ports = svc.spec.ports as { name: string; port: number; targetPort: string | number }[];
  expect(sidecarPortOf(sidecar, ports[0].targetPort)).toBe(Number(e.LISTEN_PORT));
  // The ServiceMonitor selects the Service and scrapes a port of it that the sidecar serves metrics on.
  const sm = ofKind(docs, 'ServiceMonitor').find((m) =>
    Object.entries(m.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => svc.metadata.labels?.[k] === v),
  );
  expect(sm).toBeDefined();
  const ep = sm!.spec.endpoints[0] as { port: string; path: string };
  const svcPort = ports.find((p) => p.name === ep.port);
  expect(svcPort).toBeDefined();
  const served = sidecarPortOf(sidecar, svcPort!.targetPort);
  expect(served).toBe(e.SERVE_PROMETHEUS_ENDPOINT === 'true' ? Number(e.LISTEN_PORT) : Number(e.PROMETHEUS_PORT));
  expect(ep.path).toBe(e.METRICS_PATH);
}

describe('native sidecar (sidecar.native)', () => {
  it.each([
    ['1.28.0', false],
    ['1.29.0', true],
    ['1.30.0', true],
  ])('should render Kubernetes %s with the sidecar native=%s, valid for the models', (kube, native) => {
    const docs = render([], ['--kube-version', kube]);
    expectValid(docs);
    for (const name of [WEB, WORKER]) {
      const p = pod(get(docs, 'Deployment', name));
      expect([name, p.native]).toEqual([name, native]);
      if (native) {
        expect(p.sidecar.restartPolicy).toBe('Always');
        expect(spec(get(docs, 'Deployment', name)).initContainers![0].name).toBe('metrics-sidecar');
      } else {
        expect(p.sidecar.restartPolicy).toBeUndefined();
      }
    }
    const app = pod(get(docs, 'Deployment', WEB)).apps[0];
    // A native sidecar stops after the app: no preStop sleep. A regular one needs it.
    if (native) expect(app.lifecycle).toBeUndefined();
    else expect(app.lifecycle).toEqual({ preStop: { exec: { command: ['sleep', '5'] } } });
  });

  it.each([
    ['true', '1.28.0', true],
    ['false', '1.30.0', false],
  ])('should follow sidecar.native=%s whatever the version (%s)', (value, kube, native) => {
    const docs = render([], ['--kube-version', kube, '--set', `sidecar.native=${value}`]);
    expect(pod(get(docs, 'Deployment', WEB)).native).toBe(native);
    expectValid(docs);
  });
});

describe('the all-in-one web and worker', () => {
  it('should run the image’s own entrypoint when only web.image and worker.image are set (no demo command leaks in)', () => {
    const docs = render([], ['--set', 'web.image.repository=ghcr.io/acme/app,web.image.tag=1.0,worker.image.repository=ghcr.io/acme/app']);
    for (const name of [WEB, WORKER]) {
      const app = pod(get(docs, 'Deployment', name)).apps[0];
      expect(app.image).toMatch(/^ghcr\.io\/acme\/app:/);
      expect(app.command).toBeUndefined();
      expect(app.args).toBeUndefined();
    }
    // Without an image: the demo app, listening where the sidecar forwards.
    const demo = render([], ['--set', 'web.port=9000']);
    const app = pod(get(demo, 'Deployment', WEB)).apps[0];
    expect(app.image).toBe('python:3.12-slim');
    expect(app.command?.join(' ')).toContain('("127.0.0.1", 9000)');
    expect(env(pod(get(demo, 'Deployment', WEB)).sidecar).UPSTREAM_URL).toBe('http://127.0.0.1:9000');
  });

  it('should wire web.healthCheck: UPSTREAM_HEALTH_* for the sidecar, the app’s probes on /debug/app-health of the sidecar’s main port', () => {
    for (const kube of ['1.28.0', '1.30.0']) {
      const docs = render(
        [],
        ['--kube-version', kube, '--set', 'web.healthCheck.path=/healthz,web.healthCheck.failureThreshold=4,web.healthCheck.intervalSeconds=2'],
      );
      expectValid(docs);
      const { sidecar, apps } = pod(get(docs, 'Deployment', WEB));
      const e = env(sidecar);
      expect(e).toMatchObject({
        UPSTREAM_HEALTH_PATH: '/healthz',
        UPSTREAM_HEALTH_INTERVAL_MS: '2000',
        UPSTREAM_HEALTH_TIMEOUT_MS: '2000',
        UPSTREAM_HEALTH_FAILURE_THRESHOLD: '4',
        UPSTREAM_HEALTH_SUCCESS_THRESHOLD: '1',
      });
      const config = loadConfig(e);
      expect(config.appHealth?.url.href).toBe('http://127.0.0.1:8000/healthz');
      expect(config.appHealth?.failureThreshold).toBe(4);
      // The kubelet resolves a named probe port in the probed container only: the number it is.
      for (const probe of [apps[0].livenessProbe, apps[0].readinessProbe])
        expect(probe?.httpGet).toEqual({ path: '/debug/app-health', port: Number(e.LISTEN_PORT) });
      // The sidecar's own readiness is the one that includes the app.
      expect(sidecar.readinessProbe?.httpGet).toEqual({ path: '/debug/readyz', port: 'http' });
    }
    // An explicit app probe wins; no health path = no probes and no variables.
    const own = render([], ['--set', 'web.healthCheck.path=/healthz,web.livenessProbe.tcpSocket.port=8000']);
    expect(pod(get(own, 'Deployment', WEB)).apps[0].livenessProbe).toEqual({ tcpSocket: { port: 8000 } });
    const none = pod(get(render([]), 'Deployment', WEB));
    expect(none.apps[0].livenessProbe).toBeUndefined();
    expect(env(none.sidecar).UPSTREAM_HEALTH_PATH).toBeUndefined();
  });

  it('should apply the Deployment conventions: extra containers, init containers, volumes, envFrom, strategy, history, priority class', () => {
    const values = {
      common: { priorityClassName: 'apps' },
      web: {
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        revisionHistoryLimit: 3,
        envFrom: [{ configMapRef: { name: 'app-settings' } }],
        extraContainers: [{ name: 'log-shipper', image: 'busybox:1.36', securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false } }],
        extraInitContainers: [{ name: 'migrate', image: 'ghcr.io/acme/app:1', command: ['migrate'] }],
        extraVolumes: [{ name: 'certs', secret: { secretName: 'certs' } }],
      },
      worker: { priorityClassName: 'batch' },
      sidecar: {
        envFrom: [{ secretRef: { name: 'sidecar-extra' } }],
        extraVolumeMounts: [{ name: 'certs', mountPath: '/etc/certs', readOnly: true }],
        startupProbe: { failureThreshold: 30, periodSeconds: 1 },
      },
    };
    const r = renderValues(values, ['--kube-version', '1.30.0']);
    expect(r.stderr).toBe('');
    const docs = parseManifests(r.stdout);
    expectValid(docs);
    const web = get(docs, 'Deployment', WEB);
    const s = spec(web);
    expect(web.spec.strategy).toEqual(values.web.strategy);
    expect(web.spec.revisionHistoryLimit).toBe(3);
    expect(s.priorityClassName).toBe('apps');
    expect(spec(get(docs, 'Deployment', WORKER)).priorityClassName).toBe('batch');
    // The native sidecar first, so that the extra init containers can already use it.
    expect(s.initContainers!.map((c) => c.name)).toEqual(['metrics-sidecar', 'migrate']);
    expect(s.containers.map((c) => c.name)).toEqual(['app', 'log-shipper']);
    expect(s.containers[0].envFrom).toEqual(values.web.envFrom);
    const { sidecar } = pod(web);
    expect(sidecar.envFrom).toEqual(values.sidecar.envFrom);
    expect(sidecar.volumeMounts).toContainEqual(values.sidecar.extraVolumeMounts[0]);
    expect(sidecar.startupProbe).toEqual({ failureThreshold: 30, periodSeconds: 1, httpGet: { path: '/debug/healthz', port: 'http' } });
    expect(s.volumes!.map((v) => v.name)).toContain('certs');
  });

  it('should give the sidecar default resources (the memory limit the adversarial suite holds it to)', () => {
    const { sidecar } = pod(get(render([]), 'Deployment', WEB));
    expect(sidecar.resources).toEqual({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } });
  });

  it('should keep the chart version out of pod template labels (a chart upgrade alone does not roll pods)', () => {
    for (const d of ofKind(render([]), 'Deployment')) {
      const labels = d.spec.template.metadata.labels as Record<string, string>;
      expect(Object.keys(labels)).not.toContain('helm.sh/chart');
      expect(Object.keys(labels)).not.toContain('app.kubernetes.io/version');
      expect(labels).toMatchObject(d.spec.selector.matchLabels as Record<string, string>);
    }
  });

  it('should pass the explicit RED prefix to the sidecars', () => {
    const docs = render([], ['--set', 'metrics.httpPrefix=http_request']);
    for (const d of ofKind(docs, 'Deployment')) expect(env(pod(d).sidecar).HTTP_METRICS_PREFIX).toBe('http_request');
  });
});

describe('ServiceMonitor and PodMonitor options', () => {
  it('should render scheme, tlsConfig, namespace, jobLabel and targetLabels, and leave interval to Prometheus by default', () => {
    const values = {
      serviceMonitor: {
        enabled: true,
        namespace: 'monitoring',
        scheme: 'https',
        tlsConfig: { insecureSkipVerify: true },
        jobLabel: 'app.kubernetes.io/name',
        targetLabels: ['team'],
      },
    };
    const r = renderValues(values);
    expect(r.stderr).toBe('');
    const docs = parseManifests(r.stdout);
    expectValid(docs);
    const sm = get(docs, 'ServiceMonitor', WEB);
    expect(sm.metadata.namespace).toBe('monitoring');
    expect(sm.spec).toMatchObject({ jobLabel: 'app.kubernetes.io/name', targetLabels: ['team'], namespaceSelector: { matchNames: ['apps'] } });
    const ep = sm.spec.endpoints[0] as Record<string, unknown>;
    expect(ep).toMatchObject({ scheme: 'https', tlsConfig: { insecureSkipVerify: true } });
    expect(ep.interval).toBeUndefined();
    expect(ep.scrapeTimeout).toBeUndefined();
  });

  it('should scrape the pods with PodMonitors instead when podMonitor.enabled', () => {
    const r = renderValues({ podMonitor: { enabled: true }, metrics: { basicAuth: { enabled: true } }, serviceMonitor: { targetLabels: ['team'] } });
    expect(r.stderr).toBe('');
    const docs = parseManifests(r.stdout);
    expectValid(docs);
    expect(ofKind(docs, 'ServiceMonitor')).toEqual([]);
    for (const name of [WEB, WORKER]) {
      const pm = get(docs, 'PodMonitor', name);
      const d = get(docs, 'Deployment', name);
      expect(d.spec.template.metadata.labels).toMatchObject(pm.spec.selector.matchLabels as Record<string, string>);
      expect(pm.spec.podTargetLabels).toEqual(['team']);
      const ep = pm.spec.podMetricsEndpoints[0] as { port: string; basicAuth?: unknown };
      expect(pod(d).sidecar.ports?.map((p) => p.name)).toContain(ep.port);
      expect(ep.basicAuth).toBeDefined();
    }
  });
});

describe('chart conventions (issue 10)', () => {
  it('should lint --strict without notes or warnings, with the defaults and for Kubernetes 1.28', () => {
    for (const extra of [[], ['--kube-version', '1.28.0']]) {
      const r = helm(['lint', '--strict', CHART, ...extra]);
      expect(r.status).toBe(0);
      expect((r.stdout + r.stderr).split('\n').filter((l) => /\[(INFO|WARNING|ERROR)\]/.test(l))).toEqual([]);
    }
  });

  it('should name home, sources and icon in Chart.yaml', () => {
    const chart = YAML.parse(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
    expect(chart.home).toMatch(/^https:\/\//);
    expect((chart.sources as string[]).length).toBeGreaterThan(0);
    expect(chart.icon).toMatch(/^https:\/\//);
  });

  it('should leave no comments in the rendered output but helm’s own `# Source:` lines', () => {
    const all =
      'serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.enabled=true,metrics.basicAuth.enabled=true,metrics.apiKeys.enabled=true,metrics.kubernetesAuth.enabled=true,metrics.statsd.mappings=x,web.healthCheck.path=/healthz';
    for (const kube of ['1.28.0', '1.30.0']) {
      const r = helm(templateArgs([], ['--kube-version', kube, '--set', all]));
      expect(r.status).toBe(0);
      // Lines whose first non-blank character is `#`, outside block scalars (the StatsD mapping and
      // the test pod's script are data, not comments).
      const comments: string[] = [];
      for (const chunk of r.stdout.split(/^---$/m)) {
        const doc = YAML.parseDocument(chunk);
        if (doc.commentBefore) comments.push(doc.commentBefore);
        YAML.visit(doc, {
          Node(_key, node) {
            if ('comment' in node && node.comment) comments.push(node.comment);
            if ('commentBefore' in node && node.commentBefore) comments.push(node.commentBefore);
          },
        });
        if (doc.comment) comments.push(doc.comment);
      }
      expect(comments.filter((c) => !/^ ?Source: metrics-sidecar\/templates\/[\w/-]+\.yaml$/.test(c))).toEqual([]);
      expect(comments.length).toBeGreaterThan(10);
    }
  });

  const chartReadme = (dir: string, ...flags: string[]) =>
    spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'chart-readme.mjs'), dir, ...flags], { encoding: 'utf8' });

  it('should have a current chart README generated from README.md.tmpl, Chart.yaml and values.yaml', () => {
    const r = chartReadme(CHART, '--check');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const readme = fs.readFileSync(path.join(CHART, 'README.md'), 'utf8');
    expect(readme).toMatch(/^# metrics-sidecar\n\n!\[Version: 0\.1\.0\]/);
    // prometheus-community's sections, in an operator's order.
    const sections = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(sections).toEqual(['Prerequisites', 'Get Repo Info', 'Install Chart', 'Uninstall Chart', 'Upgrading Chart', 'Configuration']);
    expect(readme).toContain('helm uninstall [RELEASE_NAME]');
    expect(readme).toContain('helm upgrade [RELEASE_NAME]');
    expect(readme).toContain('helm show values charts/metrics-sidecar');
    expect(readme).toContain('- **0.1.0**:');
    expect(readme).toContain('./metrics-sidecar-0.1.0.tgz');
    expect(readme).not.toMatch(/\{\{ [a-z][\w.]* \}\}/);
    expect(readme).toContain('| Key | Type | Default | Description |');
    expect(readme).toContain('| sidecar.native | string | `"auto"` |');
    expect(readme).toContain('| sidecar.resources | object | `{"requests":{"cpu":"50m","memory":"96Mi"},"limits":{"memory":"256Mi"}}` |');
    // The footer names what made it: this project's script, not helm-docs.
    expect(readme).toMatch(/by `npm run docs:chart` \(scripts\/chart-readme\.mjs\): edit those, not this file\.\n$/);
    expect(readme).not.toContain('helm-docs v');
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['docs:chart']).toBe('node scripts/chart-readme.mjs');
  });

  it('should keep the chart README’s template out of the packaged chart', () => {
    expect(fs.readFileSync(path.join(CHART, '.helmignore'), 'utf8').split('\n')).toContain('README.md.tmpl');
  });

  it.each([
    [
      'a changed value description',
      'values.yaml',
      '# -- Number of web pods.',
      '# -- How many web pods run.',
      '| web.replicaCount | int | `2` | How many web pods run. |',
    ],
    [
      'a changed hand-written section',
      'README.md.tmpl',
      '## Uninstall Chart\n',
      '## Uninstall Chart\n\nFirst, a new note.\n',
      '## Uninstall Chart\n\nFirst, a new note.\n',
    ],
    ['a new chart version', 'Chart.yaml', 'version: 0.1.0', 'version: 0.2.0', 'helm install [RELEASE_NAME] ./metrics-sidecar-0.2.0.tgz'],
  ])('should find a stale chart README (%s) and regenerate it', (_what, file, from, to, expected) => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-readme-'));
    try {
      for (const f of ['Chart.yaml', 'values.yaml', 'README.md.tmpl', 'README.md']) fs.copyFileSync(path.join(CHART, f), path.join(copy, f));
      const text = fs.readFileSync(path.join(copy, file), 'utf8');
      expect(text).toContain(from);
      fs.writeFileSync(path.join(copy, file), text.replace(from, to));
      const check = chartReadme(copy, '--check');
      expect(check.status).toBe(1);
      expect(check.stderr).toMatch(/is stale: run npm run docs:chart/);
      expect(chartReadme(copy).status).toBe(0);
      expect(fs.readFileSync(path.join(copy, 'README.md'), 'utf8')).toContain(expected);
      expect(chartReadme(copy, '--check').status).toBe(0);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('should refuse a placeholder in README.md.tmpl that nothing fills', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-readme-'));
    try {
      for (const f of ['Chart.yaml', 'values.yaml', 'README.md.tmpl']) fs.copyFileSync(path.join(CHART, f), path.join(copy, f));
      fs.appendFileSync(path.join(copy, 'README.md.tmpl'), '{{ chart.nothing }}\n');
      const r = chartReadme(copy);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('nothing fills {{ chart.nothing }}');
      expect(fs.existsSync(path.join(copy, 'README.md'))).toBe(false);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('as a chart dependency (deploy/chart-dependency)', () => {
  let dir: string;
  beforeAll(() => {
    // A copy in a temp dir, its dependency pointing at this repository's chart by absolute path.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parent-chart-'));
    fs.cpSync(path.join(ROOT, 'deploy', 'chart-dependency'), dir, { recursive: true });
    const chartYaml = path.join(dir, 'Chart.yaml');
    fs.writeFileSync(chartYaml, fs.readFileSync(chartYaml, 'utf8').replace('file://../../charts/metrics-sidecar', `file://${CHART}`));
    const r = helm(['dependency', 'build', dir]);
    expect(r.stderr + r.stdout).not.toMatch(/Error/);
    expect(r.status).toBe(0);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should lint --strict without notes, the sidecar chart inside', () => {
    const r = helm(['lint', '--strict', dir]);
    expect(r.status).toBe(0);
    expect((r.stdout + r.stderr).split('\n').filter((l) => /\[(INFO|WARNING|ERROR)\]/.test(l))).toEqual([]);
  });

  it.each(['1.28.0', '1.30.0'])(
    'should render the parent’s Deployment with the app and the sidecar, its Service and ServiceMonitor, on Kubernetes %s',
    (kube) => {
      const r = helm(['template', 'shop', dir, '--namespace', 'apps', '--kube-version', kube]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const docs = parseManifests(r.stdout);
      expectValid(docs);
      // Only the parent's workload: the sidecar chart's own web/worker, Services and test pod are off.
      expect(ofKind(docs, 'Deployment').map((d) => d.metadata.name)).toEqual(['shop-shop']);
      expect(ofKind(docs, 'Pod')).toEqual([]);
      expectSidecarWiring(docs, 'shop-shop', 'shop-shop');
      const d = get(docs, 'Deployment', 'shop-shop');
      const { sidecar, native, apps } = pod(d);
      expect(native).toBe(kube === '1.30.0');
      expect(sidecar.image).toBe('ghcr.io/example/metrics-sidecar:0.1.0');
      // Secrets the sidecar mounts come along (basic auth is on in the example's values).
      expect(spec(d).volumes?.map((v) => v.name)).toEqual(['basic-auth']);
      get(docs, 'Secret', 'shop-metrics-sidecar-basic-auth');
      expect(get(docs, 'ServiceMonitor', 'shop-shop').spec.endpoints[0].basicAuth.password.name).toBe('shop-metrics-sidecar-basic-auth');
      // The app: probed through the sidecar; a preStop sleep only with a regular sidecar container.
      expect(apps[0].livenessProbe?.httpGet).toEqual({ path: '/debug/app-health', port: 8080 });
      expect(apps[0].lifecycle === undefined).toBe(native);
      expect(env(sidecar).UPSTREAM_HEALTH_PATH).toBe('/healthz');
    },
  );

  it('should give a parent chart, through metrics-sidecar.monitor, the ServiceMonitor and PodMonitor the chart renders for its own workloads', () => {
    // servicemonitor.yaml and podmonitor.yaml write their objects out; the public define builds the
    // same from the same parts (_monitor.tpl). A parent template asks the define for both workloads.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'parent-monitor-'));
    try {
      fs.cpSync(dir, copy, { recursive: true });
      const template = [
        '{{- $ms := index .Subcharts "metrics-sidecar" }}',
        '{{- $kind := ternary "PodMonitor" "ServiceMonitor" $ms.Values.podMonitor.enabled }}',
        '{{- range $role := list "web" "worker" }}',
        '---',
        '{{ include "metrics-sidecar.monitor" (dict "ctx" $ms "kind" $kind "name" (printf "via-define-%s" $role) "role" $role "selector" (include "metrics-sidecar.componentSelectorLabels" (dict "ctx" $ms "component" $role) | fromYaml) "labels" (include "metrics-sidecar.componentLabels" (dict "ctx" $ms "component" $role) | fromYaml)) }}',
        '{{- end }}',
        '',
      ].join('\n');
      fs.writeFileSync(path.join(copy, 'templates', 'via-define.yaml'), template);
      // Every scrape setting set, so that each field of both renderings is compared.
      const scrape = {
        labels: { release: 'kps', team: 'shop' },
        annotations: { 'example.com/owner': 'platform' },
        interval: '15s',
        scrapeTimeout: '10s',
        scheme: 'https',
        tlsConfig: { insecureSkipVerify: true },
        jobLabel: 'app.kubernetes.io/name',
        targetLabels: ['team'],
        relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }],
        metricRelabelings: [{ regex: 'tmp_.*', action: 'labeldrop' }],
        sampleLimit: 5000,
        scrapeClass: 'default',
        scrapeProtocols: ['PrometheusProto', 'OpenMetricsText1.0.0'],
        scrapeNativeHistograms: true,
        scrapeClassicHistograms: false,
        nativeHistogramBucketLimit: 160,
      };
      for (const kind of ['ServiceMonitor', 'PodMonitor']) {
        const values = {
          'metrics-sidecar': {
            web: { enabled: true },
            worker: { enabled: true },
            serviceMonitor: { ...scrape, enabled: kind === 'ServiceMonitor' },
            podMonitor: { enabled: kind === 'PodMonitor' },
          },
        };
        const file = path.join(copy, `values-${kind}.yaml`);
        fs.writeFileSync(file, YAML.stringify(values));
        const r = helm(['template', 'shop', copy, '--namespace', 'apps', '-f', file]);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const docs = parseManifests(r.stdout);
        for (const role of ['web', 'worker']) {
          const own = get(docs, kind, `shop-metrics-sidecar-${role}`);
          const viaDefine = get(docs, kind, `via-define-${role}`);
          expect({ ...viaDefine, metadata: { ...viaDefine.metadata, name: own.metadata.name } }).toEqual(own);
          expect(own.spec.namespaceSelector).toEqual({ matchNames: ['apps'] });
        }
      }
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('with kustomize (deploy/kustomize)', () => {
  const kustomize = (dir: string): Manifest[] => {
    const r = spawnSync(ensureKubectl(), ['kustomize', dir], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir() } });
    if (r.error) throw r.error;
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return parseManifests(r.stdout);
  };

  it('should patch a plain nginx-style Deployment and Service: sidecar, port swap, Service target, ServiceMonitor', () => {
    const docs = kustomize(path.join(ROOT, 'deploy', 'kustomize', 'example'));
    expectValid(docs);
    expect(docs.map((d) => `${d.kind}/${d.metadata.name.replace(/-[a-z0-9]{10}$/, '-<hash>')}`).sort()).toEqual([
      'ConfigMap/web-nginx-<hash>',
      'Deployment/web',
      'NetworkPolicy/web',
      'Service/web',
      'ServiceMonitor/web',
    ]);
    for (const d of docs) expect(d.metadata.namespace).toBe('shop');
    expectSidecarWiring(docs, 'web', 'web');
    const { sidecar, native, apps } = pod(get(docs, 'Deployment', 'web'));
    expect(native).toBe(true);
    // The app keeps its image and port (renamed), and the sidecar forwards to that port.
    expect(apps.map((c) => [c.name, c.image])).toEqual([['nginx', 'nginxinc/nginx-unprivileged:1.27']]);
    expect(apps[0].ports).toEqual([{ name: 'app', containerPort: 8081 }]);
    expect(env(sidecar).UPSTREAM_URL).toBe('http://127.0.0.1:8081');
    expect((get(docs, 'Service', 'web').spec.ports as unknown[])[0]).toEqual({ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' });
  });

  it('should give the kustomize sidecar the chart’s container, but for the names and the app’s port', () => {
    const fromKustomize = pod(get(kustomize(path.join(ROOT, 'deploy', 'kustomize', 'example')), 'Deployment', 'web')).sidecar;
    const fromChart = pod(
      get(
        render([], ['--kube-version', '1.30.0', '--set', 'sidecar.image.repository=ghcr.io/metrics-sidecar/metrics-sidecar,web.port=8081']),
        'Deployment',
        WEB,
      ),
    ).sidecar;
    const chartEnv = (fromChart.env ?? []).filter((e) => e.name !== 'APP_NAME');
    expect({ ...fromKustomize, env: fromKustomize.env }).toEqual({ ...fromChart, env: chartEnv });
  });
});

describe('by hand: the YAML of docs/existing-workloads.md', () => {
  const page = fs.readFileSync(path.join(ROOT, 'docs', 'existing-workloads.md'), 'utf8');
  const snippet = (name: string): { initContainers?: Container[]; containers?: Container[]; ports?: unknown[] } => {
    const m = new RegExp(`<!-- chart-snippet: ${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\\n\`\`\``).exec(page);
    if (!m) throw new Error(`docs/existing-workloads.md has no chart-snippet ${name}`);
    return YAML.parse(m[1]);
  };
  // What the page says renders them.
  const r = helm(['template', 'my-app', CHART, '--set', 'web.healthCheck.path=/healthz']);
  const docs = r.status === 0 ? parseManifests(r.stdout) : [];
  const web = () => get(docs, 'Deployment', 'my-app-metrics-sidecar-web');

  it('should show the sidecar container exactly as the chart renders it', () => {
    expect(r.status).toBe(0);
    expect(snippet('sidecar')).toEqual({ initContainers: spec(web()).initContainers });
  });

  it('should show the app container’s probes exactly as the chart renders them', () => {
    const app = spec(web()).containers.find((c) => c.name === 'app')!;
    expect(snippet('app')).toEqual({ containers: [{ name: 'app', livenessProbe: app.livenessProbe, readinessProbe: app.readinessProbe }] });
  });

  it('should show the Service ports exactly as the chart renders them', () => {
    expect(snippet('service')).toEqual({ ports: get(docs, 'Service', 'my-app-metrics-sidecar-web').spec.ports });
  });

  it('should describe a pod the models accept: the snippets put into a plain Deployment and Service', () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'my-app' },
      spec: {
        selector: { matchLabels: { app: 'my-app' } },
        template: {
          metadata: { labels: { app: 'my-app' } },
          spec: { ...snippet('sidecar'), containers: [{ ...snippet('app').containers![0], image: 'ghcr.io/acme/app:1' }] },
        },
      },
    };
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'my-app' }, spec: { selector: { app: 'my-app' }, ...snippet('service') } };
    expectValid([deployment, service] as Manifest[]);
  });
});
