/**
 * Builds `status.json` from the registry's families (read through `registry.all()` / `get()`),
 * the sampler's snapshots and a few objects handed over at wiring time. Its one write to the
 * registry is hostRefused's increment of `metrics_sidecar_auth_failures_total`.
 *
 * Cost: one snapshot (sampler.ts) of the RED duration histogram (at most its series cap) and of
 * the watched counters (WATCHED_COUNTERS: StatsD lines, auth failures, series dropped); the
 * series of `metrics_sidecar_merge_families_dropped_total` (a few per merge target); a pass over
 * the family list (a family's size and overflow series are O(1)); and percentiles and sparklines
 * only for the routes shown. No other family's series is visited. bench/status.mjs measures it
 * at 10k and 100k series.
 */
import type dgram from 'node:dgram';
import type { Config } from '../config';
import { Counter, type HistogramSeries, type Registry, type ValueSeries } from '../metrics/registry';
import type { MergeFetch } from '../ingest/merge/merger';
import type { UdpSocketStats } from '../ingest/statsd/udp-drops';
import type { TemplateSources } from '../proxy/red';
import type { OpenApiState } from '../proxy/openapi-source';
import { VERSION } from '../version';
import { Sampler, parseLabels, TICK_MS, type Snapshot } from './sampler';
import { redactedConfig, safeUrl, scrub, secretsOf, type Printable } from './redact';
import {
  STATUS_SCHEMA_VERSION,
  type Access,
  type Cardinality,
  type FamilyCardinality,
  type MergeTarget,
  type Route,
  type RouteTemplates,
  type Sources,
  type TemplateList,
  type StatsdOutcome,
  type StatusDocument,
  type Window,
} from './schema';

/** Route rows in the document at most (the busiest over 15 minutes); the rest are counted. */
export const MAX_ROUTES = 50;
/** Templates listed per source at most (the rest are counted). */
export const MAX_TEMPLATES_SHOWN = 100;
const MAX_FAMILIES = 25;
const MAX_CIDR_ADDRESSES = 64;
const SHOWN_CIDR_ADDRESSES = 20;
const M1 = 60_000;
const M15 = 15 * 60_000;
const SPARK_POINTS = 15;
const OUTCOMES: StatsdOutcome[] = ['accepted', 'malformed', 'dropped', 'type_conflict'];

export interface StatusSources {
  config: Config;
  registry: Registry;
  lifecycle: { ready(): boolean; draining(): boolean };
  /** True when the access gate lets every client through. */
  accessOpen: boolean;
  /** The StatsD UDP socket once bound. */
  statsdSocket?: () => dgram.Socket | undefined;
  /** Kernel counters of that socket (ingest/statsd/udp-drops). */
  udpStats?: () => UdpSocketStats | undefined;
  /** The app's health as the readiness check sees it, when UPSTREAM_HEALTH_PATH is configured. */
  upstreamHealth?: () => { healthy: boolean; detail?: string } | undefined;
  /** The `path` templates by source (RedRecorder.templateSources). */
  templates?: () => TemplateSources;
  /** The OpenAPI document's state, when ROUTE_OPENAPI_FILE or ROUTE_OPENAPI_URL is set. */
  openApi?: () => OpenApiState;
  /** The document's operationId for a method on a template (RedRecorder.operationOf). */
  operation?: (method: string, template: string) => string | undefined;
  now?: () => number;
}

export class StatusService {
  readonly sampler: Sampler;
  private readonly now: () => number;
  private readonly durationFamily: string;
  private readonly buckets: readonly number[];
  private readonly configView: Record<string, Printable>;
  private readonly secrets: string[];
  private readonly merges = new Map<string, MergeFetch & { at: number }>();
  private readonly cidrRefusals = new Map<string, { address: string; listener: string; count: number; last: number }>();
  private readonly labelCache = new Map<string, Record<string, string>>();
  /** One route's window difference, reused: no allocation per route. */
  private readonly scratch: Float64Array;

