/**
 * A parser for an application's own exposition (Prometheus text 0.0.4 or OpenMetrics 1.0.0),
 * strict enough to refuse what would make the merged exposition invalid, and normalising both
 * formats to one shape: families named as in the text format (counters end in `_total`), sample
 * lines without timestamps or exemplars (OpenMetrics timestamps are seconds, text ones
 * milliseconds; the scrape's time is what Prometheus should use anyway), `_created` samples
 * dropped (the text format has no place for them).
 *
 * It is a hand-written scanner (no regular expression per sample line) and runs in slices: the
 * async form lets the event loop through every few milliseconds, so a large target never holds up
 * the requests the sidecar is forwarding. Limits are applied while scanning: a duplicate series is
 * dropped, a family whose series break the label limits or that comes past the family limit is
 * left out, and each is counted.
 */
import { exceedsBytes } from '../../metrics/registry';

export type MergedType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedFamily {
  name: string;
  type: MergedType;
  /**
   * The HELP text unescaped (`\\`, `\n` and OpenMetrics' `\"`; any other backslash is kept as
   * it is), for the merger to escape for the scrape's format; undefined when the source gave none
   * or an empty one.
   */
  help: string | undefined;
  /** `name{labels} value` lines, without their \n (most are slices of the body: nothing is copied). */
  samples: string[];
  /** `name{labels}` of each sample, for duplicate detection across sources. */
  keys: string[];
}

/** What a source loses while it is parsed; the merger counts each in metrics_sidecar_merge_families_dropped_total. */
export interface ParseDrops {
  /** Samples whose series (name and labels) came earlier in the same source. */
  duplicate_series: number;
  /** Families left out because a series had too many labels or too long a label value. */
  label_limit: number;
  /** Families left out past the per-source family limit. */
  family_limit: number;
}

export interface ParseResult {
  families: ParsedFamily[];
  /** Families skipped because their type cannot be carried over (gaugehistogram). */
  unsupported: string[];
  dropped: ParseDrops;
}

export interface ParseLimits {
  maxLabels: number;
  maxLabelValueBytes: number;
  maxFamilies: number;
}

const NO_LIMITS: ParseLimits = { maxLabels: Infinity, maxLabelValueBytes: Infinity, maxFamilies: Infinity };

export class ExpositionParseError extends Error {}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const COMMENT = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/;
// The fraction needs its `.`: `\d+\.?\d*` backtracked quadratically on a long digit run that does
// not end the value (a 1 MB `1111…x` sample held the event loop for minutes).
const VALUE = /^(?:[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf)|NaN|nan)$/;
/** A float as Prometheus parses `le` and `quantile` label values (Go's ParseFloat, without hex or underscores). Linear, as VALUE. */
const LABEL_FLOAT = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf(?:inity)?|INF|NaN|nan)$/;
const TIMESTAMP = /^-?\d+(?:\.\d+)?$/;
const SUFFIXES: Record<string, readonly string[]> = {
  counter: ['_total', '_created', ''],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  summary: ['', '_sum', '_count', '_created'],
  gauge: [''],
  untyped: [''],
  unknown: [''],
  info: ['_info'],
  stateset: [''],
  gaugehistogram: ['_bucket', '_gcount', '_gsum'],
};

interface Building {
  declared: string;
  type: string;
  help: string | undefined;
  samples: string[];
  keys: string[];
  seen: Set<string>;
  sawTotal: boolean;
  /** Left out (label limit or family limit): its samples are read and discarded. */
  excluded: boolean;
}

/** Shared by the families past the limit: they never hold a sample. */
const NONE: string[] = [];
const NO_KEYS = new Set<string>();
/**
 * A source naming more than this many times the family limit is refused whole (marked down):
 * remembering every name of a 4 MB body of one-sample families cost ~240 MB of heap.
 */
const NAMES_PER_FAMILY_LIMIT = 10;

/** The parse of one source, fed line by line. */
class Parser {
  readonly building: Building[] = [];
  private readonly byName = new Map<string, Building>();
  private current: Building | undefined;
  readonly dropped: ParseDrops = { duplicate_series: 0, label_limit: 0, family_limit: 0 };
  private lineNo = 0;

  constructor(private readonly limits: ParseLimits) {}

  private get(name: string): Building {
    let b = this.byName.get(name);
    if (!b) {
      if (this.byName.size >= this.limits.maxFamilies) {
        // Past the limit a family is only remembered (to be counted once and its samples skipped),
        // with nothing of its own; a source with far more names than that is not a metrics endpoint.
        if (this.byName.size >= this.limits.maxFamilies * NAMES_PER_FAMILY_LIMIT) this.fail(`more than ${this.byName.size} metric names`);
        b = { declared: name, type: 'untyped', help: undefined, samples: NONE, keys: NONE, seen: NO_KEYS, sawTotal: false, excluded: true };
        this.dropped.family_limit++;
        this.byName.set(name, b);
        return b;
      }
      b = { declared: name, type: 'untyped', help: undefined, samples: [], keys: [], seen: new Set(), sawTotal: false, excluded: false };
      this.byName.set(name, b);
      this.building.push(b);
    }
    return b;
  }

