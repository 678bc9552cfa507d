/**
 * Content negotiation for the exposition: Prometheus text 0.0.4 by default, OpenMetrics 1.0.0
 * when the `Accept` header asks for it, gzip when `Accept-Encoding` allows it.
 */

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type Format = 'text' | 'openmetrics';

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
    const q = params.has('q') ? Number(params.get('q')) : 1;
    return { type: type.toLowerCase(), params, q: Number.isFinite(q) ? q : 0 };
  });
}

/**
 * OpenMetrics when it is accepted (version 1.0.0 or unversioned) with a weight at least that of
 * the text format; Prometheus sends `application/openmetrics-text;version=1.0.0,...;q=0.5,...`.
 */
export function negotiateFormat(accept: string | undefined): Format {
  if (!accept || !accept.includes('openmetrics')) return 'text';
  let om = 0;
  let text = 0;
  for (const r of parseList(accept)) {
    if (r.type === 'application/openmetrics-text') {
      const v = r.params.get('version');
      if (v === undefined || v === '1.0.0') om = Math.max(om, r.q);
    } else if (r.type === 'text/plain' || r.type === '*/*' || r.type === 'text/*') {
      text = Math.max(text, r.q);
    }
  }
  return om > 0 && om >= text ? 'openmetrics' : 'text';
}

/** True when gzip is acceptable (`gzip` or `*` with a non-zero weight). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  for (const r of parseList(acceptEncoding)) {
    if ((r.type === 'gzip' || r.type === '*') && r.q > 0) return true;
  }
  return false;
}
