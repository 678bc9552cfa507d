/**
 * Content negotiation for the exposition, by the `Accept` header and its q-values:
 * - protobuf delimited (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
 *   encoding=delimited`), only when a range names it exactly (never through a wildcard): it is the
 *   only format that carries native histograms, and what Prometheus asks first when told to scrape
 *   them;
 * - OpenMetrics 1.0.0 (`application/openmetrics-text`, version 1.0.0 or none);
 * - the text format 1.0.0 where asked for (`text/plain;version=1.0.0`, what Prometheus 3 offers);
 *   its bytes are text 0.0.4's, since every name served here is legacy-valid;
 * - the text format 0.0.4 otherwise (no header, `*` wildcards, `text/plain` unversioned or 0.0.4,
 *   nothing servable): the default.
 * The highest non-zero weight wins; at equal weights the order above decides, and a range naming
 * a type beats a wildcard of the same weight.
 *
 * Escaping (Prometheus 3, `escaping=allow-utf-8|underscores|dots|values`) says how names outside
 * the legacy character set are to be rewritten. Every name served here is legacy-valid, so every
 * scheme gives the same bytes; the scheme is echoed in Content-Type, as client_golang
 * (prometheus/common expfmt `NegotiateAccept`) does: the last known scheme found on the ranges
 * read in weight order up to the chosen one (Prometheus 3 puts it on the text 1.0.0 and
 * OpenMetrics 1.0.0 ranges only; an unknown value is ignored). Unlike client_golang, nothing is
 * appended when the scraper asked no scheme (client_golang then says `escaping=underscores`):
 * Prometheus 2.x and other scrapers keep the Content-Type they have always had.
 *
 * gzip when `Accept-Encoding` allows it.
 */

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const TEXT_1_CONTENT_TYPE = 'text/plain; version=1.0.0; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
/** client_golang's FmtProtoDelim, spelled as it sends it. */
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

/** What is rendered; also the `format` label of metrics_sidecar_scrapes_total (text 1.0.0 counts as text). */
export type Format = 'text' | 'openmetrics' | 'protobuf';

/** The escaping schemes of Prometheus 3 (prometheus/common model.EscapingKey values). */
export const ESCAPING_SCHEMES = ['allow-utf-8', 'underscores', 'dots', 'values'] as const;
export type EscapingScheme = (typeof ESCAPING_SCHEMES)[number];

export interface Negotiated {
  format: Format;
  /** The Content-Type to send, escaping echoed when one was asked for. */
  contentType: string;
  /** The scheme echoed, if any. */
  escaping: EscapingScheme | undefined;
}

interface MediaRange {
  type: string;
  params: Map<string, string>;
  q: number;
}

function parseList(header: string): MediaRange[] {
  return header.split(',').map((part) => {
    const [type, ...rest] = part.split(';').map((s) => s.trim());
    const params = new Map<string, string>();
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq > 0)
        params.set(
          p.slice(0, eq).trim().toLowerCase(),
          p
            .slice(eq + 1)
            .trim()
            .replace(/^"|"$/g, ''),
        );
    }
    const raw = params.get('q');
    const q = raw === undefined ? 1 : Number(raw);
    return { type: type.toLowerCase(), params, q: Number.isFinite(q) ? Math.min(1, Math.max(0, q)) : 0 };
  });
}

/** The four servable choices in preference order at equal weight; index into CONTENT_TYPES. */
const PROTOBUF = 0;
const OPENMETRICS = 1;
const TEXT_1 = 2;
const TEXT = 3;
const CONTENT_TYPES = [PROTOBUF_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, TEXT_1_CONTENT_TYPE, TEXT_CONTENT_TYPE];
const FORMATS: Format[] = ['protobuf', 'openmetrics', 'text', 'text'];

/** What this range asks for that we serve (a choice index), or -1; `wildcard` ranges rank below named ones. */
function match(r: MediaRange): { choice: number; wildcard: boolean } | undefined {
  const version = r.params.get('version');
  switch (r.type) {
    case 'application/vnd.google.protobuf':
      return r.params.get('proto') === 'io.prometheus.client.MetricFamily' && r.params.get('encoding') === 'delimited'
        ? { choice: PROTOBUF, wildcard: false }
        : undefined;
    case 'application/openmetrics-text':
      return version === undefined || version === '1.0.0' ? { choice: OPENMETRICS, wildcard: false } : undefined;
    case 'text/plain':
      if (version === undefined || version === '0.0.4') return { choice: TEXT, wildcard: false };
      return version === '1.0.0' ? { choice: TEXT_1, wildcard: false } : undefined;
    case 'text/*':
    case '*/*':
    case '*':
      return { choice: TEXT, wildcard: true };
    default:
      return undefined;
  }
}

function isScheme(v: string | undefined): v is EscapingScheme {
  return v !== undefined && (ESCAPING_SCHEMES as readonly string[]).includes(v);
}

/**
 * The format, Content-Type and escaping for this `Accept` header (see the module comment).
 * `protobuf: false` leaves protobuf out of the offer (a server that cannot write it).
 */
export function negotiate(accept: string | undefined, offer: { protobuf: boolean } = { protobuf: true }): Negotiated {
  if (!accept) return { format: 'text', contentType: TEXT_CONTENT_TYPE, escaping: undefined };
  // Weight order, stable (header order among equal weights), as goautoneg sorts for client_golang.
  const ranges = parseList(accept)
    .map((r, i) => ({ r, i }))
    .sort((a, b) => b.r.q - a.r.q || a.i - b.i)
    .map((x) => x.r);
  let best: { choice: number; wildcard: boolean; q: number; at: number } | undefined;
  ranges.forEach((r, at) => {
    if (r.q <= 0) return;
    const m = match(r);
    if (m === undefined || (m.choice === PROTOBUF && !offer.protobuf)) return;
    if (
      best === undefined ||
      r.q > best.q ||
      (r.q === best.q && (best.wildcard && !m.wildcard ? true : best.wildcard === m.wildcard && m.choice < best.choice))
    ) {
      best = { ...m, q: r.q, at };
    }
  });
  if (best === undefined) return { format: 'text', contentType: TEXT_CONTENT_TYPE, escaping: undefined };
  let escaping: EscapingScheme | undefined;
  for (let i = 0; i <= best.at; i++) {
    const e = ranges[i].params.get('escaping');
    if (isScheme(e)) escaping = e;
  }
  const contentType = escaping === undefined ? CONTENT_TYPES[best.choice] : `${CONTENT_TYPES[best.choice]}; escaping=${escaping}`;
  return { format: FORMATS[best.choice], contentType, escaping };
}

/** The format alone (the text format's version and the escaping aside). */
export function negotiateFormat(accept: string | undefined): Format {
  return negotiate(accept).format;
}

/** True when gzip is acceptable (`gzip` or `*` with a non-zero weight). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  for (const r of parseList(acceptEncoding)) {
    if ((r.type === 'gzip' || r.type === '*') && r.q > 0) return true;
  }
  return false;
}
