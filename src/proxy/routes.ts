/**
 * Turns a canonical request path into a candidate `path` label: a route template, never the raw
 * path. Configured patterns win (`/users/:id`, `/static/*`); otherwise id-like and token-like
 * segments collapse to `:id` (numbers, UUIDs, hex, long segments, mixed letter+digit tokens,
 * high-entropy mixed-case tokens), and the template is cut at a bounded segment count and length.
 * Whether a candidate may become a label value at all is RedRecorder's decision (it depends on the
 * response status and on the bounded set of known templates).
 *
 * Results are cached per path; the cache is bounded in entries and in bytes, and long paths are
 * never cached (hostile 15 KB paths must not be kept).
 */
import { isIdLike } from '../formats/path-segment';
import { matchMixed, segmentMatcher, type OpenApiRoute } from '../formats/openapi';

/** A template of the app's OpenAPI document, compiled: per segment its text, null (a parameter) or the texts of a mixed segment. */
interface CompiledOpenApi {
  template: string;
  segments: (string | null | string[])[];
}

interface CompiledPattern {
  template: string;
  segments: readonly string[];
  /** Ends with `*`: matches any remainder, including none. */
  rest: boolean;
}

export interface RouteTemplaterOptions {
  /** Cache entries at most. */
  cacheSize?: number;
  /** Cache bytes (UTF-16 code units of keys and values, ×2) at most. */
  cacheBytes?: number;
  /** A template longer than this is cut at a segment boundary and ends in `/:rest`. */
  maxLength?: number;
  /** Segments kept at most; the remainder becomes `/:rest`. */
  maxSegments?: number;
  /** Called when the cache is reset because it is full (counted by the caller). */
  onCacheReset?: () => void;
  /** The learned per-position caps consulted by the heuristics (ROUTE_SEGMENT_MAX_VALUES); none = off. */
  learner?: SegmentLearner;
}

export const DEFAULT_TEMPLATE_MAX_LENGTH = 128;
export const DEFAULT_TEMPLATE_MAX_SEGMENTS = 12;
/** What a cut template ends with. */
export const REST_SEGMENT = ':rest';
/** An operationId is kept (and shown on the status page) up to this many characters. */
export const MAX_OPERATION_ID = 128;
/** Paths longer than this are templated each time, never cached. */
const MAX_CACHED_PATH = 256;

export class RouteTemplater {
  private readonly patterns: CompiledPattern[];
  /** The OpenAPI document's templates by segment count, most specific first in each. */
  private openApi = new Map<number, CompiledOpenApi[]>();
  private openApiTemplates: string[] = [];
  /** The document's operationId by template and method (`/users/:id` → GET → getUser); the first one of a cut template. */
  private operations = new Map<string, Map<string, string>>();
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly cache = new Map<string, string | null>();
  private bytes = 0;
  private readonly cacheSize: number;
  private readonly cacheBytes: number;
  private readonly maxLength: number;
  private readonly maxSegments: number;

