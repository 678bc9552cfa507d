/**
 * A keep-alive HTTP/1.1 client for exactly one job: forwarding to one application on localhost.
 *
 * The hostile side (clients) stays on Node's `http` server and its strict parser; this side talks
 * to a trusted app, so it need not be general. It is about half the CPU per request of undici's
 * Pool (bench/proxy.mjs) because it does less:
 * - the request head is one string built from the forwarder's flat header array, one write;
 * - the response head is parsed strictly in one pass over a latin1 string: anything odd (a bad
 *   status line, bytes a header may not hold, folded lines, duplicate or conflicting
 *   Content-Length, Content-Length with Transfer-Encoding, a coding other than `chunked`, a head
 *   larger than `http.maxHeaderSize`) is an error the forwarder answers 502;
 * - bodies stream by Content-Length, chunked or close-delimited framing, with backpressure both
 *   ways (controller.pause/resume, request body paused while the socket is full);
 * - no pipelining: one request per socket at a time;
 * - a connection belongs to one owner, the client connection the forwarder got the request on: it
 *   only ever carries that client's requests and goes when the client's connection does
 *   (`dropOwner`), so bytes an app writes late (a body after HEAD, 204 or 304, a second response,
 *   an unsolicited 408) can reach nobody else (HAProxy's `http-reuse never`); an idle socket that
 *   receives any byte or EOF is destroyed (nginx's keep-alive close handler), and one that ended a
 *   bodyless-by-rule answer (HEAD, 204, 304) or an odd one is not reused. With `keepAlive: false`
 *   every request gets a connection of its own (`Connection: close`);
 * - an owner's idle sockets are reused last-in first-out (the warmest) and closed on
 *   `Connection: close` or before the app's `Keep-Alive: timeout`; at `maxConnections`, another
 *   owner's longest-idle socket is closed to make room, and a queued request never waits while
 *   another owner's socket idles;
 * - timeouts run on one coarse timer per client instead of a timer per request;
 * - an idempotent request without a body that fails on a reused socket before any byte of answer
 *   (the app closed it while idle) is sent once more, on a new connection of the same owner.
 *
 * The handler has the shape of undici's dispatch handler (onRequestStart, onResponseStart, ...), so
 * the forwarder's code around it stays the same; response headers come as a flat array with
 * lower-case names.
 */
import http from 'node:http';
import net from 'node:net';
import type { Readable } from 'node:stream';

/** The `timeout=` of a `Keep-Alive` response header, in seconds. */
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i;

export interface UpstreamClientOptions {
  host: string;
  port: number;
  /** Idle limit while waiting for the head, and between body bytes either way (ms). */
  timeoutMs: number;
  /** Connections at most (0 = unlimited); further requests wait in a queue. */
  maxConnections: number;
  /** How long an unused connection is kept (ms), unless the app's Keep-Alive hint is shorter. */
  keepAliveMs?: number;
  /** Largest response head accepted (bytes); defaults to Node's `http.maxHeaderSize`. */
  maxHeadBytes?: number;
  /** Reuse connections for the same owner (default true); false = one connection per request, `Connection: close`. */
  keepAlive?: boolean;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form target, already canonical. */
  path: string;
  /** Flat [name, value, ...] array; must not contain framing or hop-by-hop headers except Content-Length. */
  headers: string[];
  /**
   * The request body, or null. A stream is sent as is with a Content-Length header, chunked
   * otherwise; a Buffer (a body read whole first) goes out with the head in one write, with its
   * Content-Length.
   */
  body: Readable | Buffer | null;
  /**
   * Who may share connections with this request: the client connection it came on. A connection
   * carries requests of one owner only; `dropOwner` closes an owner's connections. Undefined =
   * the client's own shared owner (callers with no client connection).
   */
  owner?: object;
}

export interface Controller {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
  readonly aborted: boolean;
  readonly paused: boolean;
}

export interface UpstreamHandler {
  onRequestStart?(controller: Controller): void;
  /** Final (non-1xx) status only; `headers` is a flat array with lower-case names. */
  onResponseStart(controller: Controller, statusCode: number, headers: string[], statusMessage: string): void;
  onResponseData(controller: Controller, chunk: Buffer): void;
  onResponseEnd(controller: Controller): void;
  onResponseError(controller: Controller, err: Error): void;
}

