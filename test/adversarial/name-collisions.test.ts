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
import { freePort, request } from '../helpers/net';
import { spawnSidecar, type Child, killAll } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { find, parseExposition, value } from '../helpers/exposition';
import { alive, eventually, promtool, scrape, sendTcp } from '../helpers/attack';
import { exposition, startMergeTarget, type MergeTarget } from '../helpers/merge-target';

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
let target: MergeTarget;
const children: Child[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
  target = await startMergeTarget(exposition(TARGET_BODY));
});

afterAll(async () => {
  await killAll(children);
  await upstream?.close();
  await target?.close();
});

/** A sidecar fed by one source, after one real request (so its own RED families have a series to collide with). */
async function sidecar(env: Record<string, string>): Promise<Child> {
  const c = await spawnSidecar({ UPSTREAM_URL: upstream.url, ...env });
  children.push(c);
  expect((await request(c.mainPort, '/hello')).status).toBe(200);
  return c;
}

/** What must hold whatever the source: the sidecar's histogram and counters carry only its own samples. */
function ownFamiliesIntact(text: string): Record<string, unknown> {
  const p = parseExposition(text);
  return {
    // The one request, and nothing a source added under the histogram's sample names.
    countSum: value(p, 'flask_http_request_duration_seconds_count'),
    countSamples: find(p, 'flask_http_request_duration_seconds_count').length,
    sumSamples: find(p, 'flask_http_request_duration_seconds_sum').length,
    infBucketSum: value(p, 'flask_http_request_duration_seconds_bucket', { le: '+Inf' }),
    requests: value(p, 'flask_http_request_total'),
    exceptions: value(p, 'flask_http_request_exceptions_total'),
    claimed: [
      ...find(p, 'flask_http_request_total_created'),
      ...find(p, 'metrics_sidecar_info_info'),
      ...find(p, 'metrics_sidecar_scrapes_total_created'),
      ...find(p, 'up'),
    ].map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`),
    promtool: promtool(text),
  };
}

const INTACT = { countSum: 1, countSamples: 1, sumSamples: 1, infBucketSum: 1, requests: 1, exceptions: 0, claimed: [], promtool: { ok: true, output: '' } };

describe('finding 6: suffix-aware collisions and duplicate series', () => {
  it("a merge target cannot claim the sidecar's sample names, and its duplicate series is dropped and counted", async () => {
    const c = await sidecar({ MERGE_TARGETS: target.url() });
    const s = await scrape(c.metricsPort);
    expect(s.status).toBe(200);
    const p = parseExposition(s.text);
    expect({
      ...ownFamiliesIntact(s.text),
      jobsA: find(p, 'app_jobs_total', { queue: 'a' }).length,
      jobsB: find(p, 'app_jobs_total', { queue: 'b' }).length,
      duplicateCounted: value(p, 'metrics_sidecar_merge_families_dropped_total', { reason: 'duplicate_series' }) >= 1,
    }).toEqual({ ...INTACT, jobsA: 1, jobsB: 1, duplicateCounted: true });
  });

  it("StatsD lines cannot claim the sidecar's sample names: each is refused and counted", async () => {
    const statsdPort = await freePort();
    const c = await sidecar({ STATSD_PORT: String(statsdPort) });
    await sendTcp(statsdPort, [STATSD_LINES.map((l) => `${l}\n`).join('')]);
    let text = '';
    const counted = await eventually(async () => {
      const s = await scrape(c.metricsPort);
      text = s.text;
      return s.status === 200 && value(parseExposition(s.text), 'metrics_sidecar_statsd_lines_total') >= STATSD_LINES.length;
    }, c);
    expect(alive(c)).toBe(true);
    expect(counted).toBe(true);
    const p = parseExposition(text);
    const all = value(p, 'metrics_sidecar_statsd_lines_total');
    expect({ ...ownFamiliesIntact(text), statsdRefused: all - value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' }) }).toEqual({
      ...INTACT,
      statsdRefused: STATSD_LINES.length,
    });
  });
});
