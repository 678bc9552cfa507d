/**
 * status.json: its shape is pinned (every field, its type, nothing more: a new field is a
 * deliberate change of this test and of docs/status-page.md), its values follow what the sidecar saw, and
 * no secret from the configuration ever appears in it or in the page (property-based).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { loadConfig } from '../../src/config';
import { createSidecar } from '../../src/app';
import { silentLogger } from '../../src/log/logger';
import { renderPage } from '../../src/status/page';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { freePort, request } from '../helpers/net';

type Shape =
  'string' | 'number' | 'boolean' | 'string|null' | 'number|null' | 'boolean|null' | 'ignore' | Shape[] | { [k: string]: Shape } | { nullable: Shape };

const WINDOW: Shape = { requests: 'number', rps: 'number', error_ratio: 'number|null', p50: 'number|null', p90: 'number|null', p99: 'number|null' };
const OUTCOMES: Shape = { accepted: 'number', malformed: 'number', dropped: 'number', type_conflict: 'number' };

/** Schema 1 of status.json, field by field (docs/status-page.md: "status.json"). */
const SCHEMA: Shape = {
  schema: 'number',
  generated_at: 'string',
  sampling: { since: 'string', interval_s: 'number', covered_1m_s: 'number', covered_15m_s: 'number' },
  identity: {
    app_name: 'string',
    role: 'string',
    version: 'string',
    node_version: 'string',
    started_at: 'string',
    uptime_s: 'number',
    ready: 'boolean',
    draining: 'boolean',
    upstream: { nullable: { url: 'string', health: { nullable: { healthy: 'boolean', detail: 'string|null' } } } },
  },
  traffic: {
    family: 'string',
    routes: [{ method: 'string', route: 'string', operation: 'string|null', m1: WINDOW, m15: WINDOW, spark: { rps: ['number'], p99: ['number|null'] } }],
    routes_total: 'number',
    totals: { m1: WINDOW, m15: WINDOW },
    templates: {
      nullable: {
        configured: { templates: ['string'], total: 'number' },
        openapi: {
          nullable: {
            templates: ['string'],
            total: 'number',
            source: 'string',
            version: 'string|null',
            operations: 'number',
            templates_cut: 'number',
            loaded_at: 'string|null',
            last_outcome: 'string|null',
            last_error: 'string|null',
          },
        },
        learned: { templates: ['string'], total: 'number', max_values: 'number' },
        heuristic: { templates: ['string'], total: 'number' },
        admitted: 'number',
        max: 'number',
      },
    },
  },
  sources: {
    statsd: {
      nullable: {
        m1: OUTCOMES,
        m15: OUTCOMES,
        total: OUTCOMES,
        udp: { receive_drops_total: 'number|null', receive_drops_15m: 'number|null', rx_queue_bytes: 'number|null', receive_buffer_bytes: 'number|null' },
      },
    },
    merge: [
      {
        target: 'string',
        up: 'boolean|null',
        last_fetch_at: 'string|null',
        last_duration_s: 'number|null',
        last_size_bytes: 'number|null',
        last_error: 'string|null',
        families_dropped_total: 'number',
      },
    ],
  },
  cardinality: {
    total_series: 'number',
    budget: 'number|null',
    families_total: 'number',
    dropped_total: 'number',
    dropped_15m: 'number',
    families: [
      { name: 'string', type: 'string', series: 'number', cap: 'number|null', dropped_total: 'number', dropped_15m: 'number', overflow: 'number|null' },
    ],
  },
  access: {
    open: 'boolean',
    methods: ['string'],
    refusals: [{ listener: 'string', reason: 'string', last_15m: 'number', total: 'number' }],
    cidr_refused: [{ address: 'string', listener: 'string', count: 'number', last_at: 'string' }],
  },
  config: 'ignore',
};

