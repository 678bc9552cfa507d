/**
 * Issue 18, item 3 (StatsD over TCP): memory held by connections, at the default limits.
 *
 * An attacker's pass opened 4,000 loopback connections, each holding an unfinished line of 65,000
 * "€" (195,000 bytes; 65,000 UTF-16 units, under the old limit counted in characters): RSS reached
 * 643 MB, past the chart's 256Mi limit (an OOM kill of the whole pod), and stayed high after they
 * closed. Here 2,000 such connections (enough to pass the limit the old way, and bounded in time),
 * then 2,000 holding the most a line may hold (64 KiB: the worst the bounds allow, every open
 * connection full), each against its own built sidecar at the default limits, held to the chart's
 * default memory limit as the container would be (killed once its RSS passes it, heap capped there).
 *
 * Required: the process lives, peak RSS (VmHWM) stays under the limit, the main port answers while
 * the connections are opened and held and after; every connection ends in exactly one counted
 * outcome (closed past STATSD_TCP_MAX_CONNECTIONS, its line counted malformed once over 64 KiB, or
 * its whole unfinished line held within STATSD_TCP_BUFFER_BYTES_TOTAL); nothing of a discarded
 * line is held; and once the clients close, the listener holds no connection and no byte.
 */
import net from 'node:net';
import { freePort } from '../helpers/net';
import { peakRss, spawnSidecar, type Child, killAll } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { parseExposition, value, type Parsed } from '../helpers/exposition';
import { alive, deathNote, eventually, heapCapOptions, mainPortStatus, memoryLimit, oomKiller, scrape } from '../helpers/attack';

jest.setTimeout(180_000);

const CONNECTIONS = 2000;
/** Connections opened at a time (well under the listen backlog, so none waits for a SYN retry). */
const BATCH = 100;
/** The chart's defaults (src/config/variables.ts). */
const MAX_CONNECTIONS = 256;
const BUDGET = 16 * 1024 * 1024;
const LINE_LIMIT = 64 * 1024;

let upstream: Upstream;
const children: Child[] = [];
const clients: net.Socket[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  for (const s of clients.splice(0)) s.destroy();
  await killAll(children);
  await upstream?.close();
});

/** Opens a connection and writes an unfinished line; resolves once connected (the sidecar may close it at once). */
function hold(port: number, payload: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    clients.push(sock);
    // Refused connections end in a reset or a broken pipe: expected.
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
    sock.on('connect', () => {
      sock.write(payload);
      resolve();
    });
  });
}

const closedBy = (p: Parsed, reason: string): number => value(p, 'metrics_sidecar_statsd_tcp_connections_closed_total', { reason });
const malformed = (p: Parsed): number => value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'malformed' });
const open = (p: Parsed): number => value(p, 'metrics_sidecar_statsd_tcp_open_connections');
const buffered = (p: Parsed): number => value(p, 'metrics_sidecar_statsd_tcp_buffered_bytes');

interface Outcome {
  alive: boolean;
  death: string;
  peakRssUnderLimit: boolean;
  peakRssMiB: number;
  /** Main-port statuses, once per batch of connections opened. */
  mainDuring: number[];
  mainHeld: number;
  mainAfter: number;
  /** The exposition while the connections were held, and once the clients had closed them. */
  held: Parsed;
  after: Parsed;
}

/**
 * Opens CONNECTIONS connections (BATCH at a time, the main port asked after each batch), each
 * writing `payload` without a newline, and keeps them open until `settled` says the sidecar has
 * dealt with every one; then closes them all and waits until the listener holds none.
 */
