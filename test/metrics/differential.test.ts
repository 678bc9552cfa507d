/**
 * Differential test of our store against prom-client (docs/adr/0001-own-metric-store.md): the same
 * generated operations (counter increments, gauge sets, histogram observations, label values with
 * quotes, backslashes, newlines and Unicode) go to both, and both expositions, parsed, give the
 * same samples. Where the stores differ on purpose (caps with an overflow series) they are not fed.
 */
import fc from 'fast-check';
import * as prom from 'prom-client';
import { Counter, Gauge, Histogram, Registry } from '../../src/metrics/registry';
import { parseExposition, type Sample } from '../helpers/exposition';

const BUCKETS = [0.005, 0.1, 1, 2.5, 10];
const labelValue = fc.oneof(fc.constantFrom('GET', 'POST', '/users/:id', 'a"b', 'back\\slash', 'new\nline', 'ünï', ''), fc.string({ maxLength: 6 }));
const op = fc.oneof(
  fc.record({ kind: fc.constant('inc' as const), a: labelValue, b: labelValue, by: fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1e6, noNaN: true })) }),
  fc.record({ kind: fc.constant('set' as const), a: labelValue, v: fc.double({ noNaN: true, noDefaultInfinity: true }) }),
  fc.record({
    kind: fc.constant('observe' as const),
    a: labelValue,
    v: fc.oneof(fc.constantFrom(0, 0.005, 0.1, 1, 2.5, 10, 11), fc.double({ min: 0, max: 100, noNaN: true })),
  }),
);

function key(s: Sample): string {
  return `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
}

function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of parseExposition(text).samples) out.set(key(s), s.value);
  return out;
}

describe('our store and prom-client, fed the same operations', () => {
  it('should expose the same samples', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const ours = new Registry();
        const c = ours.register(new Counter({ name: 'd_requests_total', help: 'r', labelNames: ['a', 'b'] }));
        const g = ours.register(new Gauge({ name: 'd_level', help: 'l', labelNames: ['a'] }));
        const h = ours.register(new Histogram({ name: 'd_seconds', help: 's', labelNames: ['a'], buckets: BUCKETS }));

        const theirs = new prom.Registry();
        const pc = new prom.Counter({ name: 'd_requests_total', help: 'r', labelNames: ['a', 'b'], registers: [theirs] });
        const pg = new prom.Gauge({ name: 'd_level', help: 'l', labelNames: ['a'], registers: [theirs] });
        const ph = new prom.Histogram({ name: 'd_seconds', help: 's', labelNames: ['a'], buckets: BUCKETS, registers: [theirs] });

        for (const o of ops) {
          if (o.kind === 'inc') {
            c.inc([o.a, o.b], o.by);
            pc.inc({ a: o.a, b: o.b }, o.by);
          } else if (o.kind === 'set') {
            g.set([o.a], o.v);
            pg.set({ a: o.a }, o.v);
          } else {
            h.observe([o.a], o.v);
            ph.observe({ a: o.a }, o.v);
          }
        }
        const a = samples(ours.render(false));
        const b = samples(await theirs.metrics());
        if (ops.length > 0) expect(a.size).toBeGreaterThan(0);
        expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
        for (const [k, v] of a) {
          const w = b.get(k)!;
          // Sums may differ in the last bits where prom-client rounds differently; counts are exact.
          if (Number.isFinite(v) && Math.abs(v) > 1e-9) expect(Math.abs(v - w) / Math.abs(v)).toBeLessThan(1e-9);
          else expect(v).toBe(w);
        }
      }),
      { numRuns: 200 },
    );
  });
});
