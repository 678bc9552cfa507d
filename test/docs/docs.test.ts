/**
 * The documentation's shape: a README a newcomer skims in five minutes, and pages in docs/ that
 * each answer one question. No text exists twice (a section or a long paragraph copied into a
 * second page drifts from its original), every relative link and anchor resolves, and every page
 * can be reached from the README.
 */
import fs from 'node:fs';
import path from 'node:path';
import { anchors, links as linksWithLines, prose, slug } from '../helpers/markdown';

const ROOT = path.join(__dirname, '..', '..');
const README = 'README.md';

/** A text's relative link targets. */
const links = (text: string) => linksWithLines(text).map((l) => l.target);

const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

/** README.md and the pages directly in docs/, the set that must not repeat itself. */
function pages(): string[] {
  return [
    README,
    ...fs
      .readdirSync(path.join(ROOT, 'docs'))
      .filter((n) => n.endsWith('.md'))
      .map((n) => `docs/${n}`),
  ];
}

/** Every markdown file whose links must resolve: the pages, the ADRs, bench/README.md. */
function linkedFiles(): string[] {
  const adr = fs
    .readdirSync(path.join(ROOT, 'docs', 'adr'))
    .filter((n) => n.endsWith('.md'))
    .map((n) => `docs/adr/${n}`);
  return [...pages(), ...adr, 'bench/README.md'];
}

/** Whitespace-collapsed text without generated figure blocks (one source: the results files). */
const normal = (s: string) =>
  s
    .replace(/<!-- figures:[\s\S]*?<!-- \/figures -->/g, '')
    .replace(/\s+/g, ' ')
    .trim();

/** Each heading's body: its text up to the next heading of any level. */
function sections(text: string): { heading: string; body: string }[] {
  const lines = text.split('\n');
  const marks = prose(text)
    .map((l, i) => (/^#{1,6} /.test(l) ? i : -1))
    .filter((i) => i !== -1);
  return marks.map((at, k) => ({ heading: lines[at], body: lines.slice(at + 1, marks[k + 1] ?? lines.length).join('\n') }));
}

/** Blocks separated by blank lines (a fenced block with blank lines inside splits too). */
const paragraphs = (text: string) => text.split(/\n[ \t]*\n/);

describe('README', () => {
  it('should be at most 300 lines', () => {
    expect(read(README).split('\n').length).toBeLessThanOrEqual(300);
  });

  it('should link to the troubleshooting page and the security model, which exist', () => {
    const targets = links(read(README));
    for (const page of ['docs/troubleshooting.md', 'docs/security.md']) {
      expect(fs.existsSync(path.join(ROOT, page))).toBe(true);
      expect(targets.map((t) => t.split('#')[0])).toContain(page);
    }
  });

  it('should reach every page of docs/ through its links', () => {
    const reached = new Set<string>([README]);
    const queue = [README];
    while (queue.length > 0) {
      const file = queue.shift()!;
      for (const t of links(read(file))) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), t.split('#')[0]));
        if (target.endsWith('.md') && !reached.has(target) && fs.existsSync(path.join(ROOT, target))) {
          reached.add(target);
          queue.push(target);
        }
      }
    }
    expect(pages().filter((p) => !reached.has(p))).toEqual([]);
  });

  it('should name only families the metric contract of docs/metrics.md lists', () => {
    const families = (text: string, heading: RegExp) => {
      const at = text.search(heading);
      const section = text.slice(at, text.indexOf('\n## ', at + 1) === -1 ? undefined : text.indexOf('\n## ', at + 1));
      return [...section.matchAll(/^\| `([a-z_:*]+)`/gm)].map((m) => m[1]);
    };
    const headline = families(read(README), /^## Metrics$/m);
    const contract = families(read('docs/metrics.md'), /^# Metric contract$/m);
    expect(headline.length).toBeGreaterThanOrEqual(7);
    expect(headline.filter((f) => !contract.includes(f) && !(f.endsWith('*') && contract.some((c) => c.startsWith(f.slice(0, -1)))))).toEqual([]);
  });
});