  constructor(private readonly src: StatusSources) {
    this.now = src.now ?? Date.now;
    this.durationFamily = `${src.config.http.prefix}_duration_seconds`;
    this.buckets = src.config.http.buckets;
    this.sampler = new Sampler(src.registry, this.durationFamily, () => src.udpStats?.(), this.now, this.buckets.length);
    this.scratch = new Float64Array(this.sampler.width);
    this.configView = redactedConfig(src.config);
    this.secrets = secretsOf(src.config);
  }

  /** A merge target was fetched (Merger.onFetch). */
  onMergeFetch(f: MergeFetch): void {
    this.merges.set(f.target, { ...f, at: this.now() });
  }

  /** The access gate refused `address` because it is outside METRICS_ALLOWED_CIDRS. */
  cidrRefused(address: string, listener: string): void {
    const key = `${listener} ${address}`;
    const have = this.cidrRefusals.get(key);
    if (have) {
      have.count++;
      have.last = this.now();
      // Re-insert: the map's order is then least recently refused first.
      this.cidrRefusals.delete(key);
      this.cidrRefusals.set(key, have);
      return;
    }
    if (this.cidrRefusals.size >= MAX_CIDR_ADDRESSES) this.cidrRefusals.delete(this.cidrRefusals.keys().next().value as string);
    this.cidrRefusals.set(key, { address, listener, count: 1, last: this.now() });
  }

  /**
   * A request for the page or status.json was refused for its `Host` (host-check.ts): counted
   * with the gate's refusals, `metrics_sidecar_auth_failures_total{listener, reason="host"}`, so
   * it shows on the page and in the alerts beside them.
   */
  hostRefused(listener: 'main' | 'metrics'): void {
    const failures = this.src.registry.get('metrics_sidecar_auth_failures_total');
    if (failures instanceof Counter) failures.inc([listener, 'host']);
  }

  stop(): void {
    this.sampler.stop();
  }

  /** status.json's text, scrubbed of every secret the configuration holds. */
  json(): string {
    return scrub(JSON.stringify(this.document()), this.secrets);
  }

  /** The document (unscrubbed: serve `json()`; this is for the page, which parses that text). */
  document(): StatusDocument {
    const cur = this.sampler.touch();
    const t = cur.t;
    const uptime = process.uptime();
    const startedAt = t - uptime * 1000;
    const b1 = this.windowBase(cur, M1, startedAt);
    const b15 = this.windowBase(cur, M15, startedAt);
    return {
      schema: STATUS_SCHEMA_VERSION,
      generated_at: new Date(t).toISOString(),
      sampling: {
        since: new Date(this.sampler.since).toISOString(),
        interval_s: TICK_MS / 1000,
        covered_1m_s: round(b1.seconds, 1),
        covered_15m_s: round(b15.seconds, 1),
      },
      identity: this.identity(uptime, startedAt),
      traffic: this.traffic(cur, b1, b15),
      sources: this.sources(cur, b1, b15),
      cardinality: this.cardinality(cur, b15),
      access: this.access(cur, b15),
      config: this.configView,
    };
  }

  /**
   * The snapshot a window starts from. While the sampler has nothing older than a second (the
   * first request), the window reaches back to the start instead: counters were zero then.
   */
  private windowBase(cur: Snapshot, windowMs: number, startedAt: number): { snap: Snapshot | undefined; seconds: number } {
    const b = this.sampler.base(cur.t, windowMs);
    if (b !== undefined && cur.t - b.t >= 1000) return { snap: b, seconds: (cur.t - b.t) / 1000 };
    return { snap: undefined, seconds: Math.max(0.001, (cur.t - startedAt) / 1000) };
  }

  private identity(uptime: number, startedAt: number): StatusDocument['identity'] {
    const c = this.src.config;
    const health = c.upstream ? this.src.upstreamHealth?.() : undefined;
    return {
      app_name: c.appName,
      role: c.role,
      version: VERSION,
      node_version: process.version,
      started_at: new Date(startedAt).toISOString(),
      uptime_s: Math.round(uptime),
      ready: this.src.lifecycle.ready(),
      draining: this.src.lifecycle.draining(),
      upstream: c.upstream ? { url: c.upstream.origin, health: health ? { healthy: health.healthy, detail: health.detail ?? null } : null } : null,
    };
  }

