/**
 * The metric contract in code (src/metrics/contract.ts) is the one list of what the sidecar
 * exports: every family a fully configured sidecar exposes is declared there, with its type, and
 * docs/metrics.md's metric table names exactly the declared families (prom-client's runtime families
 * are one row there).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { MAINTAINED_FAMILIES, redFamilies, SIDECAR_FAMILIES } from '../../src/metrics/contract';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';
import { freePort, request, sendDatagram } from '../helpers/net';
import { parseExposition } from '../helpers/exposition';

const declared = new Map([...SIDECAR_FAMILIES, ...redFamilies('flask_http_request'), ...MAINTAINED_FAMILIES].map((f) => [f.name, f.type]));
/** prom-client's families (collectDefaultMetrics): one row of docs/metrics.md covers them. */
const runtime = SIDECAR_FAMILIES.filter((f) => f.source === 'sidecar (prom-client)').map((f) => f.name);

describe('the metric contract', () => {
  it('should declare, with its type, every family a fully configured sidecar exposes', async () => {
    const upstream = await startUpstream();
    const target = http.createServer((_req, res) => res.end('# TYPE app_jobs_total counter\napp_jobs_total 1\n'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const statsdPort = await freePort();
    const sc = await startSidecar({
      UPSTREAM_URL: upstream.url,
      UPSTREAM_HEALTH_PATH: '/hello',
      MERGE_TARGETS: `http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics`,
      STATSD_PORT: String(statsdPort),
      METRICS_ALLOWED_CIDRS: '127.0.0.0/8,::1',
    });
    try {
      await request(sc.mainPort, '/hello');
      await request(sc.mainPort, '/%2e%2e/x'); // a client error
      await sendDatagram(statsdPort, 'github_api_call_latency:12|ms|#endpoint:repos,status:200');
      let text = '';
      for (let i = 0; i < 200 && !text.includes('github_api_call_latency_count'); i++) {
        text = (await request(sc.metricsPort, '/debug/metrics')).text;
        if (!text.includes('github_api_call_latency_count')) await new Promise((r) => setTimeout(r, 20));
      }
      const exposed = [...parseExposition(text).types].filter(([name]) => name !== 'app_jobs_total');
      expect(exposed.length).toBeGreaterThan(20);
      expect(exposed.filter(([name, type]) => declared.get(name) !== type)).toEqual([]);
    } finally {
      await sc.stop();
      await upstream.close();
      await new Promise((r) => target.close(r));
    }
  });

  it("should be what docs/metrics.md's metric table lists", () => {
    const page = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const section = page.slice(page.indexOf('# Metric contract'), page.indexOf('\n## ', page.indexOf('# Metric contract') + 5));
    const rows = [...section.matchAll(/^\| `([a-z_:*]+)`/gm)].map((m) => m[1]);
    const listed = rows.filter((r) => !r.includes('*'));
    expect(rows.some((r) => r.startsWith('metrics_sidecar_process_*'))).toBe(true); // the runtime row
    expect([...listed].sort()).toEqual([...declared.keys()].filter((n) => !runtime.includes(n)).sort());
  });
});
