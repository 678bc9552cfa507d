/**
 * Issue 9, finding 9: a 10 MB merge target blocks the event loop for about a second per scrape,
 * and proxied requests wait.
 *
 * The merge target (a real HTTP server) sends just under 10 MB of valid exposition: all but its
 * last line at once, then, once the sidecar has had time to read that, the last line. From that
 * moment the sidecar holds the whole body and has only parsing, merging and rendering left before
 * it can answer the scrape. Proxied requests are sent one after another from then on. Required
 * (DESIGN.md / issue 9): parsing a large target yields to the event loop, so proxied requests keep
 * being answered: at least one request sent after the body was complete is answered before the
 * scrape's response begins. This is an ordering, not a time limit.
 */
import http from 'node:http';
import type { Child } from '../helpers/sidecar';
import { startMergeRig, type MergeRig } from '../helpers/merge-target';
import { alive, promtool } from '../helpers/attack';

jest.setTimeout(120_000);

const TARGET_BYTES = 10_000_000;

/** ~10 MB of distinct, valid series, without its last line (sent separately). */
function bigBody(): { head: string; tail: string } {
  const lines = ['# HELP app_cache_entries Entries per cache shard.', '# TYPE app_cache_entries gauge'];
  let size = lines.join('\n').length + 1;
  for (let i = 0; size < TARGET_BYTES - 200; i++) {
    const line = `app_cache_entries{shard="${String(i).padStart(7, '0')}",region="eu-west-1",cache="sessions-and-other-things"} ${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  const tail = 'app_cache_entries{shard="last",region="eu-west-1",cache="sessions-and-other-things"} 1\n';
  return { head: `${lines.join('\n')}\n`, tail };
}

let rig: MergeRig;
let sc: Child;
/** Resolved each time the merge target has sent the last line of its body. */
let bodyComplete: () => void = () => undefined;

beforeAll(async () => {
  const { head, tail } = bigBody();
  rig = await startMergeRig(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': String(Buffer.byteLength(head) + Buffer.byteLength(tail)) });
      res.write(head, () => {
        // Let the sidecar read everything sent so far before the last line arrives.
        setTimeout(() => res.end(tail, () => bodyComplete()), 400);
      });
    },
    {
      MERGE_MAX_BYTES: String(10 * 1024 * 1024),
      // ~100k series: above the default total budget (20k), which would cut the target short.
      METRICS_MAX_SERIES_TOTAL: '200000',
    },
  );
  sc = rig.sc;
});

afterAll(async () => {
  await rig?.close();
});

/** One GET over `agent`; resolves at the response's end. */
function get(port: number, path: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

describe('finding 9: a large merge target does not stop proxying', () => {
  it('should answer proxied requests sent after the 10 MB body arrived before the scrape answers', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // Warm the connection (client → sidecar → app), so each proxied request costs only a round trip.
    expect(await get(sc.mainPort, '/warm', agent)).toBe(200);

    const events: string[] = [];
    const complete = new Promise<void>((resolve) => (bodyComplete = resolve));
    let scrapeText = '';
    let scrapeStatus = 0;
    const scrape = new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sc.metricsPort, path: '/debug/metrics' }, (res) => {
          events.push('scrape response began');
          scrapeStatus = res.statusCode ?? 0;
          res.setEncoding('utf8');
          res.on('data', (c: string) => (scrapeText += c));
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
    await complete;
    events.push('merge body complete');
    // Proxied requests one after another until the scrape answers (at most 200).
    for (let i = 0; i < 200 && !events.includes('scrape response began'); i++) events.push(`proxied ${await get(sc.mainPort, `/during/${i}`, agent)}`);
    await scrape;
    agent.destroy();

    expect(alive(sc)).toBe(true);
    expect(scrapeStatus).toBe(200);
    expect(scrapeText).toContain('shard="last"');
    // The first request sent once the body was complete was answered before the scrape began to be.
    expect(events.slice(0, 3)).toEqual(['merge body complete', 'proxied 200', expect.stringMatching(/^(proxied 200|scrape response began)$/)]);
    expect(promtool(scrapeText)).toEqual({ ok: true, output: '' });
  });
});
