/**
 * Property: a target reaches the application only if its canonical form is outside `/debug/`, and
 * the application receives exactly that form; every other target is answered by the sidecar
 * (400, or its own `/debug/` tree). Checked against the independent model in target-model.ts:
 * 100,000 generated targets against the canonicaliser itself, and 100,000 more byte for byte over
 * real sockets through a running sidecar to a raw-socket upstream that records each request line.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { canonicalize } from '../../src/proxy/target';
import { startSidecar, type Running } from '../helpers/sidecar';
import { model, wireOutcomes, type Outcome } from './target-model';
import { targetArb } from './target-arbitraries';

function agrees(raw: string, out: Outcome): string | undefined {
  const t = canonicalize(raw);
  switch (out.kind) {
    case 'node':
    case 'refused':
      return t.ok ? `model ${out.kind} (${'why' in out ? out.why : 'Node'}), canonicaliser accepted as ${t.target}` : undefined;
    case 'reserved':
      return !t.ok ? `model reserved, canonicaliser refused (${t.reason})` : t.reserved ? undefined : `model reserved, canonicaliser forwards ${t.target}`;
    case 'forward':
      if (!t.ok) return `model forwards ${out.target}, canonicaliser refused (${t.reason})`;
      if (t.reserved) return `model forwards ${out.target}, canonicaliser reserved it`;
      return t.target === out.target ? undefined : `model forwards ${out.target}, canonicaliser ${t.target}`;
  }
}

describe('canonical target against the model', () => {
  it('should agree on 100,000 generated targets', () => {
    const kinds: Record<string, number> = { node: 0, refused: 0, reserved: 0, forward: 0 };
    fc.assert(
      fc.property(targetArb, (raw) => {
        const out = model(raw);
        kinds[out.kind]++;
        const problem = agrees(raw, out);
        if (problem !== undefined) throw new Error(`${JSON.stringify(raw)}: ${problem}`);
      }),
      { numRuns: 100_000 },
    );
    // The generator reaches every outcome often, or the property says little.
    for (const k of Object.keys(kinds)) expect(kinds[k]).toBeGreaterThan(1000);
  });
});

/** A raw-socket application: records each request line's target, answers 200 with it as the body. */
async function rawUpstream(): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const target = head.slice(0, head.indexOf('\r\n')).split(' ')[1];
        seen.push(target);
        sock.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-from: upstream\r\ncontent-length: ${Buffer.byteLength(target, 'latin1')}\r\n\r\n${target}`,
        );
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Answer {
  status: number;
  fromUpstream: boolean;
  body: string;
}

/** A keep-alive raw HTTP/1.1 client: one request at a time, reconnects when the server closes. */
class RawClient {
  private sock: net.Socket | undefined;
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private closed = true;

  constructor(private readonly port: number) {}

  private connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1', () => resolve());
      this.sock = s;
      this.closed = false;
      this.buf = Buffer.alloc(0);
      // Events of a socket already replaced by a newer one are ignored.
      s.on('data', (c: Buffer) => {
        if (this.sock !== s) return;
        this.buf = Buffer.concat([this.buf, c]);
        this.waiter?.();
      });
      s.on('error', (err) => {
        if (this.sock === s) reject(err);
      });
      s.on('close', () => {
        if (this.sock !== s) return;
        this.closed = true;
        this.waiter?.();
      });
    });
  }

  async send(target: string): Promise<Answer> {
    if (this.closed) await this.connect();
    const sock = this.sock!;
    sock.write(Buffer.concat([Buffer.from('GET '), Buffer.from(target, 'utf8'), Buffer.from(' HTTP/1.1\r\nHost: app.example\r\n\r\n')]));
    for (;;) {
      const answer = this.parse();
      if (answer !== undefined) return answer;
      if (this.closed) {
        const partial = this.buf.toString('latin1');
        this.buf = Buffer.alloc(0);
        return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(partial)?.[1] ?? 0), fromUpstream: false, body: partial };
      }
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
  }

  private parse(): Answer | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const head = this.buf.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buf.length < end + 4 + length) return undefined;
    const body = this.buf.subarray(end + 4, end + 4 + length).toString('latin1');
    this.buf = this.buf.subarray(end + 4 + length);
    if (/\r\nconnection: *close/i.test(head)) {
      this.sock?.destroy();
      this.closed = true;
    }
    return { status: Number(head.slice(9, 12)), fromUpstream: /\r\nx-from: upstream/i.test(head), body };
  }

  close(): void {
    this.sock?.destroy();
  }
}

/** Undefined when the answer fits the outcome, else why not. */
function check(out: Outcome, got: Answer): string | undefined {
  if (out.kind === 'forward') {
    return got.fromUpstream && got.status === 200 && got.body === out.target
      ? undefined
      : `expected upstream to get ${out.target}, got ${got.status} ${got.body.slice(0, 80)}`;
  }
  if (got.fromUpstream) return `model says ${out.kind}, but the upstream received ${got.body}`;
  if (out.kind === 'reserved') return got.status === 404 || got.status === 200 ? undefined : `reserved: expected the sidecar's 404/200, got ${got.status}`;
  return got.status === 400 ? undefined : `${out.kind === 'node' ? "Node's parser" : `sidecar (${out.why})`} should answer 400, got ${got.status}`;
}

describe('canonical target over the wire', () => {
  let upstream: Awaited<ReturnType<typeof rawUpstream>>;
  let sc: Running;

  beforeAll(async () => {
    upstream = await rawUpstream();
    sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${upstream.port}`, LOG_LEVEL: 'info', UPSTREAM_MAX_CONNECTIONS: '8' });
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  it('should forward exactly the canonical form of 100,000 generated targets, and nothing else', async () => {
    const seed = Date.now() ^ 0x5eed;
    const targets = fc.sample(targetArb, { numRuns: 100_000, seed });
    const failures: string[] = [];
    let expectedForwards = 0;
    // Forwards of a prefix Node read when the target held a space, CR or LF (wireOutcomes).
    let unexpectedForwards = 0;
    const allowed = new Set<string>();
    let next = 0;
    const worker = async (): Promise<void> => {
      const client = new RawClient(sc.mainPort);
      try {
        while (next < targets.length) {
          const raw = targets[next++];
          const outcomes = wireOutcomes(raw);
          for (const o of outcomes) if (o.kind === 'forward') allowed.add(o.target);
          const got = await client.send(raw);
          if (outcomes[0].kind === 'forward') expectedForwards++;
          const problems = outcomes.map((out) => check(out, got));
          if (problems.every((p) => p !== undefined)) failures.push(`${JSON.stringify(raw)} (seed ${seed}): ${problems.join(' / ')}`);
          else if (outcomes[0].kind !== 'forward' && got.fromUpstream) unexpectedForwards++;
        }
      } finally {
        client.close();
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(failures.slice(0, 10)).toEqual([]);
    // Nothing reached the application that the model did not send there. (Membership, not a count:
    // the forwarder may send an idempotent GET twice when a pooled socket dies under it.)
    expect(upstream.seen.filter((t) => !allowed.has(t))).toEqual([]);
    expect(upstream.seen.length).toBeGreaterThanOrEqual(expectedForwards + unexpectedForwards);
    expect(expectedForwards).toBeGreaterThan(1000);
    // Nothing of this is the application's failure.
    expect(
      sc.logs.filter((l) => l.level === 'warn' && l.msg !== 'metrics endpoints are open to any client: no allow-list or credentials are configured'),
    ).toEqual([]);
    // A hang guard for a loaded 2-core machine, not a speed assertion (about 45 s when idle).
  }, 600_000);
});
