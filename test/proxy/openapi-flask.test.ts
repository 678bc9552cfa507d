/**
 * Issue 22's "Done when": with ROUTE_OPENAPI_URL pointing at the Flask app's /openapi.json, 10,000
 * requests with distinct readable ids produce exactly one `path` value per OpenAPI operation they
 * hit. The app is test/adversarial/app.py under gunicorn (its /v1 API and its document); the
 * sidecar fetches the document from the app itself, as it would in a pod.
 */
import http from 'node:http';
import { startFlask, type Flask } from '../helpers/gunicorn';
import { request } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { parseExposition } from '../helpers/exposition';
import { letters, prng } from '../helpers/attack';

jest.setTimeout(240_000);

describe('OpenAPI templates from the Flask app', () => {
  let flask: Flask;
  let sc: Running;
  beforeAll(async () => {
    flask = await startFlask({ workers: 2 });
    sc = await startSidecar({ UPSTREAM_URL: flask.url, ROUTE_OPENAPI_URL: '/openapi.json', SERVE_PROMETHEUS_ENDPOINT: 'true', LOG_LEVEL: 'info' });
    await sc.untilLogged((l) => l.msg === 'OpenAPI document loaded');
  });
  afterAll(async () => {
    await sc?.stop();
    await flask?.stop();
  });

  it('should give 10,000 requests with distinct readable ids one path value per operation', async () => {
    const rand = prng(22);
    const seen = new Set<string>();
    const word = (): string => {
      for (;;) {
        const w = `${letters(4 + Math.floor(rand() * 5), rand)}-${letters(3 + Math.floor(rand() * 5), rand)}`;
        if (!seen.has(w)) {
          seen.add(w);
          return w;
        }
      }
    };
    // Each operation with parameters, and the literal one that shadows a parameter (/users/me).
    const kinds: [string, () => string][] = [
      ['/v1/users/:userName', () => `/v1/users/${word()}`],
      ['/v1/users/:userName/repos/:repoName', () => `/v1/users/${word()}/repos/${word()}`],
      ['/v1/tags/:tag', () => `/v1/tags/${word()}`],
      ['/v1/files/:name.:ext', () => `/v1/files/${word()}.${letters(3, rand)}`],
      ['/v1/users/me', () => '/v1/users/me'],
    ];
    const N = 10_000;
    const expected = new Map<string, number>();
    const targets: string[] = [];
    for (let i = 0; i < N; i++) {
      const [template, make] = kinds[i % kinds.length];
      targets.push(make());
      expected.set(template, (expected.get(template) ?? 0) + 1);
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let next = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < targets.length) {
          const t = targets[next++];
          const { status } = await request(sc.mainPort, t, { agent });
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
    agent.destroy();
    expect([...statuses]).toEqual([[200, N]]);

    const p = parseExposition((await request(sc.mainPort, '/debug/metrics')).text);
    const counts = new Map<string, number>();
    for (const s of p.samples.filter((x) => x.name === 'flask_http_request_duration_seconds_count')) {
      counts.set(s.labels.path, (counts.get(s.labels.path) ?? 0) + s.value);
    }
    expect(counts).toEqual(expected);
    // The operations' templates, in the app's own names, never the heuristics' or the learned caps'.
    expect(p.samples.some((s) => s.name === 'metrics_sidecar_route_positions_learned_total' && s.value > 0)).toBe(false);
  });
});
