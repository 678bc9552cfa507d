/**
 * Turns a raw request path into the `path` label: a route template, never the raw path.
 * Configured patterns win (`/users/:id`, `/static/*`); otherwise id-like segments (numbers, UUIDs,
 * long hex, long opaque tokens) collapse to `:id`. Results are cached per raw path, bounded.
 */

interface CompiledPattern {
  template: string;
  segments: readonly string[];
  /** Ends with `*`: matches any remainder, including none. */
  rest: boolean;
}

const ID_SEGMENT = [
  /^\d+$/,
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^(?=[a-f]*\d)[0-9a-f]{12,}$/i,
  /^(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{24,}$/,
];

const DEFAULT_CACHE_SIZE = 10_000;

export class RouteTemplater {
  private readonly patterns: CompiledPattern[];
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly cache = new Map<string, string | null>();

  constructor(patterns: readonly string[], excludePaths: readonly string[] = [], private readonly cacheSize = DEFAULT_CACHE_SIZE) {
    this.patterns = patterns.map(compile);
    for (const p of excludePaths) {
      if (p.endsWith('*')) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
  }

  /** The template for a request target (`/users/42?x=1` → `/users/:id`), or null when excluded. */
  template(target: string): string | null {
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    let t = this.cache.get(path);
    if (t === undefined) {
      t = this.compute(path);
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(path, t);
    }
    return t;
  }

  private compute(path: string): string | null {
    if (this.exact.has(path) || this.prefixes.some((p) => path.startsWith(p))) return null;
    const segments = path.split('/').slice(1);
    for (const p of this.patterns) if (matches(p, segments)) return p.template;
    return `/${segments.map((s) => (ID_SEGMENT.some((re) => re.test(s)) ? ':id' : s)).join('/')}`;
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
