/**
 * Merging an application's own endpoint: a prom-client app in its own process, reached over real
 * HTTP at scrape time, with healthy, OpenMetrics, down, never-answering, garbage, oversize and
 * conflicting targets in one scrape.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, request } from '../helpers/net';
import { startSidecar, type Running } from '../helpers/sidecar';
import { find, parseExposition, value, type Parsed } from '../helpers/exposition';
import { parseExposition as parseSource } from '../../src/ingest/merge/parse';
import { MERGE_ACCEPT } from '../../src/ingest/merge/merger';
import { PROTOBUF_CONTENT_TYPE } from '../../src/exposition/negotiate';
import { startMergeTarget } from '../helpers/merge-target';
import { startUpstream } from '../helpers/upstream';

describe('MERGE_TARGETS', () => {
  let app: ChildProcess;
  let appPort: number;
  let sc: Running;
  let text: string;
  let parsed: Parsed;
  /** Resolves once the slow target has seen the merger hang up on it `n` times. */
  const slowClosed: (() => void)[] = [];
  let slowHangUps = 0;
  const hungUp = (n: number) => new Promise<void>((r) => (slowHangUps >= n ? r() : slowClosed.push(r)));
  const target = (p: string) => `http://127.0.0.1:${appPort}${p}`;

  beforeAll(async () => {
    appPort = await freePort();
    app = spawn(process.execPath, [path.join(__dirname, '..', 'fixtures', 'prom-app.js')], {
      env: { ...process.env, PORT: String(appPort) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => app.stdout!.once('data', () => resolve()));
    app.stdout!.on('data', (c: Buffer) => {
      slowHangUps += c.toString().split('slow closed\n').length - 1;
      for (const r of slowClosed.splice(0)) r();
    });
    const downPort = await freePort();
    sc = await startSidecar({
      LISTEN_PORT: '0',
      MERGE_MAX_BYTES: String(1024 * 1024),
      MERGE_TARGETS: [
        target('/metrics'),
        target('/metrics-om'),
        `http://127.0.0.1:${downPort}/metrics`,
        target('/slow'),
        target('/garbage'),
        target('/huge'),
        target('/conflict'),
      ].join(','),
    });
    text = (await request(sc.metricsPort, '/debug/metrics', { headers: { 'x-prometheus-scrape-timeout-seconds': '1.5' } })).text;
    parsed = parseExposition(text);
  });
  afterAll(async () => {
    await sc.stop();
    const exited = new Promise((r) => app.once('exit', r));
    app.kill();
    await exited;
  });

  it('should report each target up or down', () => {
    const up = (p: string) => find(parsed, 'metrics_sidecar_merge_up', { target: p })[0]?.value;
    expect(up(target('/metrics'))).toBe(1);
    expect(up(target('/metrics-om'))).toBe(1);
    expect(up(target('/conflict'))).toBe(1);
    for (const bad of ['/slow', '/garbage', '/huge']) expect(up(target(bad))).toBe(0);
    expect(find(parsed, 'metrics_sidecar_merge_up').filter((s) => s.value === 0)).toHaveLength(4);
    expect(find(parsed, 'metrics_sidecar_merge_duration_seconds')).toHaveLength(7);
  });

  it('should answer the scrape without a target that never answers, having hung up on it at the end of the budget', async () => {
    // The scrape above was answered although /slow never answers: the merger gave up on it ...
    expect(find(parsed, 'metrics_sidecar_merge_up', { target: target('/slow') })[0]?.value).toBe(0);
    // ... and closed its connection rather than leave it open ...
    await hungUp(1);
    // ... after waiting for most of the scrape's budget (1.5 s less a margin), not giving up early.
    expect(find(parsed, 'metrics_sidecar_merge_duration_seconds', { target: target('/slow') })[0]?.value).toBeGreaterThanOrEqual(0.9);
  });

  it('should merge the healthy text target with its types', () => {
    expect(parsed.types.get('app_jobs_total')).toBe('counter');
    expect(find(parsed, 'app_jobs_total', { queue: 'mail' })[0]?.value).toBe(7);
    expect(parsed.types.get('app_job_seconds')).toBe('histogram');
    expect(find(parsed, 'app_job_seconds_bucket', { le: '+Inf' })[0]?.value).toBe(2);
    expect(find(parsed, 'app_queue_depth')[0]?.value).toBe(3);
  });

  it('should merge an OpenMetrics target, normalised to the text format', () => {
    expect(parsed.types.get('om_events_total')).toBe('counter');
    expect(find(parsed, 'om_events_total', { kind: 'push' })[0]?.value).toBe(2);
    expect(find(parsed, 'om_temp_celsius')[0]?.value).toBe(21.5);
    expect(text).not.toContain('# EOF');
  });

  it("should drop a type conflict and a name of the sidecar's own from that source, and count both", () => {
    expect(find(parsed, 'app_jobs_total')).toHaveLength(1);
    expect(find(parsed, 'flask_http_request_total')).toEqual([]);
    expect(find(parsed, 'conflict_ok')[0]?.value).toBe(5);
    const dropped = (reason: string) => value(parsed, 'metrics_sidecar_merge_families_dropped_total', { target: target('/conflict'), reason });
    expect(dropped('type_conflict')).toBe(1);
    expect(dropped('name_collision')).toBe(1);
  });

  it('should pass promtool check metrics', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('should serve the merged families in OpenMetrics too', async () => {
    const om = (
      await request(sc.metricsPort, '/debug/metrics', {
        headers: { accept: 'application/openmetrics-text; version=1.0.0', 'x-prometheus-scrape-timeout-seconds': '1.5' },
      })
    ).text;
    expect(om).toContain('# TYPE app_jobs counter\n');
    expect(om).toMatch(/^app_jobs_total\{queue="mail"\} 7$/m);
    expect(om.endsWith('# EOF\n')).toBe(true);
    expect(om.indexOf('# TYPE app_jobs counter')).toBeLessThan(om.indexOf('# EOF'));
  });
});

describe('merge parser', () => {
  it.each([
    ['a sample without a value', 'foo{a="1"}\n'],
    ['a bad label', 'foo{a=1} 1\n'],
    ['an unknown type', '# TYPE foo teapot\nfoo 1\n'],
    ['a bad name', '# TYPE 1foo gauge\n'],
    ['HTML', '<html></html>\n'],
    ['a TYPE line after the samples it types', 'foo 1\n# TYPE foo gauge\n'],
    ['a value that is not a number', 'foo one\n'],
  ])('should refuse %s', (_name, body) => {
    expect(() => parseSource(body)).toThrow();
  });

  it('should strip timestamps and exemplars and drop _created samples', () => {
    const { families } = parseSource('# TYPE c counter\nc_total 3 1700000000.5 # {trace="a"} 1\nc_created 1700000000\n# EOF\n');
    expect(families).toEqual([{ name: 'c_total', type: 'counter', help: undefined, samples: ['c_total 3'], keys: ['c_total'] }]);
  });

  it('should read HELP text unescaped (text and OpenMetrics escapes), and a blank one as none', () => {
    const { families } = parseSource(
      ['# HELP a say \\"hi\\"\\nnow \\\\ \\d', '# TYPE a gauge', 'a 1', '# HELP b  ', '# TYPE b gauge', 'b 1', '# HELP c plain', 'c 1', ''].join('\n'),
    );
    expect(families.map((f) => [f.name, f.help])).toEqual([
      ['a', 'say "hi"\nnow \\ \\d'],
      ['b', undefined],
      ['c', 'plain'],
    ]);
  });

  it('should set gaugehistogram families aside as unsupported', () => {
    expect(parseSource('# TYPE g gaugehistogram\ng_bucket{le="+Inf"} 1\ng_gcount 1\ng_gsum 1\n').unsupported).toEqual(['g']);
  });
});

describe('merge targets and protobuf (issue 20, item 5)', () => {
  it('should ask a target for text only whatever the scraper asked, and refuse a protobuf answer: marked down and counted, nothing of it served', async () => {
    const accepts: (string | undefined)[] = [];
    // An app that ignores Accept and answers protobuf (a MetricFamily `app_leak_total` in its bytes).
    const target = await startMergeTarget((req, res) => {
      accepts.push(req.headers.accept);
      res.writeHead(200, { 'content-type': 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited' });
      res.end(Buffer.from('150a0e6170705f6c65616b5f746f74616c18002203', 'hex'));
    });
    const upstream = await startUpstream();
    const sc = await startSidecar({ UPSTREAM_URL: upstream.url, MERGE_TARGETS: target.url(), SERVE_PROMETHEUS_ENDPOINT: 'true' });
    try {
      const proto =
        'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,*/*;q=0.1';
      const pb = await request(sc.metricsPort, '/debug/metrics', { headers: { accept: proto } });
      expect(pb.headers['content-type']).toBe(PROTOBUF_CONTENT_TYPE);
      const r = await request(sc.metricsPort, '/debug/metrics');
      expect(accepts).toEqual([MERGE_ACCEPT, MERGE_ACCEPT]);
      const p = parseExposition(r.text);
      expect(value(p, 'metrics_sidecar_merge_up', { target: target.url() })).toBe(0);
      expect(value(p, 'metrics_sidecar_merge_families_dropped_total', { target: target.url(), reason: 'unsupported' })).toBe(2);
      expect(r.text).not.toContain('app_leak');
      expect(pb.body.includes(Buffer.from('app_leak'))).toBe(false);
    } finally {
      await sc.stop();
      await upstream.close();
      await target.close();
    }
  });
});