/** Sections (bodies of 80 characters or more) and paragraphs (200 or more) of one page found in another. */
function copies(files: Map<string, string>): string[] {
  const texts = new Map([...files].map(([f, t]) => [f, normal(t)]));
  const found: string[] = [];
  const seek = (f: string, piece: string, what: string) => {
    for (const [other, text] of texts) if (other !== f && text.includes(piece)) found.push(`${f}: ${what} is also in ${other}`);
  };
  for (const [f, text] of files) {
    for (const { heading, body } of sections(text)) {
      const b = normal(body);
      if (b.length >= 80) seek(f, b, `the body of "${heading}"`);
    }
    for (const para of paragraphs(text)) {
      const n = normal(para);
      if (n.length >= 200) seek(f, n, `"${n.slice(0, 80)}…"`);
    }
  }
  return [...new Set(found)];
}

describe('README.md and docs/*.md', () => {
  it('should hold no section body, and no paragraph of 200 characters or more, twice', () => {
    expect(copies(new Map(pages().map((p) => [p, read(p)])))).toEqual([]);
  });

  it('should find a section pasted into another page, and a long paragraph, whatever the line breaks', () => {
    const limits = read('docs/limits.md');
    const section = sections(limits).find((x) => x.heading === '## Limits')!;
    const firstParagraph = paragraphs(section.body.trim())[0];
    expect(normal(firstParagraph).length).toBeGreaterThanOrEqual(200);
    const readme = read(README);
    expect(
      copies(
        new Map([
          ['README.md', readme],
          ['docs/limits.md', limits],
        ]),
      ),
    ).toEqual([]);
    const withSection = `${readme}\n## Limits\n${section.body}`;
    expect(
      copies(
        new Map([
          ['README.md', withSection],
          ['docs/limits.md', limits],
        ]),
      ),
    ).toContain('README.md: the body of "## Limits" is also in docs/limits.md');
    const rewrapped = `${readme}\n${firstParagraph.replace(/\n/g, ' ').replace(/, /g, ',\n')}\n`;
    expect(
      copies(
        new Map([
          ['README.md', rewrapped],
          ['docs/limits.md', limits],
        ]),
      ).some((c) => c.startsWith('docs/limits.md: "Memory is a budget')),
    ).toBe(true);
  });

  it('should cite no issue numbers (readers have no tracker)', () => {
    const found = pages().flatMap((p) => [...read(p).matchAll(/\bissues? #?\d+/gi)].map((m) => `${p}: ${m[0]}`));
    expect(found).toEqual([]);
  });
});

describe('links in README.md, docs/ and bench/README.md', () => {
  it('should resolve to an existing file, and #anchors to an existing heading', () => {
    const broken: string[] = [];
    for (const file of linkedFiles()) {
      for (const t of links(read(file))) {
        const [target, anchor] = t.split('#');
        const rel = target === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), target));
        const abs = path.join(ROOT, rel);
        if (!fs.existsSync(abs)) {
          broken.push(`${file}: ${t} (no ${rel})`);
          continue;
        }
        if (anchor !== undefined && rel.endsWith('.md') && !anchors(read(rel)).has(anchor)) broken.push(`${file}: ${t} (no heading #${anchor} in ${rel})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('should compute GitHub anchors', () => {
    expect(slug('Kubernetes ServiceAccount tokens (RBAC)')).toBe('kubernetes-serviceaccount-tokens-rbac');
    expect(slug('`status.json`')).toBe('statusjson');
    expect(slug('StatsD / DogStatsD')).toBe('statsd--dogstatsd');
    expect(slug("Merging the app's own endpoint")).toBe('merging-the-apps-own-endpoint');
    expect([...anchors('# A\n\n## Limits\n\n```\n# not a heading\n```\n\n## Limits\n')]).toEqual(['a', 'limits', 'limits-1']);
  });
});
