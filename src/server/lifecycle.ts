/**
 * Start-up and graceful shutdown, after Fastify's lifecycle: mark not-ready (readiness 503),
 * optionally keep serving for a delay while endpoints update, stop accepting, close idle
 * keep-alive sockets, let in-flight requests finish up to a bound, then close everything.
 */
import type http from 'node:http';
import type { Logger } from '../log/logger';
import type { ValueSeries } from '../metrics/registry';

export interface DrainOptions {
  delayMs: number;
  timeoutMs: number;
}

const POLL_MS = 25;

/** What the endpoints and the main listener ask of the lifecycle (Lifecycle is the one implementation). */
export interface AppState {
  /** False once draining has begun: readiness answers 503. */
  ready(): boolean;
  /** Marks responses `Connection: close` while draining. */
  draining(): boolean;
  /** Every response passes here: the lifecycle counts in-flight requests. */
  track(res: http.ServerResponse, forwarded?: boolean): void;
}

export class Lifecycle implements AppState {
  private phase: 'running' | 'draining' | 'closed' = 'running';
  private active = 0;
  private readonly servers: http.Server[] = [];

  constructor(
    private readonly logger: Logger,
    /** Gauge series mirroring the in-flight count, if any. */
    private readonly gauge?: ValueSeries,
  ) {}

  ready(): boolean {
    return this.phase === 'running';
  }

  draining(): boolean {
    return this.phase !== 'running';
  }

  /**
   * Counts a request as in flight until its response closes (finished or aborted), for the
   * drain. Only `forwarded` ones count in the gauge: a scrape is not a request to the app.
   */
  track(res: http.ServerResponse, forwarded = false): void {
    this.active++;
    const gauge = forwarded ? this.gauge : undefined;
    if (gauge) gauge.value++;
    res.once('close', () => {
      this.active--;
      if (gauge) gauge.value--;
    });
  }

  /**
   * Responses not yet closed on both listeners, scrapes and health checks included: what the
   * drain waits for (the in-flight gauge counts forwarded requests only).
   */
  get openResponses(): number {
    return this.active;
  }

  addServer(server: http.Server): void {
    this.servers.push(server);
  }

  /**
   * Drains and closes every server. `beforeClose` runs once in-flight requests are done (or the
   * bound passed), to close what the servers do not own (upgraded sockets, the upstream pool).
   * Resolves with `forced: true` when requests were still running at the bound.
   */
  async drain(opts: DrainOptions, beforeClose: () => void = () => undefined): Promise<{ forced: boolean }> {
    if (this.phase !== 'running') return { forced: false };
    this.phase = 'draining';
    this.logger.info('draining', { inflight: this.active, delay_ms: opts.delayMs, timeout_ms: opts.timeoutMs });
    if (opts.delayMs > 0) await sleep(opts.delayMs);

    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.servers) s.closeIdleConnections();

    const deadline = Date.now() + opts.timeoutMs;
    while (this.active > 0 && Date.now() < deadline) {
      await sleep(POLL_MS);
      // Connections whose last response just finished are idle now: close them before they are reused.
      for (const s of this.servers) s.closeIdleConnections();
    }
    const forced = this.active > 0;
    if (forced) this.logger.warn('drain timeout: closing connections with requests still in flight', { inflight: this.active });
    for (const s of this.servers) s.closeAllConnections();
    beforeClose();
    await Promise.all(closed);
    this.phase = 'closed';
    this.logger.info('stopped', { forced });
    return { forced };
  }
}

/** Not unref'd: the drain itself must keep the process alive until it has finished. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