  private traffic(cur: Snapshot, b1: Base, b15: Base): StatusDocument['traffic'] {
    const w = this.sampler.width;
    const keys = this.sampler.keys;
    const n = cur.routes.length / w;
    const total1 = new Float64Array(w);
    const total15 = new Float64Array(w);
    const ranked: { slot: number; n15: number }[] = [];
    const zero1 = b1.snap?.routes;
    const zero15 = b15.snap?.routes;
    for (let slot = 0; slot < n; slot++) {
      const o = slot * w;
      for (let i = 0; i < w; i++) {
        const v = cur.routes[o + i];
        total1[i] += Math.max(0, v - at(zero1, o + i));
        total15[i] += Math.max(0, v - at(zero15, o + i));
      }
      if (cur.routes[o] > 0) ranked.push({ slot, n15: cur.routes[o] - at(zero15, o) });
    }
    ranked.sort((a, b) => b.n15 - a.n15 || (keys[a.slot] < keys[b.slot] ? -1 : 1));
    const minutes = this.sampler.minutes();
    const routes: Route[] = [];
    for (const { slot } of ranked.slice(0, MAX_ROUTES)) {
      const key = keys[slot];
      const space = key.indexOf(' ');
      const method = key.slice(0, space);
      const route = key.slice(space + 1);
      routes.push({
        method,
        route,
        operation: this.src.operation?.(method, route) ?? null,
        m1: this.window(this.diff(cur.routes, zero1, slot), b1.seconds),
        m15: this.window(this.diff(cur.routes, zero15, slot), b15.seconds),
        spark: this.spark(slot, cur, minutes),
      });
    }
    return {
      family: this.durationFamily,
      routes,
      routes_total: ranked.length,
      totals: { m1: this.window(total1, b1.seconds), m15: this.window(total15, b15.seconds) },
      templates: this.templates(),
    };
  }

  private templates(): RouteTemplates | null {
    const t = this.src.templates?.();
    if (t === undefined) return null;
    const list = (all: readonly string[]): TemplateList => ({ templates: all.slice(0, MAX_TEMPLATES_SHOWN), total: all.length });
    const o = this.src.openApi?.();
    return {
      configured: list(t.configured),
      openapi:
        o === undefined
          ? null
          : {
              ...list(t.openapi),
              source: o.source,
              version: o.version ?? null,
              operations: o.operations,
              templates_cut: o.templatesCut,
              loaded_at: o.loadedAt === undefined ? null : new Date(o.loadedAt).toISOString(),
              last_outcome: o.lastOutcome ?? null,
              last_error: o.lastError ?? null,
            },
      learned: { ...list(t.learned), max_values: t.segmentMaxValues },
      heuristic: list(t.heuristic),
      admitted: t.admitted,
      max: t.max,
    };
  }

  /** One route's `cur − base` into the scratch vector (never negative: a swept series restarts from zero). */
  private diff(cur: Float64Array, base: Float64Array | undefined, slot: number): Float64Array {
    const w = this.sampler.width;
    const o = slot * w;
    const d = this.scratch;
    for (let i = 0; i < w; i++) d[i] = Math.max(0, at(cur, o + i) - at(base, o + i));
    return d;
  }

  private spark(slot: number, cur: Snapshot, minutes: readonly Snapshot[]): Route['spark'] {
    const rps: number[] = [];
    const p99: (number | null)[] = [];
    const last = minutes.length - 1;
    const partial = last >= 0 && cur.t - minutes[last].t >= 1000;
    const points = last + (partial ? 1 : 0);
    for (let p = Math.max(0, points - SPARK_POINTS); p < points; p++) {
      const from = minutes[p];
      const to = p + 1 <= last ? minutes[p + 1] : cur;
      const d = this.diff(to.routes, from.routes, slot);
      const seconds = (to.t - from.t) / 1000;
      rps.push(seconds > 0 ? sig(d[0] / seconds) : 0);
      p99.push(d[0] > 0 ? sig(quantile(0.99, d, this.buckets)) : null);
    }
    return { rps, p99 };
  }

