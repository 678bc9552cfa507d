/**
 * StatsD / DogStatsD line parser:
 *   <name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>[:<value>],...][|c:<container>][|T<timestamp>]
 * Types: c (counter), g (gauge; a leading + or - makes it a delta), ms (timer, milliseconds),
 * h (histogram), d (distribution), s (set: not supported, dropped). Written with indexOf rather
 * than regular expressions: it runs for every line received.
 */

export type StatsdType = 'c' | 'g' | 'ms' | 'h' | 'd' | 's';

export interface StatsdLine {
  name: string;
  type: StatsdType;
  values: number[];
  /** Gauge only: the values are deltas (`+3`, `-2`) rather than the new value. */
  delta: boolean;
  rate: number;
  /** The raw DogStatsD tag list (`env:prod,region:eu`), or '' when there is none. */
  tags: string;
  /**
   * Everything after the values (`ms|@0.5|#a:b`), or just type and tags when the line carries a
   * field that varies per line (`T<timestamp>`, `c:`, `e:`): with the name, identifies the series.
   */
  rest: string;
}

/** Why a line was refused; counted as `malformed` and logged only in aggregate. */
export class StatsdParseError extends Error {}

const TYPES = new Set<string>(['c', 'g', 'ms', 'h', 'd', 's']);
// `\d+\.?\d*` would let the two digit runs split a long digit string n ways: quadratic backtracking
// (a 60 KB `1111…x` value held the event loop ~4 s). Here the fraction needs its `.`: linear.
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function parseLine(line: string): StatsdLine {
  const colon = line.indexOf(':');
  if (colon <= 0) throw new StatsdParseError('no name:value');
  const pipe = line.indexOf('|', colon);
  if (pipe === -1) throw new StatsdParseError('no |type');
  const name = line.slice(0, colon);
  if (name.includes('|') || name.includes('#') || name.includes('@')) throw new StatsdParseError('bad name');

  let typeEnd = line.indexOf('|', pipe + 1);
  if (typeEnd === -1) typeEnd = line.length;
  const type = line.slice(pipe + 1, typeEnd);
  if (!TYPES.has(type)) throw new StatsdParseError('unknown type');

  const rawValues = line.slice(colon + 1, pipe);
  const parts = type === 'g' || !rawValues.includes(':') ? [rawValues] : rawValues.split(':');
  const values: number[] = [];
  let delta = false;
  for (const p of parts) {
    if (type === 's') {
      if (p === '') throw new StatsdParseError('empty value');
      values.push(0);
      continue;
    }
    if (!NUMBER.test(p)) throw new StatsdParseError('value is not a number');
    const v = Number(p);
    if (!Number.isFinite(v)) throw new StatsdParseError('value is not finite');
    if (type === 'g') delta = p[0] === '+' || p[0] === '-';
    else if (v < 0 && type === 'c') throw new StatsdParseError('negative counter');
    values.push(v);
  }

  let rate = 1;
  let tags = '';
  /** A field that changes from line to line without changing the series (a timestamp): left out of `rest`. */
  let ignored = false;
  let i = typeEnd;
  while (i < line.length) {
    const next = line.indexOf('|', i + 1);
    const field = line.slice(i + 1, next === -1 ? line.length : next);
    if (field.startsWith('@')) {
      const text = field.slice(1);
      const r = NUMBER.test(text) ? Number(text) : NaN;
      if (!(r > 0 && r <= 1)) throw new StatsdParseError('sample rate not in (0, 1]');
      // Each value stands for 1/rate events: a rate so small that this overflows would make the
      // series +Inf for good (`x:2|c|@1e-308`).
      if (!Number.isFinite(1 / r) || values.some((v) => !Number.isFinite(v / r))) throw new StatsdParseError('value / sample rate is not finite');
      rate = r;
    } else if (field.startsWith('#')) {
      tags = field.slice(1);
    } else if (field.startsWith('c:') || field.startsWith('T') || field.startsWith('e:')) {
      // DogStatsD container id, timestamp, external data: accepted and ignored.
      ignored = true;
    } else {
      throw new StatsdParseError('unknown field');
    }
    i = next === -1 ? line.length : next;
  }
  // `rest` keys the recorder's cache: with a timestamp in it, every line would be a miss.
  const rest = ignored ? (tags === '' ? type : `${type}|#${tags}`) : line.slice(pipe + 1);
  return { name, type: type as StatsdType, values, delta, rate, tags, rest };
}

/** DogStatsD tags as label pairs; a tag without a value is ignored (a label needs one). */
export function parseTags(tags: string): [string, string][] {
  const out: [string, string][] = [];
  if (tags === '') return out;
  for (const t of tags.split(',')) {
    const c = t.indexOf(':');
    if (c <= 0 || c === t.length - 1) continue;
    out.push([t.slice(0, c), t.slice(c + 1)]);
  }
  return out;
}

/** A Prometheus metric name from a StatsD name: `api.call-latency` → `api_call_latency`. */
export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** A Prometheus label name (no colons, no leading digit, not reserved `__`). */
export function sanitizeLabelName(name: string): string {
  let s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(s)) s = `_${s}`;
  return s.startsWith('__') ? s.replace(/^_+/, '_') : s;
}
