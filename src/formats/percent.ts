/**
 * One layer of percent-decoding, in one pass over the bytes (no regex, one allocation): valid
 * `%XX` escapes become bytes, everything else (malformed `%` included) is kept, and the result is
 * read as UTF-8. Hostile 8 KiB targets are decoded several times per request, so this is on the
 * path an attacker can make hot.
 */
import { isUtf8 } from 'node:buffer';

/**
 * Percent-decoding rounds at most: the canonical target refuses deeper encoding (no sane client
 * encodes a path four times), and the reservation check decodes no further.
 */
export const MAX_DECODE_ROUNDS = 4;

export interface Decoded {
  text: string;
  /** False when the decoded bytes are not valid UTF-8 (`text` then holds U+FFFD replacements). */
  utf8: boolean;
}

export function percentDecodeOnce(s: string): Decoded {
  if (!s.includes('%')) return { text: s, utf8: true };
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x25 && i + 2 < src.length) {
      const hi = hexValue(src[i + 1]);
      const lo = hexValue(src[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    out[n++] = c;
  }
  const bytes = out.subarray(0, n);
  return { text: bytes.toString('utf8'), utf8: isUtf8(bytes) };
}

export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1; // includes NaN past the end of a string
}
