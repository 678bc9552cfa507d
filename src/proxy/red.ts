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
 *
 * The `method` label takes the known methods of OpenTelemetry's HTTP semantic conventions
 * (KNOWN_METHODS) and folds every other into OTHER_METHOD, so a client sending WebDAV or other
 * methods cannot fill the families; the app still receives the real method.
 */
import { Counter, Histogram, type HistogramSeries, type Registry, type ValueSeries } from '../metrics/registry';
import { RouteTemplater, SegmentLearner } from './routes';
import type { OpenApiRoute } from '../formats/openapi';
import type { Config } from '../config';

interface SeriesSet {
  duration: HistogramSeries | undefined;
  total: ValueSeries | undefined;
  exceptions: ValueSeries | undefined;
}

/**
 * A template admitted as a `path` value, holding the series of its (method, status) pairs once
 * they are resolved: a request looks its route up once (by path, in the templater's cache) and
 * then finds its series by a number, with no key string built per request.
 */
export class Route {
  /** Series by (method id, status, failed); see seriesKey. */
  readonly sets = new Map<number, SeriesSet>();
  constructor(readonly template: string) {}
}

/** The `path` label a route stands for (logs). */
export function routeName(route: Route | string | null): string | null {
  return route === null || typeof route === 'string' ? route : route.template;
}

/** Upper bound of (route, method, status) series sets cached over all routes; far above any family cap. */
const MAX_CACHED_SETS = 10_000;

/**
 * The `method` label values besides OTHER_METHOD: RFC 9110's methods, PATCH (RFC 5789) and QUERY
 * (httpbis-safe-method-w-body), OpenTelemetry's default "known" methods (`http.request.method`).
 */
export const KNOWN_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY'];
/** The `method` label of every other method (OpenTelemetry's `_OTHER`). */
export const OTHER_METHOD = '_OTHER';
/** Method → its id in series keys; OTHER_METHOD's id is KNOWN_METHODS.length. */
const METHOD_IDS = new Map<string, number>(KNOWN_METHODS.map((m, i) => [m, i]));
const OTHER_METHOD_ID = KNOWN_METHODS.length;
const METHOD_IDS_COUNT = KNOWN_METHODS.length + 1;

/** The `method` label of a request method: itself when known (case-sensitive, as HTTP methods are), else `_OTHER`. */
export function methodLabel(method: string): string {
  return METHOD_IDS.has(method) ? method : OTHER_METHOD;
}

/** The `path` of requests the application did not route, and of those the sidecar refused. */
export const UNMATCHED_ROUTE = '/:unmatched';
/** The `path` of routed requests whose template arrived after the known-template set was full. */
export const OVERFLOW_ROUTE = '/:overflow';
/** Statuses that say "not a route of mine" (or "not a request I can read"): they never mint a template. */
export const UNROUTED_STATUSES: ReadonlySet<number> = new Set([400, 404, 405, 414, 431]);

export const DEFAULT_MAX_TEMPLATES = 1000;

type RedHttpConfig = Pick<Config['http'], 'prefix' | 'buckets' | 'routePatterns' | 'excludePaths' | 'maxSeriesPerFamily'> &
  Partial<Pick<Config['http'], 'maxRouteTemplates' | 'routeTemplateMaxLength' | 'routeTemplateMaxSegments' | 'routeSegmentMaxValues' | 'exemplars' | 'native'>>;

/** ROUTE_SEGMENT_MAX_VALUES' default: OpenTelemetry eBPF instrumentation's `max_path_segment_cardinality`. */
export const DEFAULT_SEGMENT_MAX_VALUES = 10;

/** The ids of a sampled trace a request belongs to (from its `traceparent`). */
export interface TraceIds {
  traceId: string;
  spanId: string;
}

/** The templates by source (RedRecorder.templateSources). */
export interface TemplateSources {
  configured: readonly string[];
  openapi: readonly string[];
  learned: readonly string[];
  heuristic: readonly string[];
  /** Templates admitted as `path` values (the two fixed values aside), and their bound. */
  admitted: number;
  max: number;
  /** ROUTE_SEGMENT_MAX_VALUES; 0 = learned caps off. */
  segmentMaxValues: number;
}

