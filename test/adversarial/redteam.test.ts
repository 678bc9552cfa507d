/**
 * Red-team pass over the hardened sidecar (issue 9): what an attacker found after the fixes, each
 * against `node dist/main.js` on real sockets.
 *
 * 1. gunicorn (default config) believes a `SCRIPT_NAME` request header from 127.0.0.1 — its
 *    `forwarder_headers` default is `SCRIPT_NAME,PATH_INFO` and `forwarded_allow_ips` is loopback,
 *    which is where the sidecar connects from. `GET /x/debug/p` with `SCRIPT_NAME: /x` is not
 *    reserved for the sidecar (its canonical path is `/x/debug/p`), but gunicorn strips the prefix
 *    and Flask routes `PATH_INFO=/debug/p` to the app's own /debug/ tree. What is checked must be
 *    what the app reads: headers with `_` in their name are dropped before forwarding (nginx's
 *    `underscores_in_headers off`), so no WSGI server can map one onto SCRIPT_NAME, PATH_INFO or a
 *    dashed header's CGI name.
 * 2. A StatsD value made of a long run of digits followed by a non-digit made the number check
 *    backtrack quadratically: one 60 KB UDP datagram held the event loop (and so the main port)
 *    for about 4 s; a burst of them, for minutes.
 * 3. The same pattern in the merge parser's sample value: one long line in the app's /metrics
 *    (4 MiB allowed by default) held the loop for hours.
 * For 2 and 3 the attack is sized so that the quadratic check could not finish within the test's
 * timeout, while a linear one takes milliseconds: the assertions are about answers arriving and
 * the refusal being counted, not about time.
 */
import http from 'node:http';
import { freePort, rawRequest, request, statusOf } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { startFlask, DEBUG_MARKER, type Flask } from '../helpers/gunicorn';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { parseExposition, value } from '../helpers/exposition';
import { alive, deathNote, eventually, promtool, scrape, sendTcp, sendUdp } from '../helpers/attack';
import { exposition, startMergeRig, type MergeRig } from '../helpers/merge-target';

jest.setTimeout(180_000);

