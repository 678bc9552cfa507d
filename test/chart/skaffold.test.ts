/**
 * skaffold.yaml (no skaffold or cluster here): its shape, and that what it names exists — the
 * image it builds is the one it passes to the chart, the chart renders with the dev profile's
 * values, and the port-forwards point at Services and ports the chart creates.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { CHART, ROOT, get, parseManifests, renderValues } from './helm';

interface SkaffoldConfig {
  apiVersion: string;
  kind: string;
  build: { artifacts: { image: string; context?: string; docker?: { dockerfile?: string } }[] };
  deploy: { helm: { releases: { name: string; chartPath: string; setValueTemplates?: Record<string, string> }[] } };
  portForward: { resourceType: string; resourceName: string; port: number; localPort: number }[];
  profiles: { name: string; activation?: { command?: string }[]; patches?: { op: string; path: string; value: unknown }[] }[];
}

const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'skaffold.yaml'), 'utf8')) as SkaffoldConfig;

describe('skaffold.yaml', () => {
  const release = config.deploy.helm.releases[0];
  const devProfile = config.profiles.find((p) => p.name === 'dev');
  const devOverrides = devProfile?.patches?.find((p) => p.path === '/deploy/helm/releases/0/overrides')?.value;

  it('should be a skaffold v4beta config with one artifact built from the Dockerfile', () => {
    expect(config.apiVersion).toMatch(/^skaffold\/v4beta\d+$/);
    expect(config.kind).toBe('Config');
    expect(config.build.artifacts).toHaveLength(1);
    const [artifact] = config.build.artifacts;
    expect(fs.existsSync(path.join(ROOT, artifact.context ?? '.', artifact.docker?.dockerfile ?? 'Dockerfile'))).toBe(true);
  });

  it('should deploy the chart with helm, passing the built image through setValueTemplates', () => {
    expect(config.deploy.helm.releases).toHaveLength(1);
    expect(path.resolve(ROOT, release.chartPath)).toBe(CHART);
    const key = config.build.artifacts[0].image.replace(/[^a-zA-Z0-9]/g, '_');
    expect(release.setValueTemplates).toEqual({
      'sidecar.image.repository': `{{.IMAGE_REPO_${key}}}`,
      'sidecar.image.tag': `{{.IMAGE_TAG_${key}}}`,
    });
  });

  it('should have a dev profile, active under `skaffold dev`, whose values the chart accepts', () => {
    expect(devProfile?.activation).toContainEqual({ command: 'dev' });
    expect(devOverrides).toBeDefined();
    const r = renderValues(devOverrides);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('should port-forward the web main port and the worker metrics port of Services the chart creates', () => {
    // Render as skaffold would: its release name, the dev profile's values, an image.
    const r = renderValues(
      {
        ...(devOverrides as object),
        sidecar: { ...((devOverrides as { sidecar?: object }).sidecar ?? {}), image: { repository: 'metrics-sidecar', tag: 'dev' } },
      },
      [],
      release.name,
    );
    expect(r.status).toBe(0);
    const docs = parseManifests(r.stdout);
    expect(config.portForward.map((p) => p.resourceType)).toEqual(['service', 'service']);
    const [web, worker] = config.portForward;
    const webPort = (get(docs, 'Service', web.resourceName).spec.ports as { name: string; port: number }[]).find((p) => p.port === web.port);
    expect(webPort?.name).toBe('http');
    const workerPort = (get(docs, 'Service', worker.resourceName).spec.ports as { name: string; port: number }[]).find((p) => p.port === worker.port);
    expect(workerPort?.name).toBe('metrics');
    expect(worker.localPort).toBe(8491);
  });
});
