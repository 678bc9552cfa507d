/**
 * A strict W3C Trace Context `traceparent` parser (https://www.w3.org/TR/trace-context/ level 1,
 * and level 2's unchanged traceparent rules), for exemplars: the forwarder records trace_id and
 * span_id (the incoming parent-id) only when this returns a value with `sampled` set (issue 20,
 * item 4). Pure; a value it refuses is simply ignored by the caller and never echoed.
 *
 * Rules (section "traceparent Header Field Values" and "Versioning of traceparent"):
 * - version: 2 lowercase hex digits (HEXDIGLC), `ff` is invalid;
 * - version 00: exactly `00-<32 hex>-<16 hex>-<2 hex>`, 55 characters, nothing after the flags;
 * - a higher version is parsed as 00 is on its first 55 characters, which must be followed by the
 *   end or by `-` (later versions may append fields after a dash; they are not read);
 * - lowercase hex only: uppercase is not HEXDIGLC, so it is refused;
 * - an all-zero trace-id or parent-id is invalid;
 * - sampled = bit 0 of the flags (other bits, e.g. level 2's random-trace-id, are ignored).
 * Decisions:
 * - leading and trailing OWS (space and horizontal tab, RFC 9110 section 5.6.3) is trimmed, as
 *   the W3C test suite's test_traceparent_ows_handling expects; any other whitespace is refused.
 *   (Node's HTTP parser already strips OWS around field values; this covers other sources.)
 * - several traceparent headers make the value invalid: `traceparent` is not among the headers
 *   Node keeps single or drops duplicates of, so req.headers joins repeated ones with ', '. Any
 *   comma is therefore refused, also after a higher version's extra fields, since which of two
 *   parents is meant cannot be known (the W3C suite's test_traceparent_duplicated expects the
 *   same outcome: the trace is restarted).
 */

export interface TraceParent {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The caller's span (the header's parent-id): 16 lowercase hex digits, not all zero. */
  spanId: string;
  /** Flags bit 0. */
  sampled: boolean;
}

const LENGTH_00 = 55;

/** 0-9 a-f as 0..15; anything else (uppercase included) -1. */
function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** True when value[from, to) is lowercase hex and not all '0'; false otherwise. */
function nonZeroHex(value: string, from: number, to: number): boolean {
  let nonZero = false;
  for (let i = from; i < to; i++) {
    const h = hexValue(value.charCodeAt(i));
    if (h < 0) return false;
    if (h !== 0) nonZero = true;
  }
  return nonZero;
}

function isOws(code: number): boolean {
  return code === 32 || code === 9;
}

/** Parses a `traceparent` header value; undefined when absent or invalid. Never throws. */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  if (typeof value !== 'string') return undefined;
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  if (end - start < LENGTH_00) return undefined;
  if (value.includes(',')) return undefined;

  const v1 = hexValue(value.charCodeAt(start));
  const v2 = hexValue(value.charCodeAt(start + 1));
  if (v1 < 0 || v2 < 0) return undefined;
  const version = v1 * 16 + v2;
  if (version === 0xff) return undefined;
  if (version === 0 && end - start !== LENGTH_00) return undefined;
  if (version !== 0 && end - start > LENGTH_00 && value.charCodeAt(start + LENGTH_00) !== 45) return undefined;

  // 00-<trace-id 3..35>-<parent-id 36..52>-<flags 53..55>
  if (value.charCodeAt(start + 2) !== 45 || value.charCodeAt(start + 35) !== 45 || value.charCodeAt(start + 52) !== 45) {
    return undefined;
  }
  if (!nonZeroHex(value, start + 3, start + 35)) return undefined;
  if (!nonZeroHex(value, start + 36, start + 52)) return undefined;
  const f1 = hexValue(value.charCodeAt(start + 53));
  const f2 = hexValue(value.charCodeAt(start + 54));
  if (f1 < 0 || f2 < 0) return undefined;
  return {
    traceId: value.slice(start + 3, start + 35),
    spanId: value.slice(start + 36, start + 52),
    sampled: (f2 & 1) === 1,
  };
}

/**
 * The trace of a `traceparent` that is well-formed and sampled; undefined otherwise. The same
 * answer as `parseTraceparent` filtered on `sampled`, but most traced requests are not sampled
 * (one in a hundred is common), so the flags are read first, where every well-formed header has
 * them (after the third dash, OWS trimmed), and an unsampled one costs no parse. Reading flags from
 * a malformed header can only give "no trace" early, which is the malformed header's answer too.
 */
export function parseSampledTraceparent(value: string | undefined): TraceParent | undefined {
  if (typeof value !== 'string') return undefined;
  let start = 0;
  while (start < value.length && isOws(value.charCodeAt(start))) start++;
  if (value.length - start >= LENGTH_00 && value.charCodeAt(start + 52) === 45) {
    const f2 = hexValue(value.charCodeAt(start + 54));
    if (f2 >= 0 && (f2 & 1) === 0) return undefined;
  }
  const t = parseTraceparent(value);
  return t !== undefined && t.sampled ? t : undefined;
}