  private fail(why: string): never {
    throw new ExpositionParseError(`line ${this.lineNo}: ${why}`);
  }

  line(raw: string): void {
    this.lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line === '# EOF') return;
    if (line.charCodeAt(0) === 35 /* # */) {
      const m = COMMENT.exec(line);
      if (!m) return; // other comments are allowed in the text format
      if (!NAME.test(m[2])) this.fail('bad metric name');
      const current = (this.current = this.get(m[2]));
      if (m[1] === 'TYPE') {
        const t = (m[3] ?? '').trim();
        // Own keys only: `# TYPE x constructor` must be an unknown type, not Object's member.
        if (!Object.hasOwn(SUFFIXES, t)) this.fail('unknown type');
        if (current.samples.length > 0 || current.seen.size > 0) this.fail('TYPE after samples');
        current.type = t;
      } else if (m[1] === 'HELP') {
        current.help = unescapeHelp(m[3] ?? '');
      }
      return;
    }
    this.sample(line);
  }

  /** `name[{labels}] value [timestamp] [# exemplar]`, scanned by hand. */
  private sample(line: string): void {
    const n = line.length;
    let i = 0;
    let c = line.charCodeAt(0);
    if (!(isNameStart(c) || c === 58)) this.fail('not a valid sample');
    i++;
    while (i < n && (isNameChar((c = line.charCodeAt(i))) || c === 58)) i++;
    const name = line.slice(0, i);
    let labels = '';
    /** Length of the label text as written (`{...}` with a trailing comma, `{}`), to see whether it was normalised. */
    let labelsRaw = 0;
    let overLimit = false;
    /** The raw values of `le` and `quantile`, which histograms and summaries give a numeric meaning. */
    let le: string | undefined;
    let quantile: string | undefined;
    if (line.charCodeAt(i) === 123 /* { */) {
      const start = i;
      i++;
      let count = 0;
      // A Set, not an array scan: a hostile line may carry hundreds of thousands of labels (k² comparisons).
      const names = new Set<string>();
      while (line.charCodeAt(i) !== 125 /* } */) {
        const ns = i;
        if (!isNameStart(line.charCodeAt(i))) this.fail('not a valid sample');
        i++;
        while (i < n && isNameChar(line.charCodeAt(i))) i++;
        const labelName = line.slice(ns, i);
        if (names.has(labelName)) this.fail(`label ${labelName} given twice`);
        names.add(labelName);
        if (line.charCodeAt(i) !== 61 /* = */ || line.charCodeAt(i + 1) !== 34 /* " */) this.fail('not a valid sample');
        i += 2;
        const vs = i;
        for (;;) {
          if (i >= n) this.fail('unterminated label value');
          c = line.charCodeAt(i);
          if (c === 34) break;
          if (c === 92 /* \ */) {
            i++;
            c = line.charCodeAt(i);
            // The text format knows three escapes; anything else would be read differently elsewhere.
            if (c !== 92 && c !== 34 && c !== 110 /* n */) this.fail('bad escape in a label value');
          }
          i++;
        }
        const len = i - vs;
        if (labelName === 'le') le = line.slice(vs, i);
        else if (labelName === 'quantile') quantile = line.slice(vs, i);
        const max = this.limits.maxLabelValueBytes;
        // The length alone decides most values without slicing them out (exceedsBytes' rule).
        if (len > max || (len * 3 > max && exceedsBytes(line.slice(vs, i), max))) overLimit = true;
        i++;
        count++;
        c = line.charCodeAt(i);
        if (c === 44 /* , */) i++;
        else if (c !== 125) this.fail('not a valid sample');
      }
      if (count > this.limits.maxLabels) overLimit = true;
      i++;
      // `{a="1",}` and `{}` are normalised: a trailing comma and empty braces are dropped.
      labels = count === 0 ? '' : line.charCodeAt(i - 2) === 44 ? `${line.slice(start, i - 2)}}` : line.slice(start, i);
      labelsRaw = i - start;
    }
    if (line.charCodeAt(i) !== 32) this.fail('not a valid sample');
    i++;
    let end = line.indexOf(' ', i);
    if (end === -1) end = n;
    let value = line.slice(i, end);
    if (!VALUE.test(value)) this.fail('not a valid sample');
    if (end < n) {
      // Then an optional timestamp, then an optional exemplar (` # {...} v [ts]`), both dropped.
      const rest = line.slice(end + 1);
      const hash = rest.startsWith('# ') ? 0 : rest.indexOf(' # ');
      const ts = hash === -1 ? rest : rest.slice(0, hash);
      if (ts !== '' && !TIMESTAMP.test(ts)) this.fail('not a valid sample');
    }

    let fam = this.current !== undefined && belongs(this.current, name) ? this.current : undefined;
    if (!fam) {
      fam = this.get(name);
      this.current = fam;
      if (!belongs(fam, name)) this.fail(`sample ${name} does not fit its family`);
    }
    // Prometheus reads `le` (histograms) and `quantile` (summaries) as numbers wherever they appear
    // in such a family, and a bucket needs its `le`: anything else fails the whole scrape there.
    if (fam.type === 'histogram' || fam.type === 'gaugehistogram') {
      if (le !== undefined ? !LABEL_FLOAT.test(le) : name.endsWith('_bucket')) this.fail(`sample ${name} has no valid "le" label`);
    } else if (fam.type === 'summary' && quantile !== undefined && !LABEL_FLOAT.test(quantile)) {
      this.fail(`sample ${name} has an invalid "quantile" label`);
    }
    if (fam.excluded) return;
    if (overLimit) {
      fam.excluded = true;
      fam.samples = [];
      fam.keys = [];
      this.dropped.label_limit++;
      return;
    }
    if (name.endsWith('_created') && fam.type !== 'untyped' && fam.type !== 'gauge') return;
    if (fam.type === 'counter' && name === `${fam.declared}_total`) fam.sawTotal = true;
    const key = labels === '' ? name : `${name}${labels}`;
    if (fam.seen.has(key)) {
      this.dropped.duplicate_series++;
      return;
    }
    fam.seen.add(key);
    let normalized = end < n || labels.length !== labelsRaw;
    if (value === 'inf' || value === '+inf' || value === '-inf') {
      value = value.replace('inf', 'Inf');
      normalized = true;
    } else if (value === 'nan') {
      value = 'NaN';
      normalized = true;
    }
    // The line as it came (a slice of the body) unless something had to change: a large target
    // then costs one small object per sample, not three new strings (less garbage, shorter GC pauses).
    fam.samples.push(normalized ? `${key} ${value}` : line);
    fam.keys.push(key);
  }

  result(): ParseResult {
    const families: ParsedFamily[] = [];
    const unsupported: string[] = [];
    for (const b of this.building) {
      if (b.samples.length === 0 || b.excluded) continue;
      const base = { help: b.help, samples: b.samples, keys: b.keys };
      switch (b.type) {
        case 'gaugehistogram':
          unsupported.push(b.declared);
          break;
        case 'counter':
          // Text-format counters are declared with their _total name; OpenMetrics ones without.
          families.push({ name: b.sawTotal ? `${b.declared}_total` : b.declared, type: 'counter', ...base });
          break;
        case 'info':
          families.push({ name: `${b.declared}_info`, type: 'gauge', ...base });
          break;
        case 'stateset':
          families.push({ name: b.declared, type: 'gauge', ...base });
          break;
        case 'unknown':
          families.push({ name: b.declared, type: 'untyped', ...base });
          break;
        default:
          families.push({ name: b.declared, type: b.type as MergedType, ...base });
      }
    }
    return { families, unsupported, dropped: this.dropped };
  }
}

