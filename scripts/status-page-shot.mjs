#!/usr/bin/env node
/**
 * npm run docs:status-shot: docs/status-page.png, the README's picture of the status page, taken
 * from a real demo run instead of a staged one.
 *
 * 1. Starts the demo as `npm run demo` does (`node dist/demo/main.js`: the demo app, a web
 *    sidecar in front of it, a worker sidecar, StatsD from both, MERGE_TARGETS), on free loopback
 *    ports, with DEMO_DURATION_S as a backstop should this script die without stopping it.
 * 2. Opens the web sidecar's status.json at once: sampling starts on the first status request
 *    (src/status/sampler.ts), so the page's windows then cover the whole run.
 * 3. Drives traffic through the web sidecar's main port for SHOT_SECONDS (default 170) on top of
 *    the demo's own 10 req/s: the demo's mix of paths (ids, a slow route, errors, 404s) plus some
 *    POSTs, at a rate that changes from minute to minute, and a Prometheus-like scrape of
 *    /debug/metrics every 15 s (which fetches the merge target, so the page has its state).
 * 4. Checks that what the page will show is consistent: the sampler started with the sidecar (its
 *    15-minute window covers the uptime, within a few seconds), the 1-minute window is a full
 *    minute, each route's sparklines have one point per minute of the run, StatsD lines arrived,
 *    the merge target is up. The sampler takes a snapshot every 10 s and a sparkline point per
 *    minute; no setting shortens that, so the run is as long as the points it shows, and the page
 *    itself says how much of the 15 minutes it covers ("3 min so far").
 * 5. Screenshots the page (/debug/ on the main port, from the top to the end of its Sources card)
 *    in Debian's headless Chromium through playwright-core, as test/status/page-browser.test.ts
 *    launches it; a console error or CSP violation fails the run. The picture is written next to docs/status-page.png and renamed
 *    over it only when everything passed.
 * 6. Stops the browser and the demo (SIGTERM: the demo stops each sidecar once), also on failure
 *    and on Ctrl-C.
 *
 * About three minutes. Needs `npm run build` first (the npm script does it) and /usr/bin/chromium.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(ROOT, 'dist', 'demo', 'main.js');
const OUT = path.join(ROOT, 'docs', 'status-page.png');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const HOST = '127.0.0.1';
/** Long enough for three sparkline points (two whole minutes and the one in progress). */
const RUN_S = Number(process.env.SHOT_SECONDS || 170);
const SCRAPE_EVERY_MS = 15_000;
/** Extra requests per second through the web sidecar, per minute of the run (the demo adds 10/s). */
const EXTRA_RPS_BY_MINUTE = [6, 18, 11];
const VIEWPORT = { width: 1180, height: 1200 };

const say = (msg) => process.stderr.write(`[status-shot] ${msg}\n`);

class ShotError extends Error {}

if (!Number.isFinite(RUN_S) || RUN_S < 125 || RUN_S > 900) {
  throw new ShotError(`SHOT_SECONDS=${process.env.SHOT_SECONDS}: give 125-900 (the page needs two whole minutes of samples)`);
}

/** A loopback port free for TCP (and UDP when asked), and not one handed out already. */
const given = new Set();
async function freePort(udp = false) {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen({ port: 0, host: HOST, exclusive: true }, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (given.has(port)) continue;
    if (udp) {
      const ok = await new Promise((resolve) => {
        const u = dgram.createSocket('udp4');
        u.once('error', () => {
          u.close();
          resolve(false);
        });
        u.bind(port, HOST, () => u.close(() => resolve(true)));
      });
      if (!ok) continue;
    }
    given.add(port);
    return port;
  }
}

