/**
 * StatsD listeners: UDP (one packet = one or more lines) and TCP (newline-delimited stream), both
 * on STATSD_HOST (loopback by default: only the pod's own containers can send).
 *
 * TCP is bounded (DESIGN.md, "Hostile input and limits"): at most `maxConnections` connections
 * (more are closed as they arrive), each closed after `idleTimeoutMs` without data; a line is at
 * most MAX_TCP_LINE_BYTES bytes, counted on the bytes received (a longer one is malformed as soon
 * as its byte past the limit arrives, and the rest of it is discarded as it arrives, never held);
 * and the bytes of unfinished lines held across all connections stay under `bufferBytesTotal`
 * (the connection that would go past it is closed). Streams are read as bytes: only complete lines
 * are decoded, so a character split across reads decodes whole. Every close the listener decides
 * is counted by reason.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../log/logger';
import type { StatsdRecorder, TcpCloseReason, TcpSeries } from './recorder';
import { ListenError, listening } from '../../runtime/listen';
import { MAX_TCP_LINE_BYTES } from '../../formats/statsd-line';
/** Default SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max and doubles it). */
export const DEFAULT_RECV_BUFFER = 8 * 1024 * 1024;
const TICK_MS = 1000;
const LF = 0x0a;
const CR = 0x0d;

export interface StatsdTcpLimits {
  /** Connections open at once (STATSD_TCP_MAX_CONNECTIONS); more are closed as they arrive. */
  maxConnections: number;
  /** A connection that sends nothing for this long is closed (STATSD_TCP_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Bytes of unfinished lines held across all connections (STATSD_TCP_BUFFER_BYTES_TOTAL). */
  bufferBytesTotal: number;
}

/** The variables' defaults (src/config/variables.ts), for callers without a Config. */
export const DEFAULT_TCP_LIMITS: StatsdTcpLimits = { maxConnections: 256, idleTimeoutMs: 60_000, bufferBytesTotal: 16 * 1024 * 1024 };

/**
 * Whether `bytes` bytes before a newline, the last of them `last`, can be a line: at most the
 * limit, or one more when that one is the CR of a CR LF ending.
 */
function fits(bytes: number, last: number | undefined): boolean {
  return bytes <= MAX_TCP_LINE_BYTES || (bytes === MAX_TCP_LINE_BYTES + 1 && last === CR);
}

/** One TCP connection's unfinished line. */
interface Pending {
  /**
   * Its bytes, copied (a slice would keep a whole read buffer alive) into one buffer that grows by
   * doubling up to a whole line: a line trickled a byte per read costs neither a piece per byte
   * nor a copy of the line per byte. At most twice `held`, and never more than one line.
   */
  buf: Buffer | undefined;
  /** Bytes of `buf` in use, counted against the budget. */
  held: number;
  /** Inside an over-long line: its bytes are discarded up to the next newline. */
  skipping: boolean;
}

export class StatsdServer {
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private timer: NodeJS.Timeout | undefined;
  private readonly series: TcpSeries;
  /** Bytes of unfinished lines held across all connections (at most limits.bufferBytesTotal). */
  private buffered = 0;

  constructor(
    private readonly store: StatsdRecorder,
    private readonly logger: Logger,
    private readonly recvBufferBytes = DEFAULT_RECV_BUFFER,
    private readonly limits: StatsdTcpLimits = DEFAULT_TCP_LIMITS,
  ) {
    this.series = store.registerTcpSeries();
  }

  /** The bound UDP socket (the status page reads its kernel drop count), undefined until started. */
  get udpSocket(): dgram.Socket | undefined {
    return this.udp;
  }