  private window(d: Float64Array, seconds: number): Window {
    const n = d[0];
    return {
      requests: Math.round(n),
      rps: sig(n / seconds),
      error_ratio: n > 0 ? sig(d[1] / n) : null,
      p50: n > 0 ? sig(quantile(0.5, d, this.buckets)) : null,
      p90: n > 0 ? sig(quantile(0.9, d, this.buckets)) : null,
      p99: n > 0 ? sig(quantile(0.99, d, this.buckets)) : null,
    };
  }

  private sources(cur: Snapshot, b1: Base, b15: Base): Sources {
    const c = this.src.config;
    let statsd: Sources['statsd'] = null;
    if (c.statsd.port !== 0) {
      const rate = (b: Base): Record<StatsdOutcome, number> => {
        const out = {} as Record<StatsdOutcome, number>;
        for (const o of OUTCOMES) {
          const key = `metrics_sidecar_statsd_lines_total|outcome="${o}"`;
          out[o] = sig(Math.max(0, (cur.counters.get(key) ?? 0) - (b.snap?.counters.get(key) ?? 0)) / b.seconds);
        }
        return out;
      };
      const total = {} as Record<StatsdOutcome, number>;
      for (const o of OUTCOMES) total[o] = cur.counters.get(`metrics_sidecar_statsd_lines_total|outcome="${o}"`) ?? 0;
      const udp = cur.udp;
      const base15 = b15.snap === undefined ? 0 : b15.snap.udp?.drops;
      let rcvbuf: number | null;
      try {
        rcvbuf = this.src.statsdSocket?.()?.getRecvBufferSize() ?? null;
      } catch {
        rcvbuf = null; // not bound
      }
      statsd = {
        m1: rate(b1),
        m15: rate(b15),
        total,
        udp: {
          receive_drops_total: udp?.drops ?? null,
          receive_drops_15m: udp !== undefined && base15 !== undefined ? Math.max(0, udp.drops - base15) : null,
          rx_queue_bytes: udp?.rxQueueBytes ?? null,
          receive_buffer_bytes: rcvbuf,
        },
      };
    }
    const droppedByTarget = new Map<string, number>();
    const dropped = this.src.registry.get('metrics_sidecar_merge_families_dropped_total');
    if (dropped?.type === 'counter') {
      for (const s of dropped.allSeries() as IterableIterator<ValueSeries>) {
        const target = this.labels(s.labels).target ?? '';
        droppedByTarget.set(target, (droppedByTarget.get(target) ?? 0) + s.value);
      }
    }
    const merge: MergeTarget[] = c.mergeTargets.map((u) => {
      const target = safeUrl(u);
      const f = this.merges.get(target);
      return {
        target,
        up: f ? f.ok : null,
        last_fetch_at: f ? new Date(f.at).toISOString() : null,
        last_duration_s: f ? round(f.seconds, 4) : null,
        last_size_bytes: f?.bytes ?? null,
        last_error: f?.error ?? null,
        families_dropped_total: droppedByTarget.get(target) ?? 0,
      };
    });
    return { statsd, merge };
  }

  private cardinality(cur: Snapshot, b15: Base): Cardinality {
    const droppedNow = new Map<string, number>();
    const dropped15 = new Map<string, number>();
    for (const [k, v] of cur.counters) {
      if (!k.startsWith('metrics_sidecar_series_dropped_total|')) continue;
      const family = this.labels(k.slice(k.indexOf('|') + 1)).family ?? '';
      droppedNow.set(family, (droppedNow.get(family) ?? 0) + v);
      dropped15.set(family, (dropped15.get(family) ?? 0) + Math.max(0, v - (b15.snap?.counters.get(k) ?? 0)));
    }
    const all: FamilyCardinality[] = [];
    let total = 0;
    for (const f of this.src.registry.all()) {
      const size = f.size;
      total += size;
      const cap = Number.isFinite(f.maxSeries) ? f.maxSeries : null;
      all.push({
        name: f.name,
        type: f.type,
        series: size,
        cap,
        dropped_total: droppedNow.get(f.name) ?? 0,
        dropped_15m: dropped15.get(f.name) ?? 0,
        overflow: cap !== null && size >= cap ? overflowValue(f.overflowed) : null,
      });
    }
    all.sort((a, b) => b.series - a.series || (a.name < b.name ? -1 : 1));
    const families = all.slice(0, MAX_FAMILIES);
    for (const f of all.slice(MAX_FAMILIES)) if (f.dropped_total > 0 || f.overflow !== null) families.push(f);
    let droppedTotal = 0;
    let dropped15Total = 0;
    for (const v of droppedNow.values()) droppedTotal += v;
    for (const v of dropped15.values()) dropped15Total += v;
    return {
      total_series: total,
      budget: this.src.config.limits.maxSeriesTotal,
      families_total: all.length,
      dropped_total: droppedTotal,
      dropped_15m: dropped15Total,
      families,
    };
  }

