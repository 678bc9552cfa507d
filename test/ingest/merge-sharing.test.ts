/**
 * Concurrent scrapes share a merge collection only when it ends within their own budget: a client
 * asking for a long scrape timeout must not make Prometheus's scrapes wait on a hung target past
 * theirs (X-Prometheus-Scrape-Timeout-Seconds is clamped to 120 s, Prometheus sends ~10 s).
 */
import http from 'node:http';
import { Merger } from '../../src/ingest/merge/merger';
import { Registry } from '../../src/metrics/registry';
import { createLogger } from '../../src/log/logger';
import { startMergeTarget, type MergeTarget } from '../helpers/merge-target';

const BODY = '# TYPE app_ok gauge\napp_ok 1\n';

describe('merge collections shared between scrapes', () => {
  let target: MergeTarget;
  let held: http.ServerResponse[] = [];
  let asked = 0;
  let askedAgain: () => void = () => undefined;
  const release = (): void => {
    for (const res of held.splice(0)) res.writeHead(200).end(BODY);
  };
  const mergers: Merger[] = [];

  beforeAll(async () => {
    target = await startMergeTarget((_req, res) => {
      asked++;
      held.push(res);
      askedAgain();
    });
  });
  afterEach(() => {
    release();
    for (const m of mergers.splice(0)) m.close();
  });
  afterAll(async () => {
    held = [];
    await target.close();
  });

  const merger = (): Merger => {
    const m = new Merger(
      [new URL(target.url())],
      new Registry(),
      createLogger('error', () => undefined),
      64 * 1024,
    );
    mergers.push(m);
    return m;
  };

  it('should answer a scrape with a short budget on its own time while a long-budget collection waits on a hung target', async () => {
    const m = merger();
    let longDone = false;
    const long = m.collect(120_000, false).then((t) => {
      longDone = true;
      return t;
    });
    // Should the short scrape wait for the long one, the target is released after a while so the test ends (and fails).
    const failsafe = setTimeout(release, 5_000);
    const short = await m.collect(300, false);
    clearTimeout(failsafe);
    expect(longDone).toBe(false);
    expect(short).not.toContain('app_ok');
    release();
    expect(await long).toContain('app_ok 1');
  });

  it('should still share one collection between scrapes whose budgets it fits', async () => {
    const m = merger();
    const before = asked;
    const a = m.collect(2_000, false);
    const b = m.collect(5_000, false);
    const c = m.collect(2_500, true); // another format: its own collection
    while (asked - before < 2) await new Promise<void>((r) => (askedAgain = r));
    release();
    expect(await a).toBe(await b);
    expect(await c).toContain('app_ok');
    expect(asked - before).toBe(2);
  });
});
