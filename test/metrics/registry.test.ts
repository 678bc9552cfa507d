import fc from 'fast-check';
import { Counter, Gauge, Histogram, Registry } from '../../src/metrics/registry';
import { formatLe, formatNumber } from '../../src/formats/exposition';
import { renderText } from '../helpers/text-oracle';
import { ExpositionWriter } from '../../src/exposition/render';

describe('Registry', () => {
  it('should render counters, gauges and histograms in text 0.0.4', () => {
    const r = new Registry();
    const c = r.register(new Counter({ name: 'jobs_total', help: 'Jobs.', labelNames: ['queue'] }));
    const g = r.register(new Gauge({ name: 'temp_celsius', help: 'Temp.' }));
    const h = r.register(new Histogram({ name: 'wait_seconds', help: 'Wait.', labelNames: ['q'], buckets: [0.1, 1] }));
    c.inc(['a']);
    c.inc(['a'], 2);
    g.set([], -1.5);
    h.observe(['x'], 0.05);
    h.observe(['x'], 0.1);
    h.observe(['x'], 3);
    expect(renderText(r, false)).toBe(
      [
        '# HELP jobs_total Jobs.',
        '# TYPE jobs_total counter',
        'jobs_total{queue="a"} 3',
        '# HELP temp_celsius Temp.',
        '# TYPE temp_celsius gauge',
        'temp_celsius -1.5',
        '# HELP wait_seconds Wait.',
        '# TYPE wait_seconds histogram',
        'wait_seconds_bucket{q="x",le="0.1"} 2',
        'wait_seconds_bucket{q="x",le="1"} 2',
        'wait_seconds_bucket{q="x",le="+Inf"} 3',
        'wait_seconds_sum{q="x"} 3.15',
        'wait_seconds_count{q="x"} 3',
        '',
      ].join('\n'),
    );
  });

  it('should render OpenMetrics family names, float le values and # EOF', () => {
    const r = new Registry();
    r.register(new Counter({ name: 'jobs_total', help: 'Jobs.' })).inc();
    r.register(new Histogram({ name: 'wait_seconds', help: 'Wait.', buckets: [1] })).observe([], 2);
    const om = renderText(r, true);
    expect(om).toContain('# TYPE jobs counter\njobs_total 1\n');
    expect(om).toContain('wait_seconds_bucket{le="1.0"} 0\nwait_seconds_bucket{le="+Inf"} 1\n');
    expect(om.endsWith('# EOF\n')).toBe(true);
  });

  it('should escape label values and help text', () => {
    const r = new Registry();
    r.register(new Counter({ name: 'x_total', help: 'a \\ b\nc', labelNames: ['v'] })).inc(['q"uo\\te\nnl']);
    const text = renderText(r, false);
    expect(text).toContain('# HELP x_total a \\\\ b\\nc\n');
    expect(text).toContain('x_total{v="q\\"uo\\\\te\\nnl"} 1\n');
  });

  it('should cap series, send refused label sets to one overflow series and report each', () => {
    const r = new Registry();
    const dropped: string[] = [];
    r.onDrop = (f, reason) => dropped.push(`${f} ${reason}`);
    const c = r.register(new Counter({ name: 'c_total', help: 'c', labelNames: ['k'], maxSeries: 2 }));
    for (const k of ['a', 'b', 'c', 'a', 'd']) c.inc([k]);
    expect(c.size).toBe(2);
    expect(c.hasOverflow).toBe(true);
    expect(dropped).toEqual(['c_total family_cap', 'c_total family_cap']);
    const text = renderText(r, false);
    expect(text).toContain('c_total{k="a"} 2\n');
    expect(text).toContain('c_total{otel_metric_overflow="true"} 2\n');
  });

  it('should refuse wrong label counts, duplicate names, counters without _total and le labels', () => {
    const r = new Registry();
    const c = r.register(new Counter({ name: 'a_total', help: 'a', labelNames: ['x'] }));
    expect(() => c.inc([])).toThrow(/expected 1 label values/);
    expect(() => r.register(new Counter({ name: 'a_total', help: 'a' }))).toThrow(/already registered/);
    expect(() => new Counter({ name: 'a', help: 'a' })).toThrow(/_total/);
    expect(() => new Histogram({ name: 'h', help: 'h', labelNames: ['le'], buckets: [1] })).toThrow(/le/);
  });

  it.each([
    [1, '1'],
    [0.25, '0.25'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
    [NaN, 'NaN'],
    [1e-7, '1e-7'],
  ])('should format %p as %s', (n, s) => {
    expect(formatNumber(n)).toBe(s);
  });
});

describe('le values', () => {
  it('should write OpenMetrics integer bounds as floats (1.0), but never append .0 to an exponent (1e+21)', () => {
    expect([formatLe(1, true), formatLe(1, false), formatLe(0.5, true), formatLe(1e21, true), formatLe(2e22, false)]).toEqual([
      '1.0',
      '1',
      '0.5',
      '1e+21',
      '2e+22',
    ]);
    const r = new Registry();
    r.register(new Histogram({ name: 'big_bounds', help: 'h', buckets: [1, 1e21] })).observe([], 5);
    expect(renderText(r, true)).toContain('big_bounds_bucket{le="1e+21"} 1\n');
    expect(new ExpositionWriter(r.all(), true).all().toString('utf8')).toBe(renderText(r, true));
  });
});

describe('series keys', () => {
  it('should give two label value tuples one series exactly when they are equal (escaping keeps the key one-to-one)', () => {
    const value = fc.string({ unit: fc.constantFrom('a', '\\', '"', '\n', ',', '=', '\u0000', '}', 'é'), maxLength: 6 });
    fc.assert(
      fc.property(fc.tuple(value, value), fc.tuple(value, value), (x, y) => {
        const c = new Counter({ name: 'x_total', help: 'h', labelNames: ['a', 'b'] });
        const sx = c.child(x);
        expect(c.child([...x])).toBe(sx);
        expect(c.child(y) === sx).toBe(x[0] === y[0] && x[1] === y[1]);
      }),
      { numRuns: 5_000 },
    );
  });

  it("should keep tuples apart that a NUL-joined key made one (['x\\u0000y', ''] and ['x', 'y\\u0000'])", () => {
    const c = new Counter({ name: 'x_total', help: 'h', labelNames: ['a', 'b'] });
    expect(c.child(['x\u0000y', ''])).not.toBe(c.child(['x', 'y\u0000']));
  });
});
