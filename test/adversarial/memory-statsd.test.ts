/**
 * Issue 9, finding 4 (StatsD): memory grown through StatsD, at the default limits.
 *
 * Three bounded attacks over StatsD TCP (lossless, so every line must be counted), each against
 * its own built sidecar held to the chart's default memory limit (values.yaml
 * `sidecar.resources.limits.memory`, 256Mi by default) as the container would be: killed once its
 * RSS passes it, heap capped there.
 *   - 2,000 timer lines with 2,500 tags each (every later scrape used to answer 500);
 *   - 4,000 refused `type_conflict` lines of 60 KB (they used to be cached whole);
 *   - 300,000 distinct metric names (RSS used to grow by ~340 MB with nothing counted as dropped).
 * Required (DESIGN.md): the process lives, the main port answers during and after, every line
 * ends in exactly one counted outcome, the scrape answers 200 and passes promtool, the exposition
 * stays under a quarter of the limit and peak RSS (VmHWM) under the limit.
 */
import { freePort } from '../helpers/net';
import { peakRss, spawnSidecar, type Child, killAll } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { parseExposition, value } from '../helpers/exposition';
import {
  alive,
  deathNote,
  oomKiller,
  eventually,
  expositionBound,
  heapCapOptions,
  letters,
  mainPortStatus,
  memoryLimit,
  prng,
  promtool,
  scrape,
  sendTcp,
} from '../helpers/attack';

jest.setTimeout(240_000);

let upstream: Upstream;
const children: Child[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  await killAll(children);
  await upstream?.close();
});

/** Lines joined into ~256 KB chunks for the TCP stream. */
function* chunked(lines: Iterable<string>): Generator<string> {
  let buf = '';
  for (const l of lines) {
    buf += `${l}\n`;
    if (buf.length > 256 * 1024) {
      yield buf;
      buf = '';
    }
  }
  if (buf !== '') yield buf;
}

function* take(n: number, make: (i: number) => string): Generator<string> {
  for (let i = 0; i < n; i++) yield make(i);
}

const linesCounted = (text: string): number => value(parseExposition(text), 'metrics_sidecar_statsd_lines_total');

/**
 * Runs one attack: half the lines, a probe of the main port, the other half; then waits until all
 * lines are counted (or the sidecar dies) and judges.
 */
async function attack(n: number, make: (i: number) => string): Promise<Record<string, unknown>> {
  const statsdPort = await freePort();
  const c = await spawnSidecar({ UPSTREAM_URL: upstream.url, STATSD_PORT: String(statsdPort), LOG_LEVEL: 'info', NODE_OPTIONS: heapCapOptions() });
  children.push(c);
  oomKiller(c);
  const half = Math.floor(n / 2);
  await sendTcp(statsdPort, chunked(take(half, make))).catch(() => undefined);
  const mainDuring = await mainPortStatus(c.mainPort);
  if (alive(c)) await sendTcp(statsdPort, chunked(take(n - half, (i) => make(half + i)))).catch(() => undefined);
  let last = { status: 0, text: '', bytes: 0 };
  // Every line counted (TCP loses none); a dying sidecar ends the wait at once.
  await eventually(
    async () => {
      last = await scrape(c.metricsPort);
      return last.status !== 200 || linesCounted(last.text) >= n;
    },
    c,
    1200,
    100,
  );
  const isAlive = alive(c);
  const rss = isAlive ? peakRss(c.proc.pid!) : Infinity;
  return {
    alive: isAlive,
    death: isAlive ? '' : deathNote(c).slice(0, 300),
    mainDuring,
    mainAfter: isAlive ? await mainPortStatus(c.mainPort) : 0,
    scrapeAfter: last.status,
    everyLineCountedOnce: last.status === 200 ? linesCounted(last.text) === n : false,
    promtool: last.status === 200 ? verdictOf(promtool(last.text)) : false,
    expositionUnderBound: last.status === 200 && last.bytes < expositionBound(),
    peakRssUnderLimit: rss < memoryLimit().bytes,
    peakRssMiB: Math.round(rss / 1024 ** 2),
    expositionMiB: Math.round((last.bytes / 1024 ** 2) * 10) / 10,
    accepted: last.status === 200 ? value(parseExposition(last.text), 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' }) : -1,
  };
}

/** true, or what promtool said. */
const verdictOf = (r: { ok: boolean; output: string }): true | string => (r.ok ? true : r.output);

const HEALTHY = {
  alive: true,
  death: '',
  mainDuring: 200,
  mainAfter: 200,
  scrapeAfter: 200,
  everyLineCountedOnce: true,
  promtool: true,
  expositionUnderBound: true,
  peakRssUnderLimit: true,
};

/** The judged fields only (the figures are printed by npm run bench:attack). */
function judged(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(HEALTHY).map((k) => [k, v[k]]));
}

describe(`finding 4 (StatsD): no StatsD input can grow memory past the ${memoryLimit().quantity} limit`, () => {
  it('2,000 timer lines with 2,500 tags each', async () => {
    const tags = Array.from({ length: 2499 }, (_, j) => `tag${j}:value${j}`).join(',');
    const v = await attack(2000, (i) => `github_api_call_latency:${i % 1000}|ms|#endpoint:/repos/${i},${tags}`);
    expect(judged(v)).toEqual(HEALTHY);
  });

  it('4,000 type_conflict lines of 60 KB', async () => {
    const filler = letters(60_000, prng(6));
    const v = await attack(4000, (i) => `graphql_requests:1|ms|#operation:${i}${filler}`);
    expect(judged(v)).toEqual(HEALTHY);
    // The lines were refused as the wrong type, not taken.
    expect(v.accepted).toBe(0);
  });

  it('300,000 distinct metric names', async () => {
    const v = await attack(300_000, (i) => `attack.name_${i}:1|c`);
    expect(judged(v)).toEqual(HEALTHY);
  });
});
