/**
 * parseTraceparent (src/proxy/traceparent.ts) by W3C Trace Context rules: generated valid headers
 * parse back to their parts, generated single mutations are refused, and nothing throws.
 */
import fc from 'fast-check';
import { parseSampledTraceparent, parseTraceparent } from '../../src/proxy/traceparent';

const HEX = '0123456789abcdef';
const hex = (n: number) => fc.string({ unit: fc.constantFrom(...HEX.split('')), minLength: n, maxLength: n });
const nonZeroHex = (n: number) => hex(n).filter((s) => /[1-9a-f]/.test(s));
const version = hex(2).filter((v) => v !== 'ff');

interface Parts {
  version: string;
  traceId: string;
  spanId: string;
  flags: string;
  tail: string;
}

const parts = fc
  .record({
    version,
    traceId: nonZeroHex(32),
    spanId: nonZeroHex(16),
    flags: hex(2),
    tail: fc.string({ unit: fc.constantFrom(...'abc-019xyz.'.split('')), maxLength: 20 }),
  })
  // Only a higher version may carry more, and then after a dash.
  .map((p): Parts => ({ ...p, tail: p.version === '00' || p.tail === '' ? '' : `-${p.tail}` }));

const render = (p: Parts) => `${p.version}-${p.traceId}-${p.spanId}-${p.flags}${p.tail}`;
const sampled = (flags: string) => (parseInt(flags, 16) & 1) === 1;

