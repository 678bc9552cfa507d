/**
 * StatsD over TCP has bounds (issue 18, item 3): the 64 KiB line limit counted in bytes, exactly
 * (65,536 bytes of a line without its newline are taken, 65,537 are malformed), an over-long line
 * discarded as it arrives, a cap on connections, an idle timeout, and one budget for the bytes of
 * unfinished lines across all connections. Real sockets against an in-process sidecar; every wait
 * is on an event (a socket's 'close') or on a condition the exposition shows, never on a clock.
 */
import net from 'node:net';
import { freePort, request } from '../helpers/net';
import { startSidecar, type Env, type Running } from '../helpers/sidecar';
import { find, parseExposition, value, type Parsed } from '../helpers/exposition';

const OPEN = 'metrics_sidecar_statsd_tcp_open_connections';
const BUFFERED = 'metrics_sidecar_statsd_tcp_buffered_bytes';
const CLOSED = 'metrics_sidecar_statsd_tcp_connections_closed_total';
const MAX_LINE = 64 * 1024;

const running: Running[] = [];
const sockets: net.Socket[] = [];
afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const sc of running) await sc.stop();
});

type Sidecar = Running & { statsdPort: number };

async function sidecar(env: Env = {}): Promise<Sidecar> {
  const statsdPort = await freePort();
  const sc = await startSidecar({ LISTEN_PORT: '0', STATSD_PORT: String(statsdPort), ...env });
  running.push(sc);
  return { ...sc, statsdPort };
}

async function scrape(sc: Running): Promise<Parsed> {
  return parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
}

