/**
 * A parser for an application's own exposition (Prometheus text 0.0.4 or OpenMetrics 1.0.0),
 * strict enough to refuse what would make the merged exposition invalid, and normalising both
 * formats to one shape: families named as in the text format (counters end in `_total`), sample
 * lines without timestamps or exemplars (OpenMetrics timestamps are seconds, text ones
 * milliseconds; the scrape's time is what Prometheus should use anyway), `_created` samples
 * dropped (the text format has no place for them).
 */

export type MergedType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedFamily {
  name: string;
  type: MergedType;
  help: string | undefined;
  /** `name{labels} value` lines, each ending in \n. */
  samples: string[];
  /** `name{labels}` of each sample, for duplicate detection across sources. */
  keys: string[];
}

export interface ParseResult {
  families: ParsedFamily[];
  /** Families skipped because their type cannot be carried over (gaugehistogram). */
  unsupported: string[];
}

export class ExpositionParseError extends Error {}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABELS = '\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*")*,?)?\\}';
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*(?:[eE][+-]?\\d+)?|\\.\\d+(?:[eE][+-]?\\d+)?|Inf|inf)|NaN|nan)';
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (${VALUE})(?: -?\\d+(?:\\.\\d+)?)?(?: # .*)?$`);
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
  sawTotal: boolean;
}

export function parseExposition(text: string): ParseResult {
  const building: Building[] = [];
  const byName = new Map<string, Building>();
  let current: Building | undefined;
  const get = (name: string): Building => {
    let b = byName.get(name);
    if (!b) {
      b = { declared: name, type: 'untyped', help: undefined, samples: [], keys: [], sawTotal: false };
      byName.set(name, b);
      building.push(b);
    }
    return b;
  };

  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line === '# EOF') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line);
      if (!m) return; // other comments are allowed in the text format
      if (!new RegExp(`^${NAME}$`).test(m[2])) throw new ExpositionParseError(`line ${i + 1}: bad metric name`);
      current = get(m[2]);
      if (m[1] === 'TYPE') {
        const t = (m[3] ?? '').trim();
        if (!(t in SUFFIXES)) throw new ExpositionParseError(`line ${i + 1}: unknown type`);
        if (current.samples.length > 0) throw new ExpositionParseError(`line ${i + 1}: TYPE after samples`);
        current.type = t;
      } else if (m[1] === 'HELP') {
        current.help = m[3] ?? '';
      }
      return;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new ExpositionParseError(`line ${i + 1}: not a valid sample`);
    const [, name, labels = '', value] = m;
    let fam = current && belongs(current, name) ? current : undefined;
    if (!fam) {
      fam = get(name);
      current = fam;
      if (!belongs(fam, name)) throw new ExpositionParseError(`line ${i + 1}: sample ${name} does not fit its family`);
    }
    if (name.endsWith('_created') && fam.type !== 'untyped' && fam.type !== 'gauge') return;
    if (fam.type === 'counter' && name === `${fam.declared}_total`) fam.sawTotal = true;
    const v = value.replace(/^([+-]?)inf$/i, '$1Inf').replace(/^nan$/i, 'NaN');
    const normalizedLabels = labels.replace(/,\}$/, '}');
    fam.samples.push(`${name}${normalizedLabels} ${v}\n`);
    fam.keys.push(`${name}${normalizedLabels}`);
  });

  const families: ParsedFamily[] = [];
  const unsupported: string[] = [];
  for (const b of building) {
    if (b.samples.length === 0) continue;
    switch (b.type) {
      case 'gaugehistogram':
        unsupported.push(b.declared);
        break;
      case 'counter':
        // Text-format counters are declared with their _total name; OpenMetrics ones without.
        families.push({ name: b.sawTotal ? `${b.declared}_total` : b.declared, type: 'counter', help: b.help, samples: b.samples, keys: b.keys });
        break;
      case 'info':
        families.push({ name: `${b.declared}_info`, type: 'gauge', help: b.help, samples: b.samples, keys: b.keys });
        break;
      case 'stateset':
        families.push({ name: b.declared, type: 'gauge', help: b.help, samples: b.samples, keys: b.keys });
        break;
      case 'unknown':
        families.push({ name: b.declared, type: 'untyped', help: b.help, samples: b.samples, keys: b.keys });
        break;
      default:
        families.push({ name: b.declared, type: b.type as MergedType, help: b.help, samples: b.samples, keys: b.keys });
    }
  }
  return { families, unsupported };
}

function belongs(f: Building, sample: string): boolean {
  if (!sample.startsWith(f.declared)) return false;
  const rest = sample.slice(f.declared.length);
  return (SUFFIXES[f.type] ?? ['']).includes(rest);
}
