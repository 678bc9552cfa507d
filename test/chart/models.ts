/**
 * Schema validation of rendered objects with kubernetes-models and
 * @kubernetes-models/prometheus-operator, through validate-models.mjs in a plain Node process
 * (the packages are ES modules only; see that file).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Manifest } from './helm';

export interface ModelResult {
  apiVersion: string;
  kind: string;
  name: string | null;
  /** The module the model class came from, e.g. kubernetes-models/apps/v1/Deployment. */
  model: string;
  /** null when the object is valid. */
  error: string | null;
}

/** Validates every object in one Node process; results are in the same order as `docs`. */
export function validateModels(docs: Manifest[]): ModelResult[] {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'validate-models.mjs')], {
    input: JSON.stringify(docs),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`validate-models.mjs exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ModelResult[];
}
