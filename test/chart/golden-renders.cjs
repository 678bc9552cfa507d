// The chart's rendered output, pinned byte for byte in test/fixtures/chart-renders/<case>.yaml:
// every ci/<scenario>-values.yaml scenario, the defaults on the Kubernetes versions the templates
// tell apart (native sidecar from 1.29, the kubelet's `sleep` preStop from 1.30), every optional
// feature at once, and the example parent chart (deploy/chart-dependency), which renders the
// public named templates. Rendered with the real helm (runHelm), release `demo` in namespace
// `apps` as the chart tests do, on a pinned Kubernetes version so that a helm upgrade alone does
// not change the default one under the files.
//
// helm draws generated passwords and API keys at random on every render (randAlphaNum): each case
// is rendered twice, and a line that differs between the two keeps its key and shows `<random>`.
//
// test/chart/golden.test.ts compares; scripts/chart-golden.mjs (npm run chart:golden) writes.
// CommonJS so that both can load it.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runHelm } = require('../helpers/helm-binary.cjs');

const ROOT = path.join(__dirname, '..', '..');
const CHART = path.join(ROOT, 'charts', 'metrics-sidecar');
const CI_DIR = path.join(CHART, 'ci');
const PARENT = path.join(ROOT, 'deploy', 'chart-dependency');
const GOLDEN_DIR = path.join(ROOT, 'test', 'fixtures', 'chart-renders');
/** The Kubernetes version every case renders on unless it names another. */
const KUBE = '1.33.0';
const RANDOM = '<random>';

/** Every optional resource and every auth method at once (as the chart's comment test renders). */
const ALL_FEATURES = [
  'serviceMonitor.enabled=true',
  'prometheusRule.enabled=true',
  'grafanaDashboard.enabled=true',
  'networkPolicy.enabled=true',
  'podDisruptionBudget.enabled=true',
  'metrics.basicAuth.enabled=true',
  'metrics.apiKeys.enabled=true',
  'metrics.kubernetesAuth.enabled=true',
  'metrics.statsd.mappings=x',
  'web.healthCheck.path=/healthz',
].join(',');

/**
 * The cases, by name (the golden file's name without `.yaml`): `args` are helm template's flags
 * after the chart; `parent` renders deploy/chart-dependency instead of the chart.
 */
function cases() {
  const scenarios = fs
    .readdirSync(CI_DIR)
    .filter((f) => f.endsWith('-values.yaml'))
    .map((f) => f.slice(0, -'-values.yaml'.length))
    .sort();
  const all = [
    ...scenarios.map((s) => ({ name: s, args: ['-f', path.join(CI_DIR, `${s}-values.yaml`), '--kube-version', KUBE] })),
    { name: 'default-kube-1.28.0', args: ['--kube-version', '1.28.0'] },
    { name: 'default-not-native-kube-1.30.0', args: ['--kube-version', '1.30.0', '--set', 'sidecar.native=false'] },
    { name: 'all-features', args: ['--kube-version', KUBE, '--set', ALL_FEATURES] },
    { name: 'chart-dependency', parent: true, release: 'shop', args: ['--kube-version', KUBE] },
  ];
  const names = all.map((c) => c.name);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length > 0) throw new Error(`two golden cases are named ${twice.join(', ')}: rename a ci/ scenario`);
  return all;
}

function goldenFile(name) {
  return path.join(GOLDEN_DIR, `${name}.yaml`);
}

/** Lines that differ between two renders of the same case keep their key; the value reads `<random>`. */
function maskRandom(name, first, second) {
  const a = first.split('\n');
  const b = second.split('\n');
  if (a.length !== b.length) throw new Error(`${name}: two renders differ in their number of lines (only generated values may differ)`);
  return a
    .map((line, i) => {
      if (line === b[i]) return line;
      const key = /^\s*(?:- )?[^\s:][^:]*: /.exec(line);
      return `${key ? key[0] : ''}${RANDOM}`;
    })
    .join('\n');
}

/**
 * A renderer of the cases. The parent chart is copied to a temporary directory (its dependency
 * pointing at this repository's chart by absolute path) and built on first use; close() removes it.
 */
function createRenderer() {
  let parentDir;
  const parent = () => {
    if (parentDir) return parentDir;
    parentDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-golden-parent-'));
    fs.cpSync(PARENT, parentDir, { recursive: true });
    const chartYaml = path.join(parentDir, 'Chart.yaml');
    const text = fs.readFileSync(chartYaml, 'utf8');
    const local = 'file://../../charts/metrics-sidecar';
    if (!text.includes(local)) throw new Error(`${path.relative(ROOT, PARENT)}/Chart.yaml no longer names ${local}`);
    fs.writeFileSync(chartYaml, text.replace(local, `file://${CHART}`));
    const r = runHelm(['dependency', 'build', parentDir]);
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`helm dependency build failed: ${r.stderr}`);
    return parentDir;
  };
  const template = (c) => {
    const r = runHelm(['template', c.release ?? 'demo', c.parent ? parent() : CHART, '--namespace', 'apps', ...c.args]);
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`helm template failed for ${c.name}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    /** The case's render as its golden file holds it. */
    render: (c) => maskRandom(c.name, template(c), template(c)),
    close: () => {
      if (parentDir) fs.rmSync(parentDir, { recursive: true, force: true });
      parentDir = undefined;
    },
  };
}

module.exports = { GOLDEN_DIR, RANDOM, cases, goldenFile, createRenderer };
