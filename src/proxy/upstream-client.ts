/**
 * A keep-alive HTTP/1.1 client for exactly one job: forwarding to one application on localhost
 * (kept over undici's Pool by ADR 0003, which has the measurements). This module is the pool; the
 * other parts are their own modules: the public shapes and error codes (upstream-api.ts), one
 * connection and its exchange (upstream-connection.ts), the response head parser
 * (upstream-head.ts) and the chunked decoder (upstream-chunked.ts), the last two pure.
 *
 * The hostile side (clients) stays on Node's `http` server and its strict parser; this side talks
 * to a trusted app, so it need not be general, and does less than undici:
 * - one request per socket at a time (no pipelining), the head written once, bodies streamed by
 *   Content-Length, chunked or close-delimited framing with backpressure both ways;
 * - anything odd in an answer (see upstream-head.ts and upstream-chunked.ts) is an error the
 *   forwarder answers 502, never a guess;
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
 * - an idempotent request without a body (or with one read whole) that fails on a reused socket
 *   before any byte of answer (the app closed it while idle) is sent once more, and only once:
 *   on a new connection of the same owner, or, when `maxConnections` makes it wait in the queue,
 *   on the first connection that serves the queue then, which may be another reused one (a
 *   second failure is then the request's answer).
 */
import http from 'node:http';
import { UPSTREAM_CLOSED, UPSTREAM_HEADERS_TIMEOUT, upstreamError, type UpstreamHandler, type UpstreamRequest } from './upstream-api';
import { Connection, Exchange, type Lane, type Pool } from './upstream-connection';

export * from './upstream-api';

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

export class UpstreamClient implements Pool {
  readonly host: string;
  readonly port: number;
  readonly keepAliveMs: number;
  readonly maxHeadBytes: number;
  readonly keepAlive: boolean;
  /** Coarse clock: incremented by the sweep timer every `tickMs`. */
  tick = 0;
  private readonly tickMs: number;
  private readonly timeoutTicks: number;
  /**
   * Where an owner keeps its lane (its idle connections), as a property of the owner object
   * itself: no map from owners to lanes, whose churn (an entry added and removed around every
   * request) costs the garbage collector more than the lookups.
   */
  private readonly laneKey = Symbol('upstream lane');
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

  /** The lane of `owner` (made on first use). */
  laneOf(owner: object): Lane {
    const o = owner as Record<symbol, Lane | undefined>;
    let lane = o[this.laneKey];
    if (lane === undefined) {
      lane = { idle: [], gone: false };
      o[this.laneKey] = lane;
    }
    return lane;
  }

  /**
   * Runs `ex` on an idle socket of its owner, a new one, or queues it. At the cap, another owner's
   * longest-idle socket is closed to make room. `fresh` skips idle sockets (a retry); a queued
   * exchange loses that preference and runs on whichever connection serves the queue.
   */
  dispatchExchange(ex: Exchange, fresh: boolean): void {
    const lane = this.laneOf(this.ownerOf(ex));
    if (!fresh) {
      const conn = lane.idle.pop();
      if (conn !== undefined) {
        conn.idle = false;
        conn.send(ex);
        return;
      }
    }
    const max = this.opts.maxConnections;
    if (max !== 0 && this.all.size >= max) {
      // The longest idle socket (another owner's, or this owner's for a retry) gives its place up.
      let spare: Connection | undefined;
      for (const c of this.all) if (c.idle && (spare === undefined || c.idleSince < spare.idleSince)) spare = c;
      spare?.destroy();
    }
    if (max === 0 || this.all.size < max) {
      const conn = new Connection(this, lane);
      this.all.add(conn);
      this.startTimer();
      conn.send(ex);
      return;
    }
    ex.queuedAt = this.tick;
    this.queue.push(ex);
  }

  /**
   * A connection finished its exchange and may serve another of its owner's. The oldest queued
   * request goes first: on this connection if it has the same owner, else on a new one made room
   * for by closing this one (a queued request never waits while some other owner's socket idles).
   */
  release(conn: Connection): void {
    if (conn.destroyed) return;
    if (conn.lane.gone || this.closed) {
      conn.destroy();
      return;
    }
    const next = this.queue[0];
    if (next !== undefined) {
      if (this.laneOf(this.ownerOf(next)) === conn.lane) {
        this.queue.shift();
        conn.send(next);
      } else {
        conn.destroy(); // forget() then starts `next` on a new connection
      }
      return;
    }
    conn.idle = true;
    conn.idleSince = this.tick;
    conn.lane.idle.push(conn);
  }

  /**
   * The owner's client connection closed: its idle connections close now, and its busy ones when
   * their exchange ends (the forwarder aborts those whose answer the client can no longer take).
   */
  dropOwner(owner: object): void {
    const lane = this.laneOf(owner);
    lane.gone = true;
    for (const conn of lane.idle.splice(0)) {
      conn.idle = false;
      conn.destroy();
    }
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
      const i = conn.lane.idle.indexOf(conn);
      if (i !== -1) conn.lane.idle.splice(i, 1);
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
