/** A small parser for the text exposition, enough to assert on families, types and labels. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Parsed {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

export function parseExposition(text: string): Parsed {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line === '# EOF') continue;
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      types.set(m[1], m[2]);
      continue;
    }
    m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1], m[2]);
      continue;
    }
    // dotAll: a label value may hold U+2028/U+2029, which `.` does not match otherwise.
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/s.exec(line);
    if (!m) throw new Error(`unparseable line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        // One pass: `\\n` is a backslash then n, not a backslash then a newline.
        labels[lm[1]] = lm[2].replace(/\\([\\"n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    samples.push({ name: m[1], labels, value: Number(m[3].replace('+Inf', 'Infinity')) });
  }
  return { types, help, samples };
}

export function find(p: Parsed, name: string, labels: Record<string, string> = {}): Sample[] {
  return p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

export function value(p: Parsed, name: string, labels: Record<string, string> = {}): number {
  return find(p, name, labels).reduce((a, s) => a + s.value, 0);
}