describe('finding: a SCRIPT_NAME header moves the app into its /debug/ tree', () => {
  let app: Flask;
  let sc: Child;

  beforeAll(async () => {
    app = await startFlask({ workers: 1 });
    sc = await spawnSidecar({ UPSTREAM_URL: app.url, LOG_LEVEL: 'info' });
  });

  afterAll(async () => {
    sc?.proc.kill('SIGKILL');
    await sc?.exited;
    await app?.stop();
  });

  it('control: without the header the prefixed path is an ordinary app route (not the debug tree)', async () => {
    const r = await request(sc.mainPort, '/x/debug/secret', { headers: { 'x-attack-id': 'control' } });
    expect(r.text).not.toContain(DEBUG_MARKER);
    expect(app.saw().filter((s) => s.attack_id === 'control')).toHaveLength(1);
  });

  it('should never let gunicorn strip a client-chosen SCRIPT_NAME off the path into /debug/, plain or as an upgrade', async () => {
    const attacks: [string, string][] = [
      ['SCRIPT_NAME', `GET /x/debug/secret HTTP/1.1\r\nHost: app\r\nSCRIPT_NAME: /x\r\nX-Attack-Id: sn-plain\r\nConnection: close\r\n\r\n`],
      ['script_name lower case', `GET /x/debug/secret HTTP/1.1\r\nHost: app\r\nscript_name: /x\r\nX-Attack-Id: sn-lower\r\nConnection: close\r\n\r\n`],
      [
        'SCRIPT_NAME twice',
        `GET /x/debug/secret HTTP/1.1\r\nHost: app\r\nSCRIPT_NAME: /y\r\nSCRIPT_NAME: /x\r\nX-Attack-Id: sn-twice\r\nConnection: close\r\n\r\n`,
      ],
      [
        'SCRIPT_NAME, POST with a body',
        `POST /x/debug/secret HTTP/1.1\r\nHost: app\r\nSCRIPT_NAME: /x\r\nX-Attack-Id: sn-post\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`,
      ],
      [
        'SCRIPT_NAME on a websocket upgrade',
        `GET /x/debug/secret HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSCRIPT_NAME: /x\r\nX-Attack-Id: sn-ws\r\n\r\n`,
      ],
      [
        'SCRIPT_NAME on h2c (replayed as plain)',
        `GET /x/debug/secret HTTP/1.1\r\nHost: app\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSCRIPT_NAME: /x\r\nX-Attack-Id: sn-h2c\r\nConnection: close\r\n\r\n`,
      ],
    ];
    const leaks: string[] = [];
    for (const [name, bytes] of attacks) {
      const raw = await rawRequest(sc.mainPort, bytes);
      if (raw.includes(DEBUG_MARKER)) leaks.push(`${name}: answered ${statusOf(raw)} by the app's debug tree`);
    }
    const reached = app
      .saw()
      .filter((s) => s.attack_id?.startsWith('sn-') === true && (s.endpoint === 'debug' || s.path_info?.startsWith('/debug') === true))
      .map((s) => `${s.attack_id}: app routed PATH_INFO=${s.path_info} to ${s.endpoint}`);
    expect(alive(sc)).toBe(true);
    expect({ leaks, reached }).toEqual({ leaks: [], reached: [] });
  });

  it('should refuse (400) a WebSocket upgrade that announces a body, never leaving the app waiting for bytes', async () => {
    const attacks = [
      `GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\nX-Attack-Id: up-body-cl\r\n\r\nhello`,
      `GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\nX-Attack-Id: up-body-te\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ];
    const statuses: number[] = [];
    for (const bytes of attacks) statuses.push(statusOf(await rawRequest(sc.mainPort, bytes)));
    expect(statuses).toEqual([400, 400]);
    expect(app.saw().filter((s) => s.attack_id?.startsWith('up-body-') === true)).toEqual([]);
    expect(alive(sc)).toBe(true);
  });

  it('control: dashed headers still reach the app', async () => {
    const r = await request(sc.mainPort, '/hello', { headers: { 'x-attack-id': 'dashed', 'x-custom-thing': '1' } });
    expect(r.status).toBe(200);
    expect(app.saw().filter((s) => s.attack_id === 'dashed')).toHaveLength(1);
  });
});

describe('finding: a long digit run in a StatsD value blocks the event loop (quadratic number check)', () => {
  let upstream: Upstream;
  let sc: Child;
  let statsdPort: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    statsdPort = await freePort();
    sc = await spawnSidecar({ UPSTREAM_URL: upstream.url, STATSD_PORT: String(statsdPort), LOG_LEVEL: 'info' });
  });

  afterAll(async () => {
    sc?.proc.kill('SIGKILL');
    await sc?.exited;
    await upstream?.close();
  });

  it('should refuse 60 KB near-numbers as malformed and keep answering (gauges, timers, sample rates)', async () => {
    const digits = '1'.repeat(60_000);
    // Each cost ~4 s of blocked event loop with the backtracking pattern: 100 of them, ~7 minutes.
    const kinds = [`g:${digits}x|g`, `t:${digits}x|ms`, `c:1|c|@${digits}x`, `e:${digits}e${'1'.repeat(2000)}x|g`];
    await sendUdp(statsdPort, kinds);
    // Then over TCP: nothing is dropped on the way, so every one of them reaches the parser.
    await sendTcp(statsdPort, [...Array.from({ length: 100 }, (_, i) => `${kinds[i % kinds.length]}\n`), 'redteam_marker_total:1|c\n']);
    const counted = await eventually(async () => {
      const s = await scrape(sc.metricsPort);
      return s.status === 200 && s.text.includes('redteam_marker_total');
    }, sc);
    expect(counted ? 'marker line stored' : deathNote(sc)).toBe('marker line stored');
    const s = await scrape(sc.metricsPort);
    const p = parseExposition(s.text);
    expect(value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'malformed' })).toBeGreaterThanOrEqual(100);
    expect(value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' })).toBeGreaterThan(0);
    expect((await request(sc.mainPort, '/hello')).status).toBe(200);
    expect(promtool(s.text)).toEqual({ ok: true, output: expect.any(String) });
  });
});

describe('finding: a long digit run in a merged sample value blocks the event loop (quadratic value check)', () => {
  let rig: MergeRig;
  let sc: Child;

  beforeAll(async () => {
    // 1 MB of digits then a letter: ~10 minutes of backtracking with the old pattern, microseconds now.
    // The same run as a sample value, a histogram's `le` and a summary's `quantile` (read as numbers too).
    const digits = '1'.repeat(1_000_000);
    const bodies: Record<string, string> = {
      '/value': `# TYPE app_ok gauge\napp_ok 1\napp_evil ${digits}x\n`,
      '/le': `# TYPE app_h histogram\napp_h_bucket{le="${digits}x"} 1\n`,
      '/quantile': `# TYPE app_s summary\napp_s{quantile="${digits}x"} 1\n`,
    };
    rig = await startMergeRig(exposition(bodies), {}, Object.keys(bodies));
    sc = rig.sc;
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('should refuse the targets as unparseable, answer the scrape and keep forwarding', async () => {
    const s = await scrape(sc.metricsPort);
    expect(s.status === 200 ? 'scrape answered' : deathNote(sc)).toBe('scrape answered');
    const p = parseExposition(s.text);
    expect(p.samples.filter((x) => x.name === 'metrics_sidecar_merge_up').map((x) => x.value)).toEqual([0, 0, 0]);
    expect((await request(sc.mainPort, '/hello')).status).toBe(200);
    expect(promtool(s.text)).toEqual({ ok: true, output: expect.any(String) });
  });
});

/**
 * 4. The merge parser checked each label name against the line's earlier ones with an array
 *    scan: one line with k labels cost k²/2 comparisons (40,000 labels in 390 KB: 2.7 s; the
 *    4 MiB a target may send by default: minutes), all on the event loop.
 */
describe('finding: a merged line with very many labels blocks the event loop (quadratic duplicate check)', () => {
  let rig: MergeRig;
  let sc: Child;

  beforeAll(async () => {
    // ~370k labels in 4 MB: ~4 minutes of comparisons with the old check.
    const labels = Array.from({ length: 370_000 }, (_, i) => `a${i}=""`).join(',');
    const body = `# HELP app_ok Always 1.\n# TYPE app_ok gauge\napp_ok 1\napp_wide{${labels}} 1\n`;
    rig = await startMergeRig(exposition(body), { MERGE_MAX_BYTES: String(8 * 1024 * 1024) });
    sc = rig.sc;
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('should drop the over-wide series (counted), merge the rest and answer the scrape', async () => {
    const s = await scrape(sc.metricsPort);
    expect(s.status === 200 ? 'scrape answered' : deathNote(sc)).toBe('scrape answered');
    const p = parseExposition(s.text);
    expect(p.samples.filter((x) => x.name === 'metrics_sidecar_merge_up').map((x) => x.value)).toEqual([1]);
    expect(value(p, 'app_ok')).toBe(1);
    expect(p.samples.some((x) => x.name === 'app_wide' && Object.keys(x.labels).length > 100)).toBe(false);
    expect(value(p, 'metrics_sidecar_merge_families_dropped_total', { reason: 'label_limit' })).toBe(1);
    expect((await request(sc.mainPort, '/hello')).status).toBe(200);
    expect(promtool(s.text)).toEqual({ ok: true, output: expect.any(String) });
  });
});

/**
 * 5. Every scrape fetched, parsed and rendered every merge target on its own: 40 concurrent
 *    scrapes of a 4 MB target peaked at ~650 MB RSS (the chart's limit is 256Mi) and sent the app
 *    40 requests for its /metrics, from any client allowed on the metrics path (everyone, when no
 *    access control is configured). Scrapes arriving while a collection is in flight must share it.
 *    The target holds its answer until the scrapes are in: the old code asked it once per scrape.
 */
describe('finding: concurrent scrapes each fetch and parse every merge target', () => {
  const N = 20;
  let rig: MergeRig;
  let sc: Child;
  let asked = 0;
  let held: http.ServerResponse[] = [];
  let holding = true;
  const body = '# HELP app_cache_entries Entries.\n# TYPE app_cache_entries gauge\napp_cache_entries{shard="1"} 1\n';
  const answer = (res: http.ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
  };

  beforeAll(async () => {
    rig = await startMergeRig((_req, res) => {
      asked++;
      if (holding) held.push(res);
      else answer(res);
    });
    sc = rig.sc;
  });

  afterAll(async () => {
    await rig?.close();
  });

  it(`should ask the target far fewer than ${N} times for ${N} concurrent scrapes, and answer them all`, async () => {
    const scrapes = Array.from({ length: N }, () => scrape(sc.metricsPort));
    // Until every scrape can have reached the sidecar: the old code has then asked N times; a
    // proxied request answered after them, and a pause, leave the shared one every chance to.
    await eventually(() => asked >= 1, sc);
    await eventually(() => asked >= N, sc, 20, 50);
    expect((await request(sc.mainPort, '/hello')).status).toBe(200);
    holding = false;
    for (const res of held) answer(res);
    held = [];
    const done = await Promise.all(scrapes);
    expect(done.map((s) => s.status)).toEqual(Array(N).fill(200));
    expect(done.every((s) => s.text.includes('app_cache_entries{shard="1"} 1'))).toBe(true);
    expect(asked).toBeLessThanOrEqual(N / 2);
    expect(promtool(done[0].text)).toEqual({ ok: true, output: expect.any(String) });
  });
});

/**
 * 6. The merge budget comes from the client's `X-Prometheus-Scrape-Timeout-Seconds`, uncapped:
 *    past 2^31 ms Node's setTimeout fires after 1 ms (with a TimeoutOverflowWarning on stderr),
 *    so `X-Prometheus-Scrape-Timeout-Seconds: 1e9` failed every merge target at once (merge_up 0,
 *    the app's families missing) — and with shared collections, for every scrape sharing it.
 */
describe('finding: a huge scrape-timeout header fails every merge target at once', () => {
  let rig: MergeRig;
  let sc: Child;

  beforeAll(async () => {
    rig = await startMergeRig(exposition('# HELP app_ok Always 1.\n# TYPE app_ok gauge\napp_ok 1\n'));
    sc = rig.sc;
  });

  afterAll(async () => {
    await rig?.close();
  });

  it.each(['1e9', '3000000', 'Infinity'])('should still merge a prompt target with X-Prometheus-Scrape-Timeout-Seconds: %s', async (header) => {
    const r = await request(sc.metricsPort, '/debug/metrics', { headers: { 'x-prometheus-scrape-timeout-seconds': header } });
    expect(r.status).toBe(200);
    const p = parseExposition(r.text);
    expect({ up: value(p, 'metrics_sidecar_merge_up'), app_ok: value(p, 'app_ok') }).toEqual({ up: 1, app_ok: 1 });
  });
});
