/**
 * Exemplars from `traceparent` (issue 20, item 4), through a real sidecar: a request whose W3C
 * `traceparent` says sampled leaves its trace and span ids, its duration and the time on the RED
 * duration bucket it lands in and on `flask_http_request_total`, in OpenMetrics only; an unsampled
 * or malformed header leaves nothing (and is never echoed); EXEMPLARS=false turns it off.
 */
import crypto from 'node:crypto';
import { rawRequest, request, statusOf } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';

const OM = 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5';

const hex = (bytes: number): string => crypto.randomBytes(bytes).toString('hex');

async function scrape(sc: Running, accept = OM): Promise<string> {
  return (await request(sc.metricsPort, '/debug/metrics', { headers: { accept } })).text;
}

/** `# {trace_id="…",span_id="…"} value timestamp` after the samples of `family` whose line names `path`. */
function exemplarsOf(text: string, prefix: string): { line: string; traceId: string; spanId: string; value: number; ts: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = / # \{trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})"\} (\S+) (\S+)$/.exec(line);
    if (m) out.push({ line, traceId: m[1], spanId: m[2], value: Number(m[3]), ts: Number(m[4]) });
  }
  return out;
}

describe('exemplars from traceparent', () => {
  let upstream: Upstream;
  let sc: Running;
  let off: Running;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => res.end(`${req.headers.traceparent ?? '-'}\n`));
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, ROUTE_PATTERNS: '/orders/:id' });
    off = await startSidecar({ UPSTREAM_URL: upstream.url, ROUTE_PATTERNS: '/orders/:id', EXEMPLARS: 'false' });
  });
  afterAll(async () => {
    await sc.stop();
    await off.stop();
    await upstream.close();
  });

  it('should put a sampled request’s trace on its duration bucket and on its _total series, in OpenMetrics only', async () => {
    const traceId = hex(16);
    const spanId = hex(8);
    const before = Date.now() / 1000;
    const r = await request(sc.mainPort, '/orders/1', { headers: { traceparent: `00-${traceId}-${spanId}-01` } });
    expect(r.status).toBe(200);
    // The app still receives the header as sent.
    expect(r.text).toBe(`00-${traceId}-${spanId}-01\n`);
    const after = Date.now() / 1000;
    const text = await scrape(sc);
    const buckets = exemplarsOf(text, 'flask_http_request_duration_seconds_bucket{method="GET",path="/orders/:id",status="200"');
    expect(buckets).toHaveLength(1);
    const [b] = buckets;
    expect([b.traceId, b.spanId]).toEqual([traceId, spanId]);
    expect(b.ts).toBeGreaterThanOrEqual(Math.floor(before));
    expect(b.ts).toBeLessThanOrEqual(after + 0.001);
    // The exemplar sits on the first bucket whose bound holds its value.
    const le = Number(/le="([^"]+)"/.exec(b.line)![1]);
    expect(b.value).toBeLessThanOrEqual(le);
    expect(b.value).toBeGreaterThan(0);
    const totals = exemplarsOf(text, 'flask_http_request_total{method="GET",status="200"}');
    expect(totals.map((t) => [t.traceId, t.spanId, t.value])).toEqual([[traceId, spanId, 1]]);
    // The text format cannot carry them.
    expect(await scrape(sc, 'text/plain;version=0.0.4')).not.toContain(traceId);
  });

  it('should keep the latest exemplar per bucket', async () => {
    const ids = [hex(16), hex(16)];
    for (const id of ids) await request(sc.mainPort, '/orders/2', { headers: { traceparent: `00-${id}-${hex(8)}-01` } });
    const totals = exemplarsOf(await scrape(sc), 'flask_http_request_total{method="GET",status="200"}');
    expect(totals.map((t) => t.traceId)).toEqual([ids[1]]);
  });

  it('should record nothing for unsampled, malformed or repeated headers, and never echo them', async () => {
    const seen = new Set(exemplarsOf(await scrape(sc), 'flask_http_request').map((e) => e.traceId));
    const unsampled = hex(16);
    const upper = hex(16).toUpperCase();
    const zero = '0'.repeat(32);
    const headers = [
      `00-${unsampled}-${hex(8)}-00`,
      `00-${upper}-${hex(8)}-01`,
      `00-${zero}-${hex(8)}-01`,
      `ff-${hex(16)}-${hex(8)}-01`,
      `00-${hex(16)}-${hex(8)}-01-`,
      `00-${hex(15)}-${hex(8)}-01`,
      `<script>${hex(16)}</script>`,
    ];
    for (const traceparent of headers) expect((await request(sc.mainPort, '/orders/3', { headers: { traceparent } })).status).toBe(200);
    // Two traceparent fields: which trace is meant cannot be told, so none is.
    const twice = [hex(16), hex(16)];
    const raw = await rawRequest(
      sc.mainPort,
      `GET /orders/4 HTTP/1.1\r\nHost: app\r\ntraceparent: 00-${twice[0]}-${hex(8)}-01\r\ntraceparent: 00-${twice[1]}-${hex(8)}-01\r\nConnection: close\r\n\r\n`,
    );
    expect(statusOf(raw)).toBe(200);
    headers.push(`00-${twice[0]}`, `00-${twice[1]}`);
    const text = await scrape(sc);
    const now = exemplarsOf(text, 'flask_http_request').map((e) => e.traceId);
    expect(now.filter((id) => !seen.has(id))).toEqual([]);
    for (const h of headers) expect(text).not.toContain(h.slice(3, 35).toLowerCase());
    expect(text).not.toContain('<script>');
  });

  it('should record none with EXEMPLARS=false', async () => {
    const traceId = hex(16);
    await request(off.mainPort, '/orders/1', { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    const text = await scrape(off);
    expect(text).toContain('flask_http_request_total{method="GET",status="200"} 1');
    expect(text).not.toContain(traceId);
  });
});