  constructor(
    patterns: readonly string[],
    excludePaths: readonly string[] = [],
    private readonly opts: RouteTemplaterOptions = {},
  ) {
    this.patterns = patterns.map(compile);
    for (const p of excludePaths) {
      if (p.endsWith('*')) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
    this.cacheSize = opts.cacheSize ?? 10_000;
    this.cacheBytes = opts.cacheBytes ?? 1024 * 1024;
    this.maxLength = Math.max(opts.maxLength ?? DEFAULT_TEMPLATE_MAX_LENGTH, 16);
    this.maxSegments = Math.max(opts.maxSegments ?? DEFAULT_TEMPLATE_MAX_SEGMENTS, 1);
  }

  /** The configured patterns' templates (always valid label values). */
  get patternTemplates(): string[] {
    return this.patterns.map((p) => p.template);
  }

  /**
   * Replaces the OpenAPI document's templates (most specific first, as parseOpenApi orders them),
   * matched after the configured patterns and before the heuristics, each cut at the template
   * bounds (returns how many were). The cache is emptied: paths cached under another template are
   * templated again.
   */
  setOpenApi(routes: readonly OpenApiRoute[]): { cut: number } {
    const bySegments = new Map<number, CompiledOpenApi[]>();
    const templates = new Set<string>();
    const operations = new Map<string, Map<string, string>>();
    let cut = 0;
    for (const r of routes) {
      const segments = r.path.split('/').slice(1).map(segmentMatcher);
      let list = bySegments.get(segments.length);
      if (list === undefined) bySegments.set(segments.length, (list = []));
      // The label is bounded as a heuristic template is: a document's 40-segment path is still one
      // route, named by its first segments and `/:rest`.
      const template = this.bounded(r.template.split('/').slice(1));
      if (template !== r.template) cut++;
      list.push({ template, segments });
      templates.add(template);
      let ops = operations.get(template);
      if (ops === undefined) operations.set(template, (ops = new Map()));
      for (const op of r.operations) {
        const space = op.indexOf(' ');
        if (space !== -1 && !ops.has(op.slice(0, space))) ops.set(op.slice(0, space), op.slice(space + 1, space + 1 + MAX_OPERATION_ID));
      }
    }
    this.openApi = bySegments;
    this.operations = operations;
    this.openApiTemplates = [...templates];
    this.invalidate();
    return { cut };
  }

  /** The OpenAPI document's templates in use, most specific first. */
  get openApiPatternTemplates(): readonly string[] {
    return this.openApiTemplates;
  }

  /** The document's operationId for a method (`GET`) on one of its templates, if it gives one. */
  operationOf(method: string, template: string): string | undefined {
    return this.operations.get(template)?.get(method);
  }

  /** The template for a path (`/users/42?x=1` → `/users/:id`), or null when excluded. */
  template(target: string): string | null {
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    let t = this.cache.get(path);
    if (t === undefined) {
      t = this.compute(path);
      if (path.length <= MAX_CACHED_PATH) {
        const size = 2 * (path.length + (t?.length ?? 0)) + 64;
        if (this.cache.size >= this.cacheSize || this.bytes + size > this.cacheBytes) {
          this.cache.clear();
          this.bytes = 0;
          this.opts.onCacheReset?.();
        }
        this.cache.set(path, t);
        this.bytes += size;
      }
    }
    return t;
  }

  /**
   * Forgets every cached template: called when a position is learned, so that a path cached with
   * its literal template (`/tags/kubernetes`) is templated again (`/tags/:id`).
   */
  invalidate(): void {
    this.cache.clear();
    this.bytes = 0;
  }

  /** Bytes the cache holds (approximate: keys, values and a per-entry overhead). */
  get cachedBytes(): number {
    return this.bytes;
  }

  get cachedEntries(): number {
    return this.cache.size;
  }

  private compute(path: string): string | null {
    if (this.exact.has(path) || this.prefixes.some((p) => path.startsWith(p))) return null;
    const segments = path.split('/').slice(1);
    for (const p of this.patterns) if (matches(p, segments)) return p.template;
    const candidates = this.openApi.get(segments.length);
    if (candidates !== undefined) for (const c of candidates) if (matchesOpenApi(c, segments)) return c.template;
    const learner = this.opts.learner !== undefined && this.opts.learner.learnedCount > 0 ? this.opts.learner : undefined;
    return this.bounded(segments, true, learner);
  }

  /**
   * Joins segments into a template within the bounds: at most `maxSegments` segments and
   * `maxLength` characters, a cut template ending in `/:rest` (cut at a segment boundary). With
   * `heuristics`, id-like segments and learned positions become `:id` on the way (one pass, no
   * array: this runs on every path the cache misses).
   */
  private bounded(segments: readonly string[], heuristics = false, learner?: SegmentLearner): string {
    let out = '';
    const n = Math.min(segments.length, this.maxSegments);
    for (let i = 0; i < n; i++) {
      const seg = segments[i];
      // A literal segment that reads as a placeholder (`:a`) is one too: kept, it would pass for a
      // template's parameter, and the learned caps (which skip placeholders) would never count it.
      const piece = `/${heuristics && (seg.charCodeAt(0) === 0x3a || isIdLike(seg) || (i > 0 && learner?.isLearned(out) === true)) ? ':id' : seg}`;
      if (out.length + piece.length > this.maxLength - REST_SEGMENT.length - 1) return `${out}/${REST_SEGMENT}`;
      out += piece;
    }
    if (segments.length > n) out += `/${REST_SEGMENT}`;
    return out === '' ? '/' : out;
  }
}

function matchesOpenApi(c: CompiledOpenApi, segments: readonly string[]): boolean {
  for (let i = 0; i < segments.length; i++) {
    const want = c.segments[i];
    const seg = segments[i];
    if (want === null) {
      if (seg === '') return false;
    } else if (typeof want === 'string') {
      if (want !== seg) return false;
    } else if (!matchMixed(want, seg)) return false;
  }
  return true;
}

function compile(template: string): CompiledPattern {
  const segments = template.split('/').slice(1);
  const rest = segments[segments.length - 1] === '*';
  return { template, segments: rest ? segments.slice(0, -1) : segments, rest };
}

function matches(p: CompiledPattern, segments: readonly string[]): boolean {
  if (p.rest ? segments.length < p.segments.length : segments.length !== p.segments.length) return false;
  for (let i = 0; i < p.segments.length; i++) {
    const want = p.segments[i];
    if (want.startsWith(':') ? segments[i] === '' : want !== segments[i]) return false;
  }
  return true;
}

/** Why the learner did not remember a value (counted by the caller). */
export type LearnRefusal = 'prefixes' | 'values';

export interface SegmentLearnerOptions {
  /** Distinct literal values a position may hold; one more collapses it to `:id` (ROUTE_SEGMENT_MAX_VALUES, above 0). */
  maxValues: number;
  /** Prefixes tracked at most (learned ones included); values under further prefixes are not remembered. */
  maxPrefixes?: number;
  /** Values remembered at most over all prefixes. */
  maxTotalValues?: number;
  /** A position was learned: `${prefix}/:id` is now a template. */
  onLearned?: (prefix: string) => void;
  onRefused?: (reason: LearnRefusal) => void;
}

export const DEFAULT_LEARNER_MAX_PREFIXES = 1000;
export const DEFAULT_LEARNER_MAX_TOTAL_VALUES = 10_000;

/**
 * Learned per-position caps (OpenTelemetry eBPF instrumentation's `max_path_segment_cardinality`):
 * for each prefix (the template before a position, `/tags` for `/tags/kubernetes`), the distinct
 * literal values the heuristics kept at the next position. When one more than `maxValues` arrives,
 * the position collapses to `:id` under that prefix from then on, and its values are forgotten.
 * The first segment is never learned: an app's top-level names are its namespace, and a catch-all
 * route answering 200 to scanners must not turn every path into `/:id/...`.
 *
 * Fed with the templates RedRecorder admits (so only statuses the app routed teach it), never on
 * the request path of a cached template. Memory is bounded: `maxPrefixes` prefixes and
 * `maxTotalValues` values; what does not fit is not remembered, and counted.
 */
export class SegmentLearner {
  /** Prefix → its position's literal values, or null once learned. */
  private readonly seen = new Map<string, Set<string> | null>();
  private readonly learned: string[] = [];
  private values = 0;
  private readonly maxPrefixes: number;
  private readonly maxTotalValues: number;