  private access(cur: Snapshot, b15: Base): Access {
    const a = this.src.config.access;
    const methods: string[] = [];
    if (a.allowedCidrs.length > 0) methods.push('cidr');
    if (a.basicAuth) methods.push('basic');
    if (a.apiKeysFile) methods.push('api_key');
    if (a.kubernetes) methods.push('kubernetes');
    const refusals: Access['refusals'] = [];
    for (const [k, v] of cur.counters) {
      if (!k.startsWith('metrics_sidecar_auth_failures_total|')) continue;
      const l = this.labels(k.slice(k.indexOf('|') + 1));
      refusals.push({ listener: l.listener ?? '', reason: l.reason ?? '', last_15m: Math.max(0, v - (b15.snap?.counters.get(k) ?? 0)), total: v });
    }
    refusals.sort((x, y) => y.last_15m - x.last_15m || y.total - x.total);
    const since = cur.t - M15;
    const cidr = [...this.cidrRefusals.values()]
      .filter((r) => r.last >= since)
      .sort((x, y) => y.last - x.last)
      .slice(0, SHOWN_CIDR_ADDRESSES)
      .map((r) => ({ address: r.address, listener: r.listener, count: r.count, last_at: new Date(r.last).toISOString() }));
    return { open: this.src.accessOpen, methods, refusals, cidr_refused: cidr };
  }

  private labels(text: string): Record<string, string> {
    let l = this.labelCache.get(text);
    if (l === undefined) {
      if (this.labelCache.size > 10_000) this.labelCache.clear();
      l = parseLabels(text);
      this.labelCache.set(text, l);
    }
    return l;
  }
}

interface Base {
  snap: Snapshot | undefined;
  seconds: number;
}

/** A snapshot's number at `i`, 0 past its end (a route that appeared after it). */
function at(v: Float64Array | undefined, i: number): number {
  return v !== undefined && i < v.length ? v[i] : 0;
}

/**
 * The q-quantile of a window's bucket counts (`d[2 + i]` = observations in bucket i, the last
 * one +Inf), interpolated linearly inside the bucket as Prometheus's histogram_quantile does; in
 * the +Inf bucket, the highest finite bound.
 */
export function quantile(q: number, d: Float64Array, bounds: readonly number[]): number {
  let total = 0;
  for (let i = 2; i < d.length; i++) total += d[i];
  if (total <= 0) return NaN;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < d.length - 2; i++) {
    const c = d[2 + i];
    if (cum + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? 0;
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - cum) / c);
    }
    cum += c;
  }
  return bounds[bounds.length - 1] ?? 0;
}

function round(v: number, digits: number): number {
  if (!Number.isFinite(v)) return 0;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/**
 * Four significant digits: enough for a page, and a rate of 0.0004/s does not round to 0.
 * (Scaling by a loop: Math.pow and toPrecision were a fifth of the build time.)
 */
function sig(v: number): number {
  const a = Math.abs(v);
  if (!(a > 0) || a === Infinity) return 0;
  if (a >= 1000) return Math.round(v);
  let f = 1;
  for (let x = a; x < 1000 && f < 1e15; x *= 10) f *= 10;
  return Math.round(v * f) / f;
}

/** The events a family's overflow series holds (observations of a histogram), or null when it has none. */
function overflowValue(s: ValueSeries | HistogramSeries | undefined): number | null {
  if (s === undefined) return null;
  return 'count' in s ? s.count : s.value;
}
