/**
 * The status model on a fake clock: windows of 1 and 15 minutes from the ring buffers,
 * percentiles from the duration buckets, sparkline points per minute, and a sampler that exists
 * only while someone asks (it starts on a status request and stops after 15 idle minutes).
 */
import { loadConfig } from '../../src/config';
import { createSidecarMetrics } from '../../src/metrics/sidecar';
import { RedRecorder } from '../../src/proxy/red';
import { StatusService, quantile } from '../../src/status/service';
import { IDLE_STOP_MS, TICK_MS, parseLabels } from '../../src/status/sampler';
import type { StatusDocument } from '../../src/status/schema';

function setup() {
  const config = loadConfig({ LISTEN_PORT: '8080', STATSD_PORT: '0' });
  const metrics = createSidecarMetrics(config);
  const red = new RedRecorder(metrics.registry, config.http);
  let clock = 1_700_000_000_000;
  const status = new StatusService({
    config,
    registry: metrics.registry,
    lifecycle: { ready: () => true, draining: () => false },
    accessOpen: true,
    now: () => clock,
  });
  const advance = (ms: number) => {
    clock += ms;
  };
  const doc = (): StatusDocument => JSON.parse(status.json());
  return { red, status, advance, doc };
}

describe('quantile (histogram_quantile over bucket counts)', () => {
  const bounds = [0.1, 0.5, 1];
  const d = (...buckets: number[]) => Float64Array.from([buckets.reduce((a, b) => a + b, 0), 0, ...buckets]);
  it.each([
    [0.5, d(10, 0, 0, 0), 0.05],
    [0.5, d(0, 10, 0, 0), 0.3],
    [0.99, d(50, 50, 0, 0), 0.1 + 0.4 * 0.98],
    [0.9, d(0, 0, 0, 10), 1], // in +Inf: the highest finite bound
    [0.25, d(1, 1, 1, 1), 0.1],
  ])('should give the %p-quantile', (q, counts, expected) => {
    expect(quantile(q, counts, bounds)).toBeCloseTo(expected, 9);
  });
});

describe('parseLabels', () => {
  it('should read rendered label pairs, escapes included', () => {
    expect(parseLabels('method="GET",path="/a\\"b\\\\c",status="200"')).toEqual({ method: 'GET', path: '/a"b\\c', status: '200' });
  });
});

describe('status sampler', () => {
  it('should not run until asked, and stop after 15 minutes without a request', () => {
    const { status, advance } = setup();
    expect(status.sampler.running).toBe(false);
    status.json();
    expect(status.sampler.running).toBe(true);
    advance(IDLE_STOP_MS - TICK_MS);
    status.sampler.tick();
    expect(status.sampler.running).toBe(true);
    advance(2 * TICK_MS);
    status.sampler.tick();
    expect(status.sampler.running).toBe(false);
    expect(status.sampler.minutes()).toHaveLength(0); // the rings are dropped
  });

  it('should compute 1 and 15 minute windows, errors, percentiles and per-minute sparklines', () => {
    const { red, status, advance, doc } = setup();
    status.json();
    // 20 minutes: /fast gets 10 requests every 10 s (one of them a 503), at 50 ms; /slow gets 1 at 2 s
    // during the first 10 minutes only.
    for (let t = 1; t <= 120; t++) {
      advance(TICK_MS);
      for (let i = 0; i < 10; i++) red.record('GET', '/fast', i === 0 ? 503 : 200, 0.05, false);
      if (t <= 60) red.record('POST', '/slow', 200, 2, false);
      status.sampler.tick();
      if (t % 30 === 0) status.json(); // someone keeps looking
    }
    const d = doc();
    expect(d.sampling.covered_1m_s).toBe(60);
    expect(d.sampling.covered_15m_s).toBe(900);
    const fast = d.traffic.routes.find((r) => r.route === '/fast')!;
    expect(fast.m1).toMatchObject({ requests: 60, rps: 1, error_ratio: 0.1 });
    expect(fast.m15).toMatchObject({ requests: 900, rps: 1, error_ratio: 0.1 });
    expect(fast.m1.p50).toBeGreaterThan(0.025);
    expect(fast.m1.p99).toBeLessThanOrEqual(0.05);
    expect(fast.spark.rps).toHaveLength(15);
    for (const v of fast.spark.rps) expect(v).toBeCloseTo(1, 5);
    const slow = d.traffic.routes.find((r) => r.route === '/slow')!;
    expect(slow.m1).toMatchObject({ requests: 0, rps: 0, p99: null });
    expect(slow.m15).toMatchObject({ requests: 30, rps: 0.03333 }); // minutes 5 to 10 of its traffic are inside the window
    expect(slow.m15.p50).toBeGreaterThan(1);
    expect(slow.spark.rps.slice(0, 5).every((v) => v > 0)).toBe(true);
    expect(slow.spark.rps.slice(6)).toEqual(Array(9).fill(0));
    expect(slow.spark.p99.slice(6)).toEqual(Array(9).fill(null));
    expect(d.traffic.totals.m1.requests).toBe(60);
    expect(d.traffic.routes_total).toBe(2);
  });

  it('should count from the start while the sampler has no history, then from its first snapshot', () => {
    const { red, status, advance, doc } = setup();
    for (let i = 0; i < 5; i++) red.record('GET', '/a', 200, 0.01, false);
    const first = doc();
    expect(first.traffic.routes[0].m1.requests).toBe(5); // since start: nothing older exists
    advance(5000);
    red.record('GET', '/a', 200, 0.01, false);
    const second = doc();
    expect(second.sampling.covered_1m_s).toBe(5);
    expect(second.traffic.routes[0].m1).toMatchObject({ requests: 1, rps: 0.2 });
    expect(status.sampler.running).toBe(true);
    status.stop();
  });
});
