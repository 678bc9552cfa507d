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
}

export const DEFAULT_TEMPLATE_MAX_LENGTH = 128;
export const DEFAULT_TEMPLATE_MAX_SEGMENTS = 12;
/** What a cut template ends with. */
export const REST_SEGMENT = ':rest';
/** Paths longer than this are templated each time, never cached. */
const MAX_CACHED_PATH = 256;

export class RouteTemplater {
  private readonly patterns: CompiledPattern[];
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
    let out = '';
    const n = Math.min(segments.length, this.maxSegments);
    for (let i = 0; i < n; i++) {
      const seg = segments[i];
      const piece = `/${isIdLike(seg) ? ':id' : seg}`;
      if (out.length + piece.length > this.maxLength - REST_SEGMENT.length - 1) return `${out}/${REST_SEGMENT}`;
      out += piece;
    }
    if (segments.length > n) out += `/${REST_SEGMENT}`;
    return out === '' ? '/' : out;
  }
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
