/**
 * The kustomize component over any Service (issue 17): for each shape of app — a Service without
 * labels, with one unnamed port, one named port, several named ports, targetPort as a number or a
 * name, or none — a kustomization in a temporary directory uses deploy/kustomize/metrics-sidecar,
 * the real `kubectl kustomize` renders it, and the output must pass the Kubernetes models and the
 * API server's port rules (test/helpers/k8s-ports.ts). Its Service's first port must reach the
 * sidecar, the sidecar must forward to the app's port on localhost, the other ports must be as
 * they were, and the ServiceMonitor must select the Service by the label the component adds.
 * Also: the port validator itself, the optional NetworkPolicy component, and the example's
 * app bound to 127.0.0.1. (The example's sidecar against the chart's: existing-workloads.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { containerPortProblems, ianaSvcNameProblems, serviceProblems, type ContainerPortSpec, type ServicePortSpec } from '../helpers/k8s-ports';
import { ROOT, get, ofKind, parseManifests, type Manifest } from './helm';
import { validateModels } from './models';

const { ensureKubectl } = require('../helpers/helm-binary.cjs') as { ensureKubectl: () => string };

const KUSTOMIZE = path.join(ROOT, 'deploy', 'kustomize');
const COMPONENT = path.join(KUSTOMIZE, 'metrics-sidecar');
const NETWORK_POLICY = path.join(KUSTOMIZE, 'metrics-sidecar-network-policy');
/** The label the component puts on the Service and its ServiceMonitor selects. */
const SELECTOR_LABEL = 'metrics-sidecar.io/service';

interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
  ports?: ContainerPortSpec[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}

const podSpec = (d: Manifest) => d.spec.template.spec as PodSpec;
const env = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
const sidecarOf = (d: Manifest) => {
  const s = (podSpec(d).initContainers ?? []).find((c) => c.name === 'metrics-sidecar');
  if (s === undefined) throw new Error(`${d.metadata.name}: no metrics-sidecar init container`);
  return s;
};

/** Runs the real `kubectl kustomize` on a directory. */
function kustomize(dir: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(ensureKubectl(), ['kustomize', dir], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir() } });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Writes `files` into a fresh temporary directory whose kustomization.yaml lists them as
 * resources and uses `components` (kustomize wants them as relative paths), renders it and returns
 * the objects; throws with kubectl's message when it fails.
 */
