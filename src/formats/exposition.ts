/**
 * The exposition text format's rules, stated once for every renderer: the byte writer
 * (exposition/render.ts), prom-client's process metrics (metrics/sidecar.ts), the merged targets
 * (ingest/merge/merger.ts), and the tests' string oracle (test/helpers/text-oracle.ts). The store
 * keeps each series' label pairs in this format too (metrics/registry.ts, escapeLabelValue), so
 * this module sits below everything and imports nothing.
 *
 * Text 0.0.4 and OpenMetrics 1.0.0 differ, for what the sidecar writes, in three places: a
 * counter family is named without `_total` in OpenMetrics (familyName), an integer bucket bound is
 * written as a float there (`le="1.0"`, formatLe), and only OpenMetrics carries exemplars and
 * `# EOF`.
 */

/** Bytes an exemplar's text may take at most: 128 characters of labels (OpenMetrics' limit), value and timestamp. */
export const EXEMPLAR_MAX_BYTES = 3 * 128 + 128;

/** Upper bound of a number's text (`-1.2345678901234567e-308` is 24 bytes). */
export const NUMBER_MAX_BYTES = 32;

/** One exemplar: a trace's ids beside an observed value, with when it was observed. */
export interface Exemplar {
  /** Label pairs, e.g. [['trace_id', '4bf9…'], ['span_id', '00f0…']]; at most 128 UTF-8 characters in all. */
  labels: ReadonlyArray<readonly [string, string]>;
  value: number;
  /** Milliseconds since the epoch. */
  timestampMs: number;
}

/** `x_total` → `x`: the name a counter has in OpenMetrics (and the one its other spellings hang off). */
export function stripTotal(name: string): string {
  return name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
}

/**
 * The name a family has in its `# HELP` and `# TYPE` lines: OpenMetrics names a counter family
 * without the `_total` suffix its samples carry; the text format names it as its samples.
 */
export function familyName(name: string, type: string, openMetrics: boolean): string {
  return openMetrics && type === 'counter' ? stripTotal(name) : name;
}

/**
 * A family's `# HELP` and `# TYPE` lines (the name already as familyName gives it). The text
 * format escapes `\` and line feeds in HELP; OpenMetrics escapes HELP as it escapes label values,
 * `"` too.
 */
