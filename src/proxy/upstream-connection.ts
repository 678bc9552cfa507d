/**
 * One connection to the app and one exchange on it at a time (no pipelining): the request head
 * built as one string from the forwarder's flat header array and written once, the body streamed
 * with backpressure both ways (or written with the head when it was read whole), the response head
 * (upstream-head.ts) and body read by Content-Length, chunked (upstream-chunked.ts) or
 * close-delimited framing. It belongs to one owner (the pool's doc says why) and tells its pool
 * when it is free again or gone. An idle connection that receives any byte or EOF is destroyed.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import {
  CLIENT_BODY_STALLED,
  UPSTREAM_BAD_RESPONSE,
  UPSTREAM_BODY_TIMEOUT,
  UPSTREAM_CLOSED,
  UPSTREAM_HEADERS_TIMEOUT,
  upstreamError,
  type Controller,
  type UpstreamHandler,
  type UpstreamRequest,
} from './upstream-api';
import { ChunkedDecoder } from './upstream-chunked';
import { parseResponseHead } from './upstream-head';

/** An owner's connections to the app: its idle ones (the warmest last), and whether the owner is gone. */
export interface Lane {
  idle: Connection[];
  /** The owner's client connection closed: a connection of its that frees up is closed. */
  gone: boolean;
}

/** What a connection needs of its pool (upstream-client.ts). */
export interface Pool {
  readonly host: string;
  readonly port: number;
  readonly keepAliveMs: number;
  readonly keepAlive: boolean;
  readonly maxHeadBytes: number;
  /** Coarse clock of the pool's sweep. */
  readonly tick: number;
  ticksFor(ms: number): number;
  /** The connection finished an exchange and may serve another. */
  release(conn: Connection): void;
  /** The connection is gone. */
  forget(conn: Connection): void;
  dequeue(ex: Exchange): void;
  /** Runs `ex` again (a retry: on a new connection, unless it has to queue; see UpstreamClient.dispatchExchange). */
  dispatchExchange(ex: Exchange, fresh: boolean): void;
}

/** Informational (1xx) heads one exchange may receive before its final answer: 103 Early Hints and 100s need a few. */
const MAX_INFORMATIONAL_HEADS = 16;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Body framing of the response being read (a bodyless answer is Length with nothing remaining). */
const enum Framing {
  Length,
  Chunked,
  Close,
}

const enum Phase {
  Idle,
  /** Request sent (or being sent), head not complete yet. */
  Head,
  Body,
}

function ignore(): void {}

/** One request from dispatch to its end; also the controller the handler gets. */
export class Exchange implements Controller {
  conn: Connection | undefined;
  aborted = false;
  paused = false;
  done = false;
  retried = false;
  /** Some byte of the answer arrived: sending again is no longer safe. */
  answered = false;
  /** Coarse tick at which it joined the queue for a connection (UPSTREAM_MAX_CONNECTIONS). */
  queuedAt = 0;

  constructor(
    readonly client: Pool,
    readonly req: UpstreamRequest,
    readonly handler: UpstreamHandler,
  ) {}

  pause(): void {
    if (this.paused || this.done) return;
    this.paused = true;
    this.conn?.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.done) return;
    this.conn?.socket.resume();
  }

  abort(reason: Error): void {
    if (this.done) return;
    this.aborted = true;
    if (this.conn !== undefined) this.conn.destroy();
    else this.client.dequeue(this);
    this.fail(reason);
  }

  /** Ends the exchange with an error (at most once). */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.detachBody();
    this.handler.onResponseError(this, err);
  }

  detachBody(): void {
    const body = this.req.body;
    if (body !== null && !Buffer.isBuffer(body) && this.conn !== undefined) this.conn.unpipeBody(body);
  }
}

export class Connection {
  readonly socket: net.Socket;
  /** Idle in its owner's lane, since the pool's tick `idleSince`. */
  idle = false;
  idleSince = 0;
  phase = Phase.Idle;
  ex: Exchange | undefined;
  /** Requests completed on this socket (0 = fresh: an error on it is no stale-socket case). */
  served = 0;
  /** The current request's body has been sent completely. */
  sentAll = true;
  reusable = true;
  destroyed = false;
  /** Coarse tick of the last progress, and when an idle socket must go. */
  lastTick = 0;
  idleUntilTick = 0;

  // Response parsing state.
  /** A response head split over packets: its pieces so far (each copied once) and their length. */
  private headParts: Buffer[] = [];
  private headBytes = 0;
  /** 1xx heads received before the final one of the current exchange. */
  private informational = 0;
  private framing = Framing.Length;
  private remaining = 0;
  private readonly chunked = new ChunkedDecoder();
  private keepAliveHintMs = 0;