function build(files: Record<string, string>, components: string[] = [COMPONENT], extra: Record<string, unknown> = {}): Manifest[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kustomize-'));
  try {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const kustomization = {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: Object.keys(files),
      components: components.map((c) => path.relative(dir, c)),
      ...extra,
    };
    fs.writeFileSync(path.join(dir, 'kustomization.yaml'), YAML.stringify(kustomization));
    const r = kustomize(dir);
    if (r.status !== 0 || r.stderr !== '') throw new Error(`kubectl kustomize failed (${r.status}): ${r.stderr}`);
    return parseManifests(r.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** An app as users have it: a Deployment whose first container is the app, and its Service. */
interface Shape {
  /** Labels of the Service (none: no `metadata.labels` at all). */
  serviceLabels?: Record<string, string>;
  servicePorts: ServicePortSpec[];
  /** Ports of the app container. */
  appPorts: ContainerPortSpec[];
}

function appYaml(name: string, shape: Shape): string {
  const labels = { app: name };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1', ports: shape.appPorts }] },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, ...(shape.serviceLabels ? { labels: shape.serviceLabels } : {}) },
    spec: { selector: labels, ports: shape.servicePorts },
  };
  return YAML.stringify(deployment) + '---\n' + YAML.stringify(service);
}

/**
 * Where a Service port's traffic lands in a pod, as the EndpointSlice controller of Kubernetes
 * 1.<minor> finds it: a number as is (with the container declaring it, if one does); a name in the
 * regular containers first, then, from 1.33 only (kubernetes/kubernetes#128850), in the native
 * sidecars (init containers with restartPolicy: Always). Undefined: the Service has no endpoint.
 */
function landing(pod: PodSpec, port: ServicePortSpec, minor: number): { container: string | undefined; port: number } | undefined {
  const target = port.targetPort ?? port.port;
  const protocol = port.protocol ?? 'TCP';
  const sidecars = (pod.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  for (const c of [...pod.containers, ...sidecars]) {
    const byName = typeof target === 'string' && (minor >= 33 || pod.containers.includes(c));
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== protocol) continue;
      if (byName ? p.name === target : p.containerPort === target) return { container: c.name, port: p.containerPort as number };
    }
  }
  return typeof target === 'number' ? { container: undefined, port: target } : undefined;
}

/** The Kubernetes versions the component supports (native sidecars from 1.29) that differ in `landing`. */
const MINORS = [29, 33];

const expectModelsValid = (docs: Manifest[]) => {
  const results = validateModels(docs);
  expect(results.filter((r) => r.error !== null)).toEqual([]);
  expect(results.length).toBe(docs.length);
};

/** What every rendering must give, whatever the Service looked like. */
function expectWorkingOutput(docs: Manifest[], name: string, shape: Shape) {
  expectModelsValid(docs);
  const svc = get(docs, 'Service', name);
  const ports = svc.spec.ports as ServicePortSpec[];
  const deployment = get(docs, 'Deployment', name);
  const pod = podSpec(deployment);
  const sidecar = sidecarOf(deployment);
  const e = env(sidecar);

  // What the API server would accept.
  expect(serviceProblems(svc)).toEqual([]);
  expect(containerPortProblems(pod)).toEqual([]);
  // Every port named, and names fit for a container port too (IANA_SVC_NAME, stricter than the DNS label the API requires).
  for (const p of ports) expect({ port: p.port, problems: ianaSvcNameProblems(p.name ?? '') }).toEqual({ port: p.port, problems: [] });
  // One network namespace: no two containers declare the same port name or number.
  const podPorts = [...pod.containers, ...(pod.initContainers ?? [])].flatMap((c) => c.ports ?? []);
  const podNames = podPorts.map((p) => p.name).filter((n) => n !== undefined);
  expect(new Set(podNames).size).toBe(podNames.length);
  expect(new Set(podPorts.map((p) => p.containerPort)).size).toBe(podPorts.length);

  // The Service's first port keeps its number and now reaches the sidecar's main port, on every supported version.
  expect(ports[0].port).toBe(shape.servicePorts[0].port);
  for (const minor of MINORS)
    expect({ minor, at: landing(pod, ports[0], minor) }).toEqual({ minor, at: { container: 'metrics-sidecar', port: Number(e.LISTEN_PORT) } });
  // The sidecar forwards to the port the Service reached before: the app container's first port.
  const appOnly = { containers: [{ name: 'app', ports: shape.appPorts }] };
  const before = landing(appOnly, shape.servicePorts[0], 29);
  expect(before?.container).toBe('app');
  expect(e.UPSTREAM_URL).toBe(`http://127.0.0.1:${before!.port}`);
  expect(pod.containers[0].ports?.[0].containerPort).toBe(before!.port);
  // The other ports are as they were, and still reach the same app port.
  for (const [i, p] of shape.servicePorts.entries()) {
    if (i === 0) continue;
    expect(ports[i]).toEqual(p);
    for (const minor of MINORS) expect({ minor, at: landing(pod, ports[i], minor) }).toEqual({ minor, at: landing(appOnly, p, minor) });
  }
  // A `metrics` port reaching the sidecar's metrics port.
  const metrics = ports.find((p) => p.name === 'metrics');
  expect(metrics).toBeDefined();
  for (const minor of MINORS)
    expect({ minor, at: landing(pod, metrics!, minor) }).toEqual({ minor, at: { container: 'metrics-sidecar', port: Number(e.PROMETHEUS_PORT) } });
  expect(ports.length).toBe(shape.servicePorts.length + 1);

  // The Service keeps its labels and gets the component's; its ServiceMonitor selects exactly that one.
  expect(svc.metadata.labels).toEqual({ ...shape.serviceLabels, [SELECTOR_LABEL]: name });
  const monitors = ofKind(docs, 'ServiceMonitor');
  expect(monitors.map((m) => m.metadata.name)).toEqual([name]);
  expect(monitors[0].spec.selector).toEqual({ matchLabels: { [SELECTOR_LABEL]: name } });
  expect(svc.metadata.labels).toMatchObject(monitors[0].spec.selector.matchLabels as Record<string, string>);
  const endpoints = monitors[0].spec.endpoints as { port: string; path: string }[];
  expect(endpoints.map((ep) => ep.port)).toEqual(['metrics']);
  expect(endpoints[0].path).toBe(e.METRICS_PATH);
}

describe('the port validator (test/helpers/k8s-ports.ts)', () => {
  const svc = (ports: ServicePortSpec[]) => ({ metadata: { name: 'x' }, spec: { ports } });

  it.each<[string, ServicePortSpec[]]>([
    ['one unnamed port', [{ port: 80, targetPort: 8000 }]],
    ['one port, targetPort defaulting to the port', [{ port: 8000 }]],
    [
      'named ports, targetPort by name and number',
      [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 8491, targetPort: 8491 },
      ],
    ],
    [
      'the same number over two protocols',
      [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
      ],
    ],
    ['a 63-character port name', [{ name: 'a'.repeat(63), port: 80 }]],
  ])('should accept a Service with %s', (_, ports) => {
    expect(serviceProblems(svc(ports))).toEqual([]);
  });

  it.each<[string, ServicePortSpec[], RegExp]>([
    ['no ports', [], /^spec\.ports: Required/],
    [
      'two ports, the first unnamed (what the old component made)',
      [
        { port: 80, targetPort: 'http' },
        { name: 'metrics', port: 8491 },
      ],
      /^spec\.ports\[0\]\.name: Required/,
    ],
    [
      'two ports of the same name',
      [
        { name: 'http', port: 80 },
        { name: 'http', port: 81 },
      ],
      /^spec\.ports\[1\]\.name: Duplicate/,
    ],
    ['an upper-case port name', [{ name: 'HTTP', port: 80 }], /^spec\.ports\[0\]\.name: Invalid value "HTTP"/],
    ['a port name ending in -', [{ name: 'http-', port: 80 }], /^spec\.ports\[0\]\.name: Invalid/],
    ['a 64-character port name', [{ name: 'a'.repeat(64), port: 80 }], /more than 63 characters/],
    ['port 0', [{ port: 0 }], /^spec\.ports\[0\]\.port: Invalid/],
    ['port 65536', [{ port: 65536, targetPort: 80 }], /^spec\.ports\[0\]\.port: Invalid/],
    ['a protocol the API does not know', [{ port: 80, protocol: 'HTTP' }], /^spec\.ports\[0\]\.protocol: Unsupported/],
    [
      'the same number and protocol twice',
      [
        { name: 'a', port: 80 },
        { name: 'b', port: 80, protocol: 'TCP' },
      ],
      /^spec\.ports\[1\]: Duplicate value TCP\/80/,
    ],
    ['a targetPort name of 16 characters', [{ port: 80, targetPort: 'abcdefghijklmnop' }], /targetPort: .*no more than 15/],
    ['a targetPort name with _', [{ port: 80, targetPort: 'http_alt' }], /targetPort: .*alpha-numeric/],
    ['a targetPort name without a letter ("8080" as a string)', [{ port: 80, targetPort: '8080' }], /targetPort: .*at least one letter/],
    ['a targetPort name with --', [{ port: 80, targetPort: 'http--alt' }], /targetPort: .*consecutive hyphens/],
    ['a targetPort name starting with -', [{ port: 80, targetPort: '-http' }], /targetPort: .*begin or end/],
    ['targetPort 70000', [{ port: 80, targetPort: 70000 }], /targetPort: Invalid value 70000/],
  ])('should reject a Service with %s', (_, ports, problem) => {
    const problems = serviceProblems(svc(ports));
    expect(problems.some((p) => problem.test(p))).toBe(true);
  });

  it.each<[string, ContainerPortSpec[], RegExp | null]>([
    ['named and unnamed ports', [{ name: 'http', containerPort: 8080 }, { containerPort: 9000 }], null],
    ['a 16-character name', [{ name: 'abcdefghijklmnop', containerPort: 80 }], /ports\[0\]\.name: .*no more than 15/],
    [
      'a name twice',
      [
        { name: 'http', containerPort: 80 },
        { name: 'http', containerPort: 81 },
      ],
      /ports\[1\]\.name: Duplicate/,
    ],
    ['port 0', [{ containerPort: 0 }], /ports\[0\]\.containerPort: Invalid/],
  ])('should check a container with %s', (_, ports, problem) => {
    const problems = containerPortProblems({ containers: [{ name: 'app', ports }] });
    if (problem === null) expect(problems).toEqual([]);
    else expect(problems.some((p) => problem.test(p))).toBe(true);
  });
});

