/**
 * The upstream client's pure parts on their own: the response head parser and the chunked decoder
 * (over real sockets they are tested in upstream-client.test.ts and against llhttp in
 * parser-differential.test.ts).
 */
import fc from 'fast-check';
import { parseResponseHead } from '../../src/proxy/upstream-head';
import { ChunkedDecoder } from '../../src/proxy/upstream-chunked';

describe('parseResponseHead', () => {
  it('should read status, reason, headers in order with lower-case names, framing and the keep-alive hint', () => {
    expect(
      parseResponseHead('HTTP/1.1 201 Created\r\nContent-Length: 12\r\nX-App: a b\r\nKeep-Alive: timeout=5, max=100\r\nConnection: keep-alive\r\n'),
    ).toEqual({
      status: 201,
      reason: 'Created',
      headers: ['content-length', '12', 'x-app', 'a b', 'keep-alive', 'timeout=5, max=100', 'connection', 'keep-alive'],
      length: 12,
      chunked: false,
      close: false,
      keepAliveHintMs: 5000,
    });
  });

  it.each([
    ['HTTP/1.0 200 OK\r\n', { close: true }],
    ['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n', { close: false }],
    ['HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\n', { close: true }],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n', { chunked: true, length: -1 }],
  ])('%j → %j', (head, expected) => {
    expect(parseResponseHead(head)).toMatchObject(expected);
  });

  it.each([
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n', /more than one Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n', /both Content-Length and Transfer-Encoding/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n', /unsupported Transfer-Encoding/],
    ['HTTP/1.1 200 OK\r\nX: a\r\n b\r\n', /malformed response header/],
    ['HTTP/1.1 2000 OK\r\n', /malformed status line/],
  ])('should refuse %j', (head, message) => {
    expect(() => parseResponseHead(head)).toThrow(message);
  });
});

describe('ChunkedDecoder', () => {
  it('should give back the body whatever the chunk sizes, extensions, trailers and packet splits (generated)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
        (chunks, ext, trailers, cuts) => {
          const parts: Buffer[] = [];
          for (const c of chunks) parts.push(Buffer.from(`${c.length.toString(16)}${ext ? ';x=1' : ''}\r\n`), Buffer.from(c), Buffer.from('\r\n'));
          parts.push(Buffer.from(trailers ? '0\r\nX-Trailer: t\r\n\r\n' : '0\r\n\r\n'));
          const wire = Buffer.concat(parts);
          const d = new ChunkedDecoder();
          const out: Buffer[] = [];
          let at = 0;
          let i = 0;
          while (at < wire.length && !d.done) {
            const end = Math.min(wire.length, at + cuts[i++ % cuts.length]);
            const packet = wire.subarray(at, end);
            const used = d.decode(
              packet,
              0,
              (b) => out.push(Buffer.from(b)),
              () => false,
            );
            expect(used).toBe(packet.length);
            at = end;
          }
          expect(d.done).toBe(true);
          expect(Buffer.concat(out).equals(Buffer.concat(chunks.map((c) => Buffer.from(c))))).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('should stop where the body ends, leaving what follows', () => {
    const d = new ChunkedDecoder();
    const wire = Buffer.from('3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK');
    expect(
      d.decode(
        wire,
        0,
        () => undefined,
        () => false,
      ),
    ).toBe(wire.indexOf('HTTP'));
    expect(d.done).toBe(true);
  });

  it.each([
    ['3\r\nabcd\r\n', /chunk data longer than its size/],
    ['x\r\n', /invalid chunk size/],
    ['3\nabc\r\n', /bare CR or LF/],
    ['0\r\nbad trailer\r\n\r\n', /malformed trailer/],
    [`${'1'.repeat(5000)}\r\n`, /chunk framing line too long/],
  ])('should refuse %j', (wire, message) => {
    expect(() =>
      new ChunkedDecoder().decode(
        Buffer.from(wire),
        0,
        () => undefined,
        () => false,
      ),
    ).toThrow(message);
  });
});
