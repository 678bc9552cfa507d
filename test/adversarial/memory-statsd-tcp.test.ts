/**
 * Issue 18, item 3 (StatsD over TCP): memory held by connections, at the default limits.
 *
 * An attacker's pass opened 4,000 loopback connections, each holding an unfinished line of 65,000
 * "€" (195,000 bytes; 65,000 UTF-16 units, under the old limit counted in characters): RSS reached
 * 643 MB, past the chart's 256Mi limit (an OOM kill of the whole pod), and stayed high after they
 * closed. Here 2,000 such connections (enough to pass the limit the old way, and bounded in time)
 * against a built sidecar held to the chart's default memory limit as the container would be
 * (killed once its RSS passes it, heap capped there).
 *
 * Required: the process lives, peak RSS (VmHWM) stays under the limit, the main port answers while
 * the connections are opened and held and after; every connection ends in exactly one counted
 * outcome (closed past STATSD_TCP_MAX_CONNECTIONS, or its line counted malformed once over
 * 64 KiB); nothing of the discarded lines is held; and once the clients close, the listener holds
 * no connection and no byte.
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
const PAYLOAD = Buffer.from('€'.repeat(65_000));

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

/** Opens a connection and writes the unfinished line; resolves once connected (the sidecar may close it at once). */
function hold(port: number): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    clients.push(sock);
    // Refused connections end in a reset or a broken pipe: expected.
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
    sock.on('connect', () => {
      sock.write(PAYLOAD);
      resolve();
    });
  });
}

const closedBy = (p: Parsed, reason: string): number => value(p, 'metrics_sidecar_statsd_tcp_connections_closed_total', { reason });
const malformed = (p: Parsed): number => value(p, 'metrics_sidecar_statsd_lines_total', { outcome: 'malformed' });

describe(`StatsD TCP: connections holding unfinished lines cannot take memory past the ${memoryLimit().quantity} limit`, () => {
  it(`${CONNECTIONS.toLocaleString('en')} connections each holding an unfinished line of 65,000 "€"`, async () => {
    const statsdPort = await freePort();
    const c = await spawnSidecar({ UPSTREAM_URL: upstream.url, STATSD_PORT: String(statsdPort), LOG_LEVEL: 'info', NODE_OPTIONS: heapCapOptions() });
    children.push(c);
    oomKiller(c);

    // The main port is asked once per batch opened, while the connections are held.
    const during: number[] = [];
    for (let i = 0; i < CONNECTIONS && alive(c); i += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, CONNECTIONS - i) }, () => hold(statsdPort)));
      during.push(await mainPortStatus(c.mainPort));
    }
    // Every connection ends in one outcome: closed past the cap, or its line malformed once over 64 KiB.
    let held: Parsed | undefined;
    await eventually(
      async () => {
        held = parseExposition((await scrape(c.metricsPort)).text);
        return closedBy(held, 'max_connections') + malformed(held) >= CONNECTIONS;
      },
      c,
      1200,
      100,
    );
    const mainHeld = await mainPortStatus(c.mainPort);
    const peak = alive(c) ? peakRss(c.proc.pid!) : Infinity;

    // The clients go: the listener lets go of everything.
    for (const s of clients.splice(0)) s.destroy();
    let after: Parsed | undefined;
    await eventually(
      async () => {
        after = parseExposition((await scrape(c.metricsPort)).text);
        return value(after, 'metrics_sidecar_statsd_tcp_open_connections') === 0;
      },
      c,
      400,
      50,
    );

    expect({ alive: alive(c), death: alive(c) ? '' : deathNote(c).slice(0, 300) }).toEqual({ alive: true, death: '' });
    expect({ peakRssMiB: Math.round(peak / 1024 ** 2), underLimit: peak < memoryLimit().bytes }).toEqual({
      peakRssMiB: expect.any(Number),
      underLimit: true,
    });
    expect(during.filter((s) => s !== 200)).toEqual([]);
    expect(mainHeld).toBe(200);
    expect(await mainPortStatus(c.mainPort)).toBe(200);
    // Exactly one outcome each; the cap held, and no byte of a discarded line is kept.
    expect(closedBy(held!, 'max_connections') + malformed(held!)).toBe(CONNECTIONS);
    expect(closedBy(held!, 'max_connections')).toBeGreaterThanOrEqual(CONNECTIONS - MAX_CONNECTIONS);
    expect(value(held!, 'metrics_sidecar_statsd_tcp_open_connections')).toBeLessThanOrEqual(MAX_CONNECTIONS);
    expect(value(held!, 'metrics_sidecar_statsd_tcp_buffered_bytes')).toBe(0);
    expect(value(held!, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' })).toBe(0);
    expect(value(after!, 'metrics_sidecar_statsd_tcp_open_connections')).toBe(0);
    expect(value(after!, 'metrics_sidecar_statsd_tcp_buffered_bytes')).toBe(0);
  });
});
