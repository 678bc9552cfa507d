/**
 * The byte renderer must produce exactly what the string oracle (test/helpers/text-oracle.ts) does, in both formats, whatever the
 * families, label text, values and chunk boundaries; and streaming it must deliver those bytes.
 */
import { PassThrough, Writable } from 'node:stream';
import fc from 'fast-check';
import { Counter, Gauge, Histogram, Registry } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';
import { BufferPool, ExpositionWriter, streamExposition } from '../../src/exposition/render';
import { writeNumber } from '../../src/formats/exposition';
import type { Exemplar } from '../../src/metrics/native-types';

function rendered(r: Registry, om: boolean, extra = '', pool = new BufferPool()): string {
  return new ExpositionWriter(r.all(), om, extra, pool).all().toString('utf8');
}

/** What the registry renders, with `extra` where the exposition handler puts it (before # EOF). */
function expected(r: Registry, om: boolean, extra = ''): string {
  const text = renderText(r, om);
  return om ? `${text.slice(0, -'# EOF\n'.length)}${extra}# EOF\n` : `${text}${extra}`;
}

function exemplar([traceId, spanId, timestampMs]: [string, string, number], value: number): Exemplar {
  return {
    labels: [
      ['trace_id', traceId],
      ['span_id', spanId],
    ],
    value,
    timestampMs,
  };
}

function sample(): Registry {
  const r = new Registry();
  const c = r.register(new Counter({ name: 'jobs_total', help: 'Jobs \\ done\nby queue.', labelNames: ['queue', 'zone'] }));
  c.inc(['a', 'eu']);
  c.inc(['q"uo\\te\nnl', 'ünïcødé ✓ 𝄞'], 2.5);
  r.register(new Counter({ name: 'bare_total', help: 'No labels.' })).inc([], 7);
  const g = r.register(new Gauge({ name: 'temp_celsius', help: 'Temp.', labelNames: ['k'] }));
  const values = [
    0,
    -0,
    1,
    -1,
    42,
    -1.5,
    0.1,
    1e21,
    1e-7,
    2 ** 31,
    -(2 ** 31) - 1,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    2 ** 53 + 2,
    123456789.125,
    NaN,
    Infinity,
    -Infinity,
    Number.MIN_VALUE,
    -Number.MAX_VALUE,
  ];
  values.forEach((v, i) => g.set([`v${i}`], v));
  r.register(new Gauge({ name: 'empty_family', help: 'No series at all.' }));
  const h = r.register(new Histogram({ name: 'wait_seconds', help: 'Wait.', labelNames: ['q'], buckets: [0.005, 0.1, 1, 2.5, 10, 100] }));
  h.observe(['x'], 0.05);
  h.observe(['x'], 3);
  h.observe(['y'], 1e6);
  h.observeWeighted(h.child(['w'])!, 0.3, 1 / 0.3);
  r.register(new Histogram({ name: 'plain_seconds', help: 'No labels.', buckets: [1] })).observe([], 0.5);
  return r;
}

