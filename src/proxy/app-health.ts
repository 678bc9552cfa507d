/**
 * App-aware health (UPSTREAM_HEALTH_PATH).
 *
 * Readiness: a background loop asks the app's health path on an interval, with a timeout, and keeps
 * a state with hysteresis (`failureThreshold` consecutive failures to turn unready,
 * `successThreshold` consecutive successes to turn ready again; unready until the first successes at
 * start). `/readyz` reads that state and never calls the app itself, so a slow app cannot make the
 * kubelet's probe time out and a flood of probes cannot become a flood of requests to the app.
 *
 * Relay: `/app-health` (metrics port) and `/debug/app-health` (main port) ask the app's health path
 * now and answer its status and the start of its body, so the kubelet can probe an app that listens
 * on 127.0.0.1 only (Istio's probe rewrite does the same through its agent). The main port faces the
 * internet, so relays that arrive while one is in flight share its answer: at most one relayed
 * request reaches the app at a time whatever the number of callers, and a flood of callers cannot
 * crowd out the kubelet's probe (a fixed cap would answer it 503 and get the app restarted).
 */
import type { UpstreamClient } from './upstream-client';
import { appClient, getFromApp } from './app-get';
import { BackgroundLoop } from '../runtime/background-loop';
import type { AppHealthConfig } from '../config';
import type { Logger } from '../log/logger';
import { Counter, Gauge, type Registry } from '../metrics/registry';

/** Bytes of the app's answer kept for the relay: enough for "ok" or a short JSON status. */
export const RELAY_MAX_BODY = 1024;

export type CheckOutcome = 'ok' | 'bad_status' | 'timeout' | 'error';

export interface CheckResult {
  outcome: CheckOutcome;
  /** The app's status, when it answered. */
  status?: number;
  /** The start of the app's body (up to RELAY_MAX_BODY bytes), when asked for. */
  body?: Buffer;
  /** Why it failed, for the log (no secrets: the URL is the app's local health path). */
  reason?: string;
}

export interface RelayAnswer {
  status: number;
  body: Buffer | string;
}

/** 2xx and 3xx are healthy, as for the kubelet's httpGet probes. */
export function healthyStatus(status: number): boolean {
  return status >= 200 && status < 400;
}

/**
 * One GET of the app's health URL (getFromApp: a fresh connection of the strict client, bounded in
 * time and bytes; `signal` ends it early). With `keepBody`, the start of the body for the relay,
 * also when the app cuts it short after its status.
 */
export async function checkOnce(client: UpstreamClient, url: URL, timeoutMs: number, keepBody = false, signal?: AbortSignal): Promise<CheckResult> {
  const r = await getFromApp(client, url, {
    timeoutMs,
    signal,
    userAgent: 'metrics-sidecar-app-health',
    accept: '*/*',
    maxBytes: keepBody ? RELAY_MAX_BODY : 0,
    partial: 'truncate',
  });
  if (r.failure !== undefined || r.status === undefined) return { outcome: r.failure === 'timeout' ? 'timeout' : 'error', reason: r.reason };
  const outcome: CheckOutcome = healthyStatus(r.status) ? 'ok' : 'bad_status';
  const result: CheckResult = { outcome, status: r.status, reason: outcome === 'ok' ? undefined : `status ${r.status}` };
  if (keepBody) result.body = r.body;
  return result;
}

export class AppHealth extends BackgroundLoop {
  private healthy = false;
  private failures = 0;
  private successes = 0;
  /** The relayed request in flight, shared by every relay that arrives meanwhile. */
  private pendingRelay: Promise<CheckResult> | undefined;
  private lastReason = 'not checked yet';
  private readonly checks: Counter;
  private readonly relayed: Counter;
  private readonly gauge: Gauge;
  /** The strict client to the app, a connection per check. */
  private readonly client: UpstreamClient;

  constructor(
    private readonly config: AppHealthConfig,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    super();
    const u = config.url;
    this.client = appClient(u, config.timeoutMs);
    this.checks = registry.register(
      new Counter({
        name: 'metrics_sidecar_app_health_checks_total',
        help: "Background checks of the app's health path (UPSTREAM_HEALTH_PATH), by outcome.",
        labelNames: ['outcome'],
      }),
    );
    this.relayed = registry.register(
      new Counter({
        name: 'metrics_sidecar_app_health_relays_total',
        help: 'Requests to /app-health and /debug/app-health, by outcome (callers that shared one request to the app each count).',
        labelNames: ['outcome'],
      }),
    );
    this.gauge = registry.register(new Gauge({ name: 'metrics_sidecar_app_healthy', help: "1 when the app's health checks make the sidecar ready, else 0." }));
    this.gauge.set([], 0);
  }

  /** True when the app's health allows readiness. */
  ready(): boolean {
    return this.healthy;
  }

  /** Why the app is not healthy (for the readiness body and the log). */
  reason(): string {
    return this.lastReason;
  }

  /** One background check (BackgroundLoop: start() and stop() run them every interval, never two at once). */
  protected async step(signal: AbortSignal): Promise<number | undefined> {
    const started = Date.now();
    const r = await checkOnce(this.client, this.config.url, this.config.timeoutMs, false, signal);
    if (signal.aborted) return undefined;
    this.record(r);
    return Math.max(0, this.config.intervalMs - (Date.now() - started));
  }

  /** Applies one check result to the state, with hysteresis. */
  record(r: CheckResult): void {
    this.checks.inc([r.outcome]);
    if (r.outcome === 'ok') {
      this.failures = 0;
      this.successes++;
      if (!this.healthy && this.successes >= this.config.successThreshold) {
        this.healthy = true;
        this.gauge.set([], 1);
        this.logger.info('app is healthy: readiness follows the sidecar again', { health_path: this.config.url.pathname, status: r.status });
      }
    } else {
      this.successes = 0;
      this.failures++;
      this.lastReason = r.reason ?? r.outcome;
      if (this.healthy && this.failures >= this.config.failureThreshold) {
        this.healthy = false;
        this.gauge.set([], 0);
        this.logger.warn('app is unhealthy: readiness answers 503', {
          health_path: this.config.url.pathname,
          outcome: r.outcome,
          reason: this.lastReason,
          failures: this.failures,
        });
      }
    }
  }

  /** Asks the app now (or joins the request already in flight), for the relay endpoints. */
  async relay(): Promise<RelayAnswer> {
    let pending = this.pendingRelay;
    if (pending === undefined) {
      pending = checkOnce(this.client, this.config.url, this.config.timeoutMs, true, this.controller.signal).finally(() => {
        this.pendingRelay = undefined;
      });
      this.pendingRelay = pending;
    }
    const r = await pending;
    this.relayed.inc([r.outcome]);
    if (r.status !== undefined) return { status: r.status, body: r.body ?? '' };
    if (r.outcome === 'timeout') return { status: 504, body: `app health path did not answer within ${this.config.timeoutMs} ms\n` };
    return { status: 502, body: `app health path unreachable (${r.reason ?? 'error'})\n` };
  }
}
