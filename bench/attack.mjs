#!/usr/bin/env node
/**
 * npm run bench:attack: each attack class of issue 9 against the built sidecar, one fresh sidecar
 * per attack, and what it costs: lines/requests sent, peak RSS (VmHWM), exposition size, scrape
 * status, main-port status during and after, promtool's verdict on the exposition, and a check
 * specific to the attack (a leak count, a total that must add up). Peak RSS is compared with the
 * chart's default memory limit (values.yaml `sidecar.resources.limits.memory`, else 256Mi): PASS
 * when under it and the sidecar lived, MISS otherwise.
 *
 * The sidecar runs pinned to CPU 0 and is held to the memory limit as the container would be: killed
 * (SIGKILL) once its RSS passes the limit (checked every 50 ms), with Node's heap capped there as a
 * backstop: an attack that would need gigabytes ends as "died" instead of eating the machine.
 * BENCH_ATTACK_HEAP_CAP=0 lifts both (then peak RSS shows the whole appetite; mind the machine). The load, the stand-in app (Node,
 * answers 404 to what it does not route) and the merge targets share CPU 1. Every attack is
 * bounded in count; a run takes one to three minutes.
 *
 * Results: a table on stdout and bench/results/attack.json. A MISS is a result, not a failure.
 * Knobs: BENCH_ATTACK_HEAP_CAP (1), BENCH_ATTACK_ONLY (substring of attack names), BENCH_KEEP_TMP=1.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { beginRun, freePorts, runMain } from './lib/procs.mjs';
import { baseMeta, envBool, fmt, logger, pinSelf, preflight, table, writeResults, warningLines } from './lib/report.mjs';
import { startSidecar } from './lib/sidecar.mjs';
import { sampleValue } from './lib/http.mjs';
import {
  DOT_SPELLINGS,
  chunked,
  each,
  flood,
  get,
  holdTcp,
  letters,
  memoryLimit,
  prng,
  raw,
  rssOf,
  sendTcp,
  sendUdp,
  startApp,
  startBigTarget,
  take,
} from './lib/attacks.mjs';

const log = logger('attack');
const MiB = 1024 ** 2;
/** Scrapes bigger than this are counted, not kept (nor given to promtool). */
const KEEP_BYTES = 64 * MiB;

runMain('attack', main);

/** GETs the exposition; keeps the body up to KEEP_BYTES. Resolves {status, bytes, text|null, ms}. */
function scrape(port) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(
      { host: '127.0.0.1', port, path: '/debug/metrics', agent: false, timeout: 60_000, headers: { accept: 'text/plain;version=0.0.4' } },
      (res) => {
        const chunks = [];
        let bytes = 0;
        res.on('data', (c) => {
          bytes += c.length;
          if (bytes <= KEEP_BYTES) chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode, bytes, text: bytes <= KEEP_BYTES ? Buffer.concat(chunks).toString('utf8') : null, ms: performance.now() - t0 }),
        );
        res.on('error', () => resolve({ status: 0, bytes, text: null, ms: performance.now() - t0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, bytes: 0, text: null, ms: performance.now() - t0 }));
  });
}

function promtool(text) {
  if (text === null) return 'too big';
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status === 0) return 'ok';
  return `FAIL: ${`${r.stdout}${r.stderr}`
    .trim()
    .split('\n')[0]
    .replace(/^error while linting: text format parsing error in /, '')
    .slice(0, 40)}`;
}

const linesCounted = (text) =>
  ['accepted', 'malformed', 'dropped', 'type_conflict', 'limited'].reduce(
    (a, o) => a + (sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: o }) ?? 0),
    0,
  );

/** Polls the exposition until `ok(text)` holds, the sidecar dies, or 90 s pass; resolves with the last text (null if none). */
async function untilExposition(ctx, ok) {
  let text = null;
  for (let i = 0; i < 900 && !ctx.sc.proc.done; i++) {
    const s = await scrape(ctx.ports[1]);
    text = s.text;
    if (s.status !== 200 || text === null || ok(text)) break;
    await sleep(100);
  }
  return text;
}

