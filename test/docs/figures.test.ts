/**
 * One source for every benchmark figure: the figure blocks of the docs (README.md, docs/**, and
 * bench/README.md) are what scripts/docs-figures.mjs renders from the results committed in
 * docs/bench-results/, never typed by hand. Run `npm run docs:figures` when the first test fails
 * (`-- --publish` after a benchmark run copies bench/results/ there first).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'docs-figures.mjs');
const BLOCK = /<!-- figures:([a-z0-9-]+)\.([a-z0-9_]+) -->\n([\s\S]*?)<!-- \/figures -->/g;

const figures = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });

/** The docs and the published results, copied to a directory of their own. */
function copyDocs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docs-figures-'));
  fs.cpSync(path.join(ROOT, 'docs'), path.join(dir, 'docs'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'bench'));
  fs.copyFileSync(path.join(ROOT, 'bench', 'README.md'), path.join(dir, 'bench', 'README.md'));
  fs.copyFileSync(path.join(ROOT, 'README.md'), path.join(dir, 'README.md'));
  return dir;
}

function blocksOf(file: string): { id: string; body: string }[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(BLOCK)].map((m) => ({ id: `${m[1]}.${m[2]}`, body: m[3] }));
}

describe('docs figures', () => {
  it('should be what docs/bench-results/ gives, in every page', () => {
    const r = figures('--check');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('should say which run each figure comes from (date, commit, machine) and link its results file', () => {
    const benchmarks = blocksOf(path.join(ROOT, 'docs', 'benchmarks.md'));
    expect(benchmarks.length).toBeGreaterThanOrEqual(4);
    for (const { id, body } of benchmarks) {
      const source = id.split('.')[0];
      const results = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'bench-results', `${source}.json`), 'utf8'));
      expect(body).toContain(results.timestamp.slice(0, 10));
      expect(body).toContain(`commit ${results.versions.git_commit}`);
      expect(body).toContain(results.machine.cpu_model);
      expect(body).toContain(`](bench-results/${source}.json)`);
    }
  });

  it('should render every published results file somewhere in docs/benchmarks.md', () => {
    const shown = new Set(blocksOf(path.join(ROOT, 'docs', 'benchmarks.md')).map((b) => b.id.split('.')[0]));
    const published = fs
      .readdirSync(path.join(ROOT, 'docs', 'bench-results'))
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.replace(/\.json$/, ''));
    expect(published.length).toBeGreaterThan(0);
    expect(published.filter((p) => !shown.has(p))).toEqual([]);
  });

  it('should find a figure edited by hand, and put it back', () => {
    const dir = copyDocs();
    try {
      const page = path.join(dir, 'docs', 'benchmarks.md');
      const text = fs.readFileSync(page, 'utf8');
      const heap = JSON.parse(fs.readFileSync(path.join(dir, 'docs', 'bench-results', 'render.json'), 'utf8')).results.flat.ours.heap.bytes_per_stored_series;
      const edited = text.replace(`Heap per stored series: **${heap} B**`, `Heap per stored series: **${heap - 12} B**`);
      expect(edited).not.toBe(text);
      fs.writeFileSync(page, edited);
      const check = figures('--check', '--root', dir);
      expect(check.status).toBe(1);
      expect(check.stderr).toContain(path.join('docs', 'benchmarks.md'));
      expect(figures('--root', dir).status).toBe(0);
      expect(fs.readFileSync(page, 'utf8')).toBe(text);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should follow a new results file: a changed figure after --publish, in every page that shows it', () => {
    const dir = copyDocs();
    try {
      const results = JSON.parse(fs.readFileSync(path.join(dir, 'docs', 'bench-results', 'render.json'), 'utf8'));
      results.results.flat.ours.heap.bytes_per_stored_series = 187;
      results.versions.git_commit = 'abcdef1';
      fs.mkdirSync(path.join(dir, 'bench', 'results'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'bench', 'results', 'render.json'), JSON.stringify(results));
      expect(figures('--check', '--root', dir).status).toBe(0);
      const r = figures('--publish', '--root', dir);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('render.json');
      expect(figures('--check', '--root', dir).status).toBe(0);
      const pages = ['docs/benchmarks.md', 'docs/adr/0001-own-metric-store.md'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
      for (const p of pages) {
        expect(p).toContain('Heap per stored series: **187 B**');
        expect(p).toContain('commit abcdef1');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should refuse an unknown figure, and a figure whose results file is not published', () => {
    const dir = copyDocs();
    try {
      const page = path.join(dir, 'docs', 'benchmarks.md');
      fs.writeFileSync(page, `${fs.readFileSync(page, 'utf8')}\n<!-- figures:render.nonsense -->\n<!-- /figures -->\n`);
      const unknown = figures('--check', '--root', dir);
      expect(unknown.status).toBe(2);
      expect(unknown.stderr).toMatch(/unknown figure render\.nonsense/);
      fs.writeFileSync(page, `${fs.readFileSync(page, 'utf8').replace('render.nonsense', 'proxy.headline')}`);
      fs.rmSync(path.join(dir, 'docs', 'bench-results', 'proxy.json'));
      const missing = figures('--check', '--root', dir);
      expect(missing.status).toBe(2);
      expect(missing.stderr).toMatch(/needs docs\/bench-results\/proxy\.json/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
