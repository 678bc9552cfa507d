/**
 * Differential test of our metric store (src/metrics/registry.ts) against prom-client
 * (docs/adr/0001-own-metric-store.md says why the store is ours; this test keeps the two saying the
 * same thing). Generated operations — counter increments, gauge sets, histogram observations with
 * generated buckets, on families with 0-3 label names, label values with `\`, `"`, newlines and
 * Unicode, values including 0, fractions, bucket bounds and very large numbers — go to both. Both
 * render the text format 0.0.4 and OpenMetrics 1.0.0; a strict parser (below: it refuses any line,
 * escape or number it does not understand) turns each exposition into a canonical set of
 * (name, sorted labels, value) samples plus the `# TYPE` of each family, and the sets must be equal.
 *
 * Ignored on purpose: HELP text, ordering, blank lines, the spelling of `le` (OpenMetrics wants
 * `1.0`, prom-client writes `1`: compared as numbers), and prom-client's one extra: it exposes a
 * family without labels at zero before its first operation, where our store makes the series on
 * first use (those samples are checked to be zeros of untouched families, then dropped).
 *
 * Kept out of the generated input, because prom-client 15.1.3 gets them wrong (the ADR lists them):
 * - a label value holding `,` and `:` together: prom-client keys series by `name:value,` strings, so
 *   {a: '1,b:2', b: '3'} and {a: '1', b: '2,b:3'} become one series (random values below have `,`
 *   but no `:`; the fixed ones have `:` but no `,`). Our store keeps them apart: tested below;
 * - a bucket bound of -1: prom-client's "above every bound" marker is -1 and lands in that bucket;
 * - NaN: prom-client writes `Nan`;
 * - one prom-client metric in a text and an OpenMetrics registry: the OpenMetrics render renames
 *   the counter in place (drops `_total`), so each format gets its own prom-client registry here.
 * Caps, overflow series and budgets are where the stores differ by design; the generated label
 * sets stay far below any cap and are tested on their own in test/metrics/registry.test.ts.
 */
import fc from 'fast-check';
import * as prom from 'prom-client';
import { Counter, Gauge, Histogram, Registry } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';
import type { StoredType } from '../../src/metrics/contract';
import { ExpositionWriter } from '../../src/exposition/render';

// ---------------------------------------------------------------------------------------------
// The model: families and the operations on them.

interface FamilySpec {
  kind: StoredType;
  labelNames: string[];
  buckets: number[];
}

interface Op {
  family: number;
  labelValues: string[];
  /** Counter: the increment (undefined: the default of 1); gauge: the value set; histogram: the observation. */
  value: number | undefined;
}

interface Scenario {
  families: FamilySpec[];
  ops: Op[];
}

const LABEL_NAMES = ['method', 'path', 'status', 'code', 'tag'];

/** Few enough that label sets repeat (the same series is hit again), tricky enough to need escaping. */
const fixedLabelValue = fc.constantFrom('', '0', 'GET', '/users/:id', 'a"b', 'back\\slash', 'new\nline', '\\n', '\\"', '"\\\n', 'ünï 🙂', '{x="y"}', ' ');
const randomLabelValue = fc.string({ unit: fc.constantFrom('a', 'Z', '9', ' ', '\\', '"', '\n', '=', ',', '{', '}', '#', 'ü', '🙂', '\t'), maxLength: 8 });
const labelValue = fc.oneof({ arbitrary: fixedLabelValue, weight: 3 }, { arbitrary: randomLabelValue, weight: 1 });

const buckets = fc
  .uniqueArray(fc.oneof(fc.constantFrom(0, 0.005, 0.1, 0.25, 1, 2.5, 10, 60, 1e6), fc.double({ min: 1e-9, max: 1e12, noNaN: true })), {
    minLength: 1,
    maxLength: 8,
    comparator: 'SameValueZero',
  })
  .map((b) => [...b].sort((x, y) => x - y));

const familySpec: fc.Arbitrary<FamilySpec> = fc.record({
  kind: fc.constantFrom<StoredType>('counter', 'gauge', 'histogram'),
  labelNames: fc.shuffledSubarray(LABEL_NAMES, { minLength: 0, maxLength: 3 }),
  buckets,
});

