#!/usr/bin/env node
// npm run docs:chart: writes a chart's README.md from its README.md.tmpl, filling the placeholders
// ({{ chart.version }}, {{ values.table }}, ... below) from Chart.yaml and values.yaml. The values
// table is in helm-docs' format, made from the `# --` comments of values.yaml (helm-docs itself is
// not used). `--check` writes nothing and exits 1 when the committed README differs from what would
// be generated (the chart tests run it).
//   node scripts/chart-readme.mjs [charts/metrics-sidecar] [--check]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The `# --` description of a key: the comment lines from the one starting with `--` on. */
function description(comment) {
  if (!comment) return undefined;
  const lines = comment.split('\n').map((l) => l.replace(/^ ?/, ''));
  const start = lines.findIndex((l) => l.startsWith('--'));
  if (start === -1) return undefined;
  const out = [];
  for (const l of lines.slice(start)) {
    const text = out.length === 0 ? l.slice(2).trim() : l.trim();
    if (out.length > 0 && text.startsWith('@')) break;
    out.push(text);
  }
  return out.join(' ').trim();
}

function typeOf(v) {
  if (v === null || v === undefined) return 'string';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'object';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  return 'string';
}

function defaultOf(v) {
  return v === null || v === undefined ? 'nil' : JSON.stringify(v);
}

const cell = (s) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Rows of the values table: a documented key with its whole value, else its children. */
function rows(map, prefix, out) {
  map.items.forEach((pair, i) => {
    const key = `${prefix}${String(pair.key.value)}`;
    const desc = description(pair.key.commentBefore ?? (i === 0 ? map.commentBefore : undefined));
    if (desc === undefined && YAML.isMap(pair.value) && pair.value.items.length > 0) {
      rows(pair.value, `${key}.`, out);
      return;
    }
    const value = pair.value === null ? null : pair.value.toJSON();
    // helm-docs' type annotation: `# -- (bool) text` names the type a null default cannot show.
    const typed = /^\((\w+)\)\s*/.exec(desc ?? '');
    const text = typed ? desc.slice(typed[0].length) : desc;
    out.push(`| ${key} | ${typed ? typed[1] : typeOf(value)} | \`${cell(defaultOf(value))}\` | ${cell(text ?? '')} |`);
  });
  return out;
}

const badge = (label, value, color) =>
  `![${label}: ${value}](https://img.shields.io/badge/${label.replace(/ /g, '%20')}-${String(value).replace(/-/g, '--').replace(/_/g, '__')}-${color}?style=flat-square)`;

/** What the README says made it, at its end. */
export const FOOTER =
  'Generated from `Chart.yaml`, the `# --` comments of `values.yaml` and `README.md.tmpl` by `npm run docs:chart` (scripts/chart-readme.mjs): edit those, not this file.';

/** The placeholders a README.md.tmpl may use, and what fills them. */
function placeholders(chart, values) {
  const badges = [badge('Version', chart.version, 'informational')];
  if (chart.type) badges.push(badge('Type', chart.type, 'informational'));
  if (chart.appVersion) badges.push(badge('AppVersion', chart.appVersion, 'informational'));
  return {
    'chart.name': chart.name,
    'chart.version': chart.version,
    'chart.appVersion': chart.appVersion,
    'chart.kubeVersion': chart.kubeVersion,
    'chart.home': chart.home,
    'chart.source': chart.sources?.[0],
    'chart.badges': badges.join(' '),
    'chart.description': chart.description?.trim(),
    'values.table': ['| Key | Type | Default | Description |', '|-----|------|---------|-------------|', ...rows(values.contents, '', [])].join('\n'),
    'generator.footer': FOOTER,
  };
}

export function generate(chartDir) {
  const chart = YAML.parse(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8'));
  const values = YAML.parseDocument(fs.readFileSync(path.join(chartDir, 'values.yaml'), 'utf8'));
  const template = fs.readFileSync(path.join(chartDir, 'README.md.tmpl'), 'utf8');
  const fill = placeholders(chart, values);
  const unknown = new Set();
  const text = template.replace(/\{\{ ([a-z][\w.]*) \}\}/g, (whole, name) => {
    if (fill[name] === undefined) unknown.add(name);
    return fill[name] ?? whole;
  });
  if (unknown.size > 0) throw new Error(`README.md.tmpl: nothing fills ${[...unknown].map((n) => `{{ ${n} }}`).join(', ')}`);
  return text;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const chartDir = path.resolve(args.find((a) => !a.startsWith('--')) ?? path.join(ROOT, 'charts', 'metrics-sidecar'));
  const file = path.join(chartDir, 'README.md');
  const text = generate(chartDir);
  if (check) {
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (current !== text) {
      process.stderr.write(`${path.relative(ROOT, file)} is stale: run npm run docs:chart\n`);
      process.exit(1);
    }
  } else {
    fs.writeFileSync(file, text);
  }
}
