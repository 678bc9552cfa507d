/**
 * The chart's rendered output, byte for byte: each case of test/chart/golden-renders.cjs (every
 * ci/ scenario, the defaults on older Kubernetes versions, every feature at once, the parent chart
 * of deploy/chart-dependency) against its file in test/fixtures/chart-renders/. A refactoring of
 * the templates must leave them all equal; an intended change of the output is regenerated with
 * `npm run chart:golden` and reviewed in its diff.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helm';

interface GoldenCase {
  name: string;
  args: string[];
  parent?: boolean;
  release?: string;
}

const golden = require('./golden-renders.cjs') as {
  GOLDEN_DIR: string;
  RANDOM: string;
  cases: () => GoldenCase[];
  goldenFile: (name: string) => string;
  createRenderer: () => { render: (c: GoldenCase) => string; close: () => void };
};

const renderer = golden.createRenderer();
const rendered = new Map<string, string>();
afterAll(() => renderer.close());

function renderOnce(c: GoldenCase): string {
  if (!rendered.has(c.name)) rendered.set(c.name, renderer.render(c));
  return rendered.get(c.name)!;
}

/** What a reader needs when a render differs: where, a few lines of each side, and what to do. */
function difference(name: string, expected: string, actual: string): string {
  if (actual === expected) return '';
  const e = expected.split('\n');
  const a = actual.split('\n');
  let i = 0;
  while (i < e.length && i < a.length && e[i] === a[i]) i++;
  const show = (lines: string[]) => lines.slice(Math.max(0, i - 3), i + 4).join('\n');
  return [
    `the render of ${name} differs from ${path.relative(ROOT, golden.goldenFile(name))} from line ${i + 1}:`,
    `--- golden\n${show(e)}`,
    `+++ rendered now\n${show(a)}`,
    'Inspect the whole difference: `npm run chart:golden` then `git diff test/fixtures/chart-renders`.',
    'Keep the new files only when the change of the rendered output is intended; otherwise fix the templates.',
  ].join('\n');
}

describe('golden chart renders (test/fixtures/chart-renders/)', () => {
  const cases = golden.cases();

  it('should have one golden file per case, and no other', () => {
    expect(fs.readdirSync(golden.GOLDEN_DIR).sort()).toEqual(cases.map((c) => path.basename(golden.goldenFile(c.name))).sort());
  });

  it.each(cases.map((c) => [c.name, c] as const))('should render %s byte for byte as its golden file', (name, c) => {
    const expected = fs.readFileSync(golden.goldenFile(name), 'utf8');
    expect(difference(name, expected, renderOnce(c))).toBe('');
  });

  it('should mask only the values the chart generates at random (the basic-auth password, the API key)', () => {
    const masked: string[] = [];
    for (const c of cases) {
      // `# Source:` names the template of each document; a masked line is attributed to the last one above it.
      let source = '';
      for (const line of renderOnce(c).split('\n')) {
        if (line.startsWith('# Source: ')) source = line.slice('# Source: '.length);
        if (line.includes(golden.RANDOM)) masked.push(`${c.name} ${source.replace(/^.*templates\//, '')} ${line.trim()}`);
      }
    }
    // basic-auth: its password; api-keys: the keys file (holds the key's SHA-256) and the key itself.
    for (const m of masked) expect(m).toMatch(/ (secret-basic-auth\.yaml password|secret-api-keys\.yaml (api-keys|prometheus-key)): <random>$/);
    expect(masked.filter((m) => m.startsWith('basic-auth '))).toHaveLength(1);
    expect(masked.filter((m) => m.startsWith('api-keys '))).toHaveLength(2);
  });
});
