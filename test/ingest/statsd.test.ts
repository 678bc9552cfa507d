/**
 * StatsD ingestion over real sockets: the hot-shots client (UDP and TCP) and raw packets into a
 * running sidecar, read back through its exposition.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StatsD } from 'hot-shots';
import { freePort, request } from '../helpers/net';
import { startSidecar, type Env, type Running } from '../helpers/sidecar';
import { find, parseExposition, value, type Parsed } from '../helpers/exposition';
import { sendDatagram as sendUdp } from '../helpers/net';

const running: Running[] = [];
afterAll(async () => {
  for (const sc of running) await sc.stop();
});

async function sidecar(env: Env = {}): Promise<Running & { statsdPort: number }> {
  const statsdPort = await freePort();
  const sc = await startSidecar({ LISTEN_PORT: '0', STATSD_PORT: String(statsdPort), ...env });
  running.push(sc);
  return { ...sc, statsdPort };
}

async function scrape(sc: Running): Promise<Parsed & { text: string }> {
  const text = (await request(sc.metricsPort, '/debug/metrics')).text;
  return { ...parseExposition(text), text };
}

/** Scrapes until `ok` holds (UDP is asynchronous), `tries` times at most (~3 s by default). */
async function until(sc: Running, ok: (p: Parsed) => boolean, tries = 60): Promise<Parsed & { text: string }> {
  for (let i = 0; ; i++) {
    const p = await scrape(sc);
    if (ok(p) || i > tries) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lines = (p: Parsed, outcome: string) => value(p, 'metrics_sidecar_statsd_lines_total', { outcome });

describe('StatsD with a real client (hot-shots)', () => {
  it.each(['udp', 'tcp'] as const)('should ingest the maintained families over %s, timers in seconds', async (protocol) => {
    const sc = await sidecar({ ENABLE_DB_METRICS: 'true' });
    const client = new StatsD({ host: '127.0.0.1', port: sc.statsdPort, protocol, errorHandler: () => undefined });
    client.timing('github_api_call_latency', 250, { endpoint: '/repos/:owner/:repo', status: '200' });
    client.histogram('github_webhook_latency', 0.4, { event: 'push' });
    client.increment('graphql_requests', 3, { operation: 'viewer' });
    client.timing('sqlalchemy_query_latency', 12, { statement: 'SELECT' });
    client.gauge('queue_depth', 7, { queue: 'default' });
    client.distribution('payload_bytes', 512);
    await new Promise<void>((r) => client.close(() => r()));

    const p = await until(sc, (x) => lines(x, 'accepted') >= 6);
    expect(p.types.get('github_api_call_latency')).toBe('histogram');
    expect(find(p, 'github_api_call_latency_sum', { endpoint: '/repos/:owner/:repo', status: '200' })[0]?.value).toBeCloseTo(0.25);
    expect(find(p, 'github_api_call_latency_bucket', { le: '0.25', status: '200' })[0]?.value).toBe(1);
    expect(find(p, 'github_webhook_latency_sum', { event: 'push' })[0]?.value).toBeCloseTo(0.4);
    expect(p.types.get('graphql_requests_total')).toBe('counter');
    expect(find(p, 'graphql_requests_total', { operation: 'viewer' })[0]?.value).toBe(3);
    expect(find(p, 'sqlalchemy_query_latency_seconds_sum', { statement: 'SELECT' })[0]?.value).toBeCloseTo(0.012);
    expect(find(p, 'queue_depth', { queue: 'default' })[0]?.value).toBe(7);
    expect(value(p, 'payload_bytes_count')).toBe(1);
    expect(lines(p, 'accepted')).toBe(6);
  });
});

describe('StatsD over raw UDP and TCP', () => {
  let sc: Running & { statsdPort: number };
  beforeAll(async () => {
    sc = await sidecar({ METRICS_MAX_SERIES_PER_FAMILY: '3' });
  });

  it('should take multi-line packets, sample rates, gauge deltas and multi-value timers', async () => {
    await sendUdp(
      sc.statsdPort,
      [
        'jobs:1|c|@0.1|#queue:mail',
        'jobs:2|c|#queue:mail',
        'temp:20|g',
        'temp:+5|g',
        'temp:-2|g',
        'render:100:200:300|ms|#page:home',
        'sampled_hist:1|h|@0.5',
      ].join('\n'),
    );
    const p = await until(sc, (x) => lines(x, 'accepted') >= 7);
    expect(find(p, 'jobs_total', { queue: 'mail' })[0]?.value).toBeCloseTo(12);
    expect(find(p, 'temp')[0]?.value).toBe(23);
    expect(find(p, 'render_count', { page: 'home' })[0]?.value).toBe(3);
    expect(find(p, 'render_sum', { page: 'home' })[0]?.value).toBeCloseTo(0.6);
    expect(find(p, 'sampled_hist_count')[0]?.value).toBe(2);
  });

  it('should read TCP lines split across writes, with CRLF endings', async () => {
    const before = lines(await scrape(sc), 'accepted');
    const s = net.connect(sc.statsdPort, '127.0.0.1');
    const closed = new Promise<void>((resolve, reject) => {
      s.on('error', reject);
      s.on('close', () => resolve());
    });
    s.write('tcp_hits:1|c\r\ntcp_');
    // The first line counted: the sidecar has read that write, so the rest arrives in another read.
    await until(sc, (x) => lines(x, 'accepted') >= before + 1);
    s.end('hits:2|c\n');
    await closed;
    const p = await until(sc, (x) => lines(x, 'accepted') >= before + 2);
    expect(find(p, 'tcp_hits_total')[0]?.value).toBe(3);
  });

  it('should drop an over-long TCP line as one malformed line and read on', async () => {
    const before = await scrape(sc);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(sc.statsdPort, '127.0.0.1', () => s.end(`${'x'.repeat(300 * 1024)}\nafter_long:1|c\n`));
      s.on('error', reject);
      s.on('close', () => resolve());
    });
    const p = await until(sc, (x) => find(x, 'after_long_total').length === 1);
    expect(lines(p, 'malformed') - lines(before, 'malformed')).toBe(1);
    expect(find(p, 'after_long_total')[0]?.value).toBe(1);
  });

  it('should count and drop malformed lines without losing the good ones in the same packet', async () => {
    const before = await scrape(sc);
    await sendUdp(sc.statsdPort, ['good_one:1|c', 'garbage', 'x:1|zz', 'y:abc|c', 'z:1|c|@7', 'good_two:1|c'].join('\n'));
    const p = await until(sc, (x) => lines(x, 'malformed') >= lines(before, 'malformed') + 4);
    expect(lines(p, 'malformed') - lines(before, 'malformed')).toBe(4);
    expect(find(p, 'good_one_total')[0]?.value).toBe(1);
    expect(find(p, 'good_two_total')[0]?.value).toBe(1);
  });

  it("should count a type conflict (x as a counter is x_total: one name), and refuse the sidecar's own families", async () => {
    await sendUdp(sc.statsdPort, ['mixed:1|c', 'mixed:1|g', 'flask_http_request_total:1|c', 'metrics_sidecar_info:5|g'].join('\n'));
    const p = await until(sc, (x) => lines(x, 'type_conflict') >= 3);
    expect(lines(p, 'type_conflict')).toBe(3);
    expect(find(p, 'metrics_sidecar_info')[0]?.value).toBe(1);
    expect(p.types.get('mixed_total')).toBe('counter');
  });

  it('should cap series per family, put the rest in one overflow series and count the drops', async () => {
    await sendUdp(sc.statsdPort, ['a', 'b', 'c', 'd', 'e'].map((t) => `capped:1|c|#k:${t}`).join('\n'));
    const p = await until(sc, (x) => value(x, 'metrics_sidecar_series_dropped_total', { family: 'capped_total' }) >= 2);
    expect(find(p, 'capped_total').filter((s) => s.labels.k !== undefined)).toHaveLength(3);
    expect(find(p, 'capped_total', { otel_metric_overflow: 'true' })).toEqual([{ name: 'capped_total', labels: { otel_metric_overflow: 'true' }, value: 2 }]);
    expect(value(p, 'capped_total')).toBe(5);
    expect(value(p, 'metrics_sidecar_series_dropped_total', { family: 'capped_total', reason: 'family_cap' })).toBe(2);
  });

  it('should keep the exposition valid for promtool', async () => {
    const { text } = await scrape(sc);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // promtool lints names too; the StatsD-made families here follow the rules it checks.
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('ENABLE_DB_METRICS', () => {
  it.each([
    ['false', 0, 1],
    ['true', 1, 0],
  ])('with %s the DB family is exposed %i times and dropped %i times', async (enabled, exposed, dropped) => {
    const sc = await sidecar({ ENABLE_DB_METRICS: enabled });
    await sendUdp(sc.statsdPort, 'sqlalchemy_query_latency:5|ms|#statement:SELECT\nother:1|c');
    const p = await until(sc, (x) => lines(x, 'accepted') >= 1 + exposed);
    expect(find(p, 'sqlalchemy_query_latency_seconds_count')).toHaveLength(exposed);
    expect(p.types.has('sqlalchemy_query_latency_seconds')).toBe(exposed === 1);
    expect(lines(p, 'dropped')).toBe(dropped);
  });
});

describe('STATSD_MAPPING_FILE', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-statsd-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('should apply rules: captures into name and labels, buckets, drop, TTL expiry', async () => {
    const file = path.join(tmp, 'mapping.yaml');
    fs.writeFileSync(
      file,
      [
        'mappings:',
        '  - match: "shop.*.checkout"',
        '    name: "shop_checkout_seconds"',
        '    labels: { region: "$1" }',
        '    buckets: [0.1, 1]',
        '  - match: "noisy.*"',
        '    action: drop',
        '    name: dropped',
        '  - match: "shortlived.*"',
        '    name: "shortlived_$1"',
        '    ttl: 1s',
      ].join('\n'),
    );
    const sc = await sidecar({ STATSD_MAPPING_FILE: file });
    await sendUdp(sc.statsdPort, ['shop.eu.checkout:250|ms', 'noisy.thing:1|c', 'shortlived.jobs:4|g'].join('\n'));
    let p = await until(sc, (x) => lines(x, 'accepted') >= 2 && lines(x, 'dropped') >= 1);
    expect(find(p, 'shop_checkout_seconds_bucket', { region: 'eu' }).map((s) => s.labels.le)).toEqual(['0.1', '1', '+Inf']);
    expect(find(p, 'shop_checkout_seconds_sum', { region: 'eu' })[0]?.value).toBeCloseTo(0.25);
    expect(p.types.has('noisy_thing_total')).toBe(false);
    expect(lines(p, 'dropped')).toBe(1);
    expect(find(p, 'shortlived_jobs')[0]?.value).toBe(4);

    // Idle past its 1 s TTL, the series disappears (the sweep runs every second): scraped until it
    // has, the test's timeout the bound.
    p = await until(sc, (x) => find(x, 'shortlived_jobs').length === 0, Infinity);
    expect(find(p, 'shortlived_jobs')).toEqual([]);
    expect(find(p, 'shop_checkout_seconds_count')).toHaveLength(1);
  }, 15000);

  it('should refuse to start with a broken mapping file, naming it', async () => {
    const file = path.join(tmp, 'broken.yaml');
    fs.writeFileSync(file, 'mappings:\n  - match: "a.*"\n    name: a_$1\n    buckets: [3, 1]\n');
    await expect(sidecar({ STATSD_MAPPING_FILE: file })).rejects.toThrow(
      /STATSD_MAPPING_FILE: ".*broken\.yaml": mappings\[0\] \(match "a\.\*"\): buckets must be/,
    );
  });
});