export class RedRecorder {
  readonly duration: Histogram;
  readonly total: Counter;
  readonly exceptions: Counter;
  readonly templatesRefused: Counter;
  readonly routeCacheResets: Counter;
  readonly positionsLearned: Counter;
  readonly learningRefused: Counter;
  private readonly routes: RouteTemplater;
  /** Learned per-position caps (ROUTE_SEGMENT_MAX_VALUES), undefined when off. */
  readonly learner: SegmentLearner | undefined;
  /** Admitted templates (configured ones and the two fixed values included) → their Route. */
  private readonly known = new Map<string, Route>();
  private readonly unmatched = new Route(UNMATCHED_ROUTE);
  private readonly overflowed = new Route(OVERFLOW_ROUTE);
  private cachedSets = 0;
  /** Templates the configuration or the OpenAPI document declare: they never teach the learned caps. */
  private declared: ReadonlySet<string>;
  private readonly maxTemplates: number;
  private readonly segmentMaxValues: number;
  /** Exemplars are recorded (EXEMPLARS); off, a trace is ignored. */
  readonly exemplars: boolean;

  constructor(registry: Registry, http: RedHttpConfig) {
    const max = http.maxSeriesPerFamily;
    this.exemplars = http.exemplars ?? false;
    this.duration = registry.register(
      new Histogram({
        name: `${http.prefix}_duration_seconds`,
        help: 'Time to answer a request forwarded to the application, in seconds, by route template.',
        labelNames: ['method', 'path', 'status'],
        buckets: http.buckets,
        native: http.native,
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
    this.positionsLearned = registry.register(
      new Counter({
        name: 'metrics_sidecar_route_positions_learned_total',
        help: 'Path positions collapsed to :id under a prefix because they held more than ROUTE_SEGMENT_MAX_VALUES distinct values.',
      }),
    );
    this.learningRefused = registry.register(
      new Counter({
        name: 'metrics_sidecar_route_learning_refused_total',
        help: 'Path segment values the learned caps did not remember because their bound was reached (prefixes tracked, values remembered).',
        labelNames: ['reason'],
      }),
    );
    const maxValues = http.routeSegmentMaxValues ?? DEFAULT_SEGMENT_MAX_VALUES;
    this.segmentMaxValues = maxValues;
    this.learner =
      maxValues > 0
        ? new SegmentLearner({
            maxValues,
            onLearned: () => {
              this.positionsLearned.inc();
              // Cached literal templates under the prefix must be computed again.
              this.routes.invalidate();
            },
            onRefused: (reason) => this.learningRefused.inc([reason]),
          })
        : undefined;
    this.routes = new RouteTemplater(http.routePatterns, http.excludePaths, {
      maxLength: http.routeTemplateMaxLength,
      maxSegments: http.routeTemplateMaxSegments,
      onCacheReset: () => this.routeCacheResets.inc(),
      learner: this.learner,
    });
    this.maxTemplates = http.maxRouteTemplates ?? DEFAULT_MAX_TEMPLATES;
    this.declared = new Set(this.routes.patternTemplates);
    this.known.set(UNMATCHED_ROUTE, this.unmatched).set(OVERFLOW_ROUTE, this.overflowed);
    for (const t of this.routes.patternTemplates) if (!this.known.has(t)) this.known.set(t, new Route(t));
  }

  /**
   * The route of a canonical path: its Route when the template is already admitted, else the
   * candidate template (admitted or not by record, once the status is known), or null when the
   * path is excluded from RED metrics.
   */
  route(target: string): Route | string | null {
    const t = this.routes.template(target);
    return t === null ? null : (this.known.get(t) ?? t);
  }

  /**
   * Uses the templates of the app's OpenAPI document from now on (replacing the previous set):
   * matched after the configured patterns, before the heuristics, cut at the template bounds
   * (returns how many were), and admitted as `path` values at once while the known-template bound
   * allows (past it they are admitted as any template is).
   */
  setOpenApi(routes: readonly OpenApiRoute[]): { cut: number } {
    const r = this.routes.setOpenApi(routes);
    const templates = this.routes.openApiPatternTemplates;
    this.declared = new Set([...this.routes.patternTemplates, ...templates]);
    for (const t of templates) {
      if (this.known.has(t)) continue;
      if (this.known.size >= this.maxTemplates + 2) break;
      this.known.set(t, new Route(t));
    }
    return r;
  }

  /** The OpenAPI document's templates in use, most specific first. */
  get openApiTemplates(): readonly string[] {
    return this.routes.openApiPatternTemplates;
  }

  /** The OpenAPI document's operationId for a method on one of its templates (the status page's route label). */
  operationOf(method: string, template: string): string | undefined {
    return this.routes.operationOf(method, template);
  }

  /**
   * The templates by source, for the status page: configured (ROUTE_PATTERNS), the OpenAPI
   * document's, learned positions (`/tags/:id`), and those the heuristics admitted (every other
   * admitted template but the two fixed values). O(admitted templates).
   */
  templateSources(): TemplateSources {
    const learned = this.learner?.learnedTemplates ?? [];
    const learnedSet = new Set(learned);
    const heuristic: string[] = [];
    for (const t of this.known.keys()) {
      if (t === UNMATCHED_ROUTE || t === OVERFLOW_ROUTE || this.declared.has(t) || learnedSet.has(t)) continue;
      heuristic.push(t);
    }
    return {
      configured: this.routes.patternTemplates,
      openapi: this.routes.openApiPatternTemplates,
      learned,
      heuristic,
      admitted: this.known.size - 2,
      max: this.maxTemplates,
      segmentMaxValues: this.learner === undefined ? 0 : this.segmentMaxValues,
    };
  }

  /** Templates admitted as `path` values so far (configured ones and the two fixed values included). */
  get knownTemplates(): number {
    return this.known.size;
  }

  /**
   * Records one finished request. `failed` marks requests the application did not answer (the
   * sidecar produced the status); an application 500 counts as an exception as well.
   */
  record(method: string, route: Route | string, status: number, seconds: number, failed: boolean, trace?: TraceIds): void {
    const r = typeof route === 'string' ? (this.known.get(route) ?? this.admit(route, status)) : route;
    const key = seriesKey(method, status, failed);
    let s = r.sets.get(key);
    if (s === undefined) {
      const code = String(status);
      method = methodLabel(method);
      s = {
        duration: this.duration.child([method, r.template, code]),
        total: this.total.child([method, code]),
        exceptions: failed || status === 500 ? this.exceptions.child([method, code]) : undefined,
      };
      // A set holding a family's overflow series is not cached: each of its requests then asks the
      // family again, and every refusal is counted (a cached one was counted once).
      const refused =
        s.duration === undefined ||
        s.total === undefined ||
        this.duration.isOverflow(s.duration) ||
        this.total.isOverflow(s.total) ||
        (s.exceptions !== undefined && this.exceptions.isOverflow(s.exceptions));
      if (!refused) {
        if (this.cachedSets >= MAX_CACHED_SETS) {
          for (const k of this.known.values()) k.sets.clear();
          this.cachedSets = 0;
        }
        r.sets.set(key, s);
        this.cachedSets++;
      }
    }
    if (trace !== undefined && this.exemplars) {
      // One exemplar per bucket and per counter series, the latest: memory stays (buckets + 2) per series.
      const labels = [
        ['trace_id', trace.traceId],
        ['span_id', trace.spanId],
      ] as const;
      const timestampMs = Date.now();
      if (s.duration) this.duration.observeWithExemplar(s.duration, seconds, { labels, value: seconds, timestampMs });
      if (s.total) this.total.incWithExemplar(s.total, { labels, value: 1, timestampMs });
    } else {
      if (s.duration) this.duration.observeOn(s.duration, seconds);
      if (s.total) s.total.value++;
    }
    if (s.exceptions) s.exceptions.value++;
  }

  /** The Route a new candidate template is recorded under: itself when admitted, else /:unmatched or /:overflow (counted). */
  private admit(template: string, status: number): Route {
    if (UNROUTED_STATUSES.has(status)) {
      this.templatesRefused.inc(['unrouted_status']);
      return this.unmatched;
    }
    if (this.learner !== undefined && !this.declared.has(template)) {
      // A routed status teaches the learned caps; the value one too many is recorded collapsed already.
      const learned = this.learner.observe(template);
      if (learned !== template) {
        const r = this.known.get(learned);
        if (r !== undefined) return r;
        template = learned;
      }
    }
    if (this.known.size >= this.maxTemplates + 2) {
      this.templatesRefused.inc(['limit']);
      return this.overflowed;
    }
    const r = new Route(template);
    this.known.set(template, r);
    return r;
  }

  /** A request the sidecar refused (400, 414, 431, ...): its status, never an exception, never a new template. */
  refused(method: string, status: number, seconds: number): void {
    this.record(method, this.unmatched, status, seconds, false);
  }
}

/** A number for (method label, status, failed) within one route. */
function seriesKey(method: string, status: number, failed: boolean): number {
  return (status * METHOD_IDS_COUNT + (METHOD_IDS.get(method) ?? OTHER_METHOD_ID)) * 2 + (failed ? 1 : 0);
}