/** Polls the exposition until `n` StatsD lines are counted, the sidecar dies, or 90 s pass. */
async function untilCounted(ctx, n) {
  for (let i = 0; i < 900 && !ctx.sc.proc.done; i++) {
    const s = await scrape(ctx.ports[1]);
    if (s.status !== 200 || s.text === null || linesCounted(s.text) >= n) return;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// The attacks: each returns {sent, check(text) → string}. `ctx` = {sc, ports: [main, metrics, statsd], app, env}.

const ATTACKS = [
  {
    name: 'http: 2,000 × 15 KB letter-only paths',
    async run(ctx) {
      const rand = prng(4);
      const statuses = await flood(
        ctx.ports[0],
        take(2000, () => `/${letters(15_000, rand)}`),
      );
      return {
        sent: '2,000 req',
        check: (text) => {
          if (text === null) return [false, `no exposition; app answered ${fmtStatuses(statuses)}`];
          const raw = /[a-z]{1000}/.test(text);
          return [!raw, `${raw ? 'raw paths in labels' : 'no raw path in labels'}; app answered ${fmtStatuses(statuses)}`];
        },
      };
    },
  },
  {
    name: 'http: 2,500 random-word paths, then a real route',
    async run(ctx) {
      const rand = prng(5);
      const words = ['admin', 'backup', 'config', 'wp', 'login', 'old', 'test', 'api', 'shell', 'env'];
      const word = () => `${words[Math.floor(rand() * words.length)]}${letters(4 + Math.floor(rand() * 6), rand)}`;
      await flood(
        ctx.ports[0],
        take(2500, () => `/${word()}/${word()}`),
      );
      await flood(
        ctx.ports[0],
        take(5, () => '/api/reports/summary'),
        1,
      );
      return {
        sent: '2,505 req',
        check: (text) => {
          if (text === null) return [false, 'no exposition'];
          const real = sampleValue(text, 'flask_http_request_duration_seconds_count', { path: '/api/reports/summary' }) ?? 0;
          const total = sampleValue(text, 'flask_http_request_total') ?? 0;
          const counted = sampleValue(text, 'flask_http_request_duration_seconds_count') ?? 0;
          return [real === 5 && counted === total, `real route ${real}/5; histogram counts ${counted}/${total} requests`];
        },
      };
    },
  },
  {
    name: `http: /debug/ via dot segments (${DOT_SPELLINGS.length} spellings × 20, + WebSocket)`,
    async run(ctx) {
      const reqs = [];
      for (let i = 0; i < 20; i++) for (const t of DOT_SPELLINGS) reqs.push(`GET ${t} HTTP/1.1\r\nHost: app\r\nX-Attack-Id: ${i}\r\nConnection: close\r\n\r\n`);
      for (const t of ['/debug/..', '/debug/%2e%2e']) {
        reqs.push(
          `GET ${t} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      }
      await each(reqs, 8, (r) => raw(ctx.ports[0], r, 1000));
      return { sent: `${reqs.length} req`, check: () => [ctx.app.seen.debug === 0, `app's /debug/ reached ${ctx.app.seen.debug}×`] };
    },
  },
  {
    name: 'http: Upgrade: h2c × 300',
    async run(ctx) {
      const req = 'GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
      await each(
        Array.from({ length: 300 }, () => req),
        8,
        (r) => raw(ctx.ports[0], r, 500),
      );
      return { sent: '300 req', check: () => [!ctx.app.seen.upgrades.h2c, `h2c switched by app ${ctx.app.seen.upgrades.h2c ?? 0}×`] };
    },
  },
  {
    name: 'http: OPTIONS *, GET *, two Host × 200 each',
    async run(ctx) {
      const kinds = [
        'OPTIONS * HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n',
        'GET * HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n',
        'GET /hello HTTP/1.1\r\nHost: app\r\nHost: other\r\nConnection: close\r\n\r\n',
      ];
      const statuses = {};
      await each(
        kinds.flatMap((k) => Array.from({ length: 200 }, () => k)),
        8,
        async (r) => {
          const s = await raw(ctx.ports[0], r, 1000);
          statuses[s] = (statuses[s] ?? 0) + 1;
        },
      );
      return {
        sent: '600 req',
        check: (text) => {
          const exceptions = text === null ? null : (sampleValue(text, 'flask_http_request_exceptions_total') ?? 0);
          const fourxx = Object.entries(statuses).every(([st]) => Number(st) >= 400 && Number(st) < 500);
          return [fourxx && exceptions === 0, `client got ${fmtStatuses(statuses)}; exceptions ${exceptions ?? '?'}`];
        },
      };
    },
  },
  {
    name: 'http: 2,000 reset-password tokens in paths',
    async run(ctx) {
      const tokens = Array.from({ length: 2000 }, () => crypto.randomBytes(16).toString('base64url'));
      await flood(
        ctx.ports[0],
        tokens.map((t) => `/reset-password/${t}`),
      );
      return {
        sent: '2,000 req',
        check: (text) => {
          if (text === null) return [false, 'no exposition'];
          const leaked = tokens.filter((t) => text.includes(t)).length;
          return [leaked === 0, `tokens in exposition ${leaked}`];
        },
      };
    },
  },
  {
    name: 'statsd: wrong-type lines for maintained names',
    env: { ENABLE_DB_METRICS: 'true' },
    async run(ctx) {
      await sendUdp(ctx.ports[2], 'github_api_call_latency:1|c');
      await sendTcp(ctx.ports[2], ['github_webhook_latency:1|c\nsqlalchemy_query_latency:1|c\ngraphql_requests:5|ms\n']);
      await untilCounted(ctx, 4);
      return { sent: '4 lines', check: countedCheck(4) };
    },
  },
  {
    name: 'statsd: 2,000 timers × 2,500 tags',
    async run(ctx) {
      const tags = Array.from({ length: 2499 }, (_, j) => `tag${j}:value${j}`).join(',');
      await sendTcp(ctx.ports[2], chunked(take(2000, (i) => `github_api_call_latency:${i % 1000}|ms|#endpoint:/repos/${i},${tags}`)));
      await untilCounted(ctx, 2000);
      return { sent: '2,000 lines', check: countedCheck(2000) };
    },
  },
  {
    name: 'statsd: 5,000 type_conflict lines of 60 KB',
    async run(ctx) {
      const filler = letters(60_000, prng(6));
      await sendTcp(ctx.ports[2], chunked(take(5000, (i) => `graphql_requests:1|ms|#operation:${i}${filler}`)));
      await untilCounted(ctx, 5000);
      return { sent: '5,000 lines', check: countedCheck(5000) };
    },
  },
  {
    name: 'statsd: 300,000 distinct names',
    async run(ctx) {
      await sendTcp(ctx.ports[2], chunked(take(300_000, (i) => `attack.name_${i}:1|c`)));
      await untilCounted(ctx, 300_000);
      return { sent: '300,000 lines', check: countedCheck(300_000) };
    },
  },
  {
    name: 'statsd: 4,000 TCP connections holding unfinished 65,000-"€" lines',
    async run(ctx) {
      const n = 4000;
      const tcp = (text, name, labels) => sampleValue(text, `metrics_sidecar_statsd_tcp_${name}`, labels) ?? 0;
      const refused = (text) => tcp(text, 'connections_closed_total', { reason: 'max_connections' });
      const malformed = (text) => sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: 'malformed' }) ?? 0;
      // Each connection writes 195,000 bytes (65,000 UTF-16 units) and no newline, then holds.
      const conns = await holdTcp(ctx.ports[2], n, Buffer.from('€'.repeat(65_000)));
      // Held until each is accounted for: closed past the cap, or its line counted malformed (over 64 KiB).
      const held = await untilExposition(ctx, (text) => refused(text) + malformed(text) >= n);
      const rssHeld = rssOf(ctx.sc.pid)?.now ?? NaN;
      await conns.close();
      await untilExposition(ctx, (text) => tcp(text, 'open_connections') === 0);
      const rssClosed = rssOf(ctx.sc.pid)?.now ?? NaN;
      return {
        sent: '4,000 conn',
        check: (text) => {
          if (text === null || held === null) return [false, 'no exposition'];
          const [r, m, open, bytes] = [refused(held), malformed(held), tcp(held, 'open_connections'), tcp(held, 'buffered_bytes')];
          const ok = r + m === n && bytes === 0 && tcp(text, 'open_connections') === 0 && tcp(text, 'buffered_bytes') === 0;
          return [
            ok,
            `refused ${r}, malformed ${m} (of ${n}); held: ${open} open, ${bytes} B buffered; RSS ${fmt(rssHeld / MiB, 0)} MiB held, ${fmt(rssClosed / MiB, 0)} MiB once closed`,
          ];
        },
      };
    },
  },
  {
    name: 'merge: suffix collisions + duplicate series',
    async setup() {
      const body = [
        '# TYPE flask_http_request_duration_seconds_count counter',
        'flask_http_request_duration_seconds_count{method="GET",path="/hello",status="200"} 500',
        '# TYPE flask_http_request_duration_seconds_sum gauge',
        'flask_http_request_duration_seconds_sum{method="GET",path="/hello",status="200"} 9',
        '# TYPE up gauge',
        'up 0',
        '# HELP app_jobs_total Jobs.',
        '# TYPE app_jobs_total counter',
        'app_jobs_total{queue="a"} 1',
        'app_jobs_total{queue="a"} 3',
        '',
      ].join('\n');
      const server = http.createServer((_q, res) => res.end(body));
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      return { env: { MERGE_TARGETS: `http://127.0.0.1:${server.address().port}/metrics` }, close: () => new Promise((r) => server.close(r)) };
    },
    async run(ctx) {
      await get(ctx.ports[0], '/hello');
      return {
        sent: '1 target',
        check: (text) => {
          if (text === null) return [false, 'no exposition'];
          const dup = text.split('\n').filter((l) => l.startsWith('app_jobs_total{queue="a"}')).length;
          const count = sampleValue(text, 'flask_http_request_duration_seconds_count') ?? 0;
          const total = sampleValue(text, 'flask_http_request_total') ?? 0;
          return [dup === 1 && count === total, `app_jobs_total{queue="a"} ×${dup}; histogram _count sum ${count} for ${total} requests`];
        },
      };
    },
  },
  {
    name: 'merge: 10 MB target, proxied requests during the scrape',
    async setup() {
      const target = await startBigTarget(10_000_000);
      return { env: { MERGE_TARGETS: target.url, MERGE_MAX_BYTES: String(10 * MiB) }, target, close: () => target.close() };
    },
    async run(ctx) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      await get(ctx.ports[0], '/hello', agent);
      const complete = new Promise((resolve) => (ctx.setup.target.onComplete = resolve));
      let began = false;
      const t0 = performance.now();
      let beganMs = 0;
      const scraping = new Promise((resolve) => {
        http
          .get({ host: '127.0.0.1', port: ctx.ports[1], path: '/debug/metrics', agent: false }, (res) => {
            began = true;
            beganMs = performance.now() - t0;
            res.resume();
            res.on('end', resolve);
            res.on('error', resolve);
          })
          .on('error', resolve);
      });
      await complete;
      const completeMs = performance.now() - t0;
      let during = 0;
      for (let i = 0; i < 500 && !began; i++) if ((await get(ctx.ports[0], `/during/${i}`, agent)) === 200 && !began) during++;
      await scraping;
      agent.destroy();
      return {
        sent: `${fmt(ctx.setup.target.bytes / 1e6, 1)} MB`,
        check: () => [during > 0, `proxied ${during} while the scrape was prepared (${fmt(beganMs - completeMs, 0)} ms)`],
      };
    },
  },
];

function fmtStatuses(statuses) {
  return Object.entries(statuses)
    .map(([s, n]) => `${s}×${n}`)
    .join(' ');
}

function countedCheck(n) {
  return (text) => {
    if (text === null) return [false, 'no exposition'];
    const dropped =
      (sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: 'dropped' }) ?? 0) +
      (sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: 'type_conflict' }) ?? 0) +
      (sampleValue(text, 'metrics_sidecar_statsd_lines_total', { outcome: 'limited' }) ?? 0);
    return [linesCounted(text) === n, `counted ${linesCounted(text)}/${n}, refused ${dropped}`];
  };
}

