/**
 * The Helm chart (charts/metrics-sidecar), rendered by the real helm binary for its default values
 * and for every ci/<scenario>-values.yaml: lint, schema validation of every object
 * (kubernetes-models, @kubernetes-models/prometheus-operator), and the content that matters —
 * common.env in every container, ports, probes, drain, the sidecar's own config check on the env
 * the chart gives it, ServiceMonitor auth wiring, RBAC only with Kubernetes auth, optional objects
 * only when enabled.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig, type Config } from '../../src/config';
import { findApiKey } from '../../src/access/credentials';
import { parseApiKeys } from '../../src/formats/api-keys';
import {
  CHART,
  FULLNAME,
  NAMESPACE,
  RELEASE,
  find,
  get,
  helm,
  ofKind,
  parseManifests,
  render,
  renderValues,
  scenarioFile,
  scenarios,
  scenarioValues,
  templateArgs,
  type Loose,
  type Manifest,
} from './helm';
import { validateModels, type ModelResult } from './models';
import { container, containers, envMap, envValue, podEnvironment, podSpec, port, secretData, type Container, type EnvVar } from './pod';

type Auth = 'none' | 'basicAuth' | 'apiKey' | 'kubernetes';

/** What each ci scenario must produce. Every ci/*-values.yaml file must be described here. */
interface Expected {
  web: boolean;
  /** The web pods' port that serves metrics: the main port (SERVE_PROMETHEUS_ENDPOINT) or 8491. */
  webMetricsPort: 'http' | 'metrics';
  /** How the ServiceMonitors authenticate; null = no ServiceMonitor. */
  serviceMonitor: Auth | null;
  kubernetesAuth: boolean;
  networkPolicy: boolean;
  podDisruptionBudget: boolean;
  prometheusRule: boolean;
  grafanaDashboard: boolean;
  discoveryAnnotations: boolean;
}

const BASE: Expected = {
  web: true,
  webMetricsPort: 'metrics',
  serviceMonitor: null,
  kubernetesAuth: false,
  networkPolicy: false,
  podDisruptionBudget: false,
  prometheusRule: false,
  grafanaDashboard: false,
  discoveryAnnotations: false,
};

const SCENARIOS: Record<string, Expected> = {
  default: BASE,
  'endpoint-on': { ...BASE, webMetricsPort: 'http', serviceMonitor: 'none' },
  // The chart's own documentation (seed 003), verbatim: test/chart/documented.test.ts holds it to the seed.
  'documented-endpoint-on': { ...BASE, webMetricsPort: 'http' },
  'basic-auth': { ...BASE, webMetricsPort: 'http', serviceMonitor: 'basicAuth' },
  'basic-auth-existing-secret': { ...BASE, serviceMonitor: 'basicAuth' },
  'api-keys': { ...BASE, serviceMonitor: 'apiKey' },
  'kubernetes-auth': { ...BASE, webMetricsPort: 'http', serviceMonitor: 'kubernetes', kubernetesAuth: true },
  'cidr-allowlist': BASE,
  servicemonitor: { ...BASE, serviceMonitor: 'none' },
  'rules-dashboard': { ...BASE, webMetricsPort: 'http', serviceMonitor: 'none', prometheusRule: true, grafanaDashboard: true },
  'network-policy': { ...BASE, networkPolicy: true, podDisruptionBudget: true },
  full: { ...BASE, webMetricsPort: 'http', podDisruptionBudget: true, discoveryAnnotations: true },
  'worker-only': { ...BASE, web: false, serviceMonitor: 'basicAuth', networkPolicy: true },
  'app-health': BASE,
  // SLO rules only (prometheusRule.enabled stays false): the PrometheusRule exists for them. test/chart/slo.test.ts runs promtool's rule tests on it.
  slo: { ...BASE, prometheusRule: true },
};

const WEB = `${FULLNAME}-web`;
const WORKER = `${FULLNAME}-worker`;