function valueFor(f: FamilySpec): fc.Arbitrary<number | undefined> {
  switch (f.kind) {
    case 'counter':
      return fc.oneof(fc.constant(undefined), fc.constantFrom(0, 0.1, 0.25, 1, 2 ** 53, 1e21), fc.double({ min: 0, max: 1e300, noNaN: true }));
    case 'gauge':
      // Infinities and -0 included: both stores must write them the same way.
      return fc.oneof(fc.constantFrom(0, -0, 0.1, -2.5, 1e21, -1e21, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity), fc.double({ noNaN: true }));
    case 'histogram':
      // Exact bounds check that `le` is inclusive in both.
      return fc.oneof(fc.constantFrom(...f.buckets), fc.constantFrom(0, 1e-9, 0.1), fc.double({ min: -1e12, max: 1e13, noNaN: true }));
  }
}

const scenario: fc.Arbitrary<Scenario> = fc.array(familySpec, { minLength: 1, maxLength: 5 }).chain((families) =>
  fc.record({
    families: fc.constant(families),
    ops: fc.array(
      fc.nat({ max: families.length - 1 }).chain((family) =>
        fc.record({
          family: fc.constant(family),
          labelValues: fc.array(labelValue, { minLength: families[family].labelNames.length, maxLength: families[family].labelNames.length }),
          value: valueFor(families[family]),
        }),
      ),
      { maxLength: 80 },
    ),
  }),
);

/** Family names that cannot collide with each other in either format (`f1_total` is family `f1` in OpenMetrics). */
function familyName(f: FamilySpec, i: number): string {
  return f.kind === 'counter' ? `f${i}_total` : `f${i}`;
}

/** The sample names a family exposes, for telling which family a sample belongs to. */
function sampleNames(f: FamilySpec, i: number): string[] {
  const n = familyName(f, i);
  return f.kind === 'histogram' ? [`${n}_bucket`, `${n}_sum`, `${n}_count`] : [n];
}

// ---------------------------------------------------------------------------------------------
// Both stores, fed the same scenario.

function feedOurs(s: Scenario): Registry {
  const r = new Registry();
  const fams = s.families.map((f, i) => {
    const opts = { name: familyName(f, i), help: `family ${i}`, labelNames: f.labelNames };
    if (f.kind === 'counter') return r.register(new Counter(opts));
    if (f.kind === 'gauge') return r.register(new Gauge(opts));
    return r.register(new Histogram({ ...opts, buckets: f.buckets }));
  });
  for (const op of s.ops) {
    const fam = fams[op.family];
    if (fam instanceof Counter) fam.inc(op.labelValues, op.value);
    else if (fam instanceof Gauge) fam.set(op.labelValues, op.value!);
    else fam.observe(op.labelValues, op.value!);
  }
  return r;
}

function promRegistry(openMetrics: boolean): prom.Registry | prom.Registry<prom.OpenMetricsContentType> {
  if (!openMetrics) return new prom.Registry();
  const r = new prom.Registry<prom.OpenMetricsContentType>();
  r.setContentType(prom.openMetricsContentType);
  return r;
}

