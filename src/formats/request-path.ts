/**
 * Decides whether a request target belongs to the sidecar's reserved `/debug/` tree.
 *
 * The decision is made on a deliberately aggressive normalisation: anything that some server,
 * framework or proxy might read as `/debug/...` is reserved, so that no spelling of it can reach
 * the application. Over-reserving costs nothing (no real app route is spelt `/%64ebug;x/`);
 * under-reserving leaks the sidecar's endpoints or lets the public reach the app's own `/debug/`.
 */

import { MAX_DECODE_ROUNDS, percentDecodeOnce } from './percent';

const RESERVED_ROOT = 'debug';

/** True for an already normalised path. */
export function isReservedPath(normalized: string): boolean {
  return normalized === `/${RESERVED_ROOT}` || normalized.startsWith(`/${RESERVED_ROOT}/`);
}

/**
 * Normalises a request target to a canonical lower-case path:
 * absolute-form (`http://host/x`) → its path; query and fragment dropped; percent-decoding
 * repeated until stable; NFKC folding; lower case; backslashes as slashes; `;params` removed
 * from every segment; control characters, empty segments and `.` dropped; `..` resolved (never
 * above the root); trailing dots and spaces trimmed from segments.
 */
export function normalizePath(target: string): string {
  let path = originFormPath(target);
  path = cutQuery(path);
  for (let i = 0; i < MAX_DECODE_ROUNDS && path.includes('%'); i++) {
    const decoded = percentDecode(path);
    if (decoded === path) break;
    path = decoded;
  }
  path = path.normalize('NFKC').toLowerCase().replace(/\\/g, '/');

  const out: string[] = [];
  const parts = path.split('/');
  for (let raw of parts) {
    const semi = raw.indexOf(';');
    if (semi !== -1) raw = raw.slice(0, semi);
    // eslint-disable-next-line no-control-regex
    let seg = raw.replace(/[\x00-\x1f\x7f]/g, '');
    if (seg === '..') {
      out.pop();
      continue;
    }
    if (seg !== '.') seg = trimTrailingDotsAndSpaces(seg);
    if (seg === '' || seg === '.') continue;
    out.push(seg);
  }
  const trailing = out.length > 0 && /\/[.\s;]*$/.test(path) ? '/' : '';
  return `/${out.join('/')}${trailing}`;
}

/**
 * The origin-form of a request target: `http://host:80/a?b` → `/a?b`; `*` stays `*`; a target
 * without a leading slash gets one. Used both for the reservation decision and for what is sent
 * upstream (an upstream expects origin-form from a reverse proxy).
 */
export function originFormPath(target: string): string {
  if (target.startsWith('/') || target === '*') return target;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(target);
  if (scheme) {
    const rest = target.slice(scheme[0].length);
    const slash = rest.search(/[/?#]/);
    if (slash === -1) return '/';
    const tail = rest.slice(slash);
    return tail.startsWith('/') ? tail : `/${tail}`;
  }
  return `/${target}`;
}

function cutQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q === -1 ? path : path.slice(0, q);
}

/**
 * `seg.replace(/[.\s]+$/, '')` without the regex: that one is quadratic on a long run of dots
 * that does not end the segment (`/debug` + 8,000 dots + `x` cost 34 ms per request).
 */
function trimTrailingDotsAndSpaces(seg: string): string {
  let end = seg.length;
  while (end > 0 && (seg.charCodeAt(end - 1) === 0x2e || /\s/.test(seg[end - 1]))) end--;
  return end === seg.length ? seg : seg.slice(0, end);
}

/** Decodes valid %XX sequences as UTF-8 (invalid sequences read as U+FFFD), leaving malformed ones as they are. */
function percentDecode(s: string): string {
  return percentDecodeOnce(s).text;
}
