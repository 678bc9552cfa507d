/**
 * Validates Kubernetes manifests with kubernetes-models and @kubernetes-models/prometheus-operator:
 * each object is constructed as its model class (chosen by apiVersion and kind) and `.validate()`d
 * against the OpenAPI schema. Those packages are ES modules only (their exports have no `require`
 * condition), which Jest 29's CommonJS runtime cannot load, so the chart tests run this file with
 * plain Node: a JSON array of manifests on stdin, a JSON array of results on stdout.
 */
import { readFileSync } from 'node:fs';

const docs = JSON.parse(readFileSync(0, 'utf8'));
const results = [];
for (const doc of docs) {
  const group = doc.apiVersion.includes('/') ? doc.apiVersion.split('/')[0] : '';
  const specifier =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${doc.apiVersion}/${doc.kind}`
      : `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
  let error = null;
  try {
    const mod = await import(specifier);
    const Model = mod[doc.kind];
    if (typeof Model !== 'function') throw new Error(`${specifier} has no model class ${doc.kind}`);
    new Model(doc).validate();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  results.push({ apiVersion: doc.apiVersion, kind: doc.kind, name: doc.metadata?.name ?? null, model: specifier, error });
}
process.stdout.write(JSON.stringify(results));
