/**
 * Learned per-position caps (issue 22, item 2): a position under one prefix that holds more than
 * ROUTE_SEGMENT_MAX_VALUES distinct literal values collapses to `:id` there, while routes with few
 * values per position keep their literal segments; the learner's memory stays bounded whatever
 * paths arrive.
 */
import fc from 'fast-check';
import { RouteTemplater, SegmentLearner } from '../../src/proxy/routes';
import { RedRecorder } from '../../src/proxy/red';
import { canonicalize } from '../../src/proxy/target';
import { loadConfig } from '../../src/config';
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';
import { letters, prng } from '../helpers/attack';
import { targetArb } from './target-arbitraries';
import { pathLabels, testRecorder } from '../helpers/red';

const make = (routeSegmentMaxValues?: number, routePatterns: string[] = []) => testRecorder({ routePatterns, routeSegmentMaxValues });
const paths = (red: RedRecorder) => new Set(pathLabels(red));
const words = (n: number, seed: number) => {
  const rand = prng(seed);
  const out = new Set<string>();
  while (out.size < n) out.add(letters(5 + Math.floor(rand() * 6), rand));
  return [...out];
};

describe('SegmentLearner', () => {
  it('should collapse a position at its (max + 1)th distinct value, and only under its prefix', () => {
    const learned: string[] = [];
    const l = new SegmentLearner({ maxValues: 3, onLearned: (p) => learned.push(p) });
    expect(['/tags/a', '/tags/b', '/tags/c', '/tags/a'].map((t) => l.observe(t))).toEqual(['/tags/a', '/tags/b', '/tags/c', '/tags/a']);
    expect(l.observe('/tags/d')).toBe('/tags/:id');
    expect(l.observe('/tags/a')).toBe('/tags/:id');
    expect(l.observe('/tags/e/edit')).toBe('/tags/:id/edit');
    expect(l.observe('/labels/a')).toBe('/labels/a');
    expect(learned).toEqual(['/tags']);
    expect(l.learnedTemplates).toEqual(['/tags/:id']);
    // The learned prefix's values are forgotten; /labels/a and /tags/:id/edit's are remembered.
    expect(l.size).toEqual({ prefixes: 3, values: 2 });
  });

  it('should never learn the first segment, nor count segments the heuristics collapsed', () => {
    const l = new SegmentLearner({ maxValues: 2 });
    for (const w of words(20, 1)) expect(l.observe(`/${w}`)).toBe(`/${w}`);
    for (let i = 0; i < 20; i++) expect(l.observe(`/users/:id/repos`)).toBe('/users/:id/repos');
    expect(l.learnedCount).toBe(0);
  });

  it('should learn nested positions: /users/<name>/repos/<name>', () => {
    const l = new SegmentLearner({ maxValues: 10 });
    const names = words(30, 2);
    const out = new Set(names.map((u, i) => l.observe(`/users/${u}/repos/${names[(i * 7) % names.length]}`)));
    for (let i = 0; i < 30; i++) out.add(l.observe(`/users/${names[i]}/repos/${names[(i * 11) % names.length]}`));
    expect(out.has('/users/:id/repos/:id')).toBe(true);
    expect(l.learnedTemplates).toEqual(['/users/:id', '/users/:id/repos/:id']);
  });

  it('should count what does not fit its prefix and value bounds', () => {
    const refused: string[] = [];
    const l = new SegmentLearner({ maxValues: 5, maxPrefixes: 4, maxTotalValues: 6, onRefused: (r) => refused.push(r) });
    for (const p of ['a', 'b', 'c', 'd', 'e']) l.observe(`/${p}/x`);
    expect(refused).toEqual(['prefixes']);
    l.observe('/a/y');
    l.observe('/a/z');
    expect(refused).toEqual(['prefixes']);
    l.observe('/a/w');
    expect(refused).toEqual(['prefixes', 'values']);
    expect(l.size).toEqual({ prefixes: 4, values: 6 });
  });
});

