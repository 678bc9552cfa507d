/**
 * The status page lists the `path` templates by source (issue 22): configured (ROUTE_PATTERNS),
 * the app's OpenAPI document, learned caps and heuristics, in status.json and on the page; a route
 * from the document shows its operationId.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';

describe('route templates on the status page', () => {
  let upstream: Upstream;
  let sc: Running;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'status-templates-'));
  const doc = path.join(dir, 'openapi.yaml');

  beforeAll(async () => {
    fs.writeFileSync(
      doc,
      'openapi: 3.0.3\nservers: [{url: /api}]\npaths:\n  /users/me: {get: {}}\n  /users/{userId}: {get: {operationId: getUser}, put: {operationId: putUser}}\n',
    );
    upstream = await startUpstream();
    sc = await startSidecar({ UPSTREAM_URL: upstream.url, ROUTE_PATTERNS: '/static/*', ROUTE_OPENAPI_FILE: doc, ROUTE_SEGMENT_MAX_VALUES: '3' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should list configured, OpenAPI, learned and heuristic templates', async () => {
    for (const p of ['/api/users/alice', '/orders/42', '/tags/aa', '/tags/bb', '/tags/cc', '/tags/dd', '/static/app.css']) {
      expect((await request(sc.mainPort, p)).status).toBe(200);
    }
    const t = JSON.parse((await request(sc.metricsPort, '/status.json')).text).traffic.templates;
    expect(t.configured).toEqual({ templates: ['/static/*'], total: 1 });
    expect(t.openapi).toMatchObject({
      templates: ['/api/users/me', '/api/users/:userId'],
      total: 2,
      source: doc,
      version: '3.0.3',
      operations: 3,
      templates_cut: 0,
      last_outcome: 'loaded',
    });
    expect(t.openapi.loaded_at).toMatch(/^\d{4}-/);
    expect(t.learned).toEqual({ templates: ['/tags/:id'], total: 1, max_values: 3 });
    expect(t.heuristic).toEqual({ templates: ['/orders/:id', '/tags/aa', '/tags/bb', '/tags/cc'], total: 4 });
    expect(t.admitted).toBe(1 + 2 + 1 + 4);

    // Each route's operationId, for its method, beside the template (null where the document names none).
    const routes = JSON.parse((await request(sc.metricsPort, '/status.json')).text).traffic.routes as {
      method: string;
      route: string;
      operation: string | null;
    }[];
    const byRoute = Object.fromEntries(routes.map((r) => [`${r.method} ${r.route}`, r.operation]));
    expect(byRoute).toMatchObject({ 'GET /api/users/:userId': 'getUser', 'GET /orders/:id': null, 'GET /static/*': null });

    const page = (await request(sc.metricsPort, '/')).text;
    expect(page).toMatch(/<code>\/api\/users\/:userId<\/code> <span class="operation muted">getUser<\/span>/);
    const section = page.slice(page.indexOf('id="h-templates"'));
    for (const [cls, template] of [
      ['source-configured', '/static/*'],
      ['source-openapi', '/api/users/:userId'],
      ['source-learned', '/tags/:id'],
      ['source-heuristic', '/orders/:id'],
    ]) {
      const part = section.slice(section.indexOf(`class="${cls}"`));
      expect(part.slice(0, part.indexOf('</div>'))).toContain(`<code>${template}</code>`);
    }
  });
});
