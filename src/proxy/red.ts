/**
 * RED metrics for forwarded requests, under the names of the metric contract
 * (`<prefix>_duration_seconds`, `<prefix>_total`, `<prefix>_exceptions_total`).
 *
 * The `path` label never carries what the application does not route: a candidate template
 * (proxy/routes) becomes a label value only when it is already known (configured pattern or seen
 * before) or when the response says the application routed it (any status but 400, 404, 405,
 * 414 and 431); otherwise the request is recorded under UNMATCHED_ROUTE. The set of known
 * templates is bounded (count × template length); past it new templates go to OVERFLOW_ROUTE.
 * Every refusal is counted in `metrics_sidecar_route_templates_refused_total{reason}`.
 */
import { Counter, Histogram, type HistogramSeries, type Registry, type ValueSeries } from '../metrics/registry';
import { RouteTemplater } from './routes';
import type { Config } from '../config';

interface SeriesSet {
  duration: HistogramSeries | undefined;
  total: ValueSeries | undefined;
  exceptions: ValueSeries | undefined;
}

/** Upper bound of distinct (method, route, status) keys cached; far above any family cap. */
const MAX_CACHED_KEYS = 10_000;

/** The `path` of requests the application did not route, and of those the sidecar refused. */
export const UNMATCHED_ROUTE = '/:unmatched';
/** The `path` of routed requests whose template arrived after the known-template set was full. */
export const OVERFLOW_ROUTE = '/:overflow';
/** Statuses that say "not a route of mine" (or "not a request I can read"): they never mint a template. */
export const UNROUTED_STATUSES: ReadonlySet<number> = new Set([400, 404, 405, 414, 431]);

export const DEFAULT_MAX_TEMPLATES = 1000;

type RedHttpConfig = Pick<Config['http'], 'prefix' | 'buckets' | 'routePatterns' | 'excludePaths' | 'maxSeriesPerFamily'> &
  Partial<Pick<Config['http'], 'maxRouteTemplates' | 'routeTemplateMaxLength' | 'routeTemplateMaxSegments'>>;

export class RedRecorder {
  readonly duration: Histogram;
  readonly total: Counter;
  readonly exceptions: Counter;
  readonly templatesRefused: Counter;
  readonly routeCacheResets: Counter;
  private readonly routes: RouteTemplater;
  private readonly cache = new Map<string, SeriesSet>();
  private readonly known = new Set<string>();
  private readonly maxTemplates: number;

  constructor(registry: Registry, http: RedHttpConfig) {
    const max = http.maxSeriesPerFamily;
    this.duration = registry.register(
      new Histogram({
        name: `${http.prefix}_duration_seconds`,
        help: 'Time to answer a request forwarded to the application, in seconds, by route template.',
        labelNames: ['method', 'path', 'status'],
        buckets: http.buckets,
        maxSeries: max,
      }),
    );
    this.total = registry.register(
      new Counter({ name: `${http.prefix}_total`, help: 'Requests forwarded to the application.', labelNames: ['method', 'status'], maxSeries: max }),
    );
    this.exceptions = registry.register(
      new Counter({
        name: `${http.prefix}_exceptions_total`,
        help: 'Requests that failed: the application answered 500, or did not answer (refused, reset, timed out).',
        labelNames: ['method', 'status'],
        maxSeries: max,
      }),
    );
    this.templatesRefused = registry.register(
      new Counter({
        name: 'metrics_sidecar_route_templates_refused_total',
        help: 'Requests whose route template was not admitted as a path label: unrouted status (recorded as /:unmatched) or template limit (recorded as /:overflow).',
        labelNames: ['reason'],
      }),
    );
    this.routeCacheResets = registry.register(
      new Counter({
        name: 'metrics_sidecar_route_cache_resets_total',
        help: 'Times the path-to-template cache was emptied because it reached its entry or byte bound.',
      }),
    );
    this.routes = new RouteTemplater(http.routePatterns, http.excludePaths, {
      maxLength: http.routeTemplateMaxLength,
      maxSegments: http.routeTemplateMaxSegments,
      onCacheReset: () => this.routeCacheResets.inc(),
    });
    this.maxTemplates = http.maxRouteTemplates ?? DEFAULT_MAX_TEMPLATES;
    this.known.add(UNMATCHED_ROUTE).add(OVERFLOW_ROUTE);
    for (const t of this.routes.patternTemplates) this.known.add(t);
  }

  /** The candidate route template of a canonical path, or null when the path is excluded from RED metrics. */
  route(target: string): string | null {
    return this.routes.template(target);
  }

  /** Templates admitted as `path` values so far (configured ones and the two fixed values included). */
  get knownTemplates(): number {
    return this.known.size;
  }

  /**
   * Records one finished request. `failed` marks requests the application did not answer (the
   * sidecar produced the status); an application 500 counts as an exception as well.
   */
  record(method: string, route: string, status: number, seconds: number, failed: boolean): void {
    if (!this.known.has(route)) {
      if (UNROUTED_STATUSES.has(status)) {
        this.templatesRefused.inc(['unrouted_status']);
        route = UNMATCHED_ROUTE;
      } else if (this.known.size >= this.maxTemplates + 2) {
        this.templatesRefused.inc(['limit']);
        route = OVERFLOW_ROUTE;
      } else {
        this.known.add(route);
      }
    }
    const key = `${method} ${status}${failed ? '!' : ''} ${route}`;
    let s = this.cache.get(key);
    if (s === undefined) {
      const code = String(status);
      s = {
        duration: this.duration.child([method, route, code]),
        total: this.total.child([method, code]),
        exceptions: failed || status === 500 ? this.exceptions.child([method, code]) : undefined,
      };
      // A capped family leaves holes; do not cache them, so drops keep being counted.
      if (s.duration && s.total) {
        if (this.cache.size >= MAX_CACHED_KEYS) this.cache.clear();
        this.cache.set(key, s);
      }
    }
    if (s.duration) this.duration.observeOn(s.duration, seconds);
    if (s.total) s.total.value++;
    if (s.exceptions) s.exceptions.value++;
  }

  /** A request the sidecar refused (400, 414, 431, ...): its status, never an exception, never a new template. */
  refused(method: string, status: number, seconds: number): void {
    this.record(method, UNMATCHED_ROUTE, status, seconds, false);
  }
}
