#!/usr/bin/env node
// Prints a template with each ${NAME} replaced by the environment variable NAME; fails, naming
// them, when any is unset. Used by "Try it with Prometheus" and npm run test:e2e.
//   node test/e2e/render.mjs test/e2e/prometheus.yml > "$TRY_DIR/prometheus.yml"
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

export function render(text, env) {
  const missing = new Set();
  const out = text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name) => {
    if (env[name] === undefined || env[name] === '') missing.add(name);
    return env[name] ?? '';
  });
  if (missing.size > 0) throw new Error(`unset: ${[...missing].join(', ')}`);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node test/e2e/render.mjs TEMPLATE\n');
    process.exit(2);
  }
  try {
    process.stdout.write(render(fs.readFileSync(file, 'utf8'), process.env));
  } catch (err) {
    process.stderr.write(`${file}: ${err.message}\n`);
    process.exit(2);
  }
}