  constructor(private readonly opts: SegmentLearnerOptions) {
    this.maxPrefixes = opts.maxPrefixes ?? DEFAULT_LEARNER_MAX_PREFIXES;
    this.maxTotalValues = opts.maxTotalValues ?? DEFAULT_LEARNER_MAX_TOTAL_VALUES;
  }

  get learnedCount(): number {
    return this.learned.length;
  }

  /** Whether the position after `prefix` has been learned (collapses to `:id`). */
  isLearned(prefix: string): boolean {
    return this.seen.get(prefix) === null;
  }

  /** The learned templates (`/tags/:id`), in the order they were learned. */
  get learnedTemplates(): string[] {
    return this.learned.map((p) => `${p}/:id`);
  }

  /** Prefixes tracked and values remembered (bounded; for tests and the status page). */
  get size(): { prefixes: number; values: number } {
    return { prefixes: this.seen.size, values: this.values };
  }

  /**
   * Remembers the literal segments of a template the heuristics produced and returns it with the
   * learned positions collapsed: itself when nothing is learned, `/tags/:id` for `/tags/kubernetes`
   * when `kubernetes` is one value too many (or `/tags` was learned already).
   */
  observe(template: string): string {
    const segments = template.split('/').slice(1);
    if (segments.length < 2) return template;
    let out = `/${segments[0]}`;
    let changed = false;
    for (let i = 1; i < segments.length; i++) {
      let seg = segments[i];
      if (!seg.startsWith(':')) {
        const values = this.seen.get(out);
        if (values === null) {
          seg = ':id';
          changed = true;
        } else if (values === undefined) {
          if (this.seen.size >= this.maxPrefixes) this.opts.onRefused?.('prefixes');
          else if (this.values >= this.maxTotalValues) this.opts.onRefused?.('values');
          else {
            this.seen.set(out, new Set([seg]));
            this.values++;
          }
        } else if (!values.has(seg)) {
          if (values.size >= this.opts.maxValues) {
            this.values -= values.size;
            this.seen.set(out, null);
            this.learned.push(out);
            this.opts.onLearned?.(out);
            seg = ':id';
            changed = true;
          } else if (this.values >= this.maxTotalValues) this.opts.onRefused?.('values');
          else {
            values.add(seg);
            this.values++;
          }
        }
      }
      out += `/${seg}`;
    }
    return changed ? out : template;
  }
}
