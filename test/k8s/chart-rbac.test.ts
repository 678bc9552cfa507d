/**
 * The chart's RBAC objects on the real API server: what ci/kubernetes-auth-values.yaml renders
 * (the sidecars' ServiceAccount bound to system:auth-delegator, the metrics-reader ClusterRole
 * bound to the scraper ServiceAccount and to metrics.kubernetesAuth.readerSubjects) is applied for
 * real, then the API server's own authorizer is asked (SubjectAccessReview, and `kubectl auth
 * can-i` as the admin impersonating) whether they grant exactly what docs/chart.md says: the
 * sidecars may create TokenReviews and SubjectAccessReviews, the readers may `get` metrics.path,
 * and nothing more (not post, not another path, not the status page, no resources).
 * Then the built sidecar runs as the chart's ServiceAccount and is scraped with the scraper's token.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { helm, parseManifests, scenarioFile, type Manifest } from '../chart/helm';
import { kubeconfig, kubectl, namespace, ok, saGroups, saUser, token } from './env';
import { kubeSidecar, scrape, stop, untilReady, type Child } from './sidecars';

const RELEASE = 'demo';
const SIDECAR_SA = `${RELEASE}-metrics-sidecar`;
const SCRAPER_SA = `${RELEASE}-metrics-sidecar-scraper`;
const METRICS_PATH = '/debug/metrics';

interface Subject {
  user: string;
  groups: string[];
}

async function allowed(
  s: Subject,
  attrs: { nonResource?: [string, string]; resource?: { verb: string; group: string; resource: string; namespace?: string } },
): Promise<boolean> {
  const spec: Record<string, unknown> = { user: s.user, groups: s.groups };
  if (attrs.nonResource) spec.nonResourceAttributes = { verb: attrs.nonResource[0], path: attrs.nonResource[1] };
  if (attrs.resource) spec.resourceAttributes = attrs.resource;
  const r = await ok<{ status: { allowed: boolean } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec,
  });
  return r.status.allowed;
}

describe("the chart's RBAC objects (ci/kubernetes-auth-values.yaml) on the real API server", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-chart-rbac-'));
  let ns: string;
  let docs: Manifest[];
  let sidecar: Subject;
  let scraper: Subject;
  const prometheus: Subject = { user: saUser('monitoring', 'prometheus-k8s'), groups: saGroups('monitoring') };
  let other: Subject;
  let child: Child | undefined;

  beforeAll(async () => {
    ns = await namespace('chart-rbac');
    const r = helm([
      'template',
      RELEASE,
      path.join(__dirname, '..', '..', 'charts', 'metrics-sidecar'),
      '--namespace',
      ns,
      '-f',
      scenarioFile('kubernetes-auth'),
    ]);
    expect(r.status).toBe(0);
    docs = parseManifests(r.stdout).filter((d) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(d.kind));
    const applied = await kubectl(
      ['apply', '--server-side', '--field-manager=metrics-sidecar-test', '-n', ns, '-f', '-'],
      docs.map((d) => YAML.stringify(d)).join('---\n'),
    );
    expect({ code: applied.code, stderr: applied.stderr }).toEqual({ code: 0, stderr: '' });
    sidecar = { user: saUser(ns, SIDECAR_SA), groups: saGroups(ns) };
    scraper = { user: saUser(ns, SCRAPER_SA), groups: saGroups(ns) };
    other = { user: saUser(ns, 'default'), groups: saGroups(ns) };
  });

  afterAll(async () => {
    await stop(child);
    // The cluster-scoped objects go; the namespace's go with the API server at the end of the run.
    for (const d of docs.filter((x) => x.kind.startsWith('Cluster'))) await kubectl(['delete', d.kind.toLowerCase(), d.metadata.name, '--ignore-not-found']);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('should render the RBAC objects docs/chart.md names, and no Role or RoleBinding', () => {
    expect(docs.map((d) => `${d.kind} ${d.metadata.name}`).sort()).toEqual(
      [
        `ServiceAccount ${SIDECAR_SA}`,
        `ServiceAccount ${SCRAPER_SA}`,
        `ClusterRole ${ns}-${RELEASE}-metrics-sidecar-metrics-reader`,
        `ClusterRoleBinding ${ns}-${RELEASE}-metrics-sidecar-auth-delegator`,
        `ClusterRoleBinding ${ns}-${RELEASE}-metrics-sidecar-metrics-reader`,
      ].sort(),
    );
  });

  it('should let the sidecars create TokenReviews and SubjectAccessReviews, and read no metrics themselves', async () => {
    expect(await allowed(sidecar, { resource: { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' } })).toBe(true);
    expect(await allowed(sidecar, { resource: { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' } })).toBe(true);
    expect(await allowed(sidecar, { nonResource: ['get', METRICS_PATH] })).toBe(false);
    for (const resource of [
      { verb: 'get', group: '', resource: 'secrets', namespace: ns },
      { verb: 'list', group: '', resource: 'pods', namespace: ns },
      { verb: 'create', group: '', resource: 'serviceaccounts/token', namespace: ns },
      { verb: 'delete', group: 'authentication.k8s.io', resource: 'tokenreviews' },
    ]) {
      expect([resource, await allowed(sidecar, { resource })]).toEqual([resource, false]);
    }
  });

  it.each([
    ['the scraper ServiceAccount', () => scraper],
    ['Prometheus’s own ServiceAccount (readerSubjects)', () => prometheus],
  ])('should let %s get metrics.path and nothing else', async (_name, who) => {
    const s = who();
    expect(await allowed(s, { nonResource: ['get', METRICS_PATH] })).toBe(true);
    for (const [verb, p] of [
      ['post', METRICS_PATH],
      ['put', METRICS_PATH],
      ['delete', METRICS_PATH],
      ['get', '/debug/metrics/other'],
      ['get', '/debug/'],
      ['get', '/debug/status.json'],
      ['get', '/'],
      ['get', '/status.json'],
      ['get', '/metrics'],
    ]) {
      expect([verb, p, await allowed(s, { nonResource: [verb, p] })]).toEqual([verb, p, false]);
    }
    expect(await allowed(s, { resource: { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' } })).toBe(false);
    expect(await allowed(s, { resource: { verb: 'get', group: '', resource: 'secrets', namespace: ns } })).toBe(false);
  });

  it('should grant nothing to another ServiceAccount of the namespace', async () => {
    expect(await allowed(other, { nonResource: ['get', METRICS_PATH] })).toBe(false);
    expect(await allowed(other, { resource: { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' } })).toBe(false);
  });

  it('should say the same through `kubectl auth can-i` (the admin impersonating each ServiceAccount)', async () => {
    const can = async (as: string, ...args: string[]) => (await kubectl(['auth', 'can-i', ...args, `--as=${as}`])).stdout.trim();
    expect(await can(scraper.user, 'get', METRICS_PATH)).toBe('yes');
    expect(await can(scraper.user, 'post', METRICS_PATH)).toBe('no');
    expect(await can(sidecar.user, 'create', 'tokenreviews.authentication.k8s.io')).toBe('yes');
    expect(await can(sidecar.user, 'create', 'subjectaccessreviews.authorization.k8s.io')).toBe('yes');
    expect(await can(sidecar.user, 'get', METRICS_PATH)).toBe('no');
  });

  it('should be enough for the built sidecar running as the chart’s ServiceAccount: the scraper’s token reads metrics, another is refused', async () => {
    child = await kubeSidecar(kubeconfig(tmp, 'chart-sidecar', { token: await token(ns, SIDECAR_SA) }));
    await untilReady(child);
    expect((await scrape(child.metricsPort, await token(ns, SCRAPER_SA))).status).toBe(200);
    await ok('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    expect((await scrape(child.metricsPort, await token(ns, 'default'))).status).toBe(403);
  });
});
