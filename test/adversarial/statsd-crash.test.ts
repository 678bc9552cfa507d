/**
 * Issue 9, finding 1: one StatsD datagram kills the process (and with it the main port), and the
 * first type to arrive for a maintained name wins.
 *
 * Against the built sidecar with an upstream on its main port. Required (DESIGN.md): ingest never
 * throws into the event loop, every line ends in a counted outcome, and the maintained families
 * have fixed types: a line of the wrong type is a `type_conflict` whatever arrived first.
 */
import { freePort } from '../helpers/net';
import { spawnSidecar, type Child, killAll } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { parseExposition, value } from '../helpers/exposition';
import { alive, deathNote, eventually, mainPortStatus, promtool, scrape, sendTcp, sendUdp } from '../helpers/attack';

jest.setTimeout(60_000);

let upstream: Upstream;
const children: Child[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  await killAll(children);
  await upstream?.close();
});

async function sidecar(env: Record<string, string> = {}): Promise<Child & { statsdPort: number }> {
  const statsdPort = await freePort();
  const c = await spawnSidecar({ UPSTREAM_URL: upstream.url, STATSD_PORT: String(statsdPort), ...env });
  children.push(c);
  return { ...c, statsdPort };
}

const outcome = (text: string, o: string): number => value(parseExposition(text), 'metrics_sidecar_statsd_lines_total', { outcome: o });
const allLines = (text: string): number => value(parseExposition(text), 'metrics_sidecar_statsd_lines_total');

/** Waits until the sidecar has counted `n` lines in all; fails with the reason if it died instead. */
async function counted(c: Child, n: number): Promise<string> {
  let text = '';
  const ok = await eventually(async () => {
    const s = await scrape(c.metricsPort);
    text = s.text;
    return s.status === 200 && allLines(s.text) >= n;
  }, c);
  if (!alive(c)) throw new Error(`the sidecar died: ${deathNote(c)}`);
  if (!ok) throw new Error(`only ${allLines(text)} of ${n} lines counted`);
  return text;
}

describe('finding 1: a StatsD line of the wrong type is counted, never fatal', () => {
  it.each([
    ['UDP', 'github_api_call_latency:1|c', {}],
    ['TCP', 'github_webhook_latency:1|c', {}],
    ['UDP', 'sqlalchemy_query_latency:1|c', { ENABLE_DB_METRICS: 'true' }],
    ['TCP', 'graphql_requests:1|ms|#operation:viewer', {}],
    ['UDP', 'graphql_requests_total:2|g', {}],
  ])('over %s, %s: the process lives, the main port answers, the line is a type_conflict', async (proto, line, env) => {
    const c = await sidecar(env as Record<string, string>);
    if (proto === 'UDP') await sendUdp(c.statsdPort, [line]);
    else await sendTcp(c.statsdPort, [`${line}\n`]);
    const text = await counted(c, 1);
    expect(outcome(text, 'type_conflict')).toBe(1);
    expect(alive(c)).toBe(true);
    expect(await mainPortStatus(c.mainPort)).toBe(200);
    expect(promtool(text)).toEqual({ ok: true, output: '' });
  });

  it('should keep graphql_requests_total a counter when a timer line for it arrives first', async () => {
    const c = await sidecar();
    await sendTcp(c.statsdPort, ['graphql_requests:5|ms|#operation:viewer\n']);
    await counted(c, 1);
    await sendTcp(c.statsdPort, ['graphql_requests:1|c|#operation:viewer\ngraphql_requests:2|c|#operation:viewer\n']);
    const text = await counted(c, 3);
    const p = parseExposition(text);
    expect(p.types.get('graphql_requests_total') ?? p.types.get('graphql_requests')).toBe('counter');
    expect(value(p, 'graphql_requests_total', { operation: 'viewer' })).toBe(3);
    expect(outcome(text, 'type_conflict')).toBe(1);
    expect(outcome(text, 'accepted')).toBe(2);
    expect(promtool(text)).toEqual({ ok: true, output: '' });
  });
});