describe('RedRecorder with learned caps', () => {
  it('should be on by default: 200 words under /tags/ give at most 11 path values, /api/v1/users stays literal', () => {
    const red = make();
    for (const w of words(200, 3)) {
      red.record('GET', red.route(`/tags/${w}`)!, 200, 0.01, false);
      red.record('GET', red.route('/api/v1/users')!, 200, 0.01, false);
    }
    const seen = paths(red);
    const tags = [...seen].filter((p) => p.startsWith('/tags/'));
    expect(tags.length).toBeLessThanOrEqual(11);
    expect(tags).toContain('/tags/:id');
    expect(seen.has('/api/v1/users')).toBe(true);
    // A path cached with its literal template before the position was learned is templated again.
    expect(red.route(`/tags/${words(1, 3)[0]}`)).toMatchObject({ template: '/tags/:id' });
  });

  it('should give literal segments that read as placeholders (/tags/:a) no path values of their own', () => {
    const red = make();
    for (const w of words(200, 7)) red.record('GET', red.route(`/tags/:${w}`)!, 200, 0.01, false);
    expect([...paths(red)]).toEqual(['/tags/:id']);
  });

  it('should not learn from statuses that say "not a route", nor when off, nor over a configured pattern', () => {
    const red = make(undefined, ['/tags/:tag']);
    for (const w of words(50, 4)) red.record('GET', red.route(`/things/${w}`)!, 404, 0.01, false);
    for (const w of words(50, 5)) red.record('GET', red.route(`/tags/${w}`)!, 200, 0.01, false);
    expect(red.learner!.learnedCount).toBe(0);
    const off = make(0);
    for (const w of words(50, 6)) off.record('GET', off.route(`/tags/${w}`)!, 200, 0.01, false);
    expect(off.learner).toBeUndefined();
    expect(paths(off).size).toBe(50);
  });

  it("should keep its memory bounded under the hardening suite's random paths and random words", () => {
    const canonicalPath = targetArb
      .map((raw) => canonicalize(raw))
      .filter((t) => t.ok && !t.reserved)
      .map((t) => (t.ok ? t.target : '/'));
    const wordPath = fc.array(fc.stringMatching(/^[a-z]{1,12}$/), { minLength: 1, maxLength: 8 }).map((segs) => `/${segs.join('/')}`);
    fc.assert(
      fc.property(fc.array(fc.oneof(canonicalPath, wordPath), { minLength: 1, maxLength: 400 }), fc.integer({ min: 1, max: 20 }), (batch, maxValues) => {
        const l = new SegmentLearner({ maxValues, maxPrefixes: 50, maxTotalValues: 200 });
        const t = new RouteTemplater([], [], { learner: l, cacheSize: 100 });
        for (const p of batch) {
          const template = t.template(p);
          if (template !== null && l.observe(template) !== template) t.invalidate();
          const { prefixes, values } = l.size;
          if (prefixes > 50 || values > 200) return false;
        }
        // Each tracked prefix holds at most maxValues values.
        return l.size.values <= l.size.prefixes * maxValues && t.cachedEntries <= 100;
      }),
      { numRuns: 200, seed: 22 },
    );
  });
});

describe('a real sidecar, nothing configured', () => {
  let upstream: Upstream;
  let sc: Running;
  beforeAll(async () => {
    upstream = await startUpstream();
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, SERVE_PROMETHEUS_ENDPOINT: 'true', LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it('should give 200 distinct words under /tags/ at most ROUTE_SEGMENT_MAX_VALUES + 1 path values', async () => {
    const max = loadConfig({}).http.routeSegmentMaxValues;
    expect(max).toBe(10);
    const ws = words(200, 7);
    for (const w of ws) expect((await request(sc.mainPort, `/tags/${w}`)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await request(sc.mainPort, '/api/v1/users')).status).toBe(200);
    const p = parseExposition((await request(sc.mainPort, '/debug/metrics')).text);
    const count = p.samples.filter((s) => s.name === 'flask_http_request_duration_seconds_count');
    const tags = new Set(count.map((s) => s.labels.path).filter((path) => path.startsWith('/tags/')));
    expect(tags.size).toBeGreaterThan(1);
    expect(tags.size).toBeLessThanOrEqual(max + 1);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/tags/:id', method: 'GET', status: '200' })).toBe(200 - max);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/api/v1/users', method: 'GET', status: '200' })).toBe(3);
    expect(value(p, 'metrics_sidecar_route_positions_learned_total')).toBe(1);
    // Every request reached the app, with its real path.
    expect(upstream.seen.filter((s) => s.url.startsWith('/tags/')).map((s) => s.url)).toEqual(ws.map((w) => `/tags/${w}`));
  });
});