describe('parseTraceparent', () => {
  it('the specification example', () => {
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toEqual({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      sampled: true,
    });
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')?.sampled).toBe(false);
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03')?.sampled).toBe(true);
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02')?.sampled).toBe(false);
  });

  it('generated valid headers parse back to their parts', () => {
    fc.assert(
      fc.property(parts, fc.constantFrom('', ' ', '\t', ' \t '), fc.constantFrom('', ' ', '\t\t'), (p, lead, trail) => {
        expect(parseTraceparent(lead + render(p) + trail)).toEqual({
          traceId: p.traceId,
          spanId: p.spanId,
          sampled: sampled(p.flags),
        });
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses each generated single mutation', () => {
    const mutation = fc.oneof(
      // one character of the version, ids or flags changed to a non-hex or uppercase character
      fc.record({ kind: fc.constant('char' as const), pos: fc.nat(), ch: fc.constantFrom(...'ABCDEFgxz-_ .,:+G\u00e9\u0660'.split('')) }),
      fc.record({ kind: fc.constant('dash' as const), which: fc.constantFrom(2, 35, 52), ch: fc.constantFrom('_', '0', 'a', ' ', '+') }),
      fc.record({ kind: fc.constant('drop' as const), pos: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), ch: fc.constantFrom(...'0a-'.split('')) }),
      fc.record({ kind: fc.constant('zero' as const), which: fc.constantFrom('trace', 'span') }),
      fc.constant({ kind: 'ff' as const }),
      fc.record({ kind: fc.constant('v00tail' as const), tail: fc.constantFrom('-', '-00', 'x', '0') }),
      fc.record({ kind: fc.constant('joined' as const) }),
    );
    fc.assert(
      fc.property(parts, mutation, (p, m) => {
        const valid = render(p);
        const core = valid.slice(0, 55);
        let bad: string;
        switch (m.kind) {
          case 'char': {
            // positions of hex characters in the first 55: not 2, 35, 52 (dashes)
            const hexPos = [...Array(55).keys()].filter((i) => i !== 2 && i !== 35 && i !== 52);
            const pos = hexPos[m.pos % hexPos.length];
            fc.pre(m.ch !== core[pos]);
            bad = core.slice(0, pos) + m.ch + core.slice(pos + 1) + p.tail;
            break;
          }
          case 'dash':
            bad = core.slice(0, m.which) + m.ch + core.slice(m.which + 1) + p.tail;
            break;
          case 'drop': {
            // one character fewer inside the 55: every field shifts
            const pos = m.pos % 55;
            bad = core.slice(0, pos) + core.slice(pos + 1) + p.tail;
            break;
          }
          case 'insert': {
            const pos = 3 + (m.pos % 52); // inside the ids or flags
            bad = core.slice(0, pos) + m.ch + core.slice(pos) + p.tail;
            break;
          }
          case 'zero':
            bad =
              m.which === 'trace'
                ? `${p.version}-${'0'.repeat(32)}-${p.spanId}-${p.flags}${p.tail}`
                : `${p.version}-${p.traceId}-${'0'.repeat(16)}-${p.flags}${p.tail}`;
            break;
          case 'ff':
            bad = `ff${valid.slice(2)}`;
            break;
          case 'v00tail':
            bad = `00${core.slice(2)}${m.tail}`;
            break;
          case 'joined':
            // Two traceparent headers, as Node's req.headers joins them.
            bad = `${valid}, ${valid}`;
            break;
        }
        expect([bad, parseTraceparent(bad)]).toEqual([bad, undefined]);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a higher version followed by anything but a dash, and odd lengths', () => {
    const ids = '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(parseTraceparent(`cc-${ids}`)).toBeDefined();
    expect(parseTraceparent(`cc-${ids}-what-the-future-holds`)).toBeDefined();
    expect(parseTraceparent(`cc-${ids}.x`)).toBeUndefined();
    expect(parseTraceparent(`cc-${ids}0`)).toBeUndefined();
    expect(parseTraceparent(`00-${ids}-`)).toBeUndefined();
    expect(parseTraceparent(`00-${ids.slice(0, -1)}`)).toBeUndefined();
    expect(parseTraceparent(`0-${ids}`)).toBeUndefined();
    expect(parseTraceparent(`000-${ids}`)).toBeUndefined();
    expect(parseTraceparent(`0A-${ids}`)).toBeUndefined();
    expect(parseTraceparent(`00-${ids.toUpperCase()}`)).toBeUndefined();
    expect(parseTraceparent(`00-${ids.slice(0, -2)}1G`)).toBeUndefined();
    expect(parseTraceparent(`\n00-${ids}`)).toBeUndefined();
    expect(parseTraceparent(`00-${ids}\u00a0`)).toBeUndefined();
    expect(parseTraceparent('')).toBeUndefined();
    expect(parseTraceparent('   ')).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
  });

  it('never throws, and anything it accepts is well formed', () => {
    const accepted = (s: string) => {
      const r = parseTraceparent(s);
      if (r === undefined) return;
      expect(r.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(r.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(r.traceId).not.toMatch(/^0+$/);
      expect(r.spanId).not.toMatch(/^0+$/);
      expect(s.trim()).toContain(`-${r.traceId}-${r.spanId}-`);
    };
    fc.assert(fc.property(fc.string(), accepted), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), accepted), { numRuns: 2000 });
    fc.assert(
      // near-valid: random characters from the alphabet the format uses, around the right length
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefF- \t,'.split('')), minLength: 50, maxLength: 70 }), accepted),
      { numRuns: 3000 },
    );
  });
});

describe('parseSampledTraceparent (flags read first)', () => {
  const same = (s: string) => {
    const full = parseTraceparent(s);
    expect(parseSampledTraceparent(s)).toEqual(full !== undefined && full.sampled ? full : undefined);
  };

  it('answers as parseTraceparent filtered on sampled, on valid headers with OWS and every flag value', () => {
    fc.assert(
      fc.property(parts, fc.constantFrom('', ' ', '\t '), fc.constantFrom('', ' '), (p, lead, trail) => same(`${lead}${render(p)}${trail}`)),
      { numRuns: 2000 },
    );
  });

  it('answers as parseTraceparent on near-valid and arbitrary strings (a malformed header is never a trace)', () => {
    fc.assert(fc.property(fc.string(), same), { numRuns: 1000 });
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefF- \t,'.split('')), minLength: 50, maxLength: 70 }), same), { numRuns: 3000 });
    // A valid sampled header with one character replaced: the early flags read must not accept it.
    fc.assert(
      fc.property(
        parts.map((p) => render({ ...p, flags: '01' })),
        fc.nat(),
        fc.constantFrom(...'0123456789abcdefF- \t,x'.split('')),
        (h, at, c) => same(h.slice(0, at % h.length) + c + h.slice((at % h.length) + 1)),
      ),
      { numRuns: 3000 },
    );
  });

  it('returns nothing for undefined', () => {
    expect(parseSampledTraceparent(undefined)).toBeUndefined();
  });
});
