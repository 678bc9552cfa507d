/**
 * The response head of the app, parsed strictly in one pass over a latin1 string (pure: no
 * sockets, no state). Anything odd is an UPSTREAM_BAD_RESPONSE error the forwarder answers 502: a
 * bad status line, bytes a header may not hold, folded lines, duplicate or conflicting
 * Content-Length, Content-Length with Transfer-Encoding, a coding other than `chunked`. A
 * generated differential against Node's llhttp (test/proxy/parser-differential.test.ts) holds it
 * to reading nothing llhttp would read differently.
 */
import { UPSTREAM_BAD_RESPONSE, upstreamError } from './upstream-api';

/** Status line and header lines, each with its CRLF, matched in place (sticky) along the head. */
const STATUS_LINE = /HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n/y;
/** field-name ":" OWS field-value OWS CRLF, value without control bytes but HTAB (RFC 9110 §5.5). */
const HEADER_FIELD = /([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[\t ]*\r\n/y;
const DIGITS = /^\d{1,15}$/;
/** The `timeout=` of a `Keep-Alive` response header, in seconds. */
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i;

export interface ResponseHead {
  status: number;
  reason: string;
  /** Flat [name, value, ...] with lower-case names, in order. */
  headers: string[];
  /** Content-Length, or -1. */
  length: number;
  chunked: boolean;
  /** The app closes the connection after this answer (Connection: close, or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** The app's Keep-Alive timeout hint, in ms (0 = none). */
  keepAliveHintMs: number;
}

/** Parses a head (its lines, each ending in CRLF, without the blank line); throws UPSTREAM_BAD_RESPONSE. */
export function parseResponseHead(text: string): ResponseHead {
  STATUS_LINE.lastIndex = 0;
  const m = STATUS_LINE.exec(text);
  if (m === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed status line');
  let at = STATUS_LINE.lastIndex;
  const http10 = m[1] === '0';
  const headers: string[] = [];
  let length = -1;
  let chunked = false;
  let te = false;
  let close = http10;
  let keepAliveHintMs = 0;
  while (at < text.length) {
    HEADER_FIELD.lastIndex = at;
    const hm = HEADER_FIELD.exec(text);
    if (hm === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed response header');
    at = HEADER_FIELD.lastIndex;
    const name = hm[1].toLowerCase();
    const value = hm[2];
    switch (name) {
      case 'content-length':
        if (length !== -1) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'more than one Content-Length');
        if (!DIGITS.test(value)) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'invalid Content-Length');
        length = Number(value);
        break;
      case 'transfer-encoding':
        if (te) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'more than one Transfer-Encoding');
        te = true;
        chunked = value.toLowerCase() === 'chunked';
        if (!chunked) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'unsupported Transfer-Encoding');
        break;
      case 'connection': {
        const v = value.toLowerCase();
        // The common answers first, without splitting.
        if (v === 'keep-alive') {
          if (http10) close = false;
          break;
        }
        if (v === 'close') {
          close = true;
          break;
        }
        for (const t of v.split(',')) {
          const token = t.trim();
          if (token === 'close') close = true;
          else if (token === 'keep-alive' && http10) close = false;
        }
        break;
      }
      case 'keep-alive': {
        const t = KEEP_ALIVE_TIMEOUT.exec(value);
        if (t !== null) keepAliveHintMs = Number(t[1]) * 1000;
        break;
      }
    }
    headers.push(name, value);
  }
  if (te && length !== -1) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'both Content-Length and Transfer-Encoding');
  return { status: Number(m[2]), reason: m[3] ?? '', headers, length, chunked, close, keepAliveHintMs };
}