describe('the kustomize component over any Service (deploy/kustomize/metrics-sidecar)', () => {
  it.each<[string, Shape]>([
    ['no labels, one unnamed port, numeric targetPort', { servicePorts: [{ port: 80, targetPort: 8000 }], appPorts: [{ containerPort: 8000 }] }],
    ['no labels, one unnamed port without targetPort (it defaults to the port)', { servicePorts: [{ port: 8000 }], appPorts: [{ containerPort: 8000 }] }],
    [
      'labels, one unnamed port, numeric targetPort',
      { serviceLabels: { app: 'api' }, servicePorts: [{ port: 80, targetPort: 8000 }], appPorts: [{ containerPort: 8000 }] },
    ],
    [
      'labels, one named port, named targetPort',
      { serviceLabels: { app: 'api' }, servicePorts: [{ name: 'http', port: 80, targetPort: 'http' }], appPorts: [{ name: 'http', containerPort: 8000 }] },
    ],
    [
      'labels, one port named otherwise, numeric targetPort, a named app port',
      {
        serviceLabels: { app: 'api', tier: 'web' },
        servicePorts: [{ name: 'web', port: 8080, targetPort: 5000 }],
        appPorts: [{ name: 'web', containerPort: 5000 }],
      },
    ],
    [
      'several named ports, named targetPorts',
      {
        serviceLabels: { app: 'api' },
        servicePorts: [
          { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
          { name: 'grpc', port: 9090, targetPort: 'grpc', protocol: 'TCP' },
        ],
        appPorts: [
          { name: 'http', containerPort: 8000, protocol: 'TCP' },
          { name: 'grpc', containerPort: 9090, protocol: 'TCP' },
        ],
      },
    ],
    [
      'several named ports, numeric targetPorts, one of them UDP',
      {
        servicePorts: [
          { name: 'web', port: 80, targetPort: 5000 },
          { name: 'statsd', port: 8125, targetPort: 8125, protocol: 'UDP' },
        ],
        appPorts: [{ containerPort: 5000 }, { containerPort: 8125, protocol: 'UDP' }],
      },
    ],
  ])('should render a working app, sidecar, Service and ServiceMonitor over a Service with %s', (_, shape) => {
    const docs = build({ 'app.yaml': appYaml('api', shape) });
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(['Deployment/api', 'Service/api', 'ServiceMonitor/api']);
    expectWorkingOutput(docs, 'api', shape);
  });

  it('should give each of two apps in one namespace a ServiceMonitor selecting only its own Service, though their labels are the same', () => {
    const shape: Shape = { serviceLabels: { team: 'shop' }, servicePorts: [{ port: 80, targetPort: 8000 }], appPorts: [{ containerPort: 8000 }] };
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kustomize-two-'));
    try {
      for (const name of ['cart', 'checkout']) {
        fs.mkdirSync(path.join(root, name));
        fs.writeFileSync(path.join(root, name, 'app.yaml'), appYaml(name, shape));
        const k = { resources: ['app.yaml'], components: [path.relative(path.join(root, name), COMPONENT)] };
        fs.writeFileSync(path.join(root, name, 'kustomization.yaml'), YAML.stringify(k));
      }
      fs.writeFileSync(path.join(root, 'kustomization.yaml'), YAML.stringify({ namespace: 'shop', resources: ['cart', 'checkout'] }));
      const r = kustomize(root);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const docs = parseManifests(r.stdout);
      expectModelsValid(docs);
      const services = ofKind(docs, 'Service');
      expect(services.map((s) => s.metadata.name).sort()).toEqual(['cart', 'checkout']);
      for (const m of ofKind(docs, 'ServiceMonitor')) {
        const selected = services.filter((s) =>
          Object.entries(m.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => s.metadata.labels?.[k] === v),
        );
        expect({ monitor: m.metadata.name, selects: selected.map((s) => s.metadata.name) }).toEqual({ monitor: m.metadata.name, selects: [m.metadata.name] });
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('should leave the kustomization’s other ServiceMonitors as they are', () => {
    const shape: Shape = { serviceLabels: { app: 'api' }, servicePorts: [{ port: 80, targetPort: 8000 }], appPorts: [{ containerPort: 8000 }] };
    const other = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'database' },
      spec: { selector: { matchLabels: { app: 'database' } }, endpoints: [{ port: 'exporter' }] },
    };
    const docs = build({ 'app.yaml': appYaml('api', shape), 'monitor.yaml': YAML.stringify(other) });
    expect(get(docs, 'ServiceMonitor', 'database')).toEqual(other);
    expect(get(docs, 'ServiceMonitor', 'api').spec.selector).toEqual({ matchLabels: { [SELECTOR_LABEL]: 'api' } });
  });

  it('should admit ingress only to the sidecar’s ports with the NetworkPolicy component (deploy/kustomize/metrics-sidecar-network-policy)', () => {
    const shape: Shape = { servicePorts: [{ port: 80, targetPort: 8000 }], appPorts: [{ containerPort: 8000 }] };
    const docs = build({ 'app.yaml': appYaml('api', shape) }, [COMPONENT, NETWORK_POLICY]);
    expectWorkingOutput(
      docs.filter((d) => d.kind !== 'NetworkPolicy'),
      'api',
      shape,
    );
    expectModelsValid(docs);
    const deployment = get(docs, 'Deployment', 'api');
    const policy = get(docs, 'NetworkPolicy', 'api');
    expect(policy.spec.podSelector).toEqual({ matchLabels: deployment.spec.selector.matchLabels });
    expect(deployment.spec.template.metadata.labels).toMatchObject(policy.spec.podSelector.matchLabels as Record<string, string>);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    // Exactly the sidecar's ports, by number (named ports of native sidecars are not resolved by every network plugin).
    const admitted = (policy.spec.ingress as { from?: unknown; ports: { port: number | string; protocol: string }[] }[]).flatMap((rule) => rule.ports);
    const sidecarPorts = (sidecarOf(deployment).ports ?? []).map((p) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP' }));
    expect(admitted).toEqual(sidecarPorts);
    expect(admitted.map((p) => p.port)).not.toContain(8000);
  });
});

describe('the example (deploy/kustomize/example)', () => {
  it('should bind the app to 127.0.0.1 on the port the sidecar forwards to, and admit ingress only to the sidecar’s ports', () => {
    const r = kustomize(path.join(KUSTOMIZE, 'example'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    expectModelsValid(docs);
    const deployment = get(docs, 'Deployment', 'web');
    const [nginx] = podSpec(deployment).containers;
    const upstream = new URL(env(sidecarOf(deployment)).UPSTREAM_URL ?? '');
    expect(upstream.hostname).toBe('127.0.0.1');
    // nginx reads /etc/nginx/conf.d/*.conf: the mounted ConfigMap's server listens on loopback, on UPSTREAM_URL's port.
    const mount = nginx.volumeMounts?.find((m) => m.mountPath === '/etc/nginx/conf.d');
    const volume = podSpec(deployment).volumes?.find((v) => v.name === mount?.name);
    const configMap = get(docs, 'ConfigMap', volume?.configMap?.name ?? '(none)');
    const listens = Object.values(configMap.data as Record<string, string>).flatMap((conf) => [...conf.matchAll(/^\s*listen\s+([^;]+);/gm)].map((m) => m[1]));
    expect(listens).toEqual([`127.0.0.1:${upstream.port}`]);
    // nginx-unprivileged's default port (8080) would be the sidecar's.
    expect(Number(upstream.port)).not.toBe(Number(env(sidecarOf(deployment)).LISTEN_PORT));
    const policy = get(docs, 'NetworkPolicy', 'web');
    expect(policy.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const admitted = (policy.spec.ingress as { ports: { port: number }[] }[]).flatMap((rule) => rule.ports.map((p) => p.port));
    expect(admitted.sort()).toEqual((sidecarOf(deployment).ports ?? []).map((p) => p.containerPort).sort());
  });
});