/** Every mismatch between a value and a shape, as `path: problem`. */
function check(v: unknown, shape: Shape, at = '$'): string[] {
  if (shape === 'ignore') return [];
  if (typeof shape === 'string') {
    const allowed = shape.split('|');
    const t = v === null ? 'null' : typeof v;
    if (!allowed.includes(t)) return [`${at}: expected ${shape}, got ${t}`];
    if (t === 'number' && !Number.isFinite(v)) return [`${at}: not a finite number`];
    return [];
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) return [`${at}: expected an array`];
    return v.flatMap((x, i) => check(x, shape[0], `${at}[${i}]`));
  }
  if ('nullable' in shape && Object.keys(shape).length === 1) return v === null ? [] : check(v, (shape as { nullable: Shape }).nullable, at);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${at}: expected an object`];
  const o = v as Record<string, unknown>;
  const problems = Object.keys(o)
    .filter((k) => !(k in shape))
    .map((k) => `${at}.${k}: not in the schema`);
  for (const [k, s] of Object.entries(shape)) {
    if (!(k in o)) problems.push(`${at}.${k}: missing`);
    else problems.push(...check(o[k], s as Shape, `${at}.${k}`));
  }
  return problems;
}

describe('status.json', () => {
  let upstream: Upstream;
  let sc: Running;
  let dead: number;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.statusCode = req.url === '/fail' ? 503 : 200;
      res.end('x');
    });
    dead = await freePort();
    sc = await startSidecar({
      UPSTREAM_URL: upstream.url,
      STATSD_PORT: String(await freePort()),
      MERGE_TARGETS: `http://127.0.0.1:${dead}/metrics`,
      METRICS_MAX_SERIES_PER_FAMILY: '3',
      APP_NAME: 'billing',
    });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  const get = async () => {
    const r = await request(sc.metricsPort, '/status.json');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-store');
    return JSON.parse(r.text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  };

  it('should match schema 1 before any traffic and after it', async () => {
    const before = await get();
    expect(check(before, SCHEMA)).toEqual([]);
    expect(before.schema).toBe(1);
    expect(before.traffic.routes).toEqual([]);
    expect(before.sources.merge[0]).toMatchObject({ target: `http://127.0.0.1:${dead}/metrics`, up: null, last_error: null });

    for (let i = 0; i < 6; i++) await request(sc.mainPort, `/orders/${i}`);
    await request(sc.mainPort, '/fail');
    for (let i = 0; i < 5; i++) await request(sc.mainPort, `/page-${i}`); // more templates than the cap of 3
    await request(sc.metricsPort, '/debug/metrics'); // a scrape fetches the (dead) merge target
    const after = await get();
    expect(check(after, SCHEMA)).toEqual([]);
    expect(after.identity).toMatchObject({ app_name: 'billing', role: 'web', ready: true, draining: false, upstream: { url: upstream.url, health: null } });

    const orders = after.traffic.routes.find((r: { route: string }) => r.route === '/orders/:id');
    expect(orders).toMatchObject({ method: 'GET', m1: { requests: 6, error_ratio: 0 } });
    expect(orders.m1.rps).toBeGreaterThan(0);
    expect(orders.m1.p50).toBeGreaterThan(0);
    expect(orders.m1.p50).toBeLessThanOrEqual(orders.m1.p99);
    const fail = after.traffic.routes.find((r: { route: string }) => r.route === '/fail');
    expect(fail.m15.error_ratio).toBe(1);

    expect(after.sources.merge[0]).toMatchObject({ up: false, last_size_bytes: null });
    expect(after.sources.merge[0].last_error).toMatch(/ECONNREFUSED/);
    expect(after.sources.merge[0].last_duration_s).toBeGreaterThanOrEqual(0);

    const duration = after.cardinality.families.find((f: { name: string }) => f.name === 'flask_http_request_duration_seconds');
    expect(duration).toMatchObject({ series: 3, cap: 3 });
    expect(duration.dropped_total).toBeGreaterThan(0);
    expect(after.cardinality.dropped_total).toBeGreaterThanOrEqual(duration.dropped_total);
    expect(after.cardinality.total_series).toBeGreaterThanOrEqual(3);
  });

  it('should report a live merge target with its size', async () => {
    const app = await startUpstream((_req, res) => res.end('# TYPE app_jobs_total counter\napp_jobs_total 3\n'));
    const s = await startSidecar({ MERGE_TARGETS: `${app.url}/metrics` });
    try {
      await request(s.metricsPort, '/debug/metrics');
      const doc = JSON.parse((await request(s.metricsPort, '/status.json')).text);
      expect(doc.sources.merge[0]).toMatchObject({ up: true, last_error: null, last_size_bytes: 47 });
      expect(doc.sources.statsd).toBeNull(); // STATSD_PORT=0 in the test defaults
      expect(doc.identity.upstream).toBeNull();
    } finally {
      await s.stop();
      await app.close();
    }
  });
});

describe('status.json with UPSTREAM_HEALTH_PATH', () => {
  it("should show the app's health and count readiness as /readyz does", async () => {
    let healthy = true;
    const app = await startUpstream((req, res) => {
      res.statusCode = req.url === '/healthz' && !healthy ? 503 : 200;
      res.end('x');
    });
    const s = await startSidecar({
      UPSTREAM_URL: app.url,
      UPSTREAM_HEALTH_PATH: '/healthz',
      UPSTREAM_HEALTH_INTERVAL_MS: '100',
      UPSTREAM_HEALTH_FAILURE_THRESHOLD: '1',
    });
    const doc = async () => JSON.parse((await request(s.metricsPort, '/status.json')).text);
    const until = async (ok: (d: { identity: { ready: boolean; upstream: { health: { healthy: boolean; detail: string | null } } } }) => boolean) => {
      for (let i = 0; i < 200; i++) {
        const d = await doc();
        if (ok(d)) return d;
        await new Promise((r) => setTimeout(r, 50));
      }
      return doc();
    };
    try {
      const up = await until((d) => d.identity.upstream.health.healthy);
      expect(up.identity).toMatchObject({ ready: true, upstream: { url: app.url, health: { healthy: true, detail: null } } });
      healthy = false;
      const down = await until((d) => !d.identity.upstream.health.healthy);
      expect(down.identity.ready).toBe(false);
      expect(down.identity.upstream.health.detail).toMatch(/503/);
      expect((await request(s.metricsPort, '/readyz')).status).toBe(503);
    } finally {
      await s.stop();
      await app.close();
    }
  });
});

