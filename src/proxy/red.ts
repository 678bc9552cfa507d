/**
 * RED metrics for forwarded requests, under the names of the metric contract
 * (`<prefix>_duration_seconds`, `<prefix>_total`, `<prefix>_exceptions_total`).
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
const MAX_CACHED_KEYS = 50_000;

export class RedRecorder {
  readonly duration: Histogram;
  readonly total: Counter;
  readonly exceptions: Counter;
  private readonly routes: RouteTemplater;
  private readonly cache = new Map<string, SeriesSet>();

  constructor(registry: Registry, http: Config['http']) {
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
    this.routes = new RouteTemplater(http.routePatterns, http.excludePaths);
  }

  /** The route template of a target, or null when the path is excluded from RED metrics. */
  route(target: string): string | null {
    return this.routes.template(target);
  }

  /**
   * Records one finished request. `failed` marks requests the application did not answer (the
   * sidecar produced the status); an application 500 counts as an exception as well.
   */
  record(method: string, route: string, status: number, seconds: number, failed: boolean): void {
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
}
