/**
 * The `path` label never carries what the application does not route (issue 9, findings 4 and 8):
 * tokens collapse, unrouted statuses never mint a template, templates and the known-template set
 * and the route cache are bounded, and the warn log's `route` is the template.
 */
import crypto from 'node:crypto';
import { RouteTemplater } from '../../src/proxy/routes';
import { isIdLike } from '../../src/formats/path-segment';
import { RedRecorder, Route, UNMATCHED_ROUTE, OVERFLOW_ROUTE } from '../../src/proxy/red';
import { Registry } from '../../src/metrics/registry';
import { familyPieces } from '../helpers/text-oracle';
import { pathLabels, testRecorder } from '../helpers/red';
import { DEFAULT_HTTP_BUCKETS } from '../../src/config';
import { freePort, request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value, type Parsed } from '../helpers/exposition';

describe('isIdLike', () => {
  it.each([
    '42',
    '9f1c2a7e-5b7d-4c1e-9a3b-2f6d8e0c1b4a',
    'deadbeef01',
    '3f786850e387550fdab836ed7e6dc881de23001b',
    'a1b2c3d4',
    'Zx9kQ2pLm4',
    'AbCdEfGhIjKlMnOpQrStUvWx1234',
    'eyJhbGciOiJIUzI1NiJ9', // JWT header
    'kHqPwZrTbNvXyLmC', // letters only, random case
    'xK-3nF_q8Rz0aY7Bv2LmWc', // secrets.token_urlsafe(16)
    'nqgkromnKrdRBKUKCjrxFA', // base64url, no digit, few case changes: caught by its share of capitals
    'qHHKDta_YzscsYFGctmOCA',
    '2024-01-15-launch-notes',
    'a'.repeat(33),
  ])('should collapse %s', (seg) => {
    expect(isIdLike(seg)).toBe(true);
  });

  it.each([
    'users',
    'reset-password',
    'api',
    'v2',
    'oauth2',
    'deadbeefcafe',
    'JavaScriptTutorial',
    'getUserProfile',
    'GetUserProfileSettings',
    'checkoutSessionComplete',
    'wellKnownOpenidConfiguration',
    'administration-settings',
    'static',
    'favicon.ico',
    'site.css',
    '',
  ])('should keep %s', (seg) => {
    expect(isIdLike(seg)).toBe(false);
  });
});

describe('random tokens', () => {
  it('should collapse nearly every secrets.token_urlsafe(16)-style token (a token kept as a label is a leak)', () => {
    // Generated, not hand-picked: 20,000 random 16-byte tokens in base64url, as password-reset and
    // invitation links carry them. The heuristics cannot be perfect for digit-less lower-case
    // runs; they must keep such leaks rare (measured: about 1 in 7,000), and ROUTE_PATTERNS
    // closes the rest.
    let kept = 0;
    for (let i = 0; i < 20_000; i++) if (!isIdLike(crypto.randomBytes(16).toString('base64url'))) kept++;
    expect(kept).toBeLessThan(20);
  });
});