describe('status.json redaction', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'status-redact-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Long, mixed secrets: they cannot occur in the document by chance.
  const secret = fc.string({
    minLength: 12,
    maxLength: 40,
    unit: fc.constantFrom(...'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789-_.~!*+=@#$%^&:;,'.split('')),
  });

  it('should never show a secret from the configuration, in status.json or in the page', async () => {
    await fc.assert(
      fc.asyncProperty(secret, secret, secret, secret, async (password, username, token, apiKey) => {
        const keys = path.join(dir, 'keys');
        fs.writeFileSync(keys, `prometheus plain:${apiKey} metrics\n`);
        const config = loadConfig({
          LISTEN_PORT: '8080',
          PROMETHEUS_PORT: '8491',
          STATSD_PORT: '0',
          UPSTREAM_URL: 'http://127.0.0.1:8000',
          METRICS_BASIC_AUTH_USERNAME: username.replace(/:/g, ''),
          METRICS_BASIC_AUTH_PASSWORD: password,
          METRICS_API_KEYS_FILE: keys,
          // Credentials in a URL are refused at start; a token in its query is not.
          MERGE_TARGETS: `http://127.0.0.1:9100/metrics?token=${encodeURIComponent(token)}`,
        });
        const sidecar = createSidecar(config, silentLogger);
        try {
          const json = sidecar.status.json();
          const html = renderPage(JSON.parse(json), '', undefined);
          const spellings = (s: string) => [s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s), s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)];
          for (const s of [password, username.replace(/:/g, ''), token, apiKey]) {
            if (s.length < 4) continue;
            for (const spelling of spellings(s)) {
              expect(json).not.toContain(spelling);
              expect(html).not.toContain(spelling);
            }
          }
          const doc = JSON.parse(json);
          expect(doc.config['access.basicAuth.password.value']).toBe('<redacted>');
          expect(doc.config['access.apiKeysFile']).toBe(keys); // a path is not a secret
          expect(doc.config.mergeTargets).toBe('http://127.0.0.1:9100/metrics');
          expect(doc.access.methods).toEqual(['basic', 'api_key']);
        } finally {
          await sidecar.stop();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('should keep status.json valid JSON whatever the secrets spell (a key, a number, a literal)', async () => {
    // Secrets drawn from the document's own vocabulary: a password `true`, `8491` or `routes`, a
    // health path whose query reads `?verbose=true`. Scrubbing must touch string values only.
    const words = fc.constantFrom('true', 'false', 'null', '8491', '8080', 'routes', 'traffic', 'ready', 'config', 'sources', 'text', 'window');
    await fc.assert(
      fc.asyncProperty(words, words, async (password, query) => {
        const config = loadConfig({
          LISTEN_PORT: '8080',
          PROMETHEUS_PORT: '8491',
          STATSD_PORT: '0',
          UPSTREAM_URL: 'http://127.0.0.1:8000',
          UPSTREAM_HEALTH_PATH: `/healthz?verbose=${query}`,
          METRICS_BASIC_AUTH_USERNAME: 'prometheus',
          METRICS_BASIC_AUTH_PASSWORD: password,
        });
        const sidecar = createSidecar(config, silentLogger);
        try {
          const doc = JSON.parse(sidecar.status.json());
          expect(doc.config['access.basicAuth.password.value']).toBe('<redacted>');
          expect(typeof doc.traffic).toBe('object');
          expect(renderPage(doc, '', undefined)).toContain('<html');
        } finally {
          await sidecar.stop();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('should scrub a secret that slipped into free text (a merge error message)', async () => {
    const config = loadConfig({
      LISTEN_PORT: '8080',
      STATSD_PORT: '0',
      METRICS_BASIC_AUTH_USERNAME: 'u',
      METRICS_BASIC_AUTH_PASSWORD: 's3cr3t-Pa55word',
      MERGE_TARGETS: 'http://127.0.0.1:1/m',
    });
    const sidecar = createSidecar(config, silentLogger);
    sidecar.status.onMergeFetch({ target: 'http://127.0.0.1:1/m', ok: false, seconds: 0.1, error: 'upstream said s3cr3t-Pa55word' });
    const json = sidecar.status.json();
    await sidecar.stop();
    expect(json).not.toContain('s3cr3t-Pa55word');
    expect(JSON.parse(json).sources.merge[0].last_error).toBe('upstream said <redacted>');
  });
});