/**
 * A source's HELP text as plain text. Text 0.0.4 escapes `\\` and `\n`, OpenMetrics also `\"`;
 * passed on as written, an OpenMetrics `\"` (or a stray `\d` of a hand-written text) would be an
 * invalid escape in the text format, which promtool and the Go parser refuse. Blank is none.
 */
export function unescapeHelp(raw: string): string | undefined {
  const text = raw.includes('\\') ? raw.replace(/\\([\\n"])/g, (_, c: string) => (c === 'n' ? '\n' : c)) : raw;
  return text.trim() === '' ? undefined : text;
}

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}

/**
 * Feeds the lines of `text` from offset `start` to the parser, `max` at most, and returns where it
 * stopped (past the end once every line is read). Lines end at LF; the last one needs none.
 */
function feed(p: Parser, text: string, start: number, max: number): number {
  for (let n = 0; n < max && start <= text.length; n++) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    p.line(text.slice(start, end));
    start = end + 1;
  }
  return start;
}

/** Parses a whole exposition at once (the protobuf writer's text part, small bodies). */
export function parseExposition(text: string, limits: ParseLimits = NO_LIMITS): ParseResult {
  const p = new Parser(limits);
  feed(p, text, 0, Infinity);
  return p.result();
}

/** Parses in slices of about `sliceMs`, letting the event loop through between them. */
export async function parseExpositionAsync(text: string, limits: ParseLimits = NO_LIMITS, sliceMs = 4): Promise<ParseResult> {
  const p = new Parser(limits);
  let deadline = performance.now() + sliceMs;
  for (let start = 0; start <= text.length;) {
    start = feed(p, text, start, 256);
    if (start <= text.length && performance.now() > deadline) {
      await new Promise((resolve) => setImmediate(resolve));
      deadline = performance.now() + sliceMs;
    }
  }
  return p.result();
}

function belongs(f: Building, sample: string): boolean {
  if (!sample.startsWith(f.declared)) return false;
  const rest = sample.slice(f.declared.length);
  return (SUFFIXES[f.type] ?? ['']).includes(rest);
}
