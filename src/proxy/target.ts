/**
 * The one canonical form of a request target (DESIGN.md, "Hostile input and limits").
 *
 * Computed once per request on the main port; the reservation decision, the debug app's routing
 * (and so the access gate), the route template and the request sent to the application all use
 * it. What is checked is what is sent. The model is Envoy's `normalize_path` + `merge_slashes` +
 * `path_with_escaped_slashes_action: REJECT_REQUEST`, made stricter where two servers could still
 * read one target differently: such targets are refused with 400 and never forwarded.
 *
 * Rules, in order (docs/limits.md, "Request targets", says the same):
 * 1. longer than MAX_TARGET_LENGTH → 414; `*` (OPTIONS * / GET *) → 400; any `#` → 400.
 * 2. absolute-form `http(s)://authority/p?q` → origin-form `/p?q` (`/` when the path is empty);
 *    another scheme, or a target not starting with `/` → 400.
 * 3. the query (from the first `?`) is passed through byte for byte (it may hold only visible
 *    ASCII, as Node's parser already ensures).
 * 4. the path, one pass: `%XX` of an unreserved character (ALPHA DIGIT - . _ ~) is decoded, every
 *    other escape is kept with upper-case hex; a malformed `%` → 400; `%2F`, `%5C` → 400; a raw
 *    `\` → 400; control characters (raw, `%00`-`%1F`, `%7F`, or C1 after UTF-8 decoding) and raw
 *    spaces or non-ASCII bytes → 400; escapes that are not valid UTF-8 → 400; runs of `/` become
 *    one `/`. Case is kept (the application's routes are case-sensitive).
 * 5. every segment is then decoded again and again (at most MAX_DECODE_ROUNDS rounds; still
 *    decodable after that → 400, invalid UTF-8 in any round → 400), NFKC-folded and split on `/`,
 *    `\` and `;`: a piece made only of dots (ignoring white space and control characters) → 400.
 *    This refuses `.`, `..`, `%2e%2e`, `..;x` (Tomcat), `%252e%252e`, full-width `．．` and `...`.
 * 6. reserved (`/debug` or under `/debug/`) is decided by formats/request-path's aggressive normaliser
 *    applied to the canonical path (over-reserving is harmless).
 */
import type http from 'node:http';
import { isReservedPath, normalizePath } from '../formats/request-path';
import { hexValue, MAX_DECODE_ROUNDS, percentDecodeOnce } from '../formats/percent';

/** nginx's default `large_client_header_buffers` line size; Node's own bound is the 16 KiB header limit. */
export const MAX_TARGET_LENGTH = 8192;

export type TargetRefusal =
  | 'too_long'
  | 'asterisk'
  | 'fragment'
  | 'not_origin_form'
  | 'bad_escape'
  | 'encoded_slash'
  | 'backslash'
  | 'control'
  | 'non_ascii'
  | 'invalid_utf8'
  | 'dot_segment'
  | 'deep_encoding';

export interface CanonicalTarget {
  ok: true;
  /** The canonical path, e.g. `/users/42`. */
  path: string;
  /** What the application receives: the canonical path plus the query as received (`?` included). */
  target: string;
  /** True when the path is the sidecar's (`/debug` or below): never forwarded. */
  reserved: boolean;
}

export interface RefusedTarget {
  ok: false;
  status: 400 | 414;
  reason: TargetRefusal;
}

export type Target = CanonicalTarget | RefusedTarget;