  async start(host: string, port: number): Promise<void> {
    const udp = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: this.recvBufferBytes });
    udp.on('message', (msg) => this.store.handlePacket(msg.toString('utf8')));
    try {
      await listening(udp, (ready) => udp.bind(port, host, ready));
    } catch (err) {
      udp.close();
      throw new ListenError('STATSD_PORT', port, 'STATSD_HOST', host, err, 'UDP');
    }
    // Errors once bound (rare: the socket is loopback and receive-only) are logged; the bind's own went to the caller.
    udp.on('error', (err) => this.logger.error('statsd udp socket failed', { err }));
    this.udp = udp;

    const tcp = net.createServer((sock) => this.accept(sock));
    // Past the cap, Node closes a new connection before making a socket of it, and says so here.
    tcp.maxConnections = this.limits.maxConnections;
    tcp.on('drop', () => this.series.closed.max_connections.value++);
    try {
      await listening(tcp, (ready) => tcp.listen(port, host, ready));
    } catch (err) {
      tcp.close();
      throw new ListenError('STATSD_PORT', port, 'STATSD_HOST', host, err, 'TCP');
    }
    this.tcp = tcp;
    this.timer = setInterval(() => this.store.tick(), TICK_MS);
    this.timer.unref();
    this.logger.info('statsd listening', { host, port, transports: ['udp', 'tcp'] });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.udp?.close();
    this.tcp?.close();
    for (const s of this.sockets) s.destroy();
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    this.series.open.value = this.sockets.size;
    const pending: Pending = { buf: undefined, held: 0, skipping: false };
    // Any read or write restarts the timer: only a connection silent for that long times out.
    sock.setTimeout(this.limits.idleTimeoutMs);
    sock.on('timeout', () => this.shut(sock, 'idle_timeout'));
    sock.on('data', (chunk: Buffer) => this.read(sock, pending, chunk));
    sock.on('end', () => {
      // The last line may come without its newline (it fits: anything longer was dropped as it came).
      if (pending.held > 0) this.store.handlePacket(this.take(pending, undefined));
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.release(pending);
      this.sockets.delete(sock);
      this.series.open.value = this.sockets.size;
    });
  }

  /** Closes a connection for one of the listener's own reasons, counted. */
  private shut(sock: net.Socket, reason: TcpCloseReason): void {
    this.series.closed[reason].value++;
    sock.destroy();
  }

  /** Reads one chunk of a connection: its complete lines are handled, its unfinished one held (or discarded). */
  private read(sock: net.Socket, pending: Pending, chunk: Buffer): void {
    let start = 0;
    if (pending.skipping) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) return;
      pending.skipping = false;
      start = nl + 1;
    }
    const last = chunk.lastIndexOf(LF);
    if (last >= start) {
      if (pending.held > 0) {
        // The held line ends at this chunk's first newline.
        const nl = chunk.indexOf(LF, start);
        const tail = chunk.subarray(start, nl);
        if (fits(pending.held + tail.length, tail.length > 0 ? tail[tail.length - 1] : pending.buf![pending.held - 1])) {
          this.store.handlePacket(this.take(pending, tail));
        } else {
          this.release(pending);
          this.store.countMalformed();
        }
        start = nl + 1;
      }
      if (last > start) this.lines(chunk, start, last);
      start = last + 1;
    }
    const rest = chunk.length - start;
    if (rest === 0) return;
    if (!fits(pending.held + rest, chunk[chunk.length - 1])) {
      // Over-long before its newline: counted now, and nothing of it is kept.
      this.release(pending);
      this.store.countMalformed();
      pending.skipping = true;
      return;
    }
    if (this.buffered + rest > this.limits.bufferBytesTotal) {
      this.release(pending);
      this.shut(sock, 'buffer_budget');
      return;
    }
    append(pending, chunk.subarray(start));
    this.buffered += rest;
    this.series.bufferedBytes.value = this.buffered;
  }

  /** Handles the complete lines of chunk[from, end) (`end` is a newline), each checked against the limit. */
  private lines(chunk: Buffer, from: number, end: number): void {
    // No line in a stretch shorter than the limit can be over it (the usual case: reads are at most 64 KiB).
    if (end - from <= MAX_TCP_LINE_BYTES) {
      this.store.handlePacket(chunk.toString('utf8', from, end));
      return;
    }
    let segment = from;
    for (let s = from; s <= end;) {
      const nl = chunk.indexOf(LF, s);
      if (!fits(nl - s, nl > s ? chunk[nl - 1] : undefined)) {
        if (s > segment) this.store.handlePacket(chunk.toString('utf8', segment, s));
        this.store.countMalformed();
        segment = nl + 1;
      }
      s = nl + 1;
    }
    if (end > segment) this.store.handlePacket(chunk.toString('utf8', segment, end));
  }

  /** The held line (with `tail`, its last piece, if any), decoded whole; the held bytes are released. */
  private take(pending: Pending, tail: Buffer | undefined): string {
    const held = pending.buf!.subarray(0, pending.held);
    const text = (tail === undefined || tail.length === 0 ? held : Buffer.concat([held, tail])).toString('utf8');
    this.release(pending);
    return text;
  }

  private release(pending: Pending): void {
    if (pending.held === 0) return;
    this.buffered -= pending.held;
    this.series.bufferedBytes.value = this.buffered;
    pending.buf = undefined;
    pending.held = 0;
  }
}

/** Copies `bytes` after the held ones, growing the buffer by doubling (capped at a whole line, CR included). */
function append(pending: Pending, bytes: Buffer): void {
  const need = pending.held + bytes.length;
  if (pending.buf === undefined || pending.buf.length < need) {
    const grown = Buffer.allocUnsafeSlow(Math.max(need, Math.min(2 * (pending.buf?.length ?? 0), MAX_TCP_LINE_BYTES + 1)));
    pending.buf?.copy(grown, 0, 0, pending.held);
    pending.buf = grown;
  }
  bytes.copy(pending.buf, pending.held);
  pending.held = need;
}