/** Scrapes until `ok` holds; throws (naming `what`) if it never does within ~10 s. */
async function until(sc: Running, what: string, ok: (p: Parsed) => boolean): Promise<Parsed> {
  for (let i = 0; i < 400; i++) {
    const p = await scrape(sc);
    if (ok(p)) return p;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never: ${what}`);
}

const lines = (p: Parsed, outcome: string): number => value(p, 'metrics_sidecar_statsd_lines_total', { outcome });
const closedBy = (p: Parsed, reason: string): number => value(p, CLOSED, { reason });

interface Conn {
  sock: net.Socket;
  /** Resolves when the socket has closed, whoever closed it. */
  closed: Promise<void>;
  write(data: string | Buffer): Promise<void>;
}

/** A connection to the StatsD TCP port, open (connected) when this resolves. */
async function connect(port: number): Promise<Conn> {
  const sock = net.connect(port, '127.0.0.1');
  sockets.push(sock);
  // A connection the sidecar closes may end in a reset: that is a close here, not a failure.
  sock.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('close', () => reject(new Error('closed before connecting')));
  });
  return {
    sock,
    closed,
    write: (data) => new Promise<void>((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve()))),
  };
}

/**
 * A valid counter line (its name, then a long tag) of exactly `bytes` UTF-8 bytes, ending in 3-byte
 * '€'s so that most cut points fall inside a character. Its tag value is over the label limit, so
 * when taken it lands in the family's overflow series and is counted `accepted`.
 */
function lineOf(name: string, bytes: number): Buffer {
  const head = `${name}:1|c|#pad:`;
  const room = bytes - Buffer.byteLength(head);
  const euros = Math.floor(room / 3);
  const line = Buffer.from(`${head}${'x'.repeat(room - euros * 3)}${'€'.repeat(euros)}`);
  expect(line.length).toBe(bytes);
  return line;
}

/** Cut points inside a '€' (after its first byte) near the given offsets. */
function midChar(line: Buffer, ...near: number[]): number[] {
  return near.map((n) => {
    let i = n;
    while (line[i] !== 0xe2) i++;
    return i + 1;
  });
}

/**
 * Writes `line` in pieces cut at `cuts`, waiting after each until the sidecar holds exactly the
 * bytes sent so far (so each piece is a read of its own, and every cut splits a character).
 */
async function writeInPieces(sc: Sidecar, c: Conn, line: Buffer, cuts: number[], heldBefore = 0): Promise<void> {
  let from = 0;
  for (const cut of cuts) {
    await c.write(line.subarray(from, cut));
    await until(sc, `${cut} bytes held`, (p) => value(p, BUFFERED) === heldBefore + cut);
    from = cut;
  }
  await c.write(line.subarray(from));
}

describe('the 64 KiB line limit, in bytes', () => {
  let sc: Sidecar;
  beforeAll(async () => {
    sc = await sidecar();
  });

  it('should take a line of exactly 65,536 bytes sent in pieces that split characters', async () => {
    const before = await scrape(sc);
    const c = await connect(sc.statsdPort);
    const line = lineOf('exact_fit', MAX_LINE);
    await writeInPieces(sc, c, line, midChar(line, 1_000, 40_000, 65_000));
    // The whole line held (the last byte too), not yet a line: nothing counted.
    let p = await until(sc, 'the whole line held', (x) => value(x, BUFFERED) === MAX_LINE);
    expect(lines(p, 'malformed')).toBe(lines(before, 'malformed'));
    await c.write('\n');
    p = await until(sc, 'the line counted', (x) => lines(x, 'accepted') > lines(before, 'accepted'));
    expect(lines(p, 'accepted') - lines(before, 'accepted')).toBe(1);
    expect(lines(p, 'malformed')).toBe(lines(before, 'malformed'));
    expect(find(p, 'exact_fit_total', { otel_metric_overflow: 'true' })[0]?.value).toBe(1);
    expect(value(p, BUFFERED)).toBe(0);
    c.sock.end();
    await c.closed;
  });

  it('should take a line of 65,536 bytes ended by CR LF, the CR arriving alone', async () => {
    const before = await scrape(sc);
    const c = await connect(sc.statsdPort);
    await writeInPieces(sc, c, lineOf('exact_crlf', MAX_LINE), [30_000]);
    await until(sc, 'the line held', (x) => value(x, BUFFERED) === MAX_LINE);
    await c.write('\r');
    let p = await until(sc, 'the CR held', (x) => value(x, BUFFERED) === MAX_LINE + 1);
    expect(lines(p, 'malformed')).toBe(lines(before, 'malformed'));
    await c.write('\n');
    p = await until(sc, 'the line counted', (x) => find(x, 'exact_crlf_total').length > 0);
    expect(lines(p, 'accepted') - lines(before, 'accepted')).toBe(1);
    expect(lines(p, 'malformed')).toBe(lines(before, 'malformed'));
    c.sock.destroy();
  });

  it('should count a line of 65,537 bytes malformed as its last byte arrives, drop it, and read the next line', async () => {
    const before = await scrape(sc);
    const c = await connect(sc.statsdPort);
    const line = lineOf('one_too_many', MAX_LINE + 1);
    await writeInPieces(sc, c, line, midChar(line, 2_000, 50_000));
    // Malformed before its newline: the 65,537th byte is enough; nothing of it is held any more.
    let p = await until(sc, 'the line counted malformed', (x) => lines(x, 'malformed') > lines(before, 'malformed'));
    expect(value(p, BUFFERED)).toBe(0);
    await c.write('\nafter_one_too_many:1|c\n');
    p = await until(sc, 'the next line counted', (x) => find(x, 'after_one_too_many_total').length > 0);
    expect(lines(p, 'malformed') - lines(before, 'malformed')).toBe(1);
    expect(lines(p, 'accepted') - lines(before, 'accepted')).toBe(1);
    expect(p.types.has('one_too_many_total')).toBe(false);
    c.sock.destroy();
  });

  it('should discard the rest of an over-long line as it arrives (without counting it again) and take the line after its newline', async () => {
    const before = await scrape(sc);
    const c = await connect(sc.statsdPort);
    // 200 KB of a line that would be valid if it were taken (30,000 UTF-16 units: under 64 Ki of them).
    const line = lineOf('far_too_long', 200_000);
    await c.write(line.subarray(0, 70_001));
    let p = await until(sc, 'the line counted malformed', (x) => lines(x, 'malformed') > lines(before, 'malformed'));
    expect(value(p, BUFFERED)).toBe(0);
    for (const [from, to] of [
      [70_001, 120_000],
      [120_000, 150_001],
      [150_001, 200_000],
    ]) {
      await c.write(line.subarray(from, to));
    }
    await c.write('\nafter_far_too_long:2|c\r\nalso_after:1|c\n');
    p = await until(sc, 'the lines after it counted', (x) => find(x, 'also_after_total').length > 0);
    expect(find(p, 'after_far_too_long_total')[0]?.value).toBe(2);
    expect(lines(p, 'malformed') - lines(before, 'malformed')).toBe(1);
    expect(lines(p, 'accepted') - lines(before, 'accepted')).toBe(2);
    expect(p.types.has('far_too_long_total')).toBe(false);
    expect(value(p, BUFFERED)).toBe(0);
    c.sock.destroy();
  });

  it('should count an over-long line inside one write, between good lines, once', async () => {
    const before = await scrape(sc);
    const c = await connect(sc.statsdPort);
    await c.write(Buffer.concat([Buffer.from('inside_before:1|c\n'), lineOf('inside_long', MAX_LINE + 1), Buffer.from('\ninside_after:1|c\n')]));
    const p = await until(sc, 'the line after counted', (x) => find(x, 'inside_after_total').length > 0);
    expect(find(p, 'inside_before_total')[0]?.value).toBe(1);
    expect(lines(p, 'malformed') - lines(before, 'malformed')).toBe(1);
    expect(p.types.has('inside_long_total')).toBe(false);
    c.sock.destroy();
  });

  it('should decode characters split across reads, and take an unfinished last line at the end of the stream', async () => {
    const c = await connect(sc.statsdPort);
    const line = Buffer.from('split_utf8:1|c|#city:Zürich€\n');
    const u = line.indexOf(Buffer.from('ü'));
    const euro = line.indexOf(Buffer.from('€'));
    await writeInPieces(sc, c, line, [u + 1, euro + 1, euro + 2]);
    const p = await until(sc, 'the line counted', (x) => find(x, 'split_utf8_total').length > 0);
    expect(find(p, 'split_utf8_total')).toEqual([{ name: 'split_utf8_total', labels: { city: 'Zürich€' }, value: 1 }]);
    // An unfinished last line is still a line when the client ends the connection (as before).
    c.sock.end('ended_without_newline:4|c');
    await c.closed;
    const q = await until(sc, 'the last line counted', (x) => find(x, 'ended_without_newline_total').length > 0);
    expect(find(q, 'ended_without_newline_total')[0]?.value).toBe(4);
    expect(value(q, BUFFERED)).toBe(0);
  });
});

describe('STATSD_TCP_MAX_CONNECTIONS', () => {
  it('should close the connection past the cap at once, count it, and keep serving the others', async () => {
    const sc = await sidecar({ STATSD_TCP_MAX_CONNECTIONS: '3' });
    const conns = [await connect(sc.statsdPort), await connect(sc.statsdPort), await connect(sc.statsdPort)];
    await until(sc, 'three connections open', (p) => value(p, OPEN) === 3);
    const fourth = await connect(sc.statsdPort);
    // The sidecar closes it: the wait ends on the socket's own 'close'.
    await fourth.closed;
    let p = await scrape(sc);
    expect(closedBy(p, 'max_connections')).toBe(1);
    expect(value(p, OPEN)).toBe(3);
    // The three are still served.
    for (const c of conns) await c.write('under_cap:1|c\n');
    await until(sc, 'three lines counted', (x) => value(x, 'under_cap_total') === 3);
    // One closes: a new one is taken again.
    conns[0].sock.end();
    await conns[0].closed;
    await until(sc, 'two connections open', (x) => value(x, OPEN) === 2);
    const fifth = await connect(sc.statsdPort);
    await fifth.write('after_cap:1|c\n');
    p = await until(sc, 'its line counted', (x) => find(x, 'after_cap_total').length > 0);
    expect(value(p, OPEN)).toBe(3);
    expect(closedBy(p, 'max_connections')).toBe(1);
  });
});

describe('STATSD_TCP_IDLE_TIMEOUT_MS', () => {
  it('should close connections that send nothing for that long, count them, and free what they held', async () => {
    const sc = await sidecar({ STATSD_TCP_IDLE_TIMEOUT_MS: '200' });
    const silent = await connect(sc.statsdPort);
    const talker = await connect(sc.statsdPort);
    await talker.write('before_idle:1|c\nunfinished_when_idle:1|');
    // (Whether the rest is still held when a scrape looks depends on how soon it looks: not waited on.)
    await until(sc, 'the line counted', (p) => find(p, 'before_idle_total').length > 0);
    // No sleep: the sidecar closes both, and each socket says so.
    await silent.closed;
    await talker.closed;
    const p = await until(sc, 'both closed', (x) => value(x, OPEN) === 0);
    expect(closedBy(p, 'idle_timeout')).toBe(2);
    expect(value(p, BUFFERED)).toBe(0);
    // What was unfinished when the connection timed out is not a line.
    expect(p.types.has('unfinished_when_idle_total')).toBe(false);
    expect(lines(p, 'malformed')).toBe(0);
  });
});

describe('STATSD_TCP_BUFFER_BYTES_TOTAL', () => {
  it('should close the connection whose unfinished line would pass the budget, count it, and keep the others working', async () => {
    const sc = await sidecar({ STATSD_TCP_BUFFER_BYTES_TOTAL: '100000' });
    const a = await connect(sc.statsdPort);
    const lineA = lineOf('budget_a', 60_000);
    await a.write(lineA);
    await until(sc, "a's 60,000 bytes held", (p) => value(p, BUFFERED) === 60_000);
    // 60,000 + 50,000 > 100,000: b is closed rather than let the held bytes grow.
    const b = await connect(sc.statsdPort);
    await b.write(lineOf('budget_b', 50_000)).catch(() => undefined);
    await b.closed;
    let p = await until(sc, 'b closed', (x) => value(x, OPEN) === 1);
    expect(closedBy(p, 'buffer_budget')).toBe(1);
    expect(value(p, BUFFERED)).toBe(60_000);
    // Others go on: c's complete lines are read, and its unfinished one fits what is left.
    const c = await connect(sc.statsdPort);
    await c.write(Buffer.concat([Buffer.from('budget_c:1|c\n'), lineOf('budget_c_partial', 30_000)]));
    await until(sc, "c's line counted and its rest held", (x) => find(x, 'budget_c_total').length > 0 && value(x, BUFFERED) === 90_000);
    // a finishes its line: taken, and its bytes go back to the budget.
    await a.write('\n');
    p = await until(sc, "a's line counted", (x) => find(x, 'budget_a_total').length > 0);
    expect(value(p, BUFFERED)).toBe(30_000);
    expect(value(p, OPEN)).toBe(2);
    expect(closedBy(p, 'buffer_budget')).toBe(1);
    expect(p.types.has('budget_b_total')).toBe(false);
    c.sock.destroy();
    p = await until(sc, 'c closed', (x) => value(x, OPEN) === 1);
    expect(value(p, BUFFERED)).toBe(0);
  });
});
