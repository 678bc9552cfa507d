/**
 * What depends on time, against the real API server: the authorizer (the built
 * dist/access/kubernetes.js, in a process of its own: test/fixtures/k8s-authorizer.js) on a clock
 * the test advances, so a TTL or the rate budget is crossed by moving the clock, never by waiting;
 * and the sidecar's rate limit as a whole.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KubernetesAuthConfig } from '../../src/config';
import { bindClusterRole, grantNonResource, kubeconfig, namespace, serviceAccount, suffix, token } from './env';
import { kubeSidecar, scrape, stop, untilReady } from './sidecars';
import { waitForLog } from '../helpers/sidecar';
import { startAuthorizer } from '../helpers/k8s-authorizer';

describe('Kubernetes auth decisions over time, against the real API server', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-clock-'));
  const run = suffix();
  let ns: string;
  let cfgFile: string;
  const tokens: string[] = [];
  let authorizer: Awaited<ReturnType<typeof startAuthorizer>> | undefined;

  const cfg = (over: Partial<KubernetesAuthConfig> = {}): KubernetesAuthConfig => ({
    kubeconfig: cfgFile,
    audiences: [],
    allowTtlMs: 400,
    denyTtlMs: 400,
    staleMs: 60_000,
    timeoutMs: 60_000,
    maxRequestsPerSecond: 1000,
    ...over,
  });

  beforeAll(async () => {
    ns = await namespace('clock');
    await serviceAccount(ns, 'sidecar');
    await serviceAccount(ns, 'prometheus');
    await bindClusterRole(`clock-delegator-${run}`, 'system:auth-delegator', ns, 'sidecar');
    await grantNonResource(`clock-reader-${run}`, ns, 'prometheus', ['/debug/metrics']);
    cfgFile = kubeconfig(tmp, 'sidecar', { token: await token(ns, 'sidecar') });
    // Three different tokens of the bound ServiceAccount (different expiries: different JWTs).
    for (let i = 0; i < 3; i++) tokens.push(await token(ns, 'prometheus', { expirationSeconds: 3600 + i }));
  });

  afterEach(async () => {
    await authorizer?.end();
    authorizer = undefined;
  });

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('should answer from the cache until the TTL has passed, then ask the API server again', async () => {
    authorizer = await startAuthorizer(cfg());
    expect(await authorizer.ask(tokens[0])).toMatchObject({ decision: 'allow', cache: ['miss'] });
    await authorizer.advance(399);
    expect(await authorizer.ask(tokens[0])).toMatchObject({ decision: 'allow', cache: ['hit'] });
    await authorizer.advance(1);
    expect(await authorizer.ask(tokens[0])).toMatchObject({ decision: 'allow', cache: ['miss'] });
  });

  it('should refill the rate budget as the clock moves (a decision costs two calls)', async () => {
    authorizer = await startAuthorizer(cfg({ maxRequestsPerSecond: 2 }));
    expect((await authorizer.ask(tokens[0])).decision).toBe('allow');
    const refused = await authorizer.ask(tokens[1]);
    expect(refused.decision).toBe('unavailable');
    expect(refused.logs).toEqual([expect.objectContaining({ code: 'RATE_LIMITED' })]);
    // Half a second refills one call, and a decision takes two.
    await authorizer.advance(500);
    expect((await authorizer.ask(tokens[1])).decision).toBe('unavailable');
    await authorizer.advance(1000);
    expect((await authorizer.ask(tokens[2])).decision).toBe('allow');
  });

  it('should bound the sidecar’s API calls (METRICS_KUBERNETES_MAX_REQUESTS_PER_S): one decision, then refusals', async () => {
    const limited = await kubeSidecar(cfgFile, { METRICS_KUBERNETES_MAX_REQUESTS_PER_S: '2' });
    try {
      // The start check is not counted against the budget of the reviews.
      await untilReady(limited);
      const statuses = [];
      for (const t of tokens) statuses.push((await scrape(limited.metricsPort, t)).status);
      expect(statuses).toEqual([200, 401, 401]);
      expect(await waitForLog(limited, (l) => l.msg === 'kubernetes API unavailable for an auth decision')).toMatchObject({ code: 'RATE_LIMITED' });
    } finally {
      await stop(limited);
    }
  });
});
