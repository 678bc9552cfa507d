/**
 * An independent model of what the main port does with a request target, written from the rules
 * in docs/limits.md ("Request targets"), not from src/proxy/target.ts: byte units instead of string
 * rewriting, TextDecoder instead of Buffer checks, its own reservation normaliser.
 *
 * Outcomes:
 * - `node`: Node's HTTP parser refuses the bytes before the sidecar sees a request (any byte
 *   outside visible ASCII 0x21-0x7E in the target: controls, space, DEL, non-ASCII); 400 on the
 *   wire. The canonicaliser, given such a string anyway, must refuse it too. One exception on the
 *   wire (see `wireOutcomes`): leading spaces are skipped and a space, CR or LF ends the request target early, and Node may read
 *   the rest as the HTTP version or as header lines; if that parses, the request is the prefix.
 * - `refused`: the sidecar answers 400 (or 414) and forwards nothing.
 * - `reserved`: the sidecar answers it (`/debug` or below), never the application.
 * - `forward`: the application receives exactly `target`.
 */

export type Outcome = { kind: 'node' } | { kind: 'refused'; why: string } | { kind: 'reserved' } | { kind: 'forward'; target: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

interface Unit {
  byte: number;
  escaped: boolean;
}

export function model(raw: string): Outcome {
  for (const ch of raw) {
    const c = ch.codePointAt(0)!;
    if (c < 0x21 || c > 0x7e) return { kind: 'node' };
  }
  if (raw.length > 8192) return { kind: 'refused', why: 'too long' };
  if (raw === '*') return { kind: 'refused', why: 'asterisk' };
  if (raw.includes('#')) return { kind: 'refused', why: 'fragment' };

  let rest: string;
  if (raw.startsWith('/')) {
    rest = raw;
  } else {
    const m = /^(https?):\/\/([^/?#]*)/i.exec(raw);
    if (!m) return { kind: 'refused', why: 'not origin-form' };
    rest = raw.slice(m[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  const qAt = rest.indexOf('?');
  const rawPath = qAt === -1 ? rest : rest.slice(0, qAt);
  const query = qAt === -1 ? '' : rest.slice(qAt);

  // Units: one per raw character or per %XX escape.
  const units: Unit[] = [];
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i];
    if (ch === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { kind: 'refused', why: 'malformed escape' };
      units.push({ byte: parseInt(hex, 16), escaped: true });
      i += 2;
    } else {
      if (ch === '\\') return { kind: 'refused', why: 'backslash' };
      units.push({ byte: ch.charCodeAt(0), escaped: false });
    }
  }
  for (const u of units) {
    if (u.escaped && (u.byte === 0x2f || u.byte === 0x5c)) return { kind: 'refused', why: 'encoded slash' };
    if (u.byte < 0x20 || u.byte === 0x7f) return { kind: 'refused', why: 'control' };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(units.map((u) => u.byte)));
  } catch {
    return { kind: 'refused', why: 'invalid utf-8' };
  }
  if (/[\u0080-\u009f]/.test(text)) return { kind: 'refused', why: 'C1 control' };

  let canonical = '';
  for (const u of units) {
    const ch = String.fromCharCode(u.byte);
    if (!u.escaped || UNRESERVED.test(ch)) canonical += ch;
    else canonical += `%${u.byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  canonical = canonical.replace(/\/{2,}/g, '/');

  for (const seg of canonical.split('/')) {
    let s = seg;
    for (let k = 1; ; k++) {
      const next = decodeLayer(s);
      if (next === undefined) return { kind: 'refused', why: 'invalid utf-8 deeper down' };
      if (next === s) break;
      if (k === 5) return { kind: 'refused', why: 'encoded five times' };
      s = next;
    }
    for (const piece of s.normalize('NFKC').split(/[/\\;]/)) {
      // eslint-disable-next-line no-control-regex
      const bare = piece.replace(/[\s\u0000-\u001f\u007f-\u009f]/g, '');
      if (bare.length > 0 && [...bare].every((c) => c === '.')) return { kind: 'refused', why: 'dot segment' };
    }
  }

  if (firstWord(canonical) === 'debug') return { kind: 'reserved' };
  return { kind: 'forward', target: canonical + query };
}

/** What may happen to `raw` sent byte for byte as `GET <raw> HTTP/1.1` (see `node` above). */
export function wireOutcomes(raw: string): Outcome[] {
  const out = [model(raw)];
  if (/[ \r\n]/.test(raw)) {
    // llhttp skips extra spaces after the method, then the target runs to the next space, CR or LF.
    const read = raw.replace(/^ +/, '');
    const cut = read.search(/[ \r\n]/);
    out.push(model(cut === -1 ? read : read.slice(0, cut)));
  }
  return out;
}

/** One layer of percent-decoding; malformed `%` left alone; undefined when the bytes are not UTF-8. */
function decodeLayer(s: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/**
 * The first word of a path as the most lenient server could read it: decoded up to four times,
 * NFKC-folded, lower case, `\` as `/`, `;params` cut, controls removed, trailing dots and spaces
 * trimmed, empty segments skipped.
 */
function firstWord(path: string): string | undefined {
  let s = path;
  for (let k = 0; k < 4; k++) s = decodeLayer(s) ?? s;
  s = s.normalize('NFKC').toLowerCase().split('\\').join('/');
  for (const seg of s.split('/')) {
    const word = seg
      .split(';')[0]
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u001f\u007f]/g, '')
      .replace(/[.\s]+$/, '');
    if (word !== '') return word;
  }
  return undefined;
}