/** Informational (1xx) heads one exchange may receive before its final answer: 103 Early Hints and 100s need a few. */
const MAX_INFORMATIONAL_HEADS = 16;
/** Error codes this client gives its failures (socket errors keep Node's own, e.g. ECONNREFUSED). */
export const UPSTREAM_HEADERS_TIMEOUT = 'UPSTREAM_HEADERS_TIMEOUT';
export const UPSTREAM_BODY_TIMEOUT = 'UPSTREAM_BODY_TIMEOUT';
export const UPSTREAM_BAD_RESPONSE = 'UPSTREAM_BAD_RESPONSE';
export const UPSTREAM_CLOSED = 'UPSTREAM_CLOSED';
/** The client stopped sending its request body while the app waited for it: the client's fault, not the app's. */
export const CLIENT_BODY_STALLED = 'CLIENT_BODY_STALLED';

export type UpstreamError = Error & { code: string };

function ignore(): void {}

function upstreamError(code: string, message: string): UpstreamError {
  return Object.assign(new Error(message), { code });
}

export function isTimeout(err: Error & { code?: string }): boolean {
  return err.code === UPSTREAM_HEADERS_TIMEOUT || err.code === UPSTREAM_BODY_TIMEOUT;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Status line and header lines, each with its CRLF, matched in place (sticky) along the head. */
const STATUS_LINE = /HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n/y;
/** field-name ":" OWS field-value OWS CRLF, value without control bytes but HTAB (RFC 9110 §5.5). */
const HEADER_FIELD = /([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[\t ]*\r\n/y;
/** The same, for one trailer line without its CRLF. */
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[\t ]*$/;
const DIGITS = /^\d{1,15}$/;
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
/** A chunk-size line: hex size, optional extensions; and the longest one accepted. */
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?$/;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

/** Body framing of the response being read. */
const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

/** Where the chunked decoder is. */
const enum ChunkState {
  Size,
  Data,
  DataEnd,
  Trailers,
}

const enum Phase {
  Idle,
  /** Request sent (or being sent), head not complete yet. */
  Head,
  Body,
}

/** One request from dispatch to its end; also the controller the handler gets. */
class Exchange implements Controller {
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
    readonly client: UpstreamClient,
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

class Connection {
  readonly socket: net.Socket;
  /** Idle in its owner's lane (and in the client's order of idle sockets). */
  idle = false;
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
  private framing = Framing.None;
  private remaining = 0;
  private chunkState = ChunkState.Size;
  private lineBuf: Buffer | undefined;
  private trailerBytes = 0;
  private keepAliveHintMs = 0;

  // Request body plumbing (bound once).
  private body: Readable | null = null;
  /** The request body is paused because the app reads it slower than the client sends. */
  private bodyHeldForApp = false;
  private chunked = false;
  private pendingHead: string | undefined;

  constructor(
    readonly client: UpstreamClient,
    readonly owner: object,
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
      this.chunked = !hasLength;
      this.sentAll = false;
      // The head goes out with the first body bytes (one write), and never when the client's
      // framing breaks before any: the app then sees no request at all.
      this.pendingHead = this.chunked ? `${head}transfer-encoding: chunked\r\n\r\n` : `${head}\r\n`;
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
    if (this.chunked) {
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
    if (this.chunked) this.socket.write(LAST_CHUNK);
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
          off = this.parseChunked(ex, buf, off);
          break;
        default:
          this.finish(ex);
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
    STATUS_LINE.lastIndex = 0;
    const m = STATUS_LINE.exec(text);
    if (m === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed status line');
    let at = STATUS_LINE.lastIndex;
    const http10 = m[1] === '0';
    const status = Number(m[2]);
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    let te = false;
    let close = http10;
    while (at < text.length) {
      HEADER_FIELD.lastIndex = at;
      const hm = HEADER_FIELD.exec(text);
      if (hm === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed response header');
      at = HEADER_FIELD.lastIndex;
      const name = hm[1].toLowerCase();
      const value = hm[2];
      switch (name) {
        case 'content-length':
          if (length !== -1) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'more than one Content-Length');
          if (!DIGITS.test(value)) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'invalid Content-Length');
          length = Number(value);
          break;
        case 'transfer-encoding':
          if (te) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'more than one Transfer-Encoding');
          te = true;
          chunked = value.toLowerCase() === 'chunked';
          if (!chunked) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'unsupported Transfer-Encoding');
          break;
        case 'connection': {
          const v = value.toLowerCase();
          // The common answers first, without splitting.
          if (v === 'keep-alive') {
            if (http10) close = false;
            break;
          }
          if (v === 'close') {
            close = true;
            break;
          }
          for (const t of v.split(',')) {
            const token = t.trim();
            if (token === 'close') close = true;
            else if (token === 'keep-alive' && http10) close = false;
          }
          break;
        }
        case 'keep-alive': {
          const t = KEEP_ALIVE_TIMEOUT.exec(value);
          if (t !== null) this.keepAliveHintMs = Number(t[1]) * 1000;
          break;
        }
      }
      headers.push(name, value);
    }
    if (te && length !== -1) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'both Content-Length and Transfer-Encoding');
    if (status < 200) {
      // 1xx: informational, another head follows (101 was not asked for: no upgrades here). Each
      // one restarts the idle timer, so an app sending them without end is cut off at a bound.
      if (status === 101) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'unexpected 101 Switching Protocols');
      if (++this.informational > MAX_INFORMATIONAL_HEADS) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'too many 1xx responses');
      return;
    }
    this.informational = 0;
    if (close) this.reusable = false;
    const method = ex.req.method;
    if (method === 'HEAD' || status === 204 || status === 304) {
      // Bodyless by rule, and the answers apps most often get wrong (a body for HEAD, a body
      // after 204 or 304): whatever follows on this socket is not trusted with another request.
      this.framing = Framing.None;
      this.reusable = false;
    } else if (chunked) {
      this.framing = Framing.Chunked;
      this.chunkState = ChunkState.Size;
      this.lineBuf = undefined;
      this.trailerBytes = 0;
    } else if (length !== -1) {
      this.framing = Framing.Length;
      this.remaining = length;
    } else {
      this.framing = Framing.Close;
      this.reusable = false;
    }
    this.phase = Phase.Body;
    ex.handler.onResponseStart(ex, status, headers, m[3] ?? '');
    if (this.destroyed) return;
    if (this.framing === Framing.None || (this.framing === Framing.Length && this.remaining === 0)) this.finish(ex);
  }

  /** Consumes chunked framing from `buf` at `off`; returns the new offset. */
  private parseChunked(ex: Exchange, buf: Buffer, off: number): number {
    while (off < buf.length && !this.destroyed && this.phase === Phase.Body) {
      switch (this.chunkState) {
        case ChunkState.Data: {
          const n = Math.min(this.remaining, buf.length - off);
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.chunkState = ChunkState.DataEnd;
          ex.handler.onResponseData(ex, chunk);
          break;
        }
        case ChunkState.Size:
        case ChunkState.DataEnd:
        case ChunkState.Trailers: {
          const line = this.readLine(buf, off);
          if (line === undefined) return buf.length;
          off = line.next;
          this.onChunkLine(ex, line.text);
          break;
        }
      }
    }
    return off;
  }

  /** A CRLF-terminated line from the carried-over bytes plus `buf` at `off`, or undefined (bytes kept). */
  private readLine(buf: Buffer, off: number): { text: string; next: number } | undefined {
    const limit = this.chunkState === ChunkState.Trailers ? MAX_TRAILER_BYTES : MAX_CHUNK_LINE;
    const carried = this.lineBuf;
    if (carried !== undefined && carried[carried.length - 1] === 0x0d && buf[off] === 0x0a) {
      this.lineBuf = undefined;
      return { text: carried.toString('latin1', 0, carried.length - 1), next: off + 1 };
    }
    const idx = buf.indexOf(CRLF, off);
    if (idx === -1) {
      const rest = buf.subarray(off);
      this.lineBuf = carried === undefined ? Buffer.from(rest) : Buffer.concat([carried, rest]);
      if (this.lineBuf.length > limit) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk framing line too long');
      return undefined;
    }
    let text = buf.toString('latin1', off, idx);
    if (carried !== undefined) {
      text = carried.toString('latin1') + text;
      this.lineBuf = undefined;
    }
    if (text.length > limit) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk framing line too long');
    return { text, next: idx + 2 };
  }

  private onChunkLine(ex: Exchange, text: string): void {
    if (text.includes('\r') || text.includes('\n')) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'bare CR or LF in chunk framing');
    switch (this.chunkState) {
      case ChunkState.DataEnd:
        if (text !== '') throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk data longer than its size');
        this.chunkState = ChunkState.Size;
        return;
      case ChunkState.Size: {
        const m = CHUNK_SIZE.exec(text);
        if (m === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'invalid chunk size');
        const size = parseInt(m[1], 16);
        if (size === 0) {
          this.chunkState = ChunkState.Trailers;
          return;
        }
        this.remaining = size;
        this.chunkState = ChunkState.Data;
        return;
      }
      case ChunkState.Trailers:
        if (text === '') {
          this.finish(ex);
          return;
        }
        // Trailers are dropped (the response head is already out), but must be well-formed.
        this.trailerBytes += text.length + 2;
        if (this.trailerBytes > MAX_TRAILER_BYTES) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'trailers too large');
        if (!HEADER_LINE.test(text)) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed trailer');
        return;
    }
  }

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

