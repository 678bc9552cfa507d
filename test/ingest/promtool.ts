import { spawnSync } from 'node:child_process';

/**
 * `promtool check metrics` on an exposition: the parse errors it reports (exit status 1, "error
 * while linting"), or '' when Prometheus would take it. Lint findings alone (exit 3: no help text,
 * counter names without `_total`) are about names the app chose, not about validity, and pass.
 */
export function promtoolErrors(text: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  const out = `${r.stdout}${r.stderr}`;
  if (r.status === 0 || (r.status === 3 && !out.includes('error while linting'))) return '';
  return out.trim() || `promtool exited with ${r.status}`;
}
