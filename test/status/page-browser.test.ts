/**
 * The status page in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * with traffic, StatsD lines, a dead merge target and a refused scrape made by the test, the
 * page shows each of them, refreshes from status.json, sorts by keyboard, works with scripts off
 * and on a phone-sized window, and the browser reports no console error and no CSP violation.
 * Screenshots go to test-artifacts/ (gitignored).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { freePort, request } from '../helpers/net';
import { sendDatagram as sendUdp } from '../helpers/net';

// The callbacks given to page.evaluate run in the browser; this project's lib has no DOM types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;

const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
const USER = 'operator';
const PASSWORD = 'correct horse battery staple 7f3a';
const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };

let browser: Browser;
let upstream: Upstream;
let sc: Running;
let statsdPort: number;

interface Watched {
  page: Page;
  problems: string[];
}

/** A page whose console errors, uncaught errors, failed requests and CSP violations are collected. */
async function watchedPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  // Runs before the page's own script (and outside its CSP): every violation is reported.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e: { violatedDirective: string; blockedURI: string }) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { page, problems };
}

beforeAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  upstream = await startUpstream((req, res) => {
    if (req.url?.startsWith('/boom')) {
      res.statusCode = 500;
      res.end('boom');
      return;
    }
    res.end('ok');
  });
  statsdPort = await freePort();
  const dead = await freePort(); // nothing listens there: the merge target is down
  sc = await startSidecar({
    APP_NAME: 'shop',
    UPSTREAM_URL: upstream.url,
    STATSD_PORT: String(statsdPort),
    MERGE_TARGETS: `http://127.0.0.1:${dead}/metrics`,
    METRICS_BASIC_AUTH_USERNAME: USER,
    METRICS_BASIC_AUTH_PASSWORD: PASSWORD,
    LOG_LEVEL: 'error',
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

  // Someone opens the page: sampling starts, and the windows count from here on.
  expect((await request(sc.metricsPort, '/status.json', { headers: auth })).status).toBe(200);
  // Traffic: two routes (ids collapse to one template), one of them failing.
  for (let i = 0; i < 12; i++) await request(sc.mainPort, `/users/${1000 + i}`);
  for (let i = 0; i < 3; i++) await request(sc.mainPort, '/boom');
  // StatsD: accepted and malformed lines.
  await sendUdp(statsdPort, ['orders_created_total:1|c', 'github_api_call_latency:120|ms|#endpoint:/repos', 'not a statsd line', 'x:1|zz'].join('\n'));
  // A refused scrape (no credentials), then an accepted one, which fetches the dead merge target.
  expect((await request(sc.metricsPort, '/debug/metrics')).status).toBe(401);
  expect((await request(sc.metricsPort, '/debug/metrics', { headers: auth })).status).toBe(200);
  // UDP is asynchronous: wait until the sidecar has counted the malformed lines, and until the
  // sampler has a little history (a sparkline point needs a second of it).
  for (let i = 0; i < 200; i++) {
    const doc = JSON.parse((await request(sc.metricsPort, '/status.json', { headers: auth })).text);
    const sampled = Date.parse(doc.generated_at) - Date.parse(doc.sampling.since);
    if (doc.sources.statsd.total.malformed >= 2 && sampled >= 1500) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  await browser?.close();
  await sc?.stop();
  await upstream?.close();
});

describe('status page in Chromium', () => {
  it('should show routes, StatsD outcomes, the dead merge target and the refusal, with no console error or CSP violation', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: USER, password: PASSWORD, send: 'always' },
      viewport: { width: 1280, height: 900 },
    });
    const { page, problems } = await watchedPage(context);
    const res = await page.goto(`http://127.0.0.1:${sc.metricsPort}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");

    // The script ran and refreshed from status.json (the live region says so).
    await page.waitForFunction(() => /^Updated /.test(document.getElementById('updated')?.textContent ?? ''));

    const routes = await page.$$eval('table.routes tbody tr', (trs) =>
      trs.map((tr) => ({ route: tr.querySelector('th')?.textContent ?? '', rps: tr.querySelectorAll('td')[0]?.textContent ?? '' })),
    );
    expect(routes.map((r) => r.route)).toEqual(expect.arrayContaining(['GET /users/:id', 'GET /boom']));
    for (const r of routes) expect(Number(r.rps)).toBeGreaterThan(0);
    expect(await page.textContent('table.routes')).toContain('%'); // error ratios are shown

    const malformed = await page.textContent('table.statsd tr.outcome-malformed td:nth-of-type(3)');
    expect(Number(malformed)).toBeGreaterThanOrEqual(2);
    const accepted = await page.textContent('table.statsd tr.outcome-accepted td:nth-of-type(3)');
    expect(Number(accepted)).toBeGreaterThanOrEqual(1);

    const target = page.locator('table.merge tbody tr');
    await expect(target.getAttribute('class')).resolves.toBe('down');
    expect(await target.textContent()).toMatch(/down/);
    expect(await target.textContent()).toMatch(/ECONNREFUSED/);

    const refusals = await page.$$eval('table.refusals tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    expect(refusals.some((r) => r.includes('metrics') && r.includes('missing'))).toBe(true);

    // The sparklines are inline SVG drawn by the view.
    expect(await page.locator('table.routes svg.spark').count()).toBeGreaterThan(0);

    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page.png'), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  it('should sort the route table from the keyboard and keep focus on the button', async () => {
    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD, send: 'always' } });
    const { page, problems } = await watchedPage(context);
    await page.goto(`http://127.0.0.1:${sc.metricsPort}/`);
    await page.waitForFunction(() => /^Updated /.test(document.getElementById('updated')?.textContent ?? ''));
    const order = () => page.$$eval('table.routes tbody th', (ths) => ths.map((th) => th.textContent ?? ''));

    await page.focus('button[data-sort="route"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('th[aria-sort] button[data-sort="route"]');
    const first = await order();
    expect(first).toEqual([...first].sort((a, b) => (a.split(' ')[1] < b.split(' ')[1] ? 1 : -1)));
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-sort'))).toBe('route');

    await page.keyboard.press('Enter'); // the same column again: the other direction
    await page.waitForSelector('th[aria-sort="ascending"] button[data-sort="route"]');
    expect(await order()).toEqual([...first].reverse());
    expect(new URL(page.url()).searchParams.get('sort')).toBe('route:asc');
    expect(problems).toEqual([]);
    await context.close();
  });

  it('should render everything without scripts, sorted by the query, and fit a phone-sized window', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: USER, password: PASSWORD, send: 'always' },
      javaScriptEnabled: false,
      viewport: { width: 390, height: 844 },
      isMobile: true,
    });
    const { page } = await watchedPage(context);
    await page.goto(`http://127.0.0.1:${sc.metricsPort}/?sort=route:asc`);
    expect(await page.textContent('#updated')).toMatch(/^Rendered /);
    expect(await page.textContent('table.routes')).toContain('/users/:id');
    expect(await page.getAttribute('th[aria-sort] button', 'data-sort')).toBe('route');
    expect(await page.textContent('table.merge')).toMatch(/down/);
    // Wide tables scroll inside their card; the page itself does not scroll sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // Nor does any element stick out of the window, except inside those scrolling boxes.
    const outside = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      return [...document.querySelectorAll('body *')]
        .filter(
          (e: { closest(s: string): unknown; getBoundingClientRect(): { right: number } }) =>
            !e.closest('.scroll') && e.getBoundingClientRect().right > width + 1,
        )
        .map((e: { tagName: string; className: string }) => `${e.tagName}.${e.className}`);
    });
    expect(outside).toEqual([]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-phone.png'), fullPage: true });
    await context.close();
  });
});