  // Request body plumbing (bound once).
  private body: Readable | null = null;
  /** The request body is paused because the app reads it slower than the client sends. */
  private bodyHeldForApp = false;
  /** The request body goes out chunked (it has no Content-Length). */
  private sendChunked = false;
  private pendingHead: string | undefined;

  constructor(
    readonly client: Pool,
    readonly lane: Lane,
  ) {
    this.socket = net.connect({ host: client.host, port: client.port, noDelay: true });
    this.socket.on('data', (b: Buffer) => this.onData(b));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err) => this.onSocketError(err));
    this.socket.on('close', () => this.onClose());
    this.socket.on('drain', () => {
      this.bodyHeldForApp = false;
      this.body?.resume();
    });
  }

  /** Sends one request on this (idle) connection. */
  send(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    this.phase = Phase.Head;
    this.headParts = [];
    this.headBytes = 0;
    this.informational = 0;
    this.keepAliveHintMs = 0;
    this.reusable = true;
    this.lastTick = this.client.tick;
    const { req } = ex;
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    if (!this.client.keepAlive) {
      head += 'connection: close\r\n';
      this.reusable = false;
    }
    const h = req.headers;
    let hasLength = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name.length === 14 && name.toLowerCase() === 'content-length') hasLength = true;
      head += `${name}: ${h[i + 1]}\r\n`;
    }
    const body = req.body;
    if (body === null) {
      this.sentAll = true;
      this.socket.write(`${head}\r\n`, 'latin1');
    } else if (Buffer.isBuffer(body)) {
      this.sentAll = true;
      this.socket.cork();
      this.socket.write(hasLength ? `${head}\r\n` : `${head}content-length: ${body.length}\r\n\r\n`, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    } else {
      this.sendChunked = !hasLength;
      this.sentAll = false;
      // The head goes out with the first body bytes (one write), and never when the client's
      // framing breaks before any: the app then sees no request at all.
      this.pendingHead = this.sendChunked ? `${head}transfer-encoding: chunked\r\n\r\n` : `${head}\r\n`;
      this.body = body;
      body.on('data', this.onBodyData);
      body.once('end', this.onBodyEnd);
      body.once('error', this.onBodyError);
      body.once('close', this.onBodyClose);
    }
    if (ex.paused) this.socket.pause();
  }

  private readonly onBodyData = (chunk: Buffer): void => {
    this.lastTick = this.client.tick;
    if (chunk.length === 0) return;
    let ok: boolean;
    const head = this.pendingHead;
    this.pendingHead = undefined;
    if (this.sendChunked) {
      this.socket.cork();
      this.socket.write(`${head ?? ''}${chunk.length.toString(16)}\r\n`, 'latin1');
      this.socket.write(chunk);
      ok = this.socket.write(CRLF);
      this.socket.uncork();
    } else if (head !== undefined) {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      ok = this.socket.write(chunk);
      this.socket.uncork();
    } else {
      ok = this.socket.write(chunk);
    }
    // Backpressure: the app reads slower than the client sends; wait for the socket to drain.
    if (!ok) {
      this.bodyHeldForApp = true;
      this.body?.pause();
    }
  };

  private readonly onBodyEnd = (): void => {
    const body = this.body;
    if (body === null) return;
    this.unpipeBody(body);
    const head = this.pendingHead;
    this.pendingHead = undefined;
    if (head !== undefined) this.socket.write(head, 'latin1');
    if (this.sendChunked) this.socket.write(LAST_CHUNK);
    this.sentAll = true;
    this.lastTick = this.client.tick;
  };

  /**
   * The request body broke (the client aborted its upload, or sent bad chunked framing): the
   * request can never be completed upstream, so the connection goes and the exchange fails with
   * the body's error (the forwarder tells it from the app's failures by the request's state).
   */
  private readonly onBodyError = (err: Error): void => {
    const ex = this.ex;
    this.destroy();
    ex?.fail(err);
  };

  /** Closed before its end without an error: the same, for a stream that was just destroyed. */
  private readonly onBodyClose = (): void => {
    if (this.body === null || this.sentAll) return;
    this.onBodyError(upstreamError(UPSTREAM_CLOSED, 'request body ended before its end'));
  };

  /** Stops forwarding `body`; whatever is left of it flows on (and is dropped) so the client side can finish. */
  unpipeBody(body: Readable): void {
    if (this.body !== body) return;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('close', this.onBodyClose);
    // An error listener stays: a stream that errors later must not throw for want of one.
    body.off('error', this.onBodyError);
    body.on('error', ignore);
    this.body = null;
    body.resume();
  }

  private onData(buf: Buffer): void {
    const ex = this.ex;
    if (ex === undefined || this.phase === Phase.Idle) {
      // Bytes nobody asked for (an unsolicited answer, junk after a response): not reusable.
      this.destroy();
      return;
    }
    this.lastTick = this.client.tick;
    ex.answered = true;
    try {
      this.parse(ex, buf);
    } catch (err) {
      this.destroy();
      ex.fail(err as Error);
    }
  }

  private parse(ex: Exchange, buf: Buffer): void {
    let off = 0;
    for (;;) {
      // Destroyed: the handler aborted, or the exchange failed.
      if (this.destroyed) return;
      if (this.phase === Phase.Idle) {
        // Complete. Bytes after the end of a response mean the app does not frame as we think.
        this.settle(ex, off < buf.length);
        return;
      }
      if (off >= buf.length) return;
      if (this.phase === Phase.Head) {
        off = this.parseHead(ex, buf, off);
        if (off < 0) return; // head incomplete, buffered
        continue;
      }
      switch (this.framing) {
        case Framing.Close:
          ex.handler.onResponseData(ex, off === 0 ? buf : buf.subarray(off));
          return;
        case Framing.Length: {
          const n = Math.min(this.remaining, buf.length - off);
          const chunk = off === 0 && n === buf.length ? buf : buf.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          ex.handler.onResponseData(ex, chunk);
          if (this.remaining === 0) this.finish(ex);
          break;
        }
        case Framing.Chunked:
          off = this.chunked.decode(buf, off, this.onChunkData, this.isDestroyed);
          if (this.chunked.done) this.finish(ex);
          break;
      }
    }
  }

  /**
   * Returns the offset after the head, or -1 when more bytes are needed. A head split over packets
   * is kept as pieces and joined once, when its end arrives: joining at every packet cost time
   * quadratic in the head's length for an app that writes it byte by byte.
   */
  private parseHead(ex: Exchange, buf: Buffer, off: number): number {
    const data = off === 0 ? buf : buf.subarray(off);
    const max = this.client.maxHeadBytes;
    if (this.headBytes === 0) {
      const end = data.indexOf(CRLFCRLF);
      if (end === -1 ? data.length > max : end + 4 > max) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'response head too large');
      if (end === -1) {
        this.headParts.push(Buffer.from(data));
        this.headBytes = data.length;
        return -1;
      }
      // The head with the CRLF of its last line (every line then ends in CRLF), not the blank line.
      this.onHead(ex, data.toString('latin1', 0, end + 2));
      return off + end + 4;
    }
    // The blank line may straddle the packets: look in the last 3 bytes held and this packet's start.
    const tail = lastBytes(this.headParts, 3);
    const probe = Buffer.concat([tail, data.subarray(0, max + 4)]);
    const at = probe.indexOf(CRLFCRLF);
    const endInData = at - tail.length + 4; // bytes of this packet that belong to the head
    if (at === -1 ? this.headBytes + data.length > max : this.headBytes + endInData > max) {
      throw upstreamError(UPSTREAM_BAD_RESPONSE, 'response head too large');
    }
    if (at === -1) {
      this.headParts.push(Buffer.from(data));
      this.headBytes += data.length;
      return -1;
    }
    const head = Buffer.concat([...this.headParts, data.subarray(0, endInData)]);
    this.headParts = [];
    this.headBytes = 0;
    this.onHead(ex, head.toString('latin1', 0, head.length - 2));
    return off + endInData;
  }

  private onHead(ex: Exchange, text: string): void {
    const head = parseResponseHead(text);
    const status = head.status;
    if (head.keepAliveHintMs > 0) this.keepAliveHintMs = head.keepAliveHintMs;
    if (status < 200) {
      // 1xx: informational, another head follows (101 was not asked for: no upgrades here). Each
      // one restarts the idle timer, so an app sending them without end is cut off at a bound.
      if (status === 101) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'unexpected 101 Switching Protocols');
      if (++this.informational > MAX_INFORMATIONAL_HEADS) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'too many 1xx responses');
      return;
    }
    this.informational = 0;
    if (head.close) this.reusable = false;
    const method = ex.req.method;
    if (method === 'HEAD' || status === 204 || status === 304) {
      // Bodyless by rule, and the answers apps most often get wrong (a body for HEAD, a body
      // after 204 or 304): whatever follows on this socket is not trusted with another request.
      this.framing = Framing.Length;
      this.remaining = 0;
      this.reusable = false;
    } else if (head.chunked) {
      this.framing = Framing.Chunked;
      this.chunked.reset();
    } else if (head.length !== -1) {
      this.framing = Framing.Length;
      this.remaining = head.length;
    } else {
      this.framing = Framing.Close;
      this.reusable = false;
    }
    this.phase = Phase.Body;
    ex.handler.onResponseStart(ex, status, head.headers, head.reason);
    if (this.destroyed) return;
    if (this.framing === Framing.Length && this.remaining === 0) this.finish(ex);
  }

  private readonly onChunkData = (chunk: Buffer): void => {
    const ex = this.ex;
    if (ex !== undefined) ex.handler.onResponseData(ex, chunk);
  };

  private readonly isDestroyed = (): boolean => this.destroyed;

  /** The response is complete (`settle` then frees the socket and tells the handler). */
  private finish(ex: Exchange): void {
    if (this.destroyed) return;
    this.phase = Phase.Idle;
    this.ex = undefined;
    this.served++;
    ex.done = true;
    if (ex.paused) this.socket.resume();
  }

  /** After `finish`: reuse the socket (or close it), then tell the handler. */
  private settle(ex: Exchange, junk: boolean): void {
    // An upload still going when the answer ended (an early 413, say) leaves the socket mid-request.
    if (junk || !this.sentAll) this.reusable = false;
    if (this.keepAliveHintMs > 0) {
      const ms = Math.min(this.client.keepAliveMs, this.keepAliveHintMs - 1000);
      if (ms <= 0) this.reusable = false;
      else this.idleUntilTick = this.client.ticksFor(ms);
    } else {
      this.idleUntilTick = this.client.ticksFor(this.client.keepAliveMs);
    }
    ex.detachBody();
    if (!this.reusable) this.destroy();
    else this.client.release(this);
    ex.handler.onResponseEnd(ex);
  }

  private onEnd(): void {
    const ex = this.ex;
    if (ex !== undefined && this.phase === Phase.Body && this.framing === Framing.Close) {
      this.finish(ex);
      this.settle(ex, false);
      return;
    }
    this.onClose();
  }

  private onSocketError(err: Error): void {
    this.fault(err);
  }

  private onClose(): void {
    this.fault(upstreamError(UPSTREAM_CLOSED, this.phase === Phase.Body ? 'upstream closed the connection mid-body' : 'upstream closed the connection'));
  }

  /** The socket failed or closed: fail (or retry) the exchange on it, forget the socket. */
  private fault(err: Error): void {
    const ex = this.ex;
    this.ex = undefined;
    this.phase = Phase.Idle;
    this.destroy();
    if (ex === undefined || ex.done) return;
    // A reused socket the app closed while it was idle: safe to send once more if nothing came back.
    // (A body read whole can be sent again too; a streamed one cannot.)
    if (this.served > 0 && !ex.answered && !ex.retried && (ex.req.body === null || Buffer.isBuffer(ex.req.body)) && IDEMPOTENT.has(ex.req.method)) {
      ex.retried = true;
      ex.conn = undefined;
      this.client.dispatchExchange(ex, true);
      return;
    }
    ex.fail(err);
  }

  timedOut(): void {
    const ex = this.ex;
    this.ex = undefined;
    this.destroy();
    if (this.phase === Phase.Head && !this.sentAll && !this.bodyHeldForApp) {
      // Nothing moved because the client sent nothing more of its body: its stall, not the app's.
      ex?.fail(upstreamError(CLIENT_BODY_STALLED, 'the client stopped sending its request body'));
      return;
    }
    const code = this.phase === Phase.Head ? UPSTREAM_HEADERS_TIMEOUT : UPSTREAM_BODY_TIMEOUT;
    ex?.fail(upstreamError(code, code === UPSTREAM_HEADERS_TIMEOUT ? 'upstream sent no response head in time' : 'upstream body stalled'));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.ex = undefined;
    this.socket.destroy();
    this.client.forget(this);
  }
}

/** The last `n` bytes of what `parts` hold together (pieces may be shorter than `n`). */
function lastBytes(parts: readonly Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let need = n;
  for (let i = parts.length - 1; i >= 0 && need > 0; i--) {
    const p = parts[i];
    const take = Math.min(need, p.length);
    out.unshift(p.subarray(p.length - take));
    need -= take;
  }
  return Buffer.concat(out);
}