/** One HTTP exchange; resolves with status and body text (never rejects on an HTTP status). */
function request(port, p, { method = 'GET', headers = {}, body, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path: p, method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

let demo;
let demoExit;
let browser;
let traffic;
let scraper;
let stopping;

/** Stops the traffic, the browser and the demo (which stops its sidecars); idempotent. */
function stopAll() {
  stopping ??= (async () => {
    clearInterval(traffic);
    clearInterval(scraper);
    await browser?.close().catch(() => undefined);
    if (demo && demo.exitCode === null && demo.signalCode === null) {
      demo.kill('SIGTERM');
      const forced = setTimeout(() => {
        say('the demo did not stop within 30 s of SIGTERM: killing it');
        demo.kill('SIGKILL');
      }, 30_000);
      await demoExit;
      clearTimeout(forced);
    }
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    stopAll().finally(() => process.exit(130));
  });
}

async function main() {
  if (!fs.existsSync(DEMO)) throw new ShotError(`${path.relative(ROOT, DEMO)} is missing: run npm run build first (npm run docs:status-shot does)`);
  if (!fs.existsSync(CHROMIUM)) throw new ShotError(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const { randomPath } = await import(pathToFileURL(path.join(ROOT, 'dist', 'demo', 'app.js')).href);

  const ports = {
    app: await freePort(),
    web: await freePort(),
    worker: await freePort(),
    webStatsd: await freePort(true),
    workerStatsd: await freePort(true),
  };
  say(`starting the demo (web sidecar on ${HOST}:${ports.web}) for ${RUN_S} s of traffic`);
  demo = spawn(process.execPath, [DEMO], {
    cwd: ROOT,
    env: {
      ...process.env,
      DEMO_APP_PORT: String(ports.app),
      DEMO_WEB_PORT: String(ports.web),
      DEMO_WORKER_PORT: String(ports.worker),
      DEMO_WEB_STATSD_PORT: String(ports.webStatsd),
      DEMO_WORKER_STATSD_PORT: String(ports.workerStatsd),
      // A backstop only: this script stops the demo itself.
      DEMO_DURATION_S: String(RUN_S + 120),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demoExit = new Promise((resolve) => demo.once('exit', (code, signal) => resolve(code ?? signal)));
  let output = '';
  const running = new Promise((resolve, reject) => {
    const onData = (c) => {
      output += c.toString('utf8');
      if (output.includes('metrics-sidecar demo is running')) resolve();
    };
    demo.stdout.on('data', onData);
    demo.stderr.on('data', onData);
    demoExit.then((code) => reject(new ShotError(`the demo exited (${code}) before it was running:\n${output}`)));
  });
  await running;
  // From here on the demo prints only what its sidecars log at warn and above: show it.
  demo.stdout.removeAllListeners('data');
  demo.stderr.removeAllListeners('data');
  for (const stream of [demo.stdout, demo.stderr]) stream.on('data', (c) => process.stderr.write(`[demo] ${c}`));

  // Someone opens the page: sampling starts now, and the windows count from here.
  const first = await request(ports.web, '/debug/status.json');
  if (first.status !== 200) throw new ShotError(`/debug/status.json answered ${first.status}`);
  const t0 = Date.now();

  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let sent = 0;
  let failed = 0;
  const send = () => {
    const post = Math.random() < 0.1;
    const p = post ? `/orders/${crypto.randomUUID()}` : randomPath();
    const body = post ? JSON.stringify({ items: 1 + Math.floor(Math.random() * 4) }) : undefined;
    const headers = post ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {};
    sent++;
    request(ports.web, p, { method: post ? 'POST' : 'GET', headers, body, agent }).catch(() => failed++);
  };
  // Ten ticks a second; each sends this minute's rate, the fraction carried over.
  let owed = 0;
  traffic = setInterval(() => {
    const minute = Math.min(EXTRA_RPS_BY_MINUTE.length - 1, Math.floor((Date.now() - t0) / 60_000));
    owed += EXTRA_RPS_BY_MINUTE[minute] / 10;
    for (; owed >= 1; owed--) send();
  }, 100);
  const scrape = () =>
    request(ports.web, '/debug/metrics', { headers: { accept: 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.1' } }).catch(
      () => undefined,
    );
  await scrape();
  scraper = setInterval(scrape, SCRAPE_EVERY_MS);

  // The run itself: traffic flows until the page has RUN_S seconds of history.
  for (let left = RUN_S; left > 0; left -= 30) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(30, left) * 1000));
    say(`${Math.round((Date.now() - t0) / 1000)} s: ${sent} extra requests sent (${failed} failed)`);
  }
  await scrape();

  const doc = JSON.parse((await request(ports.web, '/debug/status.json')).text);
  const problems = consistency(doc, RUN_S);
  if (problems.length > 0) throw new ShotError(`the page would not show a consistent run:\n  ${problems.join('\n  ')}`);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light', locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  const pageProblems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') pageProblems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
  const res = await page.goto(`http://${HOST}:${ports.web}/debug/`);
  if (res?.status() !== 200) throw new ShotError(`/debug/ answered ${res?.status()}`);
  // The page's script has refreshed it from status.json once: what is shown is live.
  await page.waitForFunction(() => /^Updated /.test(globalThis.document.getElementById('updated')?.textContent ?? ''), null, { timeout: 20_000 });
  const tmp = `${OUT}.tmp-${process.pid}.png`;
  // Down to the end of the Sources card (identity, traffic, StatsD, merge targets: what the README's
  // caption names), so the picture does not end halfway through a card.
  const sources = await page.locator('section[aria-labelledby="h-sources"]').boundingBox();
  if (sources === null) throw new ShotError('the page has no Sources section');
  const height = Math.min(VIEWPORT.height, Math.ceil(sources.y + sources.height + 16));
  await page.screenshot({ path: tmp, clip: { x: 0, y: 0, width: VIEWPORT.width, height } });
  if (pageProblems.length > 0) {
    fs.rmSync(tmp, { force: true });
    throw new ShotError(`the page reported problems:\n  ${pageProblems.join('\n  ')}`);
  }
  fs.renameSync(tmp, OUT);
  agent.destroy();
  const t = doc.traffic.totals;
  say(
    `wrote ${path.relative(ROOT, OUT)}: uptime ${doc.identity.uptime_s} s, sampled ${doc.sampling.covered_15m_s} s, ` +
      `${doc.traffic.routes_total} routes, ${t.m15.requests} requests (${t.m1.rps} req/s in the last minute), ${failed} of ${sent} extra requests failed`,
  );
}

/** What would make the picture look staged or broken; [] when the page tells one consistent story. */
function consistency(doc, runS) {
  const out = [];
  const { uptime_s: uptime } = doc.identity;
  const { covered_1m_s: m1, covered_15m_s: m15 } = doc.sampling;
  if (uptime < runS) out.push(`uptime ${uptime} s is shorter than the run (${runS} s)`);
  if (Math.abs(uptime - m15) > 10) out.push(`the 15-minute window covers ${m15} s but the sidecar has been up ${uptime} s`);
  if (m1 < 59 || m1 > 75) out.push(`the 1-minute window covers ${m1} s`);
  const minutes = Math.ceil(m15 / 60);
  if (doc.traffic.routes.length < 4) out.push(`only ${doc.traffic.routes.length} routes have traffic`);
  for (const r of doc.traffic.routes) {
    if (r.spark.rps.length !== minutes) out.push(`${r.method} ${r.route}: ${r.spark.rps.length} sparkline points for ${minutes} minutes of samples`);
  }
  if (!(doc.sources.statsd?.total.accepted > 0)) out.push('no StatsD line was accepted');
  if (doc.sources.merge.length === 0 || doc.sources.merge.some((m) => m.up !== true)) out.push(`merge targets not up: ${JSON.stringify(doc.sources.merge)}`);
  if (!doc.identity.ready) out.push('the sidecar is not ready');
  return out;
}

let code = 0;
try {
  await main();
} catch (err) {
  say(err instanceof ShotError ? err.message : (err?.stack ?? String(err)));
  code = 1;
} finally {
  await stopAll();
}
const demoCode = await demoExit;
if (demoCode !== undefined && demoCode !== 0 && demoCode !== 'SIGTERM' && code === 0) {
  say(`the demo exited with ${demoCode}`);
  code = 1;
}
process.exit(code);