describe('ExpositionWriter', () => {
  it.each([
    ['text 0.0.4', false],
    ['OpenMetrics', true],
  ])('should render what the string oracle does (%s)', (_name, om) => {
    const r = sample();
    expect(rendered(r, om)).toBe(expected(r, om));
    expect(rendered(r, om, '# HELP merged_x M.\n# TYPE merged_x gauge\nmerged_x 1\n')).toBe(
      expected(r, om, '# HELP merged_x M.\n# TYPE merged_x gauge\nmerged_x 1\n'),
    );
  });

  it('should render OpenMetrics counter family names without _total and # EOF last', () => {
    const text = rendered(sample(), true);
    expect(text).toContain('# HELP jobs Jobs \\\\ done\\nby queue.\n# TYPE jobs counter\njobs_total{queue="a",zone="eu"} 1\n');
    expect(text).toContain('wait_seconds_bucket{q="x",le="1.0"} 1\n');
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  it('should escape a double quote in HELP for OpenMetrics only (its HELP is escaped as label values are)', () => {
    const r = new Registry();
    r.register(new Gauge({ name: 'quoted', help: 'Says "hi" \\ twice\nthen stops.' })).set([], 1);
    expect(rendered(r, true)).toContain('# HELP quoted Says \\"hi\\" \\\\ twice\\nthen stops.\n');
    expect(rendered(r, false)).toContain('# HELP quoted Says "hi" \\\\ twice\\nthen stops.\n');
  });

  it('should give the same bytes whatever the chunk size, items larger than a chunk included', () => {
    const r = sample();
    r.register(new Gauge({ name: 'long_labels', help: 'x'.repeat(600), labelNames: ['v'] })).set(['é'.repeat(700)], 1);
    for (const om of [false, true]) {
      const want = expected(r, om, 'm'.repeat(1000));
      for (const size of [64, 100, 256, 1000, 4096]) {
        const pool = new BufferPool(size);
        const w = new ExpositionWriter(r.all(), om, 'm'.repeat(1000), pool);
        const chunks: Buffer[] = [];
        for (let c = w.next(); c !== undefined; c = w.next()) {
          chunks.push(Buffer.from(c));
          pool.give(c);
        }
        expect(Buffer.concat(chunks).toString('utf8')).toBe(want);
        // Buffers were reused: far fewer allocated than chunks written.
        expect(pool.allocated).toBeLessThanOrEqual(1);
      }
    }
  });

  it('should spread a large merged text over chunks without splitting a character', () => {
    const r = sample();
    const extra = `# HELP merged M.\n# TYPE merged gauge\n${Array.from({ length: 3000 }, (_, i) => `merged{v="é𝄞${i}"} ${i}\n`).join('')}`;
    for (const om of [false, true]) {
      const pool = new BufferPool(1000);
      const w = new ExpositionWriter(r.all(), om, extra, pool);
      const chunks: Buffer[] = [];
      for (let c = w.next(); c !== undefined; c = w.next()) {
        expect(c.length).toBeLessThanOrEqual(1000);
        chunks.push(Buffer.from(c));
        pool.give(c);
      }
      expect(Buffer.concat(chunks).toString('utf8')).toBe(expected(r, om, extra));
    }
  });

  it('should end whatever unit of the extra text a chunk starts with', () => {
    // A chunk starting with only the last unit of the text left used to stop at offset 0 and
    // hand out empty chunks for ever (found by the protobuf round-trip property, which shares the pool).
    for (let len = 1; len <= 400; len++) {
      const extra = `${'x'.repeat(len - 1)}\n`;
      const w = new ExpositionWriter([], false, extra, new BufferPool(64));
      const parts: Buffer[] = [];
      for (let c = w.next(), n = 0; c !== undefined; c = w.next(), n++) {
        if (n > 100) throw new Error(`no end with ${len} units of extra text`);
        parts.push(Buffer.from(c));
      }
      expect(Buffer.concat(parts).toString()).toBe(extra);
    }
  });

  it('should match the string oracle on arbitrary families and values (property)', () => {
    const labelValue = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 6 }),
      fc.string({ unit: fc.constantFrom('"', '\\', '\n', 'é', '𝄞', ',', '}', '=', 'a'), maxLength: 8 }),
    );
    const value = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(NaN, Infinity, -Infinity, -0, 2 ** 53, 1e21), fc.maxSafeInteger());
    const family = fc.record({
      kind: fc.constantFrom('counter', 'gauge', 'histogram'),
      labels: fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'zone'), { maxLength: 3 }),
      buckets: fc.uniqueArray(fc.oneof(fc.integer({ min: -5, max: 100 }), fc.double({ min: 0.0001, max: 1000, noNaN: true })), { minLength: 1, maxLength: 5 }),
      series: fc.array(fc.tuple(fc.array(labelValue, { minLength: 4, maxLength: 4 }), fc.array(value, { minLength: 1, maxLength: 4 })), { maxLength: 6 }),
      help: fc.string({ maxLength: 20 }),
      // Some observations carry an exemplar (trace and span ids, a time), as sampled requests do.
      exemplars: fc.array(fc.tuple(fc.stringMatching(/^[0-9a-f]{32}$/), fc.stringMatching(/^[0-9a-f]{16}$/), fc.integer({ min: 0, max: 4e12 })), {
        maxLength: 3,
      }),
    });
    fc.assert(
      fc.property(fc.array(family, { maxLength: 5 }), fc.boolean(), fc.integer({ min: 64, max: 2048 }), (fams, om, size) => {
        const r = new Registry();
        fams.forEach((f, i) => {
          const opts = { name: `f${i}_${f.kind === 'counter' ? 'total' : 'x'}`, help: f.help, labelNames: f.labels };
          if (f.kind === 'histogram') {
            const h = r.register(new Histogram({ ...opts, buckets: [...f.buckets].sort((a, b) => a - b) }));
            for (const [lv, vs] of f.series) for (const v of vs) h.observe(lv.slice(0, f.labels.length), v);
            f.series.forEach(([lv, vs], j) => {
              const ex = f.exemplars[j];
              const s = h.child(lv.slice(0, f.labels.length));
              if (ex && s) h.observeWithExemplar(s, vs[0], exemplar(ex, vs[0]));
            });
          } else if (f.kind === 'counter') {
            const c = r.register(new Counter(opts));
            for (const [lv, vs] of f.series) for (const v of vs) c.inc(lv.slice(0, f.labels.length), v);
            f.series.forEach(([lv], j) => {
              const ex = f.exemplars[j];
              const s = c.child(lv.slice(0, f.labels.length));
              if (ex && s) c.incWithExemplar(s, exemplar(ex, 1));
            });
          } else {
            const g = r.register(new Gauge(opts));
            for (const [lv, vs] of f.series) for (const v of vs) g.set(lv.slice(0, f.labels.length), v);
          }
        });
        expect(rendered(r, om, '', new BufferPool(size))).toBe(expected(r, om));
      }),
      { numRuns: 300 },
    );
  });

  it('should write exemplars after their bucket and counter samples in OpenMetrics only', () => {
    const r = new Registry();
    const h = r.register(new Histogram({ name: 'lat_seconds', help: 'L.', labelNames: ['path'], buckets: [0.1, 1] }));
    const c = r.register(new Counter({ name: 'req_total', help: 'R.', labelNames: ['path'] }));
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const span = '00f067aa0ba902b7';
    h.observeWithExemplar(h.child(['/a'])!, 0.25, exemplar([trace, span, 1733577600123], 0.25));
    h.observe(['/a'], 0.05);
    c.incWithExemplar(c.child(['/a'])!, exemplar([trace, span, 1733577600123], 1));
    const om = rendered(r, true);
    expect(om).toContain(`lat_seconds_bucket{path="/a",le="0.1"} 1\n`);
    expect(om).toContain(`lat_seconds_bucket{path="/a",le="1.0"} 2 # {trace_id="${trace}",span_id="${span}"} 0.25 1733577600.123\n`);
    expect(om).toContain(`lat_seconds_bucket{path="/a",le="+Inf"} 2\n`);
    expect(om).toContain(`req_total{path="/a"} 1 # {trace_id="${trace}",span_id="${span}"} 1 1733577600.123\n`);
    expect(om).toBe(expected(r, true));
    // The text format cannot carry exemplars: none appear.
    expect(rendered(r, false)).not.toContain('#  {');
    expect(rendered(r, false)).not.toContain('trace_id');
  });

  it("should write a family's overflow series made while the family was being rendered (a refusal between two chunks)", () => {
    for (const kind of ['gauge', 'histogram'] as const) {
      const r = new Registry();
      const f =
        kind === 'gauge'
          ? r.register(new Gauge({ name: 'g', help: 'h', labelNames: ['a'], maxSeries: 50 }))
          : r.register(new Histogram({ name: 'g', help: 'h', labelNames: ['a'], maxSeries: 50, buckets: [1] }));
      for (let i = 0; i < 50; i++) f.child([String(i)]);
      const w = new ExpositionWriter(r.all(), false, '', new BufferPool(256));
      const chunks = [w.next()!.toString()];
      expect(f.hasOverflow).toBe(false);
      // The family is full: the next new label set is refused into the overflow series, mid-render.
      f.child(['late']);
      expect(f.hasOverflow).toBe(true);
      for (let c = w.next(); c !== undefined; c = w.next()) chunks.push(c.toString());
      const text = chunks.join('');
      expect(text).toBe(renderText(r, false));
      expect(text).toContain('otel_metric_overflow="true"');
    }
  });

  it('should write numbers as formatNumber does', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.double(), fc.maxSafeInteger(), fc.constantFrom(-0, 2 ** 53, -(2 ** 53), 1e21, 9.5e20)), (v) => {
        const buf = Buffer.alloc(64);
        const n = writeNumber(buf, 3, v);
        const want = Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
        expect(buf.toString('latin1', 3, n)).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('streamExposition', () => {
  function bigRegistry(n: number): Registry {
    const r = new Registry();
    const g = r.register(new Gauge({ name: 'big', help: 'Big.', labelNames: ['id'] }));
    for (let i = 0; i < n; i++) g.set([`series-${i}`], i);
    return r;
  }

  it('should stream the whole exposition with backpressure, yielding to the event loop between slices', async () => {
    const r = bigRegistry(20_000);
    const pool = new BufferPool(4096);
    const chunks: Buffer[] = [];
    let turns = 0;
    let counting = true;
    const tick = (): void => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    // A slow consumer: holds at most 8 KB and takes each chunk on a later turn of the loop.
    const out = new Writable({
      highWaterMark: 8192,
      write(chunk: Buffer, _enc, cb) {
        chunks.push(Buffer.from(chunk));
        setImmediate(cb);
      },
    });
    await streamExposition(new ExpositionWriter(r.all(), false, '', pool), out, { sliceMs: 0.5, pool });
    counting = false;
    expect(Buffer.concat(chunks).toString('utf8')).toBe(renderText(r, false));
    // The loop turned while rendering (it was not one synchronous run) ...
    expect(turns).toBeGreaterThan(10);
    // ... and chunk buffers were recycled rather than one allocated per chunk.
    expect(chunks.length).toBeGreaterThan(100);
    expect(pool.allocated).toBeLessThan(10);
  });

  it('should stop rendering and reject when the consumer goes away', async () => {
    const r = bigRegistry(20_000);
    const pool = new BufferPool(1024);
    const w = new ExpositionWriter(r.all(), false, '', pool);
    const out = new PassThrough({ highWaterMark: 1024 });
    let seen = 0;
    out.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen > 10_000) out.destroy();
    });
    await expect(streamExposition(w, out, { pool })).rejects.toThrow(/closed before/);
    expect(w.done).toBe(false);
  });
});
