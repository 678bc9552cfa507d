/**
 * The upstream client's response parser against Node's own HTTP client (llhttp), on generated
 * bytes (issue 18, item 1): status lines, framing headers (Content-Length and Transfer-Encoding in
 * valid, duplicated, conflicting and odd spellings), chunked bodies (extensions, trailers, bad
 * sizes, missing CRLFs), bare LFs, obs-fold, 1xx heads, HEAD requests, bodies shorter or longer
 * than announced; each followed on the connection by a sentinel response, then the end. Both
 * clients read the same bytes. Whenever the upstream client accepts an answer, llhttp must have
 * accepted it too, with the same status and the same body bytes: where the two would frame a
 * response differently, the upstream client refuses (502), never guesses.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { UpstreamClient } from '../../src/proxy/upstream-client';

interface Outcome {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
}

const SENTINEL = 'HTTP/1.1 299 Sentinel\r\ncontent-length: 8\r\n\r\nSENTINEL';

let server: net.Server;
let port: number;
/** What the next connection is sent (each run opens two: one per client). */
let bytes = '';

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on('error', () => undefined);
    const mine = bytes;
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        head = '';
        s.end(Buffer.from(mine, 'latin1'));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/**
 * Node's client: the answer counts as read when llhttp completed its message (`res.complete`),
 * whatever comes after it on the connection (Node then destroys the socket for the extra bytes,
 * as the upstream client stops reusing it). Body chunks arrive synchronously in flowing mode, so
 * they are all in before such an error.
 */
function viaNode(method: string): Promise<Outcome> {
  return new Promise((resolve) => {
    let res: http.IncomingMessage | undefined;
    const chunks: Buffer[] = [];
    let error = '';
    const req = http.request({ host: '127.0.0.1', port, method, path: '/', agent: false }, (r) => {
      res = r;
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('error', (err) => (error ||= err.message));
    });
    req.on('error', (err) => (error ||= `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`));
    req.on('close', () => {
      if (res?.complete) resolve({ ok: true, status: res.statusCode, body: Buffer.concat(chunks).toString('latin1') });
      else resolve({ ok: false, error: error || 'incomplete' });
    });
    req.end();
  });
}

function viaUpstreamClient(client: UpstreamClient, method: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    client.dispatch(
      { method, path: '/', headers: ['host', 'app'], body: null, owner: {} },
      {
        onResponseStart: (_c, code) => {
          status = code;
        },
        onResponseData: (_c, chunk) => {
          chunks.push(Buffer.from(chunk));
        },
        onResponseEnd: () => resolve({ ok: true, status, body: Buffer.concat(chunks).toString('latin1') }),
        onResponseError: (_c, err) => resolve({ ok: false, error: err.message }),
      },
    );
  });
}