// ---------------------------------------------------------------------------------------------

async function runAttack(attack, app, limit, heapCap, tmp) {
  const setup = attack.setup ? await attack.setup() : { env: {} };
  const ports = await freePorts(3);
  const env = {
    LOG_LEVEL: 'warn',
    ...(attack.env ?? {}),
    ...setup.env,
    ...(heapCap ? { NODE_OPTIONS: `--max-old-space-size=${Math.floor(limit.bytes / MiB)}` } : {}),
  };
  const sc = await startSidecar({
    name: `sidecar-${ATTACKS.indexOf(attack)}`,
    cpus: 0,
    ports: { listen: ports[0], metrics: ports[1], statsd: ports[2] },
    upstream: app.url,
    env,
    tmp,
  });
  app.reset();
  const ctx = { sc, ports, app, setup, probes: [] };
  let peak = 0;
  const sample = () => {
    const r = rssOf(sc.pid);
    if (r && Number.isFinite(r.peak)) peak = Math.max(peak, r.peak);
  };
  // As the kernel would: killed once resident memory passes the limit (checked every 50 ms).
  let oomAt = 0;
  const watchdog = setInterval(() => {
    const r = rssOf(sc.pid);
    if (!heapCap || sc.proc.done || !r) return;
    sample();
    if (r.now > limit.bytes) {
      oomAt = r.now;
      try {
        process.kill(sc.pid, 'SIGKILL');
      } catch {
        // gone already
      }
      clearInterval(watchdog);
    }
  }, 50);
  // The main port, probed one request at a time for as long as the attack runs.
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      ctx.probes.push(sc.proc.done ? 0 : await get(ports[0], '/hello'));
      sample();
      await sleep(100);
    }
  })();
  const t0 = performance.now();
  const result = await attack.run(ctx);
  const attackMs = performance.now() - t0;
  probing = false;
  await probeLoop;
  const s = sc.proc.done ? { status: 0, bytes: 0, text: null, ms: 0 } : await scrape(ports[1]);
  sample();
  const after = sc.proc.done ? 0 : await get(ports[0], '/hello');
  sample();
  clearInterval(watchdog);
  if (oomAt) await sc.proc.exited;
  const died = sc.proc.done ? (oomAt ? `OOM-killed at ${fmt(oomAt / MiB, 0)} MiB` : sc.proc.exitInfo) : null;
  const row = {
    attack: attack.name,
    sent: result.sent,
    attack_ms: Math.round(attackMs),
    peak_rss_mib: peak > 0 ? Math.round((peak / MiB) * 10) / 10 : null,
    exposition_mib: Math.round((s.bytes / MiB) * 100) / 100,
    scrape_status: s.status,
    scrape_ms: Math.round(s.ms),
    main_during: { ok: ctx.probes.filter((p) => p === 200).length, probes: ctx.probes.length },
    main_after: after,
    promtool: s.status === 200 ? promtool(s.text) : 'no exposition',
    ...(([ok, text]) => ({ check_ok: ok, check: text }))(result.check(s.status === 200 ? s.text : null)),
    died,
  };
  row.verdict = !died && peak > 0 && peak < limit.bytes ? 'PASS' : 'MISS';
  if (!sc.proc.done) await sc.stop(3000);
  await setup.close?.();
  return row;
}

