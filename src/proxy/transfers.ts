/**
 * The buffering proxy in front of fragile apps (issue 18, item 2): gunicorn's sync workers, and
 * any app that holds a worker for as long as its client takes, are what nginx's
 * `proxy_request_buffering` and `proxy_buffering` protect. The sidecar does the same:
 *
 * - a request body up to UPSTREAM_REQUEST_BUFFER_BYTES is read whole before the app sees the
 *   request (a larger one streams), so an upload at 2 bytes/s never reaches a worker;
 * - an answer is read at the app's speed: the forwarder keeps writing what the app sends into the
 *   client's connection (Node queues what the client has not taken yet) up to
 *   UPSTREAM_RESPONSE_BUFFER_BYTES per answer, and only then slows the app down, so a worker is
 *   free as soon as it has written. Nothing is held back: every byte goes to the client as soon as
 *   its connection takes it (Server-Sent Events flow), and `X-Accel-Buffering: no` from the app
 *   turns buffering off for that answer;
 * - all of it under one budget, PROXY_BUFFER_BYTES_TOTAL: past it, requests and answers stream
 *   with plain backpressure, as before (never a failure);
 * - minimum data rates (Kestrel's model): past CLIENT_MIN_DATA_RATE_GRACE_MS, a client that sends
 *   its body, or takes its answer, slower than CLIENT_MIN_DATA_RATE bytes/s on average is cut off:
 *   408 for an upload (`slow_upload`), a close for a download (`slow_read`). The client's fault,
 *   counted in `metrics_sidecar_client_errors_total`, never an app exception.
 *
 * One coarse timer (a second) checks the rates, only of uploads and of answers waiting for their
 * client, and only while there are any.
 */
import type http from 'node:http';

export interface TransferLimits {
  /** Request bodies up to this are read whole before forwarding (0 = stream every body). */
  requestBufferBytes: number;
  /** What one answer may have queued for its client before the app is slowed down (0 = plain backpressure). */
  responseBufferBytes: number;
  /** All request buffers and answer backlogs together. */
  totalBufferBytes: number;
  /** Bytes per second a client must keep up on average, past the grace period (0 = no minimum). */
  minDataRate: number;
  graceMs: number;
}

export type SlowKind = 'slow_upload' | 'slow_read';

/** One forwarded request's body and answer, as far as buffering and data rates go. */
export class Transfer {
  /** The request body is being received (buffered or streamed). */
  uploading = false;
  uploadStart = 0;
  uploadBytes = 0;
  /** Bytes this transfer holds in the budget: its request buffer, or its answer's backlog. */
  held = 0;
  /** The app asked for no buffering of this answer (`X-Accel-Buffering: no`). */
  unbuffered = false;
  /** Since when the answer has had bytes waiting for the client, and the client's socket count then. */
  waitingSince = -1;
  writtenAtWait = 0;
  cut = false;
  /** In the list the sweep checks (see Transfers.watch), at index `slot`. */
  watched = false;
  slot = -1;
  /** What the forwarder does with a client below the minimum data rate. */
  onSlow: ((kind: SlowKind) => void) | undefined;

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
  ) {}
}

export class Transfers {
  private heldTotal = 0;
  /** Watched transfers; each knows its index (`slot`), so removal is a swap with the last, no hash table to churn. */
  private readonly active: Transfer[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: TransferLimits,
    private readonly now: () => number = () => performance.now(),
    private readonly tickMs = 1000,
  ) {}

  /** Bytes held in buffers now (request buffers and answer backlogs). */
  get held(): number {
    return this.heldTotal;
  }

  /** A transfer to account for; `onSlow` is what the forwarder does with a client below the minimum rate. */
  start(req: http.IncomingMessage, res: http.ServerResponse, onSlow: (kind: SlowKind) => void): Transfer {
    const t = new Transfer(req, res);
    t.onSlow = onSlow;
    return t;
  }

  /**
   * Watches `t` for the minimum data rate: an upload from its start, a download once its answer
   * waits for the client (a write returned false). A request with no body whose client keeps up
   * is never watched, which keeps the common case free of any bookkeeping (tracking every
   * request in a set tripled the time spent in garbage collection on bench:proxy's mix load).
   */
  watch(t: Transfer): void {
    if (t.watched || this.limits.minDataRate === 0) return;
    t.watched = true;
    t.slot = this.active.length;
    this.active.push(t);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.tickMs);
      this.timer.unref();
    }
  }

  unwatch(t: Transfer): void {
    if (!t.watched) return;
    t.watched = false;
    t.waitingSince = -1;
    const last = this.active.pop()!;
    if (last !== t) {
      this.active[t.slot] = last;
      last.slot = t.slot;
    }
  }

  /** The transfer is over (its response closed): its held bytes go back to the budget. */
  end(t: Transfer): void {
    if (t.held !== 0) this.setHeld(t, 0);
    // The timer stops at the next sweep that finds nothing to watch, not here.
    this.unwatch(t);
  }

  /** Whether a request body of (at most) `bytes` may be buffered now. */
  mayBuffer(bytes: number): boolean {
    return this.heldTotal + bytes <= this.limits.totalBufferBytes;
  }

  /** Sets what `t` holds in the budget. */
  setHeld(t: Transfer, bytes: number): void {
    this.heldTotal += bytes - t.held;
    t.held = bytes;
  }

  /**
   * After a write of the answer returned false: true when the app must be slowed down (the
   * answer's backlog is past its bound or the budget, or buffering is off for it).
   */
  mustPause(t: Transfer): boolean {
    const backlog = t.res.writableLength;
    if (this.limits.responseBufferBytes === 0 || t.unbuffered) return true;
    if (backlog > this.limits.responseBufferBytes) return true;
    const grown = backlog - t.held;
    if (grown > 0 && this.heldTotal + grown > this.limits.totalBufferBytes) return true;
    this.setHeld(t, backlog);
    return false;
  }

  /** The client took everything queued for it. */
  drained(t: Transfer): void {
    this.setHeld(t, 0);
    if (!t.uploading) this.unwatch(t);
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.active) t.watched = false;
    this.active.length = 0;
  }

  /** Minimum data rates, averaged since the upload began or since the answer started waiting. */
  sweep(): void {
    if (this.active.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const { minDataRate: rate, graceMs } = this.limits;
    const now = this.now();
    // A copy: a cut may end (unwatch) transfers while the loop runs.
    for (const t of this.active.slice()) {
      if (t.cut) continue;
      if (t.uploading) {
        const elapsed = now - t.uploadStart;
        if (elapsed > graceMs && (t.uploadBytes * 1000) / elapsed < rate) {
          t.cut = true;
          t.onSlow?.('slow_upload');
        }
        continue;
      }
      const socket = t.res.socket;
      if (socket === null || t.res.writableLength === 0) {
        t.waitingSince = -1;
        continue;
      }
      if (t.waitingSince < 0) {
        t.waitingSince = now;
        t.writtenAtWait = delivered(socket);
        continue;
      }
      const elapsed = now - t.waitingSince;
      if (elapsed > graceMs && ((delivered(socket) - t.writtenAtWait) * 1000) / elapsed < rate) {
        t.cut = true;
        t.onSlow?.('slow_read');
      }
    }
  }
}

/**
 * Bytes of a socket's writes that reached the kernel: `bytesWritten` also counts what is still
 * queued in the stream, and `writableLength` is what is queued or being written.
 */
function delivered(socket: { bytesWritten: number; writableLength: number }): number {
  return socket.bytesWritten - socket.writableLength;
}