// The chart's defaults, for values a scenario does not set.
const DEFAULTS = YAML.parse(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;

/** A value of the merged (defaults + scenario) values, by dotted path. */
function valueOf(scenario: Record<string, unknown>, dotted: string): unknown {
  const pick = (o: unknown): unknown =>
    dotted.split('.').reduce<unknown>((acc, k) => (acc && typeof acc === 'object' ? (acc as Record<string, unknown>)[k] : undefined), o);
  const v = pick(scenario);
  return v === undefined ? pick(DEFAULTS) : v;
}

const rendered = new Map<string, Manifest[]>();
const modelResults = new Map<string, ModelResult[]>();
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-test-'));
  for (const s of scenarios()) rendered.set(s, render([scenarioFile(s)]));
  // One validator process for every object of every scenario.
  const all = [...rendered.entries()].flatMap(([s, docs]) => docs.map((d) => ({ s, d })));
  const results = validateModels(all.map((x) => x.d));
  all.forEach(({ s }, i) => modelResults.set(s, [...(modelResults.get(s) ?? []), results[i]]));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('chart scenarios', () => {
  it('should describe every ci/<scenario>-values.yaml file in this test, and no other', () => {
    expect(scenarios()).toEqual(Object.keys(SCENARIOS).sort());
  });

  it('should lint --strict with the chart’s own values', () => {
    const r = helm(['lint', '--strict', CHART]);
    expect(r.stderr + r.stdout).toContain('0 chart(s) failed');
    expect(r.status).toBe(0);
  });

  it('should render the same objects for the default scenario as for no values file', () => {
    const plain = helm(templateArgs([]));
    expect(plain.status).toBe(0);
    const kinds = (docs: Manifest[]) => docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(kinds(parseManifests(plain.stdout))).toEqual(kinds(rendered.get('default')!));
  });
});

describe.each(Object.keys(SCENARIOS))('scenario %s', (name) => {
  const want = SCENARIOS[name];
  const docs = () => rendered.get(name)!;
  const values = () => scenarioValues(name);
  const deployments = () => ofKind(docs(), 'Deployment');

  it('should pass helm lint --strict without notes or warnings', () => {
    const r = helm(['lint', '--strict', CHART, '-f', scenarioFile(name)]);
    expect(r.stderr + r.stdout).toContain('0 chart(s) failed');
    expect((r.stdout + r.stderr).split('\n').filter((l) => /\[(INFO|WARNING|ERROR)\]/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('should validate every rendered object against its Kubernetes / Prometheus Operator model', () => {
    const results = modelResults.get(name)!;
    expect(results.length).toBe(docs().length);
    expect(results.filter((r) => r.error !== null)).toEqual([]);
  });

  it('should put every object in the release namespace (the dashboard may go where Grafana looks)', () => {
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding']);
    for (const d of docs()) {
      if (clusterScoped.has(d.kind)) expect(d.metadata.namespace).toBeUndefined();
      else if (d.kind === 'ConfigMap' && d.metadata.name.endsWith('-dashboard'))
        expect(d.metadata.namespace).toBe(valueOf(values(), 'grafanaDashboard.namespace') || NAMESPACE);
      else expect(d.metadata.namespace).toBe(NAMESPACE);
    }
  });

  it('should deploy the expected workloads: app/worker container + metrics-sidecar', () => {
    const names = deployments()
      .map((d) => d.metadata.name)
      .sort();
    expect(names).toEqual(want.web ? [WEB, WORKER] : [WORKER]);
    // helm template's default cluster version is >= 1.29: the sidecar is a native sidecar, first of
    // the init containers, and the app is the only regular container.
    for (const [name, app] of want.web
      ? [
          [WEB, 'app'],
          [WORKER, 'worker'],
        ]
      : [[WORKER, 'worker']]) {
      const spec = podSpec(get(docs(), 'Deployment', name));
      expect((spec.initContainers as Container[]).map((c) => [c.name, c.restartPolicy])).toEqual([['metrics-sidecar', 'Always']]);
      expect((spec.containers as Container[]).map((c) => c.name)).toEqual([app]);
    }
  });

  it('should apply common.env to every container of both workloads', () => {
    const common = (valueOf(values(), 'common.env') as EnvVar[]) ?? [];
    for (const d of deployments()) {
      for (const c of containers(d)) {
        const env = envMap(c);
        for (const e of common) {
          expect({ deployment: d.metadata.name, container: c.name, env: env.get(e.name)?.name }).toEqual({
            deployment: d.metadata.name,
            container: c.name,
            env: e.name,
          });
          // The worker's sidecar has no main port: the chart forces this one off there.
          const expected =
            d.metadata.name === WORKER && c.name === 'metrics-sidecar' && e.name === 'SERVE_PROMETHEUS_ENDPOINT' ? { name: e.name, value: 'false' } : e;
          expect(env.get(e.name)).toEqual(expected);
        }
        // Each name once: duplicates break server-side apply (env is keyed by name).
        expect((c.env ?? []).length).toBe(env.size);
      }
    }
  });

  it('should give the web sidecar the main port `http` (and `metrics` only when metrics are not on the main port)', () => {
    if (!want.web) return;
    const d = get(docs(), 'Deployment', WEB);
    const s = container(d, 'metrics-sidecar');
    const listenPort = valueOf(values(), 'sidecar.listenPort') as number;
    expect(port(s, 'http')).toBe(listenPort);
    expect(envValue(s, 'LISTEN_PORT')).toBe(String(listenPort));
    expect(envValue(s, 'UPSTREAM_URL')).toBe(`http://127.0.0.1:${valueOf(values(), 'web.port') as number}`);
    if (want.webMetricsPort === 'metrics') {
      expect(port(s, 'metrics')).toBe(8491);
      expect(envValue(s, 'PROMETHEUS_PORT')).toBe('8491');
    } else {
      expect(port(s, 'metrics')).toBeUndefined();
      expect(envValue(s, 'PROMETHEUS_PORT')).toBe('0');
    }
    // The app container publishes no port: everything goes through the sidecar.
    expect(container(d, 'app').ports).toBeUndefined();
    const svc = get(docs(), 'Service', WEB);
    // By number: a native sidecar's named ports reach a Service's endpoints only from Kubernetes 1.33.
    const svcPorts = (svc.spec.ports as { name: string; targetPort: number }[]).map((p) => `${p.name}->${p.targetPort}`);
    expect(svcPorts).toEqual(want.webMetricsPort === 'metrics' ? [`http->${listenPort}`, 'metrics->8491'] : [`http->${listenPort}`]);
  });

  it('should give the worker sidecar the metrics port 8491 named `metrics` and no main port', () => {
    const d = get(docs(), 'Deployment', WORKER);
    const s = container(d, 'metrics-sidecar');
    expect(s.ports).toEqual([{ name: 'metrics', containerPort: 8491, protocol: 'TCP' }]);
    expect(envValue(s, 'LISTEN_PORT')).toBe('0');
    expect(envValue(s, 'PROMETHEUS_PORT')).toBe('8491');
    expect(envValue(s, 'SIDECAR_ROLE')).toBe('worker');
    expect(container(d, 'worker').ports).toBeUndefined();
    const svc = get(docs(), 'Service', WORKER);
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 8491, targetPort: 8491, protocol: 'TCP' }]);
  });

  it('should select each workload’s pods with its Service, and never by helm.sh/chart', () => {
    for (const d of deployments()) {
      const podLabels = d.spec.template.metadata.labels as Record<string, string>;
      const selector = d.spec.selector.matchLabels as Record<string, string>;
      expect(podLabels).toMatchObject(selector);
      expect(Object.keys(selector)).not.toContain('helm.sh/chart');
      const svc = get(docs(), 'Service', d.metadata.name);
      expect(svc.spec.selector).toEqual(selector);
    }
  });

  it('should probe the sidecar’s health endpoints: /debug/healthz|readyz on `http` (web), /healthz|readyz on `metrics` (worker)', () => {
    if (want.web) {
      const s = container(get(docs(), 'Deployment', WEB), 'metrics-sidecar');
      expect(s.livenessProbe).toMatchObject({ httpGet: { path: '/debug/healthz', port: 'http' } });
      expect(s.readinessProbe).toMatchObject({ httpGet: { path: '/debug/readyz', port: 'http' } });
    }
    const w = container(get(docs(), 'Deployment', WORKER), 'metrics-sidecar');
    expect(w.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'metrics' } });
    expect(w.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'metrics' } });
  });

  it('should run every container non-root, with a read-only root filesystem and no capabilities', () => {
    const pods = [
      ...deployments().map((d) => ({ name: d.metadata.name, spec: podSpec(d) })),
      ...ofKind(docs(), 'Pod').map((p) => ({ name: p.metadata.name, spec: p.spec as Record<string, Loose> })),
    ];
    for (const { name: pod, spec } of pods) {
      expect({ pod, runAsNonRoot: spec.securityContext?.runAsNonRoot }).toEqual({ pod, runAsNonRoot: true });
      for (const c of [...((spec.initContainers as Container[] | undefined) ?? []), ...(spec.containers as Container[])]) {
        const sc = c.securityContext as Record<string, Loose>;
        expect({ pod, c: c.name, ro: sc.readOnlyRootFilesystem, esc: sc.allowPrivilegeEscalation, drop: sc.capabilities?.drop }).toEqual({
          pod,
          c: c.name,
          ro: true,
          esc: false,
          drop: ['ALL'],
        });
      }
    }
  });

  it('should give the pods a grace period longer than the sidecar’s drain, and the web app a preStop sleep inside it only when asked (native sidecar)', () => {
    for (const d of deployments()) {
      const s = container(d, 'metrics-sidecar');
      const delayMs = Number(envValue(s, 'SHUTDOWN_DELAY_MS'));
      const timeoutMs = Number(envValue(s, 'SHUTDOWN_TIMEOUT_MS'));
      expect(delayMs).toBe((valueOf(values(), 'sidecar.drain.delaySeconds') as number) * 1000);
      expect(timeoutMs).toBe((valueOf(values(), 'sidecar.drain.timeoutSeconds') as number) * 1000);
      const grace = podSpec(d).terminationGracePeriodSeconds as number;
      expect(grace * 1000).toBeGreaterThan(delayMs + timeoutMs);
      if (d.metadata.name === WEB) {
        // A native sidecar stops after the app: no preStop sleep unless web.preStopSleepSeconds asks.
        const configured = valueOf(values(), 'web.preStopSleepSeconds') as number | null;
        const lifecycle = container(d, 'app').lifecycle as { preStop: { sleep: { seconds: number } } } | undefined;
        if (configured === null) {
          expect(lifecycle).toBeUndefined();
        } else {
          expect(lifecycle?.preStop.sleep.seconds).toBe(configured);
          expect(configured).toBeLessThan(grace);
        }
      }
      // The sidecar drains on SIGTERM by itself (SHUTDOWN_DELAY_MS): no preStop of its own.
      expect(s.lifecycle).toBeUndefined();
    }
  });

  it('should give the sidecars an environment their own config validation accepts', () => {
    for (const d of deployments()) {
      const root = fs.mkdtempSync(path.join(tmp, 'pod-'));
      const s = container(d, 'metrics-sidecar');
      let config: Config | undefined;
      expect(() => (config = loadConfig(podEnvironment(docs(), d, s, root)))).not.toThrow();
      const web = d.metadata.name === WEB;
      expect(config!.role).toBe(web ? 'web' : 'worker');
      expect(config!.serveOnMainPort).toBe(web && want.webMetricsPort === 'http');
      expect(config!.listenPort).toBe(port(s, 'http') ?? 0);
      expect(config!.prometheusPort).toBe(port(s, 'metrics') ?? 0);
      expect(config!.access.basicAuth !== undefined).toBe(valueOf(values(), 'metrics.basicAuth.enabled'));
      expect(config!.access.apiKeysFile !== undefined).toBe(valueOf(values(), 'metrics.apiKeys.enabled'));
      expect(config!.access.kubernetes !== undefined).toBe(want.kubernetesAuth);
      expect(config!.access.allowedCidrs.length).toBe((valueOf(values(), 'metrics.allowedCidrs') as string[]).length);
    }
  });

  it('should wire web.healthCheck.path: the sidecar checks the app, the app is probed through the sidecar’s /debug/app-health', () => {
    if (!want.web) return;
    const d = get(docs(), 'Deployment', WEB);
    const s = container(d, 'metrics-sidecar');
    const app = container(d, 'app') as Container & { livenessProbe?: { httpGet?: unknown }; readinessProbe?: { httpGet?: unknown } };
    const healthPath = valueOf(values(), 'web.healthCheck.path') as string;
    expect(envValue(s, 'UPSTREAM_HEALTH_PATH')).toBe(healthPath || undefined);
    if (!healthPath) return;
    const relay = { path: '/debug/app-health', port: port(s, 'http') };
    expect(app.livenessProbe?.httpGet).toEqual(relay);
    expect(app.readinessProbe?.httpGet).toEqual(relay);
    expect(envValue(s, 'UPSTREAM_HEALTH_FAILURE_THRESHOLD')).toBe(String(valueOf(values(), 'web.healthCheck.failureThreshold')));
  });

  it('should mount secrets as directories (rotations reach the running sidecar), never through subPath', () => {
    for (const d of deployments()) {
      for (const c of containers(d)) {
        for (const m of (c.volumeMounts as Record<string, unknown>[] | undefined) ?? []) expect(m.subPath).toBeUndefined();
      }
    }
  });

  it('should mount the ServiceAccount token only when Kubernetes auth needs it', () => {
    for (const d of deployments()) expect(podSpec(d).automountServiceAccountToken).toBe(want.kubernetesAuth);
  });

  it('should create RBAC objects only with Kubernetes auth: auth-delegator for the sidecars, a metrics reader for Prometheus', () => {
    const roles = ofKind(docs(), 'ClusterRole');
    const bindings = ofKind(docs(), 'ClusterRoleBinding');
    if (!want.kubernetesAuth) {
      expect(roles).toEqual([]);
      expect(bindings).toEqual([]);
      expect(find(docs(), 'ServiceAccount', `${FULLNAME}-scraper`)).toBeUndefined();
      return;
    }
    const sa = podSpec(deployments()[0]).serviceAccountName as string;
    const delegator = bindings.find((b) => b.roleRef.name === 'system:auth-delegator');
    expect(delegator?.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: NAMESPACE }]);
    expect(roles).toHaveLength(1);
    expect(roles[0].rules).toEqual([{ nonResourceURLs: [valueOf(values(), 'metrics.path')], verbs: ['get'] }]);
    const reader = bindings.find((b) => b.roleRef.name === roles[0].metadata.name);
    expect(reader?.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roles[0].metadata.name });
    const subjects = reader?.subjects as { kind: string; name: string; namespace: string }[];
    expect(subjects).toContainEqual({ kind: 'ServiceAccount', name: `${FULLNAME}-scraper`, namespace: NAMESPACE });
    for (const s of (valueOf(values(), 'metrics.kubernetesAuth.readerSubjects') as unknown[]) ?? []) expect(subjects).toContainEqual(s);
  });

  it('should create ServiceMonitors only when enabled, scraping the port and path that serve metrics', () => {
    const sms = ofKind(docs(), 'ServiceMonitor');
    if (want.serviceMonitor === null) {
      expect(sms).toEqual([]);
      return;
    }
    expect(sms.map((s) => s.metadata.name).sort()).toEqual(want.web ? [WEB, WORKER] : [WORKER]);
    for (const sm of sms) {
      const svc = get(docs(), 'Service', sm.metadata.name);
      expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels as Record<string, string>);
      expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
      expect(sm.spec.endpoints).toHaveLength(1);
      const ep = sm.spec.endpoints[0] as Record<string, Loose>;
      expect(ep.port).toBe(sm.metadata.name === WEB ? want.webMetricsPort : 'metrics');
      expect((svc.spec.ports as { name: string }[]).map((p) => p.name)).toContain(ep.port);
      expect(ep.path).toBe('/debug/metrics');
      // Empty = Prometheus' own: the field is left out.
      expect(ep.interval).toBe(valueOf(values(), 'serviceMonitor.interval') || undefined);
      expect(ep.scrapeTimeout).toBe(valueOf(values(), 'serviceMonitor.scrapeTimeout') || undefined);
      expect(ep.bearerTokenFile).toBeUndefined();
      expect(ep.bearerTokenSecret).toBeUndefined();
      // The operator's own `endpoint` target label must not push the app's `endpoint` aside.
      expect(ep.metricRelabelings.slice(0, 2)).toEqual([
        { sourceLabels: ['exported_endpoint'], regex: '(.+)', targetLabel: 'endpoint', replacement: '$1', action: 'replace' },
        { regex: 'exported_endpoint', action: 'labeldrop' },
      ]);
      expect(ep.metricRelabelings.slice(2)).toEqual(valueOf(values(), 'serviceMonitor.metricRelabelings') ?? []);
    }
    for (const [k, v] of Object.entries((valueOf(values(), 'serviceMonitor.labels') as Record<string, string>) ?? {})) {
      for (const sm of sms) expect(sm.metadata.labels?.[k]).toBe(v);
    }
    // Native histogram settings reach the spec as given, and are left out when not set.
    const protocols = valueOf(values(), 'serviceMonitor.scrapeProtocols') as string[] | undefined;
    const nativeOn = valueOf(values(), 'serviceMonitor.scrapeNativeHistograms') as boolean | null | undefined;
    const classicOn = valueOf(values(), 'serviceMonitor.scrapeClassicHistograms') as boolean | null | undefined;
    const limit = valueOf(values(), 'serviceMonitor.nativeHistogramBucketLimit') as number | undefined;
    for (const sm of sms) {
      expect(sm.spec.scrapeProtocols).toEqual(protocols?.length ? protocols : undefined);
      expect(sm.spec.scrapeNativeHistograms).toBe(nativeOn ?? undefined);
      expect(sm.spec.scrapeClassicHistograms).toBe(classicOn ?? undefined);
      expect(sm.spec.nativeHistogramBucketLimit).toBe(limit || undefined);
    }
  });

  it('should wire the ServiceMonitor’s auth to what the values enable, from Secrets the sidecar also reads', () => {
    if (want.serviceMonitor === null) return;
    for (const sm of ofKind(docs(), 'ServiceMonitor')) {
      const ep = sm.spec.endpoints[0] as Record<string, Loose>;
      switch (want.serviceMonitor) {
        case 'none':
          expect(ep.basicAuth).toBeUndefined();
          expect(ep.authorization).toBeUndefined();
          break;
        case 'basicAuth': {
          expect(ep.authorization).toBeUndefined();
          const { username, password } = ep.basicAuth as Record<string, { name: string; key: string }>;
          expect(username.name).toBe(password.name);
          // The sidecar reads the same Secret: username from its key, password from the mounted file.
          const s = container(get(docs(), 'Deployment', sm.metadata.name), 'metrics-sidecar');
          expect(envMap(s).get('METRICS_BASIC_AUTH_USERNAME')?.valueFrom).toEqual({ secretKeyRef: { name: username.name, key: username.key } });
          const vol = (podSpec(get(docs(), 'Deployment', sm.metadata.name)).volumes as Record<string, Loose>[]).find(
            (v) => v.secret?.secretName === password.name,
          );
          expect(vol?.secret.items).toEqual([{ key: password.key, path: 'password' }]);
          const existing = valueOf(values(), 'metrics.basicAuth.existingSecret') as string;
          if (existing) {
            expect(username.name).toBe(existing);
            expect(find(docs(), 'Secret', existing)).toBeUndefined();
          } else {
            expect(secretData(docs(), username.name, username.key)).toBe(valueOf(values(), 'metrics.basicAuth.username'));
            expect(secretData(docs(), password.name, password.key)).toMatch(/^[A-Za-z0-9]{32}$/);
          }
          break;
        }
        case 'apiKey': {
          expect(ep.basicAuth).toBeUndefined();
          expect(ep.authorization.type).toBe('Bearer');
          const ref = ep.authorization.credentials as { name: string; key: string };
          const key = secretData(docs(), ref.name, ref.key)!;
          // The key Prometheus sends is accepted, with the metrics scope, by the keys file the sidecar reads.
          const file = secretData(docs(), ref.name, valueOf(values(), 'metrics.apiKeys.fileKey') as string)!;
          expect(file).not.toContain(key);
          const found = findApiKey(parseApiKeys(file), key);
          expect(found?.scopes.has('metrics')).toBe(true);
          break;
        }
        case 'kubernetes': {
          expect(ep.basicAuth).toBeUndefined();
          expect(ep.authorization.type).toBe('Bearer');
          const ref = ep.authorization.credentials as { name: string; key: string };
          const secret = get(docs(), 'Secret', ref.name);
          expect(secret.type).toBe('kubernetes.io/service-account-token');
          expect(ref.key).toBe('token');
          expect(secret.metadata.annotations?.['kubernetes.io/service-account.name']).toBe(`${FULLNAME}-scraper`);
          get(docs(), 'ServiceAccount', `${FULLNAME}-scraper`);
          break;
        }
      }
    }
  });

  it('should generate Secrets only when no existing Secret is named', () => {
    const secrets = ofKind(docs(), 'Secret')
      .map((s) => s.metadata.name)
      .sort();
    const expected: string[] = [];
    if (valueOf(values(), 'metrics.apiKeys.enabled') && !valueOf(values(), 'metrics.apiKeys.existingSecret')) expected.push(`${FULLNAME}-api-keys`);
    if (valueOf(values(), 'metrics.basicAuth.enabled') && !valueOf(values(), 'metrics.basicAuth.existingSecret')) expected.push(`${FULLNAME}-basic-auth`);
    if (want.kubernetesAuth) expected.push(`${FULLNAME}-scraper-token`);
    expect(secrets).toEqual(expected.sort());
  });

  it('should restrict the metrics port to the monitoring namespace with NetworkPolicies only when enabled', () => {
    const nps = ofKind(docs(), 'NetworkPolicy');
    if (!want.networkPolicy) {
      expect(nps).toEqual([]);
      return;
    }
    expect(nps.map((n) => n.metadata.name).sort()).toEqual(want.web ? [WEB, WORKER] : [WORKER]);
    const monitoring = valueOf(values(), 'networkPolicy.monitoringNamespaceSelector');
    for (const np of nps) {
      const d = get(docs(), 'Deployment', np.metadata.name);
      expect(np.spec.podSelector.matchLabels).toEqual(d.spec.selector.matchLabels);
      expect(np.spec.policyTypes).toEqual(['Ingress']);
      // Ports by number: some network plugins ignore a native sidecar's named ports (projectcalico/calico#8881).
      const rules = np.spec.ingress as { ports: { port: number }[]; from?: Record<string, unknown>[] }[];
      const metricsRule = rules.find((r) => r.ports.some((p) => p.port === valueOf(values(), 'metrics.port')));
      const httpRule = rules.find((r) => r.ports.some((p) => p.port === valueOf(values(), 'sidecar.listenPort')));
      if (np.metadata.name === WEB) {
        // The main port is the app's: open (unless webFrom says otherwise).
        expect(httpRule?.from).toBeUndefined();
        if (want.webMetricsPort === 'http') expect(metricsRule).toBeUndefined();
      } else {
        expect(httpRule).toBeUndefined();
        expect(rules).toHaveLength(1);
      }
      if (metricsRule) {
        expect(metricsRule.from?.[0]).toMatchObject({ namespaceSelector: monitoring });
        for (const peer of metricsRule.from ?? []) expect(peer.namespaceSelector !== undefined || peer.podSelector !== undefined).toBe(true);
      }
    }
  });

  it('should create PodDisruptionBudgets only when enabled, selecting each workload', () => {
    const pdbs = ofKind(docs(), 'PodDisruptionBudget');
    if (!want.podDisruptionBudget) {
      expect(pdbs).toEqual([]);
      return;
    }
    for (const d of deployments()) expect(get(docs(), 'PodDisruptionBudget', d.metadata.name).spec.selector).toEqual(d.spec.selector);
  });

  it('should create the PrometheusRule and the dashboard ConfigMap only when enabled', () => {
    expect(ofKind(docs(), 'PrometheusRule').length > 0).toBe(want.prometheusRule);
    const dash = find(docs(), 'ConfigMap', `${FULLNAME}-dashboard`);
    expect(dash !== undefined).toBe(want.grafanaDashboard);
    if (dash) {
      expect(dash.metadata.labels?.grafana_dashboard).toBe('1');
      expect(() => JSON.parse((dash.data as Record<string, string>)['metrics-sidecar.json'])).not.toThrow();
    }
  });

  it('should add prometheus.io annotations naming the port that serves metrics only when enabled', () => {
    for (const d of deployments()) {
      const a = (d.spec.template.metadata.annotations as Record<string, string> | undefined) ?? {};
      if (!want.discoveryAnnotations) {
        expect(Object.keys(a).filter((k) => k.startsWith('prometheus.io/'))).toEqual([]);
        continue;
      }
      const portName = d.metadata.name === WEB ? want.webMetricsPort : 'metrics';
      expect(a).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/path': '/debug/metrics',
        'prometheus.io/port': String(port(container(d, 'metrics-sidecar'), portName)),
      });
    }
  });

  it('should print the port-forward commands and the curl with the configured credentials in NOTES.txt', () => {
    const r = helm(['install', '--dry-run=client', RELEASE, CHART, '--namespace', NAMESPACE, '-f', scenarioFile(name)]);
    expect(r.status).toBe(0);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    expect(notes).toContain(`kubectl -n ${NAMESPACE} port-forward deploy/${WORKER} 8491:8491`);
    if (want.web) {
      const forward = want.webMetricsPort === 'http' ? '8080:8080\n' : '8080:8080 18491:8491\n';
      expect(notes).toContain(`kubectl -n ${NAMESPACE} port-forward deploy/${WEB} ${forward}`);
    } else {
      expect(notes).not.toContain(`deploy/${WEB}`);
    }
    const auth =
      want.serviceMonitor ?? (valueOf(values(), 'metrics.basicAuth.enabled') ? 'basicAuth' : valueOf(values(), 'metrics.apiKeys.enabled') ? 'apiKey' : 'none');
    const curl = {
      none: 'curl -s http://localhost',
      basicAuth: 'curl -s -u "$METRICS_USER:$METRICS_PASSWORD" http://localhost',
      apiKey: 'curl -s -H "Authorization: Bearer $METRICS_TOKEN" http://localhost',
      kubernetes: 'curl -s -H "Authorization: Bearer $METRICS_TOKEN" http://localhost',
    }[auth];
    expect(notes).toContain(`${curl}:8491/debug/metrics`);
    if (auth === 'basicAuth') expect(notes).toMatch(/METRICS_PASSWORD=\$\(kubectl -n apps get secret \S+ -o jsonpath='\{\.data\.\w+\}' \| base64 -d\)/);
    if (auth === 'kubernetes') expect(notes).toContain(`kubectl -n ${NAMESPACE} create token ${FULLNAME}-scraper`);
  });

  it('should have a helm test hook pod that checks the Services’ real ports', () => {
    const pods = ofKind(docs(), 'Pod');
    expect(pods).toHaveLength(1);
    const pod = pods[0];
    expect(pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    const env = envMap((pod.spec.containers as Container[])[0]);
    const checks = JSON.parse(env.get('CHECKS')!.value!) as { url: string; auth?: boolean }[];
    expect(checks.length).toBeGreaterThan(0);
    for (const c of checks) {
      const u = new URL(c.url);
      const [svcName, ns] = u.hostname.split('.');
      expect(ns).toBe(NAMESPACE);
      const svc = get(docs(), 'Service', svcName);
      expect((svc.spec.ports as { port: number }[]).map((p) => p.port)).toContain(Number(u.port || '80'));
    }
    // Metrics are checked with the credentials Prometheus uses, unless an allow-list would refuse the test pod.
    const cidrs = (valueOf(values(), 'metrics.allowedCidrs') as string[]).length > 0;
    expect(checks.some((c) => c.auth)).toBe(!cidrs);
  });
});

