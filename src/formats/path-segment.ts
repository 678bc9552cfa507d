/**
 * What a path segment that names one thing (an id, a token) rather than a route looks like. One
 * rule for every reader of request paths: the `path` label's templates (proxy/routes.ts) and the
 * access log (log/access.ts) collapse the same segments to `:id`.
 */

/** Segments longer than this are never a route word. */
const MAX_WORD_LENGTH = 32;
const ID_SEGMENT = [
  /^\d+$/,
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  // hex with at least one digit (so words like `deadbeefcafe` stay)
  /^(?=[a-f]*\d)[0-9a-f]{8,}$/i,
];

/** True when a path segment looks like an identifier or a token rather than a route word. */
export function isIdLike(seg: string): boolean {
  if (seg.length > MAX_WORD_LENGTH) return true;
  for (const re of ID_SEGMENT) if (re.test(seg)) return true;
  if (seg.length < 8) return false;
  let digits = 0;
  let letters = 0;
  let upper = 0;
  let transitions = 0;
  let prev = 0; // 1 lower, 2 upper, 3 digit
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    let cls = 0;
    if (c >= 0x30 && c <= 0x39) cls = 3;
    else if (c >= 0x61 && c <= 0x7a) cls = 1;
    else if (c >= 0x41 && c <= 0x5a) cls = 2;
    if (cls === 3) digits++;
    else if (cls !== 0) letters++;
    if (cls === 2) upper++;
    if (cls !== 0) {
      if (prev !== 0 && cls !== prev) transitions++;
      prev = cls;
    }
  }
  // Mixed letter+digit tokens: `a1b2c3d4`, `AbCdEfGhIjKlMnOp1234`, dated slugs.
  if (digits >= 2 && letters >= 2) return true;
  if (digits >= 1 && seg.length >= 16) return true;
  if (seg.length < 12) return false;
  // High-entropy letter tokens: random mixed case changes class far more often than CamelCase,
  // and a quarter or more of its letters are capitals (CamelCase words: about one in six).
  // Together they let through about 1 in 7,000 random 22-character base64url tokens (1 in 260
  // with the first rule alone); ROUTE_PATTERNS (`/reset-password/:token`) leaves none.
  return transitions * 3 >= seg.length || (upper >= 3 && letters - upper >= 3 && upper * 4 >= letters);
}