export class UpstreamClient {
  readonly host: string;
  readonly port: number;
  readonly keepAliveMs: number;
  readonly maxHeadBytes: number;
  readonly keepAlive: boolean;
  /** Coarse clock: incremented by the sweep timer every `tickMs`. */
  tick = 0;
  private readonly tickMs: number;
  private readonly timeoutTicks: number;
  /** Each owner's idle connections, the warmest last. */
  private readonly lanes = new Map<object, Connection[]>();
  /** Every idle connection, the longest idle first (insertion order): the first to go at the cap. */
  private readonly idleOrder = new Set<Connection>();
  /** Owners whose client connection has closed: a connection of theirs that frees up is closed. */
  private readonly gone = new WeakSet<object>();
  /** The owner of requests that name none. */
  private readonly shared = {};
  private readonly all = new Set<Connection>();
  private readonly queue: Exchange[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: UpstreamClientOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.keepAliveMs = opts.keepAliveMs ?? 4_000;
    this.maxHeadBytes = opts.maxHeadBytes ?? http.maxHeaderSize;
    this.keepAlive = opts.keepAlive ?? true;
    // Timeouts fire between timeoutMs and timeoutMs + one tick late.
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(Math.min(opts.timeoutMs, this.keepAliveMs) / 8)));
    this.timeoutTicks = Math.ceil(opts.timeoutMs / this.tickMs);
  }

  /** Connections open (busy and idle). */
  get connections(): number {
    return this.all.size;
  }

  /** Requests waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  ticksFor(ms: number): number {
    return this.tick + Math.ceil(ms / this.tickMs);
  }

  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    const ex = new Exchange(this, req, handler);
    handler.onRequestStart?.(ex);
    if (ex.done) return;
    if (this.closed) {
      ex.fail(upstreamError(UPSTREAM_CLOSED, 'client closed'));
      return;
    }
    this.dispatchExchange(ex, false);
  }

  /** The owner an exchange's connections belong to. */
  ownerOf(ex: Exchange): object {
    return ex.req.owner ?? this.shared;
  }

  /**
   * Runs `ex` on an idle socket of its owner, a new one, or queues it. At the cap, another owner's
   * longest-idle socket is closed to make room. `fresh` skips idle sockets (a retry).
   */
  dispatchExchange(ex: Exchange, fresh: boolean): void {
    const owner = this.ownerOf(ex);
    if (!fresh) {
      const conn = this.takeIdle(owner);
      if (conn !== undefined) {
        conn.send(ex);
        return;
      }
    }
    const max = this.opts.maxConnections;
    if (max !== 0 && this.all.size >= max) {
      // An idle socket (another owner's, or this owner's for a retry) gives its place up.
      const spare = this.idleOrder.values().next().value;
      if (spare !== undefined) spare.destroy();
    }
    if (max === 0 || this.all.size < max) {
      const conn = new Connection(this, owner);
      this.all.add(conn);
      this.startTimer();
      conn.send(ex);
      return;
    }
    ex.queuedAt = this.tick;
    this.queue.push(ex);
  }

  /** The warmest idle connection of `owner`, out of the idle sets. */
  private takeIdle(owner: object): Connection | undefined {
    const lane = this.lanes.get(owner);
    if (lane === undefined) return undefined;
    const conn = lane.pop();
    if (lane.length === 0) this.lanes.delete(owner);
    if (conn !== undefined) {
      conn.idle = false;
      this.idleOrder.delete(conn);
    }
    return conn;
  }

  /**
   * A connection finished its exchange and may serve another of its owner's. The oldest queued
   * request goes first: on this connection if it has the same owner, else on a new one made room
   * for by closing this one (a queued request never waits while some other owner's socket idles).
   */
  release(conn: Connection): void {
    if (conn.destroyed) return;
    if (this.gone.has(conn.owner) || this.closed) {
      conn.destroy();
      return;
    }
    const next = this.queue[0];
    if (next !== undefined) {
      if (this.ownerOf(next) === conn.owner) {
        this.queue.shift();
        conn.send(next);
      } else {
        conn.destroy(); // forget() then starts `next` on a new connection
      }
      return;
    }
    conn.idle = true;
    this.idleOrder.add(conn);
    const lane = this.lanes.get(conn.owner);
    if (lane === undefined) this.lanes.set(conn.owner, [conn]);
    else lane.push(conn);
  }

  /**
   * The owner's client connection closed: its idle connections close now, and its busy ones when
   * their exchange ends (the forwarder aborts those whose answer the client can no longer take).
   */
  dropOwner(owner: object): void {
    this.gone.add(owner);
    const lane = this.lanes.get(owner);
    if (lane === undefined) return;
    this.lanes.delete(owner);
    for (const conn of lane) conn.destroy();
  }

  dequeue(ex: Exchange): void {
    const i = this.queue.indexOf(ex);
    if (i !== -1) this.queue.splice(i, 1);
  }

  /** A connection is gone: a queued request may now open a new one. */
  forget(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    if (conn.idle) {
      conn.idle = false;
      this.idleOrder.delete(conn);
      const lane = this.lanes.get(conn.owner);
      if (lane !== undefined) {
        const i = lane.indexOf(conn);
        if (i !== -1) lane.splice(i, 1);
        if (lane.length === 0) this.lanes.delete(conn.owner);
      }
    }
    if (this.queue.length > 0 && !this.closed) {
      const next = this.queue.shift()!;
      this.dispatchExchange(next, false);
    }
    if (this.all.size === 0) this.stopTimer();
  }

  /** Closes every connection; requests in flight or queued fail. */
  close(): void {
    this.closed = true;
    const err = upstreamError(UPSTREAM_CLOSED, 'client closed');
    for (const ex of this.queue.splice(0)) ex.fail(err);
    for (const conn of [...this.all]) {
      const ex = conn.ex;
      conn.destroy();
      ex?.fail(err);
    }
    this.lanes.clear();
    this.idleOrder.clear();
    this.stopTimer();
  }

  private startTimer(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sweep(), this.tickMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    this.tick++;
    const now = this.tick;
    // A request waits for a connection no longer than for the app's answer (the queue is FIFO:
    // the oldest are first). Checked first, so that a connection timing out below does not hand
    // its socket to a request already past its time. Without this, the k-th request queued behind
    // a stalled app waited about k / UPSTREAM_MAX_CONNECTIONS timeouts.
    while (this.queue.length > 0 && now - this.queue[0].queuedAt > this.timeoutTicks) {
      this.queue.shift()!.fail(upstreamError(UPSTREAM_HEADERS_TIMEOUT, 'no connection to the app became free within the timeout'));
    }
    for (const conn of this.all) {
      if (conn.ex !== undefined) {
        // A paused exchange waits for its client, not for the app.
        if (conn.ex.paused) conn.lastTick = now;
        else if (now - conn.lastTick > this.timeoutTicks) conn.timedOut();
      } else if (now >= conn.idleUntilTick && conn.sentAll) {
        conn.destroy();
      }
    }
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
