/**
 * Numbers in the exposition are written without V8's number-string cache (issue 12: scrapes that
 * cost the proxy nothing). String(v) of a non-integer double stores its result in that cache, and
 * V8 allocates cached strings straight in the old generation: one scrape of 100k such values left
 * megabytes of old-space garbage, which a major GC later collected while forwarded requests waited.
 * numberText and writeNumber must print exactly what String(v) prints, and leave no such garbage.
 */
import v8 from 'node:v8';
import fc from 'fast-check';
import { formatNumber, numberText, writeNumber } from '../../src/formats/exposition';

const oldSpaceUsed = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;

describe('numberText', () => {
  it('should print every finite double exactly as String does', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
        expect(numberText(v)).toBe(String(v));
      }),
      { numRuns: 20_000 },
    );
  });

  it('should print integers, -0 and the edges of fixed notation as String does', () => {
    for (const v of [0, -0, 1, -1, 2 ** 53, 2 ** 53 + 2, 1e21, 1e-7, 1e-6, 123456789.123, Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE]) {
      expect(numberText(v)).toBe(String(v));
      expect(formatNumber(v)).toBe(String(v));
    }
  });

  it('should make writeNumber print what formatNumber prints, non-finite values included', () => {
    const buf = Buffer.alloc(64);
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constantFrom(NaN, Infinity, -Infinity, -0)), (v) => {
        const n = writeNumber(buf, 0, v);
        expect(buf.toString('latin1', 0, n)).toBe(formatNumber(v));
      }),
      { numRuns: 20_000 },
    );
  });

  it('should leave no old-generation garbage when 100k decimals are written (String(v) left ~2 MB)', () => {
    const values = Array.from({ length: 100_000 }, (_, i) => i / 7 + 0.123456789);
    const buf = Buffer.alloc(64);
    const pass = (): void => {
      for (const v of values) writeNumber(buf, 0, v);
    };
    pass(); // first run: compiled code and feedback are allocated once, not per pass
    pass();
    const before = oldSpaceUsed();
    pass();
    const grown = oldSpaceUsed() - before;
    // Each value's text is ~18 bytes: cached in the old generation, one pass would add ~2.4 MB.
    expect(grown).toBeLessThan(256 * 1024);
  });
});