const ABSOLUTE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/[^/?#]*/;
const MIGHT_BE_RESERVED = /debug|%/i;
const HEX = '0123456789ABCDEF';

/** The canonical target of a raw request target (`req.url`). Pure; never throws. */
export function canonicalize(raw: string): Target {
  if (raw.length > MAX_TARGET_LENGTH) return refuse('too_long', 414);
  if (raw === '*') return refuse('asterisk');
  if (raw.includes('#')) return refuse('fragment');
  let rest = raw;
  if (raw.charCodeAt(0) !== 0x2f) {
    const m = ABSOLUTE.exec(raw);
    if (m === null) return refuse('not_origin_form');
    const scheme = m[1].toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return refuse('not_origin_form');
    rest = raw.slice(m[0].length);
    if (rest === '' || rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  }
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  // Node's parser lets only visible ASCII through; the query is passed on as it is, so check it holds nothing else.
  // eslint-disable-next-line no-control-regex
  if (query !== '' && /[^\x21-\x7e]/.test(query)) return refuse(/[\x00-\x20\x7f]/.test(query) ? 'control' : 'non_ascii');
  const path = canonicalPath(rawPath);
  if (typeof path !== 'string') return refuse(path.reason);
  const reserved = MIGHT_BE_RESERVED.test(path) && isReservedPath(normalizePath(path));
  return { ok: true, path, target: query === '' ? path : path + query, reserved };
}

function refuse(reason: TargetRefusal, status: 400 | 414 = 400): RefusedTarget {
  return { ok: false, status, reason };
}

/** Only visible ASCII other than `%` and `\`, no empty segment: already canonical unless a piece is all dots. */
// Segments separated by exactly one mandatory `/`: unambiguous, so no backtracking blow-up on a near miss.
const PLAIN_PATH = /^\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@"<>[\]^`{|}]+(?:\/[A-Za-z0-9\-._~!$&'()*+,;=:@"<>[\]^`{|}]+)*\/?)?$/;
const DOT_PIECE = /(?:^|[/;])\.+(?=[/;]|$)/;

/** Steps 4 and 5 for the path part (starts with `/`). */
function canonicalPath(path: string): string | { reason: TargetRefusal } {
  // The common case, without building a new string.
  if (PLAIN_PATH.test(path)) return DOT_PIECE.test(path) ? { reason: 'dot_segment' } : path;
  let out = '';
  let prevSlash = false;
  let escapedHigh = false;
  let suspicious = false; // a `.` or a kept escape: step 5 must look at the segments
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { reason: 'bad_escape' };
      i += 2;
      const b = hi * 16 + lo;
      if (b === 0x2f || b === 0x5c) return { reason: 'encoded_slash' };
      if (b < 0x20 || b === 0x7f) return { reason: 'control' };
      prevSlash = false;
      if (isUnreserved(b)) {
        if (b === 0x2e) suspicious = true;
        out += String.fromCharCode(b);
      } else {
        if (b >= 0x80) escapedHigh = true;
        suspicious = true;
        out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
      }
      continue;
    }
    if (c === 0x5c) return { reason: 'backslash' };
    if (c <= 0x20 || c === 0x7f) return { reason: 'control' };
    if (c > 0x7f) return { reason: 'non_ascii' };
    if (c === 0x2f) {
      if (prevSlash) continue;
      prevSlash = true;
    } else {
      prevSlash = false;
      if (c === 0x2e) suspicious = true;
    }
    out += path[i];
  }
  if (escapedHigh) {
    const text = decodeOnce(out);
    if (text === undefined) return { reason: 'invalid_utf8' };
    if (/[\u0080-\u009f]/.test(text)) return { reason: 'control' };
  }
  if (suspicious) {
    for (const seg of out.split('/')) {
      if (seg === '' || !(seg.includes('.') || seg.includes('%'))) continue;
      const bad = deepSegmentProblem(seg);
      if (bad !== undefined) return { reason: bad };
    }
  }
  return out;
}

/** Step 5 for one segment. */
function deepSegmentProblem(seg: string): TargetRefusal | undefined {
  let s = seg;
  for (let round = 0; s.includes('%'); round++) {
    const next = decodeOnce(s);
    if (next === undefined) return 'invalid_utf8';
    if (next === s) break;
    if (round === MAX_DECODE_ROUNDS) return 'deep_encoding';
    s = next;
  }
  s = s.normalize('NFKC');
  for (const piece of s.split(/[/\\;]/)) {
    // eslint-disable-next-line no-control-regex
    const bare = piece.replace(/[\s\x00-\x1f\x7f-\x9f]/g, '');
    if (bare !== '' && /^\.+$/.test(bare)) return 'dot_segment';
  }
  return undefined;
}

/** One layer of percent-decoding; undefined when the bytes are not valid UTF-8. */
function decodeOnce(s: string): string | undefined {
  const d = percentDecodeOnce(s);
  return d.utf8 ? d.text : undefined;
}

function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
}

const kTarget = Symbol('metrics-sidecar.target');

/**
 * The canonical target of a request, computed on first use and kept on the request, so every
 * later reader (forwarder, debug app, access gate) sees the same one.
 */
export function targetOf(req: http.IncomingMessage): Target {
  const holder = req as http.IncomingMessage & { [kTarget]?: Target };
  let t = holder[kTarget];
  if (t === undefined) {
    t = canonicalize(req.url ?? '/');
    holder[kTarget] = t;
  }
  return t;
}
