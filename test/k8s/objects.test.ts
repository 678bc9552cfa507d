/**
 * Objects the API server must accept: what the chart renders for every ci/ scenario, what the
 * kustomize example renders, and the documented objects (docs/access-control.md's RBAC block for
 * Kubernetes auth, and docs/existing-workloads.md's "By hand" snippets put into a Service and a Deployment, as
 * test/chart/existing-workloads.test.ts builds them), each applied to kube-apiserver v1.20.2 with
 * `kubectl apply --server-side --dry-run=server` (server-side, as Helm 4 applies; nothing is stored).
 *
 * What this 1.20 server does not have stays with the schema checks of test/chart/ (kubernetes-models
 * and @kubernetes-models/prometheus-operator), and the test lists those exactly:
 * - monitoring.coreos.com ServiceMonitor, PodMonitor, PrometheusRule: no CRD for them is packaged
 *   anywhere this project can install from;
 * - policy/v1 PodDisruptionBudget: served from Kubernetes 1.21;
 * - a Deployment whose sidecar is native (an init container with restartPolicy: Always, 1.28+),
 *   which the chart renders for 1.29 and later: the same scenario rendered for 1.28
 *   (`--kube-version`, the chart's ordinary-container sidecar and exec preStop) is applied instead,
 *   with kubectl's strict field validation, so a field 1.20 does not know fails rather than being
 *   dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { NAMESPACE, ROOT, helm, parseManifests, scenarioFile, scenarios, templateArgs, type Manifest } from '../chart/helm';
import { api, kubectl, ok } from './env';

const { ensureKubectl } = require('../helpers/helm-binary.cjs') as { ensureKubectl(): string };

const CRD = 'no CRD for it is packaged anywhere this project installs from: the kubernetes-models schema check (test/chart) stays';
const EXPECTED_SKIPS: Record<string, string> = {
  'monitoring.coreos.com/v1 ServiceMonitor': CRD,
  'monitoring.coreos.com/v1 PodMonitor': CRD,
  'monitoring.coreos.com/v1 PrometheusRule': CRD,
  'policy/v1 PodDisruptionBudget': 'policy/v1 is served from Kubernetes 1.21',
  'apps/v1 Deployment (native sidecar)':
    'an init container with restartPolicy: Always is Kubernetes 1.28+; the same Deployment rendered for 1.28 (--kube-version) is applied instead',
};

/** Why the 1.20 server cannot take `o`, or undefined when it must. */
function skipReason(o: Manifest): [string, string] | undefined {
  const key = `${o.apiVersion} ${o.kind}`;
  if (o.apiVersion.startsWith('monitoring.coreos.com/') || key === 'policy/v1 PodDisruptionBudget') return [key, EXPECTED_SKIPS[key] ?? 'unexpected'];
  const init = (o.spec?.template?.spec?.initContainers ?? o.spec?.initContainers ?? []) as { restartPolicy?: string }[];
  if (init.some((c) => c.restartPolicy === 'Always')) return [`${key} (native sidecar)`, EXPECTED_SKIPS[`${key} (native sidecar)`] ?? 'unexpected'];
  return undefined;
}

/** What kubectl prints for each object a server-side dry run accepted. */
const accepted = (o: Manifest) =>
  new RegExp(`^${o.kind.toLowerCase()}[^/]*/${o.metadata.name.replace(/[.]/g, '\\.')} serverside-applied \\(server dry run\\)$`, 'm');