async function attack(payload: Buffer, settled: (p: Parsed) => boolean): Promise<Outcome> {
  const statsdPort = await freePort();
  const c = await spawnSidecar({ UPSTREAM_URL: upstream.url, STATSD_PORT: String(statsdPort), LOG_LEVEL: 'info', NODE_OPTIONS: heapCapOptions() });
  children.push(c);
  oomKiller(c);
  const mainDuring: number[] = [];
  for (let i = 0; i < CONNECTIONS && alive(c); i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, CONNECTIONS - i) }, () => hold(statsdPort, payload)));
    mainDuring.push(await mainPortStatus(c.mainPort));
  }
  let held = parseExposition('');
  await eventually(
    async () => {
      held = parseExposition((await scrape(c.metricsPort)).text);
      return settled(held);
    },
    c,
    1200,
    100,
  );
  const mainHeld = await mainPortStatus(c.mainPort);
  const peak = alive(c) ? peakRss(c.proc.pid!) : Infinity;
  // The clients go: the listener lets go of everything.
  for (const s of clients.splice(0)) s.destroy();
  let after = parseExposition('');
  await eventually(
    async () => {
      after = parseExposition((await scrape(c.metricsPort)).text);
      return open(after) === 0;
    },
    c,
    400,
    50,
  );
  const isAlive = alive(c);
  return {
    alive: isAlive,
    death: isAlive ? '' : deathNote(c).slice(0, 300),
    peakRssUnderLimit: peak < memoryLimit().bytes,
    peakRssMiB: Math.round(peak / 1024 ** 2),
    mainDuring,
    mainHeld,
    mainAfter: isAlive ? await mainPortStatus(c.mainPort) : 0,
    held,
    after,
  };
}

/** What every attack must leave: alive under the limit, the main port answering, nothing held at the end. */
function expectHealthy(o: Outcome): void {
  expect({ alive: o.alive, death: o.death, peakRssUnderLimit: o.peakRssUnderLimit, peakRssMiB: o.peakRssMiB }).toEqual({
    alive: true,
    death: '',
    peakRssUnderLimit: true,
    peakRssMiB: expect.any(Number),
  });
  expect(o.mainDuring.filter((s) => s !== 200)).toEqual([]);
  expect(o.mainDuring.length).toBe(CONNECTIONS / BATCH);
  expect([o.mainHeld, o.mainAfter]).toEqual([200, 200]);
  expect([open(o.after), buffered(o.after)]).toEqual([0, 0]);
}

describe(`StatsD TCP: connections holding unfinished lines cannot take memory past the ${memoryLimit().quantity} limit`, () => {
  it(`${CONNECTIONS.toLocaleString('en')} connections each holding an unfinished line of 65,000 "€" (195,000 bytes)`, async () => {
    // Every connection ends in one outcome: closed past the cap, or its line malformed once over 64 KiB.
    const o = await attack(Buffer.from('€'.repeat(65_000)), (p) => closedBy(p, 'max_connections') + malformed(p) >= CONNECTIONS);
    expectHealthy(o);
    expect(closedBy(o.held, 'max_connections') + malformed(o.held)).toBe(CONNECTIONS);
    expect(closedBy(o.held, 'max_connections')).toBeGreaterThanOrEqual(CONNECTIONS - MAX_CONNECTIONS);
    expect(open(o.held)).toBeLessThanOrEqual(MAX_CONNECTIONS);
    // No byte of a discarded line is kept, and none was taken as a line.
    expect(buffered(o.held)).toBe(0);
    expect(value(o.held, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' })).toBe(0);
  });

  it(`${CONNECTIONS.toLocaleString('en')} connections each holding an unfinished line of exactly 64 KiB (the most one may hold)`, async () => {
    const line = Buffer.from(`held:1|c|#pad:${'€'.repeat(21_840)}`);
    const payload = Buffer.concat([line, Buffer.alloc(LINE_LIMIT - line.length, 'x')]);
    // Every connection is either closed past the cap or holds its whole line (none over the limit, none malformed).
    const o = await attack(payload, (p) => closedBy(p, 'max_connections') + buffered(p) / LINE_LIMIT >= CONNECTIONS);
    expectHealthy(o);
    expect(closedBy(o.held, 'max_connections') + open(o.held)).toBe(CONNECTIONS);
    expect(open(o.held)).toBeLessThanOrEqual(MAX_CONNECTIONS);
    // The defaults fit exactly: every open connection holds a whole line, within the budget.
    expect(buffered(o.held)).toBe(open(o.held) * LINE_LIMIT);
    expect(buffered(o.held)).toBeLessThanOrEqual(BUDGET);
    expect(malformed(o.held) + closedBy(o.held, 'buffer_budget')).toBe(0);
  });
});