function feedPromClient(s: Scenario, openMetrics: boolean): prom.Registry | prom.Registry<prom.OpenMetricsContentType> {
  const r = promRegistry(openMetrics);
  const fams = s.families.map((f, i) => {
    const opts = { name: familyName(f, i), help: `family ${i}`, labelNames: f.labelNames, registers: [r] };
    if (f.kind === 'counter') return new prom.Counter(opts);
    if (f.kind === 'gauge') return new prom.Gauge(opts);
    return new prom.Histogram({ ...opts, buckets: f.buckets });
  });
  for (const op of s.ops) {
    const labels: Record<string, string> = {};
    s.families[op.family].labelNames.forEach((n, j) => (labels[n] = op.labelValues[j]));
    const fam = fams[op.family];
    if (fam instanceof prom.Counter) fam.inc(labels, op.value);
    else if (fam instanceof prom.Gauge) fam.set(labels, op.value!);
    else fam.observe(labels, op.value!);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// A strict parser: an exposition becomes { family types, samples keyed by name and sorted labels }.

interface Canonical {
  types: Map<string, string>;
  /** Key: JSON of [name, [[label, value], ...] sorted by label name]. */
  samples: Map<string, number>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

function parseNumber(s: string, where: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!FLOAT.test(s)) throw new Error(`not a number: ${JSON.stringify(s)} in ${where}`);
  return Number(s);
}

/** Label pairs from `{...}` (without the braces), unescaping `\\`, `\"` and `\n`, and nothing else. */
function parseLabels(body: string, line: string): [string, string][] {
  const pairs: [string, string][] = [];
  let rest = body;
  while (rest !== '') {
    const m = LABEL_NAME.exec(rest);
    if (!m || rest[m[0].length] !== '=' || rest[m[0].length + 1] !== '"') throw new Error(`bad label in ${JSON.stringify(line)}`);
    let i = m[0].length + 2;
    let value = '';
    for (;;) {
      const ch = rest[i];
      if (ch === undefined) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = rest[i + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new Error(`bad escape \\${next} in ${JSON.stringify(line)}`);
        i += 2;
      } else {
        value += ch;
        i++;
      }
    }
    if (pairs.some(([n]) => n === m[0])) throw new Error(`label ${m[0]} twice in ${JSON.stringify(line)}`);
    pairs.push([m[0], value]);
    rest = rest.slice(i + 1);
    if (rest.startsWith(',')) rest = rest.slice(1);
    else if (rest !== '') throw new Error(`expected , or } after a label in ${JSON.stringify(line)}`);
  }
  return pairs;
}

function canonical(text: string, openMetrics: boolean): Canonical {
  if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (openMetrics && lines.pop() !== '# EOF') throw new Error('OpenMetrics exposition does not end with # EOF');
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of lines) {
    if (line === '') {
      if (openMetrics) throw new Error('blank line in OpenMetrics');
      continue;
    }
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) throw new Error(`unexpected comment ${JSON.stringify(line)}`);
      if (m[1] === 'TYPE') {
        if (types.has(m[2])) throw new Error(`# TYPE ${m[2]} twice`);
        types.set(m[2], m[3]);
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new Error(`bad sample ${JSON.stringify(line)}`);
    let rest = line.slice(name.length);
    let labels: [string, string][] = [];
    if (rest.startsWith('{')) {
      // The label block ends at the first `}` outside a quoted value.
      let i = 1;
      let quoted = false;
      for (; i < rest.length; i++) {
        if (quoted && rest[i] === '\\') i++;
        else if (rest[i] === '"') quoted = !quoted;
        else if (!quoted && rest[i] === '}') break;
      }
      if (i >= rest.length) throw new Error(`unterminated label block in ${JSON.stringify(line)}`);
      labels = parseLabels(rest.slice(1, i), line);
      rest = rest.slice(i + 1);
    }
    const v = / (\S+)$/.exec(rest);
    if (!v || v.index !== 0) throw new Error(`bad value (or a timestamp) in ${JSON.stringify(line)}`);
    // `le` is a number: `1`, `1.0` and `1e0` are the same bound.
    labels = labels.map(([n, val]) => [n, n === 'le' ? String(parseNumber(val, line)) : val]);
    labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = JSON.stringify([name, labels]);
    if (samples.has(key)) throw new Error(`sample twice: ${key}`);
    samples.set(key, parseNumber(v[1], line));
  }
  return { types, samples };
}

function sorted(m: Map<string, number | string>): [string, number | string][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Checks one format: the same family types, the same samples (after dropping prom-client's zeros of untouched families). */
function expectSameSamples(s: Scenario, ours: string, theirs: string, openMetrics: boolean): void {
  const a = canonical(ours, openMetrics);
  const b = canonical(theirs, openMetrics);
  expect(sorted(a.types)).toEqual(sorted(b.types));

  const touched = new Set(s.ops.map((o) => o.family));
  const untouched = new Map<string, FamilySpec>();
  s.families.forEach((f, i) => {
    if (!touched.has(i)) for (const n of sampleNames(f, i)) untouched.set(n, f);
  });
  for (const [key, value] of b.samples) {
    const [name] = JSON.parse(key) as [string];
    const f = untouched.get(name);
    if (f === undefined) continue;
    // The only extra allowed: a family without labels that nobody touched, at zero.
    expect(f.labelNames).toEqual([]);
    expect(value).toBe(0);
    b.samples.delete(key);
  }
  expect(sorted(a.samples)).toEqual(sorted(b.samples));
}

// ---------------------------------------------------------------------------------------------

describe('our store and prom-client, fed the same operations', () => {
  it('should expose the same samples in the text format and in OpenMetrics', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const ours = feedOurs(s);
        for (const openMetrics of [false, true]) {
          const text = renderText(ours, openMetrics);
          // What the sidecar serves is the byte renderer's output: it must say the same.
          expect(new ExpositionWriter(ours.all(), openMetrics).all().toString('utf8')).toBe(text);
          expectSameSamples(s, text, await feedPromClient(s, openMetrics).metrics(), openMetrics);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('should agree on a hand-written case with escapes, zero, fractions, bounds and large numbers', async () => {
    const s: Scenario = {
      families: [
        { kind: 'counter', labelNames: ['path', 'method'], buckets: [] },
        { kind: 'gauge', labelNames: [], buckets: [] },
        { kind: 'histogram', labelNames: ['tag'], buckets: [0.005, 0.25, 1, 2.5] },
      ],
      ops: [
        { family: 0, labelValues: ['/a\\b', 'GET'], value: undefined },
        { family: 0, labelValues: ['/a\\b', 'GET'], value: 0.1 },
        { family: 0, labelValues: ['say "hi"\n', 'POST'], value: 0 },
        { family: 0, labelValues: ['', 'GET'], value: 1e21 },
        { family: 1, labelValues: [], value: -2.5 },
        { family: 2, labelValues: ['x'], value: 0 },
        { family: 2, labelValues: ['x'], value: 0.25 },
        { family: 2, labelValues: ['x'], value: 2.5000001 },
        { family: 2, labelValues: ['ü\n"'], value: 1e12 },
      ],
    };
    const ours = feedOurs(s);
    for (const openMetrics of [false, true]) {
      expectSameSamples(s, renderText(ours, openMetrics), await feedPromClient(s, openMetrics).metrics(), openMetrics);
    }
    // The parser is not vacuous: it reads back what went in.
    const parsed = canonical(renderText(ours, false), false);
    expect(
      parsed.samples.get(
        JSON.stringify([
          'f0_total',
          [
            ['method', 'GET'],
            ['path', '/a\\b'],
          ],
        ]),
      ),
    ).toBe(1.1);
    expect(
      parsed.samples.get(
        JSON.stringify([
          'f0_total',
          [
            ['method', 'POST'],
            ['path', 'say "hi"\n'],
          ],
        ]),
      ),
    ).toBe(0);
    expect(
      parsed.samples.get(
        JSON.stringify([
          'f2_bucket',
          [
            ['le', '0.25'],
            ['tag', 'x'],
          ],
        ]),
      ),
    ).toBe(2);
    expect(
      parsed.samples.get(
        JSON.stringify([
          'f2_bucket',
          [
            ['le', 'Infinity'],
            ['tag', 'x'],
          ],
        ]),
      ),
    ).toBe(3);
  });

  it('should refuse what it cannot read (the comparison would otherwise pass on garbage)', () => {
    expect(() => canonical('x{a="1} 1\n', false)).toThrow(/unterminated/);
    expect(() => canonical('x{a="\\t"} 1\n', false)).toThrow(/bad escape/);
    expect(() => canonical('x 1 123\n', false)).toThrow(/timestamp/);
    expect(() => canonical('x Nan\n', false)).toThrow(/not a number/);
    expect(() => canonical('x 1\nx 1\n', false)).toThrow(/twice/);
    expect(() => canonical('x 1\n', true)).toThrow(/# EOF/);
  });

  it('should keep label sets apart that prom-client keys alike', () => {
    // prom-client 15.1.3 keys a series by `a:1,b:2,b:3,`, so it merges these two (ADR 0001).
    const r = new Registry();
    const c = r.register(new Counter({ name: 'x_total', help: 'x', labelNames: ['a', 'b'] }));
    c.inc(['1,b:2', '3']);
    c.inc(['1', '2,b:3']);
    const parsed = canonical(renderText(r, false), false);
    expect(sorted(parsed.samples)).toEqual([
      [
        JSON.stringify([
          'x_total',
          [
            ['a', '1'],
            ['b', '2,b:3'],
          ],
        ]),
        1,
      ],
      [
        JSON.stringify([
          'x_total',
          [
            ['a', '1,b:2'],
            ['b', '3'],
          ],
        ]),
        1,
      ],
    ]);
  });
});
