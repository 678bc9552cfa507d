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
 *   before any byte of answer (the app closed it while idle) is sent once more, on a new
 *   connection of the same owner.
 */
import http from 'node:http';
import { UPSTREAM_CLOSED, UPSTREAM_HEADERS_TIMEOUT, upstreamError, type UpstreamHandler, type UpstreamRequest } from './upstream-api';
import { Connection, Exchange, type Pool } from './upstream-connection';

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
