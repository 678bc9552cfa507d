/**
 * Route templates from the app's OpenAPI document (issue 22, item 1): the converter (3.x and 2.0,
 * JSON and YAML, base paths), the most-specific-first order, matching before the heuristics and the
 * learned caps, and the background source: a refused document keeps the previous set, a missing
 * one is retried until it loads.
 */
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as openapi from '../../src/formats/openapi';
import {
  compareSpecificity,
  matchMixed,
  MAX_OPENAPI_BASE_PATHS,
  MAX_OPENAPI_OPERATIONS,
  MAX_OPENAPI_ROUTES,
  parseOpenApi,
  toTemplate,
} from '../../src/formats/openapi';
import { OpenApiSource } from '../../src/proxy/openapi-source';
import { Registry } from '../../src/metrics/registry';
import { createLogger } from '../../src/log/logger';
import { MAX_OPERATION_ID, RouteTemplater } from '../../src/proxy/routes';
import { request } from '../helpers/net';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';
import { pathLabels, testRecorder } from '../helpers/red';

const doc3 = (paths: Record<string, unknown>, extra: Record<string, unknown> = {}) => JSON.stringify({ openapi: '3.1.0', info: {}, paths, ...extra });
const get = { get: { operationId: 'op', responses: {} } };

describe('parseOpenApi', () => {
  it('should answer any text with a document or an Error saying why, never another exception (generated)', () => {
    const check = (text: string) => {
      let d;
      try {
        d = parseOpenApi(text);
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).constructor).toBe(Error);
        return;
      }
      expect(d.operations).toBeLessThanOrEqual(MAX_OPENAPI_OPERATIONS);
      expect(d.routes.length).toBeLessThanOrEqual(MAX_OPENAPI_ROUTES);
      for (const r of d.routes) expect(r.template.startsWith('/')).toBe(true);
    };
    // Arbitrary text (JSON- and YAML-looking included), then documents whose paths are arbitrary.
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 1500 });
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (j) => check(j)),
      { numRuns: 800 },
    );
    fc.assert(
      fc.property(
        fc.json({ maxDepth: 3 }).map((j) => `openapi: 3.0.0\npaths: ${j}\n`),
        check,
      ),
      { numRuns: 500 },
    );
    const pathKey = fc.string({ unit: fc.constantFrom(...'/{}.:ab1-_%? '.split('')), maxLength: 30 });
    const anyValue = fc.oneof(fc.constant(get), fc.constant(null), fc.integer(), fc.string(), fc.constant({ get: 1 }), fc.constant({ servers: 3, post: {} }));
    fc.assert(
      fc.property(fc.dictionary(pathKey, anyValue, { maxKeys: 20 }), fc.anything({ maxDepth: 2 }), (paths, servers) =>
        check(JSON.stringify({ openapi: '3.0.3', paths, servers })),
      ),
      { numRuns: 1500 },
    );
  });

  it('should bound the routes that servers’ base paths multiply, whatever the servers and paths (generated)', () => {
    // 3,000 servers × 2,000 paths were 6 million routes and 46 s of parsing from an 89 KB document.
    const docOf = (servers: number, paths: number) =>
      doc3(Object.fromEntries(Array.from({ length: paths }, (_, i) => [`/p${i}/{id}`, get])), {
        servers: Array.from({ length: servers }, (_, i) => ({ url: `/b${i}` })),
      });
    expect(() => parseOpenApi(docOf(3000, 2000))).toThrow(`more than ${MAX_OPENAPI_BASE_PATHS} base paths in one "servers" list`);
    expect(parseOpenApi(docOf(MAX_OPENAPI_BASE_PATHS, MAX_OPENAPI_ROUTES / MAX_OPENAPI_BASE_PATHS)).routes).toHaveLength(MAX_OPENAPI_ROUTES);
    expect(() => parseOpenApi(docOf(MAX_OPENAPI_BASE_PATHS, MAX_OPENAPI_ROUTES / MAX_OPENAPI_BASE_PATHS + 1))).toThrow(
      `more than ${MAX_OPENAPI_ROUTES} routes`,
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 600 }), fc.boolean(), (servers, paths, perItem) => {
        const list = Array.from({ length: servers }, (_, i) => ({ url: `https://h${i}.example/b${i % 20}` }));
        const item = perItem ? { ...get, servers: list } : get;
        const text = doc3(Object.fromEntries(Array.from({ length: paths }, (_, i) => [`/p${i}`, item])), perItem ? {} : { servers: list });
        const bases = Math.min(servers, 20);
        let d;
        try {
          d = parseOpenApi(text);
        } catch (err) {
          expect((err as Error).message).toMatch(bases > MAX_OPENAPI_BASE_PATHS ? /base paths/ : /routes/);
          expect(bases > MAX_OPENAPI_BASE_PATHS || bases * paths > MAX_OPENAPI_ROUTES).toBe(true);
          return;
        }
        expect(d.routes).toHaveLength(bases * paths);
      }),
      { numRuns: 200 },
    );
  });

  it('should turn {param} into :param, mixed segments included', () => {
    expect(toTemplate('/users/{userId}/orders/{orderId}')).toBe('/users/:userId/orders/:orderId');
    expect(toTemplate('/files/{name}.{ext}')).toBe('/files/:name.:ext');
    expect(toTemplate('/odd/{a b}')).toBe('/odd/:a_b');
  });

  it('should read OpenAPI 3.x JSON with servers[].url base paths (variables at their defaults) and path-level servers', () => {
    const d = parseOpenApi(
      doc3(
        { '/users/{id}': { get: { operationId: 'getUser' }, delete: {} }, '/health': { ...get, servers: [{ url: '/' }] }, '/nothing': { parameters: [] } },
        {
          servers: [
            { url: 'https://api.example.com/{version}/', variables: { version: { default: 'v2' } } },
            { url: '//cdn.example.com/v2' },
            { url: '/internal/v2' },
          ],
        },
      ),
    );
    expect(d.version).toBe('3.1.0');
    expect(d.operations).toBe(3);
    expect(d.routes.map((r) => r.template).sort()).toEqual(['/health', '/internal/v2/users/:id', '/v2/users/:id']);
    expect(d.routes.find((r) => r.template === '/v2/users/:id')!.operations).toEqual(['GET getUser', 'DELETE']);
  });

  it('should read Swagger 2.0 YAML with basePath', () => {
    const d = parseOpenApi('swagger: "2.0"\nbasePath: /api/\npaths:\n  /pets/{petId}:\n    get: {operationId: showPet}\n  /pets:\n    post: {}\n');
    expect(d.version).toBe('2.0');
    expect(d.routes.map((r) => r.template)).toEqual(['/api/pets', '/api/pets/:petId']);
  });

  it.each([
    ['not JSON', '{"openapi": "3.0.0", "paths": {'],
    ['not YAML', 'openapi: 3.0.0\npaths: [a\n'],
    ['no version', JSON.stringify({ paths: {} })],
    ['an unknown version', JSON.stringify({ openapi: '4.0', paths: {} })],
    ['paths not an object', JSON.stringify({ openapi: '3.0.0', paths: [] })],
    ['a path without its /', doc3({ users: get })],
    [
      'a YAML alias bomb',
      `openapi: 3.0.0\na: &a ["x","x","x","x","x","x","x","x","x"]\n${Array.from(
        { length: 12 },
        (_, i) =>
          `b${i}: &b${i} [${Array(9)
            .fill(i === 0 ? '*a' : `*b${i - 1}`)
            .join(',')}]`,
      ).join('\n')}\npaths: {}\n`,
    ],
  ])('should refuse %s', (why, text) => {
    expect(() => parseOpenApi(text)).toThrow(why === 'a YAML alias bomb' ? /alias/i : /./);
  });

  it('should refuse more than 2,000 operations and more than 4 MiB', () => {
    const paths: Record<string, unknown> = {};
    for (let i = 0; i <= MAX_OPENAPI_OPERATIONS; i++) paths[`/p${i}`] = get;
    expect(() => parseOpenApi(doc3(paths))).toThrow(/more than 2000 operations/);
    expect(() => parseOpenApi(doc3({ '/a': get }, { pad: 'x'.repeat(4 * 1024 * 1024) }))).toThrow(/bytes; at most/);
  });

  it('should order most specific first: a literal beats a mixed segment, which beats a parameter, at the first position they differ', () => {
    const d = parseOpenApi(
      doc3({ '/{a}/b': get, '/users/{id}': get, '/users/me': get, '/users/{id}.json': get, '/users/{id}/x': get, '/a/{b}': get, '/users/me/x': get }),
    );
    // By kinds (literal, mixed, parameter) position by position, then length: texts only break ties.
    expect(d.routes.map((r) => r.path)).toEqual(['/users/me', '/users/me/x', '/users/{id}.json', '/a/{b}', '/users/{id}', '/users/{id}/x', '/{a}/b']);
    expect(compareSpecificity('/users/me', '/users/{id}')).toBeLessThan(0);
    expect(compareSpecificity('/{a}/b', '/a/{b}')).toBeGreaterThan(0);
  });

  it('should match mixed segments by their texts, without backtracking', () => {
    const texts = ['', '.', ''];
    expect(matchMixed(texts, 'report.csv')).toBe(true);
    expect(matchMixed(texts, 'a.b.c')).toBe(true);
    expect(matchMixed(texts, '.csv')).toBe(false);
    expect(matchMixed(texts, 'report.')).toBe(false);
    expect(matchMixed(texts, 'report')).toBe(false);
    expect(matchMixed(['', '.', '.', '.', 'x'], '.'.repeat(100_000))).toBe(false);
  });

  it('should answer as a regular expression of its texts and one-or-more-character parameters would (generated)', () => {
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const text = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-'), maxLength: 3 });
    fc.assert(
      fc.property(fc.array(text, { minLength: 2, maxLength: 5 }), fc.string({ unit: fc.constantFrom('a', 'b', '.', '-'), maxLength: 12 }), (texts, value) => {
        const re = new RegExp(`^${texts.map(escape).join('.+')}$`, 's');
        expect(matchMixed(texts, value)).toBe(re.test(value));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('OpenAPI templates in the templater and the RED recorder', () => {
  const routes = parseOpenApi(
    doc3({ '/users/me': get, '/users/{userName}': get, '/files/{name}.{ext}': get, '/tags/{tag}': get }, { servers: [{ url: '/v1' }] }),
  ).routes;

  it('should match after configured patterns and before the heuristics, most specific first', () => {
    const t = new RouteTemplater(['/v1/tags/:configured']);
    expect(t.template('/v1/users/alice')).toBe('/v1/users/alice');
    t.setOpenApi(routes);
    expect(t.template('/v1/users/alice')).toBe('/v1/users/:userName');
    expect(t.template('/v1/users/me')).toBe('/v1/users/me');
    expect(t.template('/v1/users/')).toBe('/v1/users/');
    expect(t.template('/v1/files/report.csv')).toBe('/v1/files/:name.:ext');
    expect(t.template('/v1/files/report')).toBe('/v1/files/report');
    expect(t.template('/v1/tags/x')).toBe('/v1/tags/:configured');
    expect(t.template('/users/alice')).toBe('/users/alice');
    expect(t.template('/v1/users/42')).toBe('/v1/users/:userName');
    t.setOpenApi([]);
    expect(t.template('/v1/users/alice')).toBe('/v1/users/alice');
  });

  it('should cut a document template at ROUTE_TEMPLATE_MAX_SEGMENTS and _LENGTH as a heuristic one is, and say how many it cut', () => {
    const deep = `/${Array.from({ length: 16 }, (_, i) => `s${i}`).join('/')}/{id}`;
    const long = `/${'a'.repeat(60)}/${'b'.repeat(60)}/{id}`;
    const doc = parseOpenApi(doc3({ [deep]: get, [long]: get, '/short/{id}': get })).routes;
    const t = new RouteTemplater([], [], { maxSegments: 12, maxLength: 100 });
    expect(t.setOpenApi(doc)).toEqual({ cut: 2 });
    const deepPath = `/${Array.from({ length: 16 }, (_, i) => `s${i}`).join('/')}/alice`;
    const deepCut = `/${Array.from({ length: 12 }, (_, i) => `s${i}`).join('/')}/:rest`;
    expect(t.template(deepPath)).toBe(deepCut);
    // The heuristics cut the same path the same way when no document names it.
    expect(new RouteTemplater([], [], { maxSegments: 12, maxLength: 100 }).template(deepPath)).toBe(deepCut);
    expect(t.template(`/${'a'.repeat(60)}/${'b'.repeat(60)}/alice`)).toBe(`/${'a'.repeat(60)}/:rest`);
    expect(t.template('/short/alice')).toBe('/short/:id');
    expect(t.openApiPatternTemplates).toEqual(expect.arrayContaining([deepCut, `/${'a'.repeat(60)}/:rest`, '/short/:id']));
    for (const x of t.openApiPatternTemplates) expect(x.length).toBeLessThanOrEqual(100);

    // operationIds are kept by method, at most MAX_OPERATION_ID characters of each.
    const ops = parseOpenApi(doc3({ '/a/{id}': { get: { operationId: 'getA' }, put: { operationId: 'x'.repeat(10_000) }, post: {} } })).routes;
    t.setOpenApi(ops);
    expect(t.operationOf('GET', '/a/:id')).toBe('getA');
    expect(t.operationOf('PUT', '/a/:id')).toBe('x'.repeat(MAX_OPERATION_ID));
    expect(t.operationOf('POST', '/a/:id')).toBeUndefined();
    expect(t.operationOf('GET', '/b/:id')).toBeUndefined();

    // The recorder (default bounds: 12 segments, 128 characters) admits the cut template, not the document's.
    const red = testRecorder();
    expect(red.setOpenApi(doc)).toEqual({ cut: 2 });
    red.record('GET', red.route(deepPath)!, 200, 0.01, false);
    expect(pathLabels(red)).toEqual([deepCut]);
  });

  it('should admit the templates at once, and never feed them to the learned caps', () => {
    const red = testRecorder();
    red.setOpenApi(routes);
    expect(red.openApiTemplates).toEqual(routes.map((r) => r.template));
    for (let i = 0; i < 100; i++) red.record('GET', red.route(`/v1/users/user${'abcdefghij'[i % 10]}${'abcdefghij'[Math.floor(i / 10)]}`)!, 404, 0.01, false);
    const paths = new Set(pathLabels(red));
    expect([...paths]).toEqual(['/v1/users/:userName']);
    expect(red.learner!.learnedCount).toBe(0);
  });
});

describe('the OpenAPI source, in process', () => {
  it('should show that the URL has a query, never the query (it may carry a token)', () => {
    const source = new OpenApiSource(
      { source: { url: new URL('http://127.0.0.1:9/openapi.json?token=s3cret') }, refreshMs: 0 },
      testRecorder(),
      new Registry(),
      createLogger('info', () => undefined),
    );
    expect(source.state.source).toBe('/openapi.json?…');
  });

  it('should refuse a document it refused before without parsing it again', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openapi-refused-'));
    const file = path.join(dir, 'openapi.json');
    const lines: { msg: string; reason?: string }[] = [];
    const registry = new Registry();
    const source = new OpenApiSource(
      { source: { file }, refreshMs: 0 },
      testRecorder(),
      registry,
      createLogger('info', (l) => lines.push(JSON.parse(l))),
    );
    const parse = jest.spyOn(openapi, 'parseOpenApi');
    try {
      fs.writeFileSync(file, doc3({ 'no-slash': get }));
      expect(await source.loadOnce()).toBe('refused');
      expect(await source.loadOnce()).toBe('refused');
      expect(parse).toHaveBeenCalledTimes(1);
      // Each refusal is still counted and said, with the same reason.
      expect(lines.filter((l) => l.msg.startsWith('OpenAPI document not loaded')).map((l) => l.reason)).toEqual([
        'path "no-slash" does not start with "/"',
        'path "no-slash" does not start with "/"',
      ]);
      // Another document is parsed.
      fs.writeFileSync(file, doc3({ '/ok': get }));
      expect(await source.loadOnce()).toBe('loaded');
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the OpenAPI source of a real sidecar', () => {
  let upstream: Upstream;
  let sc: Running;
  /** What the app answers on /openapi.json now. */
  let answer: { status: number; body: string } = { status: 503, body: 'starting' };
  let fetches = 0;
  const good = doc3({ '/orders/{orderId}': get, '/orders/recent': get });

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === '/openapi.json') {
        fetches++;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
      } else res.end('ok');
    });
    sc = await startSidecar({
      UPSTREAM_URL: upstream.url,
      ROUTE_OPENAPI_URL: '/openapi.json',
      ROUTE_OPENAPI_REFRESH_S: '1',
      SERVE_PROMETHEUS_ENDPOINT: 'true',
    });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });
  const scrape = async () => parseExposition((await request(sc.mainPort, '/debug/metrics')).text);

  it('should retry an app that is not ready yet until the document loads', async () => {
    await sc.untilLogged((l) => l.msg === 'OpenAPI document not loaded; the previous templates stay in use' && l.outcome === 'bad_status');
    answer = { status: 200, body: good };
    await sc.untilLogged((l) => l.msg === 'OpenAPI document loaded');
    expect(fetches).toBeGreaterThanOrEqual(2);
    expect((await request(sc.mainPort, '/orders/frobnicate')).status).toBe(200);
    expect((await request(sc.mainPort, '/orders/recent')).status).toBe(200);
    const p = await scrape();
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/orders/:orderId' })).toBe(1);
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/orders/recent' })).toBe(1);
    expect(value(p, 'metrics_sidecar_route_openapi_templates')).toBe(2);
    expect(value(p, 'metrics_sidecar_route_openapi_loads_total', { outcome: 'bad_status' })).toBeGreaterThanOrEqual(1);
  });

  it('should refuse a malformed document with one log line and a count, keeping the previous templates', async () => {
    const before = sc.logs.length;
    answer = { status: 200, body: '{"openapi": "3.0.0", "paths": ' };
    await sc.untilLogged((l) => l.outcome === 'refused' && String(l.reason).startsWith('not valid JSON'));
    expect(sc.logs.slice(before).filter((l) => l.outcome === 'refused').length).toBeGreaterThanOrEqual(1);
    expect((await request(sc.mainPort, '/orders/xyzzy')).status).toBe(200);
    const p = await scrape();
    expect(value(p, 'flask_http_request_duration_seconds_count', { path: '/orders/:orderId' })).toBe(2);
    expect(value(p, 'metrics_sidecar_route_openapi_loads_total', { outcome: 'refused' })).toBeGreaterThanOrEqual(1);
    expect(value(p, 'metrics_sidecar_route_openapi_templates')).toBe(2);
  });

  it('should refuse a document over 4 MiB while reading it', async () => {
    answer = { status: 200, body: doc3({ '/x': get }, { pad: 'y'.repeat(5 * 1024 * 1024) }) };
    await sc.untilLogged((l) => l.outcome === 'refused' && /larger than/.test(String(l.reason)));
    const p = await scrape();
    expect(value(p, 'metrics_sidecar_route_openapi_templates')).toBe(2);
    answer = { status: 200, body: good };
    const loaded = sc.logs.filter((l) => l.msg === 'OpenAPI document loaded').length;
    await sc.untilLogged(() => sc.logs.filter((l) => l.msg === 'OpenAPI document loaded').length > loaded);
  });
});
