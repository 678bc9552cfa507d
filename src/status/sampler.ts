/**
 * Ring buffers of the sidecar's own counters, so the status page can show rates and latency
 * percentiles over the last 1 and 15 minutes without Prometheus.
 *
 * Nothing runs while nobody looks: the sampler starts on the first status request, takes a
 * snapshot every 10 s, and stops (dropping its rings) after 15 minutes without a request. A
 * snapshot holds, per route (method + route template), the cumulative request count, 5xx count
 * and duration-bucket counts, plus the values of a few counters (StatsD outcomes, refusals,
 * drops). Windows are differences between the current values and a past snapshot: a fine ring
 * (every 10 s, the last ~70 s) and a coarse one (every minute, the last 16 minutes, which also
 * gives the sparklines their points). At most 23 snapshots exist at once.
 */
import type { AnyFamily, HistogramSeries, Registry, ValueSeries } from '../metrics/registry';
import type { UdpSocketStats } from '../ingest/statsd/udp-drops';

export const TICK_MS = 10_000;
export const IDLE_STOP_MS = 15 * 60_000;
const FINE_KEEP_MS = 70_000;
const COARSE_EVERY_MS = 60_000;
const COARSE_KEEP = 16;

/**
 * Per route, `width` numbers: [requests, 5xx, bucket 0 … bucket n (+Inf)], cumulative. Routes
 * sit at the same slot in every snapshot (slot × width); one typed array per snapshot, not one
 * per route, because allocating thousands of small typed arrays was most of the build time.
 */
export interface Snapshot {
  t: number;
  routes: Float64Array;
  /** `family|labels` → cumulative value. */
  counters: Map<string, number>;
  /** The StatsD socket's kernel counters, when known. */
  udp: UdpSocketStats | undefined;
}

export interface RouteInfo {
  slot: number;
  error: boolean;
}

/** Counter families whose windows the page shows (read by name: absent ones are skipped). */
export const WATCHED_COUNTERS = ['metrics_sidecar_statsd_lines_total', 'metrics_sidecar_auth_failures_total', 'metrics_sidecar_series_dropped_total'];

export class Sampler {
  private fine: Snapshot[] = [];
  private coarse: Snapshot[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastAsked = 0;
  private startedAt = 0;
  /** Rendered label pairs → route slot; bounded by the family's series (rebuilt when it was swept). */
  private readonly routeCache = new Map<string, RouteInfo>();
  /** `method route` → slot, and back. Slots live as long as the rings do. */
  private readonly slots = new Map<string, number>();
  readonly keys: string[] = [];
  /** Numbers per route in a snapshot. */
  readonly width: number;

  constructor(
    private readonly registry: Registry,
    private readonly durationFamily: string,
    private readonly udpStats: () => UdpSocketStats | undefined,
    private readonly now: () => number = Date.now,
    buckets = 0,
  ) {
    this.width = buckets + 3;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  get since(): number {
    return this.startedAt;
  }

  /** A status request: starts sampling if stopped; returns the current values. */
  touch(): Snapshot {
    this.lastAsked = this.now();
    const current = this.snapshot();
    if (this.timer === undefined) {
      this.startedAt = current.t;
      this.fine = [current];
      this.coarse = [current];
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
    return current;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.fine = [];
    this.coarse = [];
    this.routeCache.clear();
    this.slots.clear();
    this.keys.length = 0;
  }

  /** One sampling step (the timer's; tests call it with a fake clock). */
  tick(): void {
    const t = this.now();
    if (t - this.lastAsked > IDLE_STOP_MS) {
      this.stop();
      return;
    }
    const s = this.snapshot();
    if (this.timer === undefined) return; // the snapshot started over (see snapshot())
    this.fine.push(s);
    while (this.fine.length > 1 && s.t - this.fine[0].t > FINE_KEEP_MS) this.fine.shift();
    if (s.t - this.coarse[this.coarse.length - 1].t >= COARSE_EVERY_MS - TICK_MS / 2) {
      this.coarse.push(s);
      if (this.coarse.length > COARSE_KEEP) this.coarse.shift();
    }
  }

  /** The newest snapshot at least `windowMs` old, else the oldest one kept. */
  base(now: number, windowMs: number): Snapshot | undefined {
    let newestOld: Snapshot | undefined;
    let oldest: Snapshot | undefined;
    for (const ring of [this.coarse, this.fine]) {
      for (const s of ring) {
        if (now - s.t >= windowMs && (newestOld === undefined || s.t > newestOld.t)) newestOld = s;
        if (oldest === undefined || s.t < oldest.t) oldest = s;
      }
    }
    return newestOld ?? oldest;
  }

  /** Minute snapshots, oldest first (the sparklines' points are their differences). */
  minutes(): readonly Snapshot[] {
    return this.coarse;
  }

  routeInfo(labels: string): RouteInfo {
    let info = this.routeCache.get(labels);
    if (info === undefined) {
      const l = parseLabels(labels);
      const overflow = l.otel_metric_overflow === 'true';
      const key = overflow ? '* (overflow)' : `${l.method ?? ''} ${l.path ?? ''}`;
      let slot = this.slots.get(key);
      if (slot === undefined) {
        slot = this.keys.length;
        this.slots.set(key, slot);
        this.keys.push(key);
      }
      info = { slot, error: Number(l.status) >= 500 };
      this.routeCache.set(labels, info);
    }
    return info;
  }

  snapshot(): Snapshot {
    const family = this.registry.get(this.durationFamily);
    let routes = new Float64Array(0);
    if (family !== undefined && family.type === 'histogram') {
      // A family swept of idle series leaves stale entries behind: start sampling over (the next request restarts it).
      if (this.routeCache.size > 2 * family.size + 1000) this.stop();
      const w = this.width;
      // Upper bound: every series could bring a new route.
      routes = new Float64Array((this.keys.length + family.size) * w);
      for (const s of family.allSeries() as IterableIterator<HistogramSeries>) {
        const info = this.routeInfo(s.labels);
        const o = info.slot * w;
        routes[o] += s.count;
        if (info.error) routes[o + 1] += s.count;
        const c = s.counts;
        for (let i = 0; i < c.length && i < w - 2; i++) routes[o + 2 + i] += c[i];
      }
      if (routes.length > this.keys.length * w) routes = routes.slice(0, this.keys.length * w);
    }
    const counters = new Map<string, number>();
    for (const name of WATCHED_COUNTERS) {
      const f: AnyFamily | undefined = this.registry.get(name);
      if (f === undefined || f.type !== 'counter') continue;
      for (const s of f.allSeries() as IterableIterator<ValueSeries>) counters.set(`${name}|${s.labels}`, s.value);
    }
    return { t: this.now(), routes, counters, udp: this.udpStats() };
  }
}

/** Parses rendered label pairs (`a="x",b="y \"q\""`) into a record. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) out[m[1]] = m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return out;
}