export function familyHeader(name: string, type: string, help: string, openMetrics: boolean): string {
  return `# HELP ${name} ${openMetrics ? escapeLabelValue(help) : escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value: a finite number as String(v) writes it, `NaN`, `+Inf` or `-Inf`. */
export function formatNumber(v: number): string {
  if (Number.isFinite(v)) return numberText(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/**
 * The text of a finite number, exactly String(v) (both are ECMAScript's Number::toString), but
 * made the way JSON.stringify makes it: String(v) of a non-integer puts its result in V8's
 * number-string cache, and strings the cache holds are allocated straight in the old generation.
 * A scrape formats up to one such number per series (histogram sums, gauges), so String(v) left
 * ~2.4 MB of old-space garbage per 100k values, scrape after scrape, for a major GC to collect
 * while the proxy waits; these strings die young instead (test/exposition/number-text.test.ts).
 */
export function numberText(v: number): string {
  return JSON.stringify(v);
}

/**
 * A bucket bound as the `le` label value: OpenMetrics wants a float spelling for integers (`1.0`);
 * from 1e21 on String() already writes an exponent (`1e+21`), to which `.0` must not be added.
 */
export function formatLe(bound: number, openMetrics: boolean): string {
  return openMetrics && Number.isInteger(bound) && Math.abs(bound) < 1e21 ? `${bound}.0` : formatNumber(bound);
}

/**
 * An exemplar as OpenMetrics writes it after a sample: ` # {trace_id="…",span_id="…"} value timestamp`
 * (the timestamp in seconds). Label values are escaped as label values are.
 */
export function exemplarText(ex: Exemplar): string {
  let labels = '';
  for (const [k, v] of ex.labels) labels += `${labels === '' ? '' : ','}${k}="${escapeLabelValue(v)}"`;
  return ` # {${labels}} ${formatNumber(ex.value)} ${numberText(ex.timestampMs / 1000)}`;
}

/**
 * Writes `formatNumber(v)` into buf at p and returns the new offset, without a string in the
 * common cases: integers (counters, bucket counts) digit by digit, and short decimals (`12.5`,
 * `0.125`: StatsD gauges, sums of seconds) as an integer with a point. Anything else goes through
 * numberText, which is what formatNumber does. `buf` needs NUMBER_MAX_BYTES of room at p.
 */
export function writeNumber(buf: Buffer, p: number, v: number): number {
  if (Number.isSafeInteger(v)) {
    // -0 is an integer and String(-0) is "0": `v < 0` is false for it, so it prints as 0.
    if (v < 0) {
      buf[p++] = 45; // -
      v = -v;
    }
    return writeDigits(buf, p, v, 0);
  }
  if (v !== v) return p + asciiWrite(buf, 'NaN', p);
  if (v === Infinity) return p + asciiWrite(buf, '+Inf', p);
  if (v === -Infinity) return p + asciiWrite(buf, '-Inf', p);
  const a = v < 0 ? -v : v;
  if (a >= 1e-6 && a < DECIMAL_MAX) {
    for (let d = 1; d <= 6; d++) {
      const n = a * POW10[d];
      if (Number.isInteger(n)) {
        // n / 10^d is correctly rounded, so when it gives back a, the decimal n·10^-d is a's
        // nearest: it round-trips. With n ≤ 2^50 the double's spacing is under a quarter of
        // 10^-d, so no other string with d or fewer decimals round-trips, and without a trailing
        // zero it is the shortest one: exactly what String(v) prints (fixed notation from 1e-6).
        if (n % 10 === 0 || n / POW10[d] !== a) break;
        if (v < 0) buf[p++] = 45;
        return writeDigits(buf, p, n, d);
      }
    }
  }
  return p + asciiWrite(buf, numberText(v), p);
}

const POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000];
/** Decimals are written by the fast path only while n = a·10^d stays ≤ 2^50 (see writeNumber). */
const DECIMAL_MAX = 2 ** 50 / 1e6;

/** Writes the non-negative integer n with a decimal point `decimals` digits from the right. */
function writeDigits(buf: Buffer, p: number, n: number, decimals: number): number {
  let digits = n < 2147483648 ? smallDigits(n) : 10;
  for (let m = n / 1e10; m >= 1; m /= 10) digits++;
  // Leading zeros of a fraction (0.05 = 5 with 2 decimals) and the integer part's 0.
  if (digits <= decimals) digits = decimals + 1;
  const endAt = p + digits + (decimals > 0 ? 1 : 0);
  let i = endAt - 1;
  // Above 2^31 the digits come from float division (exact for safe integers); below, int32 maths.
  while (n >= 2147483648) {
    const q = Math.floor(n / 10);
    buf[i--] = 48 + (n - q * 10);
    n = q;
    if (--decimals === 0) buf[i--] = 46; // .
  }
  let m = n | 0;
  while (i >= p) {
    const q = (m / 10) | 0;
    buf[i--] = 48 + (m - q * 10);
    m = q;
    if (--decimals === 0) buf[i--] = 46; // .
  }
  return endAt;
}

function smallDigits(n: number): number {
  if (n < 10) return 1;
  if (n < 100) return 2;
  if (n < 1000) return 3;
  if (n < 10000) return 4;
  if (n < 100000) return 5;
  if (n < 1000000) return 6;
  if (n < 10000000) return 7;
  if (n < 100000000) return 8;
  if (n < 1000000000) return 9;
  return 10;
}

/**
 * ASCII text (a number's, `# EOF`) into buf at p; returns the bytes written. Buffer#write with the
 * 'latin1' encoding: one byte per character, no UTF-8 encoder.
 */
export function asciiWrite(buf: Buffer, text: string, p: number): number {
  return buf.write(text, p, 'latin1');
}
