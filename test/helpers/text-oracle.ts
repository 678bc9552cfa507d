/**
 * The tests' oracle for the text exposition: the store's families rendered the plain way, one
 * template string per series, joined. exposition/render.ts must write exactly these bytes
 * (test/exposition/render.test.ts); other suites read it as the registry's exposition. It was
 * `Registry.render` / `Family.pieces` in src/ until nothing but tests used it; the rules it shares
 * with the byte writer (names, numbers, escaping) come from src/formats/exposition.ts.
 */
import type { AnyFamily, Registry, ValueSeries } from '../../src/metrics/registry';
import { exemplarText, familyHeader, familyName, formatLe, formatNumber } from '../../src/formats/exposition';

/** The registry's exposition at once (collectors run first); externals are left out: they render asynchronously. */
export function renderText(registry: Registry, openMetrics: boolean): string {
  registry.collect();
  const out: string[] = [];
  for (const f of registry.all()) for (const p of familyPieces(f, openMetrics)) out.push(p);
  if (openMetrics) out.push('# EOF\n');
  return out.join('');
}

/** One family's exposition: its header, then one piece per series. */
export function* familyPieces(f: AnyFamily, openMetrics: boolean): Generator<string> {
  yield familyHeader(familyName(f.name, f.type, openMetrics), f.type, f.help, openMetrics);
  if (f.type === 'counter') yield* valuePieces(f.name, f.allSeries(), openMetrics);
  else if (f.type === 'gauge') yield* valuePieces(f.name, f.allSeries(), false);
  else {
    const le = [...f.buckets.map((b) => formatLe(b, openMetrics)), '+Inf'];
    const bucket = `${f.name}_bucket{`;
    for (const s of f.allSeries()) {
      const sep = s.labels === '' ? '' : ',';
      let acc = 0;
      let text = '';
      for (let i = 0; i < le.length; i++) {
        acc += s.counts[i];
        const ex = openMetrics ? s.ex?.[i] : undefined;
        text += `${bucket}${s.labels}${sep}le="${le[i]}"} ${formatNumber(acc)}${ex === undefined ? '' : exemplarText(ex)}\n`;
      }
      const braces = s.labels === '' ? '' : `{${s.labels}}`;
      text += `${f.name}_sum${braces} ${formatNumber(s.sum)}\n${f.name}_count${braces} ${formatNumber(s.count)}\n`;
      yield text;
    }
  }
}

function* valuePieces(name: string, series: Iterable<ValueSeries>, openMetrics: boolean): Generator<string> {
  for (const s of series) {
    const ex = openMetrics && s.ex !== undefined ? exemplarText(s.ex) : '';
    yield s.labels === '' ? `${name} ${formatNumber(s.value)}${ex}\n` : `${name}{${s.labels}} ${formatNumber(s.value)}${ex}\n`;
  }
}
