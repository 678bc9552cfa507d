/**
 * Reading Markdown as GitHub renders it, for the tests that hold the docs and the newcomer files
 * (test/docs, test/repo): what is prose (outside fenced code), which links a text makes, and the
 * anchor GitHub gives each heading. One definition, so the two suites cannot disagree on whether a
 * link resolves.
 */

/** The text outside fenced code blocks, line by line (fenced lines blanked, so numbering stays). */
export function prose(text: string): string[] {
  let fence = false;
  return text.split('\n').map((l) => {
    if (/^\s*```/.test(l)) {
      fence = !fence;
      return '';
    }
    return fence ? '' : l;
  });
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a text's headings; a repeated heading gets -1, -2, … as on GitHub. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of prose(text)) {
    const m = /^#{1,6} +(.*?) *#*$/.exec(l);
    if (!m) continue;
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/**
 * The links of a text outside code, with their 1-based line: `[text](target)`, `![alt](target)`
 * and reference definitions `[name]: target`. `relativeOnly` leaves out those with a scheme
 * (https:, mailto:, …).
 */
export function links(text: string, relativeOnly = true): { target: string; line: number }[] {
  const out: { target: string; line: number }[] = [];
  prose(text).forEach((l, i) => {
    const noCode = l.replace(/`[^`]*`/g, '');
    const found = [...noCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g), ...noCode.matchAll(/^\[[^\]]+\]:\s+(\S+)/g)].map((m) => m[1]);
    for (const target of found) if (!relativeOnly || !/^[a-z][a-z0-9+.-]*:/i.test(target)) out.push({ target, line: i + 1 });
  });
  return out;
}