// ---- generators: well-formed parts, and the ways apps and attackers bend them
const digits = fc.integer({ min: 0, max: 40 });
const text = fc.stringMatching(/^[a-z0-9 ]{0,12}$/);
const statusLine = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.1 404 Not Found', 'HTTP/1.0 200 OK', 'HTTP/1.1 500 Oops', 'HTTP/1.1 201 ') },
  { weight: 2, arbitrary: fc.constantFrom('HTTP/1.1 204 No Content', 'HTTP/1.1 304 Not Modified', 'HTTP/1.1 200') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'HTTP/1.1 2000 OK',
      'HTTP/2 200 OK',
      'http/1.1 200 OK',
      'HTTP/1.1  200 OK',
      'HTTP/1.1 099 X',
      'HTTP/1.1 200 O\x01K',
      'HTTP/1.1 200 caf\xe9',
    ),
  },
);
const framingHeader = fc.oneof(
  digits.map((n) => `Content-Length: ${n}`),
  digits.map((n) => `content-length:${n}`),
  digits.map((n) => `Content-Length: ${n}  `),
  digits.map((n) => `Content-Length: 0${n}`),
  digits.map((n) => `Content-Length: +${n}`),
  digits.map((n) => `Content-Length: ${n}, ${n}`),
  digits.map((n) => `Content-Length: -${n}`),
  fc.constantFrom(
    'Transfer-Encoding: chunked',
    'transfer-encoding: Chunked',
    'Transfer-Encoding: gzip, chunked',
    'Transfer-Encoding: chunked, gzip',
    'Transfer-Encoding: identity',
    'Transfer-Encoding: chunked ',
    'Transfer-Encoding : chunked',
    'Connection: close',
    'Connection: keep-alive',
  ),
);
const otherHeader = fc.oneof(
  { weight: 6, arbitrary: text.map((v) => `X-App: ${v}`) },
  { weight: 1, arbitrary: fc.constantFrom('X-Folded: a\r\n b', 'Bad Header: x', 'X-Nul: a\x00b', ': empty-name', 'X-Tab:\tv', 'X-Obs: caf\xe9') },
);
const chunk = fc.oneof(
  { weight: 5, arbitrary: text.map((t) => `${t.length.toString(16)}\r\n${t}\r\n`) },
  { weight: 1, arbitrary: text.map((t) => `${t.length.toString(16)};ext=1\r\n${t}\r\n`) },
  { weight: 1, arbitrary: text.map((t) => `${t.length.toString(16).toUpperCase()}  \r\n${t}\r\n`) },
  { weight: 1, arbitrary: text.map((t) => `${(t.length + 1).toString(16)}\r\n${t}\r\n`) },
  { weight: 1, arbitrary: text.map((t) => `${t.length.toString(16)}\n${t}\n`) },
  { weight: 1, arbitrary: fc.constantFrom('x\r\nabc\r\n', '-1\r\n\r\n', '0x3\r\nabc\r\n', '\r\n') },
);
const lastChunk = fc.constantFrom('0\r\n\r\n', '0\r\nX-Trailer: t\r\n\r\n', '00\r\n\r\n', '0;e=1\r\n\r\n', '0\r\n', '0\r\nbad trailer\r\n\r\n', '');
const body = fc.oneof(
  text,
  fc.tuple(fc.array(chunk, { maxLength: 4 }), lastChunk).map(([cs, last]) => cs.join('') + last),
);
const informational = fc.constantFrom('', '', '', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n');
const lineEnd = fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\n');

const response = fc
  .tuple(informational, statusLine, fc.array(fc.oneof(framingHeader, otherHeader), { maxLength: 4 }), lineEnd, body)
  .map(([info, status, headers, eol, b]) => `${info}${status}${eol}${headers.map((h) => `${h}${eol}`).join('')}${eol}${b}`);

describe('response framing: the upstream client against llhttp', () => {
  it('should accept only what llhttp reads the same way (status and body), on generated answers', async () => {
    const tally = { bothAccept: 0, refusedByUs: 0 };
    await fc.assert(
      fc.asyncProperty(response, fc.boolean(), async (r, head) => {
        const method = head ? 'HEAD' : 'GET';
        bytes = r + SENTINEL;
        const node = await viaNode(method);
        const ours = new UpstreamClient({ host: '127.0.0.1', port, timeoutMs: 5000, maxConnections: 0 });
        try {
          const own = await viaUpstreamClient(ours, method);
          if (!own.ok) {
            tally.refusedByUs++;
            return;
          }
          tally.bothAccept++;
          expect({ bytes: r, method, node: { ok: node.ok, status: node.status, body: node.body } }).toEqual({
            bytes: r,
            method,
            node: { ok: true, status: own.status, body: own.body },
          });
        } finally {
          ours.close();
        }
      }),
      { numRuns: 1500 },
    );
    // Both sides of the property were exercised.
    expect(tally.bothAccept).toBeGreaterThan(200);
    expect(tally.refusedByUs).toBeGreaterThan(200);
  });
});