describe('chart conventions', () => {
  it('should render one kind per template file, named after the kind', () => {
    const all =
      'metrics.kubernetesAuth.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true,networkPolicy.enabled=true,metrics.basicAuth.enabled=true,metrics.apiKeys.enabled=true';
    const outputs = ['serviceMonitor.enabled=true', 'podMonitor.enabled=true'].map((monitor) => {
      const r = helm(templateArgs([scenarioFile('full')], ['--set', `${all},${monitor}`]));
      expect(r.status).toBe(0);
      return r.stdout;
    });
    const kindsBySource = new Map<string, Set<string>>();
    for (const chunk of outputs.join('\n---\n').split(/^---$/m)) {
      const source = /^# Source: metrics-sidecar\/templates\/(\S+)$/m.exec(chunk)?.[1];
      const doc = parseManifests(chunk)[0];
      if (!source || !doc) continue;
      kindsBySource.set(source, (kindsBySource.get(source) ?? new Set()).add(doc.kind));
    }
    const templates = fs.readdirSync(path.join(CHART, 'templates')).filter((f) => f.endsWith('.yaml'));
    for (const f of templates) expect([f, kindsBySource.has(f)]).toEqual([f, true]);
    for (const [source, kinds] of kindsBySource) {
      expect([source, kinds.size]).toEqual([source, 1]);
      const kind = [...kinds][0].toLowerCase();
      expect(path.basename(source)).toMatch(new RegExp(`^(${kind}|test-connection)(-[a-z-]+)?\\.yaml$`));
    }
  });

  it('should document every key of values.yaml with a `# --` comment (a parent may instead have every child documented)', () => {
    const doc = YAML.parseDocument(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
    const undocumented: string[] = [];
    const documented = (comment: string | null | undefined) => (comment ?? '').split('\n').some((l) => l.trim().startsWith('--'));
    const walk = (map: YAML.YAMLMap, prefix: string): boolean => {
      let ok = true;
      map.items.forEach((pair, i) => {
        const key = `${prefix}${String((pair.key as YAML.Scalar).value)}`;
        const comment = (pair.key as YAML.Scalar).commentBefore ?? (i === 0 ? map.commentBefore : undefined);
        if (documented(comment)) return;
        if (YAML.isMap(pair.value) && pair.value.items.length > 0 && walk(pair.value, `${key}.`)) return;
        undocumented.push(key);
        ok = false;
      });
      return ok;
    };
    walk(doc.contents as YAML.YAMLMap, '');
    expect(undocumented).toEqual([]);
  });

  it('should keep optional resources off by default', () => {
    const docs = rendered.get('default')!;
    const kinds = [...new Set(docs.map((d) => d.kind))].sort();
    expect(kinds).toEqual(['Deployment', 'Pod', 'Service', 'ServiceAccount']);
  });

  it('should use the exec `sleep` preStop before Kubernetes 1.30 (no lifecycle sleep action there), the sleep action after', () => {
    const old = render([], ['--kube-version', '1.28.0']);
    const app = container(get(old, 'Deployment', WEB), 'app');
    expect(app.lifecycle).toEqual({ preStop: { exec: { command: ['sleep', '5'] } } });
    const current = render([], ['--kube-version', '1.31.0', '--set', 'sidecar.native=false']);
    expect(container(get(current, 'Deployment', WEB), 'app').lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
  });

  it('should apply common.env to every container with every optional feature on, keeping valueFrom entries', () => {
    const common: EnvVar[] = [
      { name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'true' },
      { name: 'ENABLE_DB_METRICS', value: 'true' },
      { name: 'DD_ENV', valueFrom: { configMapKeyRef: { name: 'settings', key: 'env' } } },
    ];
    const r = renderValues({
      common: { env: common },
      sidecar: { env: [{ name: 'LOG_LEVEL', value: 'debug' }] },
      web: { env: [{ name: 'WEB_CONCURRENCY', value: '4' }] },
      metrics: {
        serveOnMainPort: true,
        basicAuth: { enabled: true },
        apiKeys: { enabled: true },
        kubernetesAuth: { enabled: true },
        statsd: { mappings: 'mappings: []\n' },
        mergeTargets: { web: ['http://127.0.0.1:9100/metrics'] },
      },
      serviceMonitor: { enabled: true },
    });
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    for (const name of [WEB, WORKER]) {
      for (const c of containers(get(docs, 'Deployment', name))) {
        const env = envMap(c);
        for (const e of common) {
          const forced = name === WORKER && c.name === 'metrics-sidecar' && e.name === 'SERVE_PROMETHEUS_ENDPOINT';
          expect([name, c.name, env.get(e.name)]).toEqual([name, c.name, forced ? { name: e.name, value: 'false' } : e]);
        }
      }
    }
    expect(envValue(container(get(docs, 'Deployment', WEB), 'app'), 'WEB_CONCURRENCY')).toBe('4');
    expect(envValue(container(get(docs, 'Deployment', WEB), 'metrics-sidecar'), 'LOG_LEVEL')).toBe('debug');
    expect(envValue(container(get(docs, 'Deployment', WEB), 'app'), 'LOG_LEVEL')).toBeUndefined();
  });

  it('should let a later env list win over common.env for the same name, once', () => {
    const r = renderValues({ common: { env: [{ name: 'LOG_LEVEL', value: 'info' }] }, sidecar: { env: [{ name: 'LOG_LEVEL', value: 'debug' }] } });
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    const s = container(get(docs, 'Deployment', WEB), 'metrics-sidecar');
    expect((s.env ?? []).filter((e) => e.name === 'LOG_LEVEL')).toEqual([{ name: 'LOG_LEVEL', value: 'debug' }]);
    expect(envValue(container(get(docs, 'Deployment', WEB), 'app'), 'LOG_LEVEL')).toBe('info');
  });
});
