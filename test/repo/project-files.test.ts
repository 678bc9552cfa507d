/**
 * The files a newcomer opens first, beside the README: LICENSE, CHANGELOG.md, SECURITY.md and
 * CONTRIBUTING.md. They state facts that live elsewhere (the licence in package.json and the
 * chart, the version, the homepage, the npm scripts, the folders), so each fact is checked
 * against its source, and every relative link in them must lead to a file that exists (and, with a
 * `#fragment`, to a heading of that file).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { anchors, links as markdownLinks } from '../helpers/markdown';

const ROOT = path.join(__dirname, '..', '..');
const read = (p: string): string => fs.readFileSync(path.join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { version: string; license: string; scripts: Record<string, string> };
const chart = YAML.parse(read('charts/metrics-sidecar/Chart.yaml')) as {
  home: string;
  version: string;
  appVersion: string;
  annotations: Record<string, string>;
};

const FILES = ['LICENSE', 'CHANGELOG.md', 'SECURITY.md', 'CONTRIBUTING.md'];

/** sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the canonical text, byte for byte. */
const APACHE_2_0_SHA256 = 'cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30';

/** Every link of a text with its line, external ones too (the test skips those itself). */
const links = (text: string) => markdownLinks(text, false);

/** `## ...` sections of a Markdown text, by heading. */
function sections(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  const parts = markdown.split(/^## /m).slice(1);
  for (const part of parts) {
    const nl = part.indexOf('\n');
    out.set(part.slice(0, nl).trim(), part.slice(nl + 1));
  }
  return out;
}

describe('LICENSE', () => {
  const license = read('LICENSE');

  it('should be the Apache License 2.0, the canonical text byte for byte', () => {
    expect(license).toContain('Apache License');
    expect(license).toContain('Version 2.0, January 2004');
    for (const title of [
      'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION',
      '1. Definitions.',
      '2. Grant of Copyright License.',
      '3. Grant of Patent License.',
      '4. Redistribution.',
      '5. Submission of Contributions.',
      '6. Trademarks.',
      '7. Disclaimer of Warranty.',
      '8. Limitation of Liability.',
      '9. Accepting Warranty or Additional Liability.',
      'END OF TERMS AND CONDITIONS',
    ]) {
      expect(license).toContain(title);
    }
    expect(crypto.createHash('sha256').update(license).digest('hex')).toBe(APACHE_2_0_SHA256);
  });

  it('should be the licence package.json and the chart declare', () => {
    expect(pkg.license).toBe('Apache-2.0');
    expect(chart.annotations['artifacthub.io/license']).toBe('Apache-2.0');
  });
});

describe('CHANGELOG.md', () => {
  const changelog = read('CHANGELOG.md');
  const headings = [...changelog.matchAll(/^## (.*)$/gm)].map((m) => m[1]);
  const released = headings.filter((h) => !h.startsWith('[Unreleased]'));
  const versionOf = (h: string) => /^\[(\d+\.\d+\.\d+)\]/.exec(h)?.[1];

  it('should follow Keep a Changelog 1.1.0', () => {
    expect(changelog.startsWith('# Changelog\n')).toBe(true);
    expect(changelog).toContain('https://keepachangelog.com/en/1.1.0/');
    expect(headings.length).toBeGreaterThan(0);
    for (const h of headings) expect(h).toMatch(/^\[(Unreleased|\d+\.\d+\.\d+)\]( - \d{4}-\d{2}-\d{2})?$/);
    expect(headings.filter((h) => h === '[Unreleased]').length).toBeLessThanOrEqual(1);
    if (headings.includes('[Unreleased]')) expect(headings[0]).toBe('[Unreleased]');
    // Released versions: each with its date, newest first.
    for (const h of released) expect(h).toMatch(/ - \d{4}-\d{2}-\d{2}$/);
    const order = released.map((h) => versionOf(h)!.split('.').map(Number));
    for (let i = 1; i < order.length; i++) {
      const [a, b] = [order[i - 1], order[i]];
      expect(a[0] * 1e6 + a[1] * 1e3 + a[2]).toBeGreaterThan(b[0] * 1e6 + b[1] * 1e3 + b[2]);
    }
  });

  it('should group changes only under the six kinds, each group inside a version and not empty', () => {
    const groups = [...changelog.matchAll(/^### (.*)$/gm)];
    expect(groups.length).toBeGreaterThan(0);
    for (const g of groups) {
      expect(['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security']).toContain(g[1]);
      const before = changelog.slice(0, g.index);
      expect(before).toMatch(/^## \[/m);
      const body = changelog.slice(g.index! + g[0].length).split(/^##/m)[0];
      expect(body).toMatch(/^- /m);
    }
    for (const [heading, body] of sections(changelog)) {
      const kinds = [...body.matchAll(/^### (.*)$/gm)].map((m) => m[1]);
      expect({ heading, duplicates: kinds.filter((k, i) => kinds.indexOf(k) !== i) }).toEqual({ heading, duplicates: [] });
    }
  });

  it("should lead with package.json's version, or with Unreleased naming it when nothing is released yet", () => {
    const top = headings[0];
    if (top === '[Unreleased]') {
      if (released.length === 0) {
        // Nothing released: the coming version is the one package.json and the chart carry.
        expect(sections(changelog).get('[Unreleased]')).toContain(`**${pkg.version}**`);
      } else {
        expect(versionOf(released[0])).toBe(pkg.version);
      }
    } else {
      expect(versionOf(top)).toBe(pkg.version);
    }
    expect(chart.appVersion).toBe(pkg.version);
  });

  it('should define every version heading as a link', () => {
    for (const h of headings) {
      const name = /^\[([^\]]+)\]/.exec(h)![1];
      expect(changelog).toMatch(new RegExp(`^\\[${name.replace(/\./g, '\\.')}\\]: https://\\S+$`, 'm'));
    }
  });
});

describe('SECURITY.md', () => {
  const security = read('SECURITY.md');

  it('should say how to report privately, what is supported and what is in scope', () => {
    const s = sections(security);
    expect([...s.keys()]).toEqual(expect.arrayContaining(['Reporting a vulnerability', 'Supported versions', 'Scope']));
    // The project's only published address is the chart's home: its private advisory form.
    expect(chart.home).toMatch(/^https:\/\/github\.com\/[^/]+\/[^/]+$/);
    expect(s.get('Reporting a vulnerability')).toContain(`${chart.home}/security/advisories/new`);
    expect(s.get('Supported versions')).toContain(pkg.version);
    expect(security).toContain('](docs/security.md)');
  });
});

describe('CONTRIBUTING.md', () => {
  const contributing = read('CONTRIBUTING.md');

  it('should name only npm scripts that package.json has', () => {
    const named = new Set<string>();
    for (const m of contributing.matchAll(/\bnpm run ([\w:-]+)/g)) named.add(m[1]);
    for (const m of contributing.matchAll(/\bnpm (test|start)\b/g)) named.add(m[1]);
    // The test tiers, the benchmarks, the demo and the generators at least.
    for (const must of ['test', 'test:e2e', 'test:image', 'test:k8s', 'demo', 'build', 'lint', 'docs:config', 'docs:status-shot'])
      expect(named).toContain(must);
    for (const b of Object.keys(pkg.scripts).filter((n) => n.startsWith('bench:'))) expect(named).toContain(b);
    const missing = [...named].filter((n) => !(n in pkg.scripts));
    expect(missing).toEqual([]);
  });

  it('should name only files and folders that exist', () => {
    const paths = new Set<string>();
    const prose = contributing.replace(/^\s*```[^]*?^\s*```/gm, '');
    for (const m of prose.matchAll(/`([^`]+)`/g)) {
      for (const word of m[1].split(/\s+/)) {
        const p = word.replace(/[,.:)]$/, '');
        if (/^(src|test|docs|scripts|bench|charts|deploy|\.ci)\//.test(p) && !p.includes('<') && !p.includes('*')) paths.add(p);
      }
    }
    expect(paths.size).toBeGreaterThan(10);
    const missing = [...paths].filter((p) => !fs.existsSync(path.join(ROOT, p)));
    expect(missing).toEqual([]);
  });
});

describe('links', () => {
  it.each(FILES.filter((f) => f.endsWith('.md')))('should resolve every relative link in %s', (file) => {
    const text = read(file);
    const broken: string[] = [];
    for (const { target, line } of links(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [p, fragment] = target.split('#');
      const resolved = p === '' ? path.join(ROOT, file) : path.join(ROOT, path.dirname(file), decodeURIComponent(p));
      if (!fs.existsSync(resolved)) {
        broken.push(`${file}:${line}: ${target} (no such file)`);
        continue;
      }
      if (fragment !== undefined && resolved.endsWith('.md') && !anchors(fs.readFileSync(resolved, 'utf8')).has(fragment)) {
        broken.push(`${file}:${line}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('should find the links it checks', () => {
    // The link finder itself: a file whose links all went unseen would pass the check above.
    expect(links('a [x](docs/a.md) `[y](no.md)` b\n```\n[z](no.md)\n```\n[w]: https://e.org').map((l) => l.target)).toEqual(['docs/a.md', 'https://e.org']);
    expect(links(read('CONTRIBUTING.md')).length).toBeGreaterThan(3);
    expect(anchors('# A b\n## Set up\n## Set up\n### `npm run x`')).toEqual(new Set(['a-b', 'set-up', 'set-up-1', 'npm-run-x']));
  });
});

describe('no issue numbers', () => {
  it.each(FILES.filter((f) => f.endsWith('.md')))('should cite no issue tracker in %s (readers have none)', (file) => {
    const text = read(file);
    expect(text.match(/(^|[\s(])#\d+\b|\bissue \d+|\bissues?\/\d+/gim) ?? []).toEqual([]);
  });
});