describe('RouteTemplater bounds', () => {
  it('should cut a template at the segment bound', () => {
    const t = new RouteTemplater([], [], { maxSegments: 3 });
    expect(t.template('/a/b/c/d/e/f')).toBe('/a/b/c/:rest');
    expect(t.template('/a/b/c')).toBe('/a/b/c');
  });

  it('should cut a template at the length bound, on a segment boundary', () => {
    const t = new RouteTemplater([], [], { maxLength: 40 });
    const out = t.template('/alpha/bravo/charlie/delta/echo/foxtrot/golf')!;
    expect(out.length).toBeLessThanOrEqual(40);
    expect(out).toBe('/alpha/bravo/charlie/delta/echo/:rest');
  });

  it('should turn a 15 KB letter-only path into a short template, and not cache it', () => {
    const t = new RouteTemplater([], []);
    const out = t.template(`/${'abcdefghij'.repeat(1500)}`)!;
    expect(out).toBe('/:id');
    const many = t.template(`/${Array.from({ length: 3000 }, () => 'word').join('/')}`)!;
    expect(many.length).toBeLessThanOrEqual(128);
    expect(t.cachedEntries).toBe(0);
  });

  it('should keep the cache within its byte bound, counting each reset', () => {
    let resets = 0;
    const t = new RouteTemplater([], [], { cacheBytes: 64 * 1024, onCacheReset: () => resets++ });
    for (let i = 0; i < 5000; i++) t.template(`/p/${'w'.repeat(100)}${i.toString(36).replace(/\d/g, 'q')}`);
    expect(t.cachedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(resets).toBeGreaterThan(0);
  });
});

describe('RedRecorder path admission', () => {
  // The template bound alone (learned caps: learned-routes.test.ts).
  const make = (maxRouteTemplates = 1000, routePatterns: string[] = []) => testRecorder({ routePatterns, maxRouteTemplates, routeSegmentMaxValues: 0 });
  const paths = pathLabels;

  it.each([400, 404, 405, 414, 431])('should never mint a template for a %d', (status) => {
    const red = make();
    for (let i = 0; i < 100; i++) red.record('GET', red.route(`/word${'x'.repeat(i % 30)}/y${i}z`)!, status, 0.01, false);
    expect(new Set(paths(red))).toEqual(new Set([UNMATCHED_ROUTE]));
    expect(value(parseExposition(renderOf(red)), 'metrics_sidecar_route_templates_refused_total', { reason: 'unrouted_status' })).toBe(100);
  });

  it('should record an unrouted status under a template already known', () => {
    const red = make(1000, ['/orders/:order']);
    red.record('GET', red.route('/users/1')!, 200, 0.01, false);
    red.record('GET', red.route('/users/2')!, 404, 0.01, false);
    red.record('GET', red.route('/orders/x')!, 404, 0.01, false);
    expect(paths(red).sort()).toEqual(['/orders/:order', '/users/:id', '/users/:id']);
  });

  it('should send new templates past the bound to /:overflow, counting each', () => {
    const red = make(10);
    for (let i = 0; i < 50; i++)
      red.record('GET', red.route(`/page/${'abcdefghijklmnopqrstuvwxyz'[i % 26]}${'abcdefghijklmnopqrstuvwxyz'[Math.floor(i / 26)]}`)!, 200, 0.01, false);
    const seen = new Set(paths(red));
    expect(seen.size).toBe(11);
    expect(seen.has(OVERFLOW_ROUTE)).toBe(true);
    expect(red.knownTemplates).toBeLessThanOrEqual(12);
    expect(value(parseExposition(renderOf(red)), 'metrics_sidecar_route_templates_refused_total', { reason: 'limit' })).toBe(40);
  });

  it('should resolve a route once: later paths with its template get the same Route, whose series are looked up by number', () => {
    const red = make();
    const first = red.route('/users/1');
    expect(typeof first).toBe('string'); // a candidate until a status admits it
    red.record('GET', first!, 200, 0.01, false);
    const route = red.route('/users/2');
    expect(route).toBeInstanceOf(Route);
    expect(red.route('/users/3')).toBe(route);
    const r = route as Route;
    expect(r.template).toBe('/users/:id');
    expect(r.sets.size).toBe(1);
    const before = [...r.sets.values()][0];
    for (let i = 0; i < 10; i++) red.record('GET', r, 200, 0.01, false);
    expect(r.sets.size).toBe(1);
    expect(before.total!.value).toBe(11);
    red.record('GET', r, 200, 0.01, true); // failed: its own set, with an exception series
    red.record('POST', r, 200, 0.01, false);
    expect(r.sets.size).toBe(3);
    expect([...r.sets.values()][0]).toBe(before);
    const total = (method: string) => [...red.total.allSeries()].find((s) => s.labels === `method="${method}",status="200"`)!.value;
    expect(total('GET')).toBe(12);
    expect(total('POST')).toBe(1);
    expect([...red.exceptions.allSeries()].map((s) => [s.labels, s.value])).toEqual([['method="GET",status="200"', 1]]);
  });

  it('should keep counting right when the series-set cache is emptied at its bound', () => {
    const red = make(1000);
    // 2 methods × 60 statuses × 100 routes = 12,000 sets: past the 10,000 bound once.
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 100; i++)
        for (let status = 200; status < 260; status++) for (const m of ['GET', 'PUT']) red.record(m, red.route(`/r${i}/x`)!, status, 0.01, false);
    const sum = [...red.total.allSeries()].reduce((a, s) => a + s.value, 0);
    expect(sum).toBe(2 * 100 * 60 * 2);
    expect([...red.duration.allSeries()].length).toBe(100 * 60 * 2);
  });

  it('should count every request refused by a full family, not only the first of its route, method and status', () => {
    const registry = new Registry();
    const drops: string[] = [];
    registry.onDrop = (family, reason) => drops.push(`${family} ${reason}`);
    const red = new RedRecorder(registry, {
      prefix: 'h',
      buckets: DEFAULT_HTTP_BUCKETS,
      routePatterns: [],
      excludePaths: [],
      maxSeriesPerFamily: 1,
    });
    red.record('GET', red.route('/a')!, 200, 0.01, false);
    for (let i = 0; i < 100; i++) red.record('GET', red.route('/b')!, 200, 0.01, false);
    expect(drops.filter((d) => d === 'h_duration_seconds family_cap')).toHaveLength(100);
    // The events still land in the overflow series: totals stay right.
    const overflow = [...red.duration.allSeries()].find((s) => s.labels === 'otel_metric_overflow="true"')!;
    expect(overflow.count).toBe(100);
  });

  function renderOf(red: RedRecorder): string {
    return [...familyPieces(red.templatesRefused, false)].join('');
  }
});