async function ensureNamespace(name: string): Promise<void> {
  const r = await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  if (r.status !== 201 && r.status !== 409) throw new Error(`namespace ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}

const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding', 'Namespace']);

/** YAML of `docs`, each namespaced object without a namespace put into `namespace` (as `helm install -n` would). */
const yamlOf = (docs: Manifest[], namespace?: string): string =>
  docs
    .map((d) => YAML.stringify(namespace && !CLUSTER_SCOPED.has(d.kind) && !d.metadata.namespace ? { ...d, metadata: { ...d.metadata, namespace } } : d))
    .join('---\n');

/** Applies `docs` with a server-side dry run; resolves kubectl's result. */
async function dryRun(docs: Manifest[], namespace?: string) {
  return kubectl(
    ['apply', '--server-side', '--dry-run=server', '--field-manager=metrics-sidecar-test', '--validate=strict', '-f', '-'],
    yamlOf(docs, namespace),
  );
}

describe('objects the real API server (v1.20.2) must accept, by server-side dry run', () => {
  const skipped = new Map<string, string>();
  const applied = new Set<string>();

  beforeAll(async () => {
    // Where the rendered objects live; and the `default` ServiceAccount of each, which the
    // controller-manager would make (none runs here) and a Pod's admission looks up.
    for (const ns of [NAMESPACE, 'shop', 'monitoring']) {
      await ensureNamespace(ns);
      const sa = await api('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
      if (sa.status !== 201 && sa.status !== 409) throw new Error(`default ServiceAccount in ${ns}: ${sa.status}`);
    }
  });

  /** Dry-runs `docs` less what 1.20 lacks (noted in `skipped`); expects every one accepted. */
  const expectAccepted = async (docs: Manifest[], namespace?: string) => {
    const take = docs.filter((d) => {
      const skip = skipReason(d);
      if (skip) skipped.set(skip[0], skip[1]);
      return skip === undefined;
    });
    expect(take.length).toBeGreaterThan(0);
    const r = await dryRun(take, namespace);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    for (const d of take) {
      expect(r.stdout).toMatch(accepted(d));
      applied.add(`${d.apiVersion} ${d.kind}`);
    }
  };

  it.each(scenarios())('should accept what the chart renders for ci/%s-values.yaml', async (name) => {
    const r = helm(templateArgs([scenarioFile(name)]));
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    // The ServiceAccounts are stored first: a Pod's admission (the `helm test` Pod) looks its
    // ServiceAccount up, and a dry run stores nothing for the Pod to find.
    const accounts = docs.filter((d) => d.kind === 'ServiceAccount');
    const stored = await kubectl(['apply', '--server-side', '--field-manager=metrics-sidecar-test', '-f', '-'], yamlOf(accounts, NAMESPACE));
    expect({ code: stored.code, stderr: stored.stderr }).toEqual({ code: 0, stderr: '' });
    await expectAccepted(docs, NAMESPACE);
  });

  it.each(scenarios())('should accept the Deployments the chart renders for ci/%s-values.yaml on a cluster without native sidecars (1.28)', async (name) => {
    const r = helm(templateArgs([scenarioFile(name)], ['--kube-version', 'v1.28.0']));
    expect(r.status).toBe(0);
    const deployments = parseManifests(r.stdout).filter((d) => d.kind === 'Deployment');
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) expect(skipReason(d)).toBeUndefined();
    await expectAccepted(deployments, NAMESPACE);
  });

  it('should accept what the kustomize example renders (deploy/kustomize/example, with the component and the NetworkPolicy component)', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(ensureKubectl(), ['kustomize', path.join(ROOT, 'deploy', 'kustomize', 'example')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir() },
    });
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    expect(docs.map((d) => d.kind).sort()).toEqual(expect.arrayContaining(['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service']));
    await expectAccepted(docs);
  });

  it('should accept the RBAC objects of docs/access-control.md for Kubernetes auth', async () => {
    const page = fs.readFileSync(path.join(ROOT, 'docs', 'access-control.md'), 'utf8');
    const section = page.slice(page.indexOf('## Kubernetes ServiceAccount tokens (RBAC)'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section);
    expect(block).not.toBeNull();
    const docs = parseManifests(block![1]);
    expect(docs.map((d) => d.kind)).toEqual(['ClusterRoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
    await expectAccepted(docs);
  });

  it('should accept the "By hand" snippets of docs/existing-workloads.md in a Service and a Deployment', async () => {
    const page = fs.readFileSync(path.join(ROOT, 'docs', 'existing-workloads.md'), 'utf8');
    const snippet = (name: string) => {
      const m = new RegExp(`<!-- chart-snippet: ${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\\n\`\`\``).exec(page);
      if (!m) throw new Error(`docs/existing-workloads.md has no chart-snippet ${name}`);
      return YAML.parse(m[1]) as Record<string, unknown> & { containers?: Record<string, unknown>[] };
    };
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'my-app', namespace: 'default' },
      spec: { selector: { app: 'my-app' }, ...snippet('service') },
    };
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'my-app', namespace: 'default' },
      spec: {
        selector: { matchLabels: { app: 'my-app' } },
        template: {
          metadata: { labels: { app: 'my-app' } },
          spec: { ...snippet('sidecar'), containers: [{ ...snippet('app').containers![0], image: 'ghcr.io/acme/app:1' }] },
        },
      },
    };
    // The snippet's sidecar is native: the Deployment is on the list of what 1.20 lacks, the Service is applied.
    await expectAccepted([service, deployment] as Manifest[]);
  });

  it('should refuse what the API server refuses (the dry run is a real check): a Service port name that is not a DNS label', async () => {
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'bad', namespace: 'default' },
      spec: { selector: { app: 'x' }, ports: [{ name: 'Not_A_Label', port: 80, protocol: 'TCP' }] },
    };
    const r = await dryRun([service as unknown as Manifest]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.ports[0].name: Invalid value: "Not_A_Label"');
  });

  it('should have skipped exactly the types this server lacks, and applied every other kind the sources hold', () => {
    expect(Object.fromEntries([...skipped].sort())).toEqual(Object.fromEntries(Object.entries(EXPECTED_SKIPS).sort()));
    expect([...applied].sort()).toEqual(
      [
        'apps/v1 Deployment',
        'networking.k8s.io/v1 NetworkPolicy',
        'rbac.authorization.k8s.io/v1 ClusterRole',
        'rbac.authorization.k8s.io/v1 ClusterRoleBinding',
        'v1 ConfigMap',
        'v1 Pod',
        'v1 Secret',
        'v1 Service',
        'v1 ServiceAccount',
      ].sort(),
    );
  });

  it('should not have stored anything but those ServiceAccounts (a dry run)', async () => {
    const list = await ok<{ items: unknown[] }>('GET', `/api/v1/namespaces/${NAMESPACE}/services`);
    expect(list.items).toEqual([]);
  });
});