async function main() {
  const machine = preflight({ tools: [['promtool', 'the Prometheus release tarball']], script: 'bench:attack' });
  const meta = baseMeta(machine);
  pinSelf(1);
  const { tmp, overall } = beginRun('bench-attack', 10 * 60_000, log);
  const limit = memoryLimit();
  const heapCap = envBool('BENCH_ATTACK_HEAP_CAP', true);
  const only = process.env.BENCH_ATTACK_ONLY ?? '';
  log(`memory limit ${limit.quantity} (${limit.from}); ${heapCap ? 'the sidecar is killed past it, heap capped there' : 'not enforced'}`);
  const app = await startApp();
  const rows = [];
  const warnings = [];
  try {
    for (const attack of ATTACKS) {
      if (only && !attack.name.includes(only)) continue;
      log(attack.name);
      const row = await runAttack(attack, app, limit, heapCap, tmp);
      if (row.died) warnings.push(`${row.attack}: the sidecar died (${row.died})`);
      rows.push(row);
    }
  } finally {
    await app.close();
  }
  clearTimeout(overall);

  const out = [
    `bench:attack: issue 9's attack classes against node dist/main.js, one sidecar each (memory limit ${limit.quantity}, ${limit.from}; ${heapCap ? 'killed past it, as the kernel would' : 'not enforced'})`,
    '',
    table(
      ['attack', 'sent', 'peak RSS MiB', 'expo MiB', 'scrape', 'main during', 'main after', 'promtool', 'RSS < limit', 'check', ''],
      rows.map((r) => [
        r.attack,
        r.sent,
        r.died ? `${fmt(r.peak_rss_mib, 1)} died` : fmt(r.peak_rss_mib, 1),
        fmt(r.exposition_mib, 2),
        r.scrape_status || 'none',
        `${r.main_during.ok}/${r.main_during.probes}`,
        r.main_after || 'none',
        r.promtool,
        r.verdict,
        r.check_ok ? 'PASS' : 'MISS',
        r.check,
      ]),
    ),
    '',
    `peak RSS = VmHWM of the sidecar after the attack and a scrape; "main during" = GET /hello answered 200 / probes sent while the attack ran;`,
    `"died" = the process ended (OOM-killed past the limit, or crashed). RSS < limit: PASS = alive and peak RSS under ${limit.quantity}.`,
    'check: PASS when the attack-specific requirement holds (no leak, every line counted, totals add up, proxying went on during the merge).',
    ...warningLines(warnings),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const file = writeResults('attack', { ...meta, settings: { memory_limit: limit, heap_cap: heapCap, only: only || null }, rows });
  log(`results: ${file}`);
  return 0;
}