describe('path label over the wire', () => {
  let upstream: Upstream;
  let sc: Running;
  const scrape = async (): Promise<{ text: string; p: Parsed }> => {
    const text = (await request(sc.metricsPort, '/debug/metrics')).text;
    return { text, p: parseExposition(text) };
  };

  beforeAll(async () => {
    // A Flask-like app: a few routes, 404 for everything else, and a catch-all under /spa/.
    upstream = await startUpstream((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (/^\/(users\/\d+|reset-password\/[^/]+|about)$/.test(path) || path.startsWith('/spa/')) res.end('ok');
      else res.writeHead(404).end('not found');
    });
    // The learned caps (on by default) would collapse /spa/<word> long before the template bound this suite tests.
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, ROUTE_TEMPLATES_MAX: '50', ROUTE_SEGMENT_MAX_VALUES: '0', LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it('should keep 7 KB letter-only paths the app answers 404 out of the exposition, and 15 KB ones too (414)', async () => {
    for (let i = 0; i < 200; i++) {
      const letters = String.fromCharCode(97 + (i % 26)) + String.fromCharCode(97 + Math.floor(i / 26));
      expect((await request(sc.mainPort, `/${letters.repeat(3500)}`)).status).toBe(404);
      expect((await request(sc.mainPort, `/${letters.repeat(7500)}`)).status).toBe(414);
    }
    const { text, p } = await scrape();
    expect(text.length).toBeLessThan(100_000);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: UNMATCHED_ROUTE, status: '404' })).toBe(200);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: UNMATCHED_ROUTE, status: '414' })).toBe(200);
    expect(p.samples.every((s) => (s.labels.path ?? '').length <= 128)).toBe(true);
  });

  it('should keep random-word paths from filling the family, so real routes still get their series', async () => {
    for (let i = 0; i < 300; i++) await request(sc.mainPort, `/w${String.fromCharCode(97 + (i % 26))}ord${String.fromCharCode(97 + Math.floor(i / 26))}`);
    expect((await request(sc.mainPort, '/about')).status).toBe(200);
    const { p } = await scrape();
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/about', status: '200' })).toBe(1);
    expect(p.samples.filter((s) => s.labels.path?.startsWith('/w'))).toEqual([]);
  });

  it('should never put a reset-password token in a label or a log line', async () => {
    const tokens = ['xK-3nF_q8Rz0aY7Bv2LmWc', 'kHqPwZrTbNvXyLmCdFgH', '4f9a0c2e7b1d8e6f3a5c9b0d2e4f6a8c', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'];
    for (const t of tokens) expect((await request(sc.mainPort, `/reset-password/${t}`)).status).toBe(200);
    const { text, p } = await scrape();
    for (const t of tokens) expect(text).not.toContain(t);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/reset-password/:id', status: '200' })).toBe(tokens.length);
  });

  it('should bound the templates a catch-all route can mint', async () => {
    for (let i = 0; i < 120; i++)
      await request(sc.mainPort, `/spa/section${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`);
    const { p } = await scrape();
    const templates = new Set(p.samples.filter((s) => s.name === 'flask_http_request_duration_seconds_count').map((s) => s.labels.path));
    expect(templates.size).toBeLessThanOrEqual(50 + 2);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/:overflow' })).toBeGreaterThan(0);
    expect(value(p, 'metrics_sidecar_route_templates_refused_total', { reason: 'limit' })).toBeGreaterThan(0);
  });

  it('should log the template, not the token, when the app fails', async () => {
    const down = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`, LOG_LEVEL: 'info' });
    try {
      const token = 'xK-3nF_q8Rz0aY7Bv2LmWc';
      expect((await request(down.mainPort, `/reset-password/${token}?next=/home`)).status).toBe(502);
      const warn = down.logs.find((l) => l.msg === 'upstream failed');
      expect(warn?.route).toBe('/reset-password/:id');
      expect(JSON.stringify(down.logs)).not.toContain(token);
    } finally {
      await down.stop();
    }
  });
});
