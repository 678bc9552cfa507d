/**
 * Issue 9, finding 6: name collisions through suffixes, and duplicate series inside one target.
 *
 * A merged target (the app's own /metrics, a real HTTP server here) and StatsD lines claim the
 * sample names of the sidecar's own families (`flask_http_request_duration_seconds_count`,
 * `_sum`, `_bucket`, `flask_http_request_total_created`, `up`...), and the target repeats a
 * series. Required (DESIGN.md): reserved names and all their suffixed spellings cannot be claimed,
 * so the sidecar's own histogram keeps exactly its own samples and promtool accepts the
 * exposition; duplicate series inside a target are dropped and counted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, request } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { find, parseExposition, value } from '../helpers/exposition';
import { alive, eventually, promtool, scrape, sendTcp } from '../helpers/attack';

jest.setTimeout(60_000);

const TARGET_BODY = [
  '# HELP flask_http_request_duration_seconds_count Claims the sample name of the sidecar histogram.',
  '# TYPE flask_http_request_duration_seconds_count counter',
  'flask_http_request_duration_seconds_count{method="GET",path="/hello",status="200"} 500',
  '# HELP flask_http_request_duration_seconds_sum Claims the _sum.',
  '# TYPE flask_http_request_duration_seconds_sum gauge',
  'flask_http_request_duration_seconds_sum{method="GET",path="/hello",status="200"} 99',
  '# HELP flask_http_request_duration_seconds_bucket Claims the _bucket.',
  '# TYPE flask_http_request_duration_seconds_bucket untyped',
  'flask_http_request_duration_seconds_bucket{method="GET",path="/hello",status="200",le="+Inf"} 500',
  '# HELP flask_http_request_total_created Claims the _created of the request counter.',
  '# TYPE flask_http_request_total_created gauge',
  'flask_http_request_total_created{method="GET",status="200"} 1',
  '# HELP flask_http_request_exceptions Claims the exceptions counter without its _total.',
  '# TYPE flask_http_request_exceptions counter',
  'flask_http_request_exceptions_total{method="GET",status="500"} 1000',
  '# HELP metrics_sidecar_info_info Claims an _info spelling of a sidecar family.',
  '# TYPE metrics_sidecar_info_info gauge',
  'metrics_sidecar_info_info 1',
  '# HELP up Claims up.',
  '# TYPE up gauge',
  'up 0',
  '# HELP app_jobs_total Jobs done, with one series repeated.',
  '# TYPE app_jobs_total counter',
  'app_jobs_total{queue="a"} 1',
  'app_jobs_total{queue="b"} 2',
  'app_jobs_total{queue="a"} 3',
  '',
].join('\n');

const STATSD_LINES = [
  'flask_http_request_duration_seconds_count:1|c',
  'flask_http_request_duration_seconds_sum:1|g',
  'flask_http_request_duration_seconds_bucket:1|ms',
  'flask_http_request_total_created:1|g',
  'flask_http_request_total:1|c',
  'flask_http_request_exceptions:7|c',
  'metrics_sidecar_scrapes_total_created:1|g',
  'up:0|g',
];

let upstream: Upstream;
let target: http.Server;
let sc: Child;
let statsdPort: number;

beforeAll(async () => {
  upstream = await startUpstream();
  target = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(TARGET_BODY));
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  statsdPort = await freePort();
  sc = await spawnSidecar({
    UPSTREAM_URL: upstream.url,
    STATSD_PORT: String(statsdPort),
    MERGE_TARGETS: `http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics`,
  });
});

afterAll(async () => {
  sc?.proc.kill('SIGKILL');
  await sc?.exited;
  await upstream?.close();
  await new Promise((r) => target?.close(r));
});

describe('finding 6: suffix-aware collisions and duplicate series', () => {
  it('should keep the sidecar histogram its own, refuse every claimed spelling, drop the duplicate, and pass promtool', async () => {
    // One real request, so the sidecar's own RED families have a series to collide with.
    expect((await request(sc.mainPort, '/hello')).status).toBe(200);
    await sendTcp(statsdPort, [STATSD_LINES.map((l) => `${l}\n`).join('')]);
    let text = '';
    const counted = await eventually(async () => {
      const s = await scrape(sc.metricsPort);
      text = s.text;
      return s.status === 200 && value(parseExposition(s.text), 'metrics_sidecar_statsd_lines_total') >= STATSD_LINES.length;
    }, sc);
    expect(alive(sc)).toBe(true);
    expect(counted).toBe(true);
    const p = parseExposition(text);
    const ownSamples = (suffix: string): string[] =>
      find(p, `flask_http_request_duration_seconds${suffix}`).map((s) => `${JSON.stringify(s.labels)} ${s.value}`);
    expect({
      // The one request, and nothing a source added under the histogram's sample names.
      count: value(p, 'flask_http_request_duration_seconds_count'),
      infBuckets: find(p, 'flask_http_request_duration_seconds_bucket', { le: '+Inf' }).map((s) => s.value),
      claimedSamples: [
        ...ownSamples('_count').filter((s) => !s.includes('"path"')),
        ...ownSamples('_sum').filter((s) => !s.includes('"path"')),
        ...find(p, 'flask_http_request_total_created').map((s) => s.value),
        ...find(p, 'metrics_sidecar_info_info').map((s) => s.value),
        ...find(p, 'metrics_sidecar_scrapes_total_created').map((s) => s.value),
        ...find(p, 'up').map((s) => s.value),
      ],
      exceptions: value(p, 'flask_http_request_exceptions_total'),
      requests: value(p, 'flask_http_request_total'),
      jobsA: find(p, 'app_jobs_total', { queue: 'a' }).length,
      jobsB: find(p, 'app_jobs_total', { queue: 'b' }).length,
      duplicateCounted: value(p, 'metrics_sidecar_merge_families_dropped_total', { reason: 'duplicate_series' }) >= 1,
      statsdRefused: value(p, 'metrics_sidecar_statsd_lines_total') - value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' }),
    }).toEqual({
      count: 1,
      infBuckets: [1],
      claimedSamples: [],
      exceptions: 0,
      requests: 1,
      jobsA: 1,
      jobsB: 1,
      duplicateCounted: true,
      statsdRefused: STATSD_LINES.length,
    });
    expect(promtool(text)).toEqual({ ok: true, output: '' });
  });
});
