/**
 * Route templates from an application's OpenAPI document (ROUTE_OPENAPI_FILE, ROUTE_OPENAPI_URL):
 * OpenAPI 3.x and Swagger 2.0, JSON or YAML. Each path of `paths` that has an operation becomes a
 * template in the sidecar's `:name` form (`/users/{userId}/orders/{orderId}` →
 * `/users/:userId/orders/:orderId`), under each base path the document declares: the path part of
 * `servers[].url` (3.x; server variables take their `default`; a path item's own `servers` win) or
 * `basePath` (2.0). A segment mixing text and parameters (`{name}.{ext}`) keeps its text
 * (`:name.:ext`) and matches only values with that text.
 *
 * The document is refused whole (an Error whose message says why) when it is not an OpenAPI
 * document, when it is larger than MAX_OPENAPI_BYTES, declares more than MAX_OPENAPI_OPERATIONS
 * operations, more than MAX_OPENAPI_BASE_PATHS base paths in one `servers` list or more than
 * MAX_OPENAPI_ROUTES routes once they are applied (3,000 servers × 2,000 paths were 6 million
 * routes from an 89 KB document), or when a path is not a path: the caller keeps its previous set.
 *
 * The order of the templates is the matching order, most specific first: at the first segment
 * where two templates differ in kind, a literal beats a mixed segment, which beats a parameter (as
 * routers do: `/users/me` before `/users/{id}`).
 */
import type * as YamlModule from 'yaml';

export const MAX_OPENAPI_BYTES = 4 * 1024 * 1024;
export const MAX_OPENAPI_OPERATIONS = 2000;
/** Routes at most once base paths are applied: each distinct base path repeats every path under it. */
export const MAX_OPENAPI_ROUTES = 4000;
/** Distinct base paths at most in one `servers` list. */
export const MAX_OPENAPI_BASE_PATHS = 16;

/** HTTP methods an OpenAPI path item may hold operations for (3.2 adds `query`). */
const OPERATION_KEYS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace', 'query'];

export interface OpenApiRoute {
  /** The template in the sidecar's form, base path included. */
  template: string;
  /** The same in OpenAPI's form (`/v1/users/{userId}`): what a request path is matched against. */
  path: string;
  /** The operations under it: `GET getUser`, or the method alone when it has no operationId. */
  operations: string[];
}

export interface OpenApiDocument {
  /** `3.1.0`, `2.0`, ... */
  version: string;
  /** Operations declared (method × path, before base paths). */
  operations: number;
  /** Most specific first. */
  routes: OpenApiRoute[];
}

/** Reads an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML); throws an Error saying why it is refused. */
export function parseOpenApi(text: string): OpenApiDocument {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_OPENAPI_BYTES) throw new Error(`document is ${bytes} bytes; at most ${MAX_OPENAPI_BYTES}`);
  const doc = readDocument(text);
  if (!isObject(doc)) throw new Error('not an OpenAPI document: not an object');
  const version = typeof doc.openapi === 'string' ? doc.openapi : doc.swagger === '2.0' || doc.swagger === 2 ? '2.0' : undefined;
  if (version === undefined || !(version === '2.0' || /^3\.\d+(\.\d+)?/.test(version))) {
    throw new Error('not an OpenAPI document: no "openapi: 3.x" or "swagger: 2.0" field');
  }
  if (!isObject(doc.paths)) throw new Error('"paths" is not an object');
  const rootBases = version === '2.0' ? [swaggerBase(doc.basePath)] : serverBases(doc.servers);

  let operations = 0;
  const byPath = new Map<string, string[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) throw new Error(`path ${JSON.stringify(path.slice(0, 80))} does not start with "/"`);
    if (!isObject(item)) continue;
    const ops: string[] = [];
    for (const key of OPERATION_KEYS) {
      const op = item[key];
      if (!isObject(op)) continue;
      ops.push(typeof op.operationId === 'string' ? `${key.toUpperCase()} ${op.operationId}` : key.toUpperCase());
    }
    if (ops.length === 0) continue;
    operations += ops.length;
    if (operations > MAX_OPENAPI_OPERATIONS) throw new Error(`more than ${MAX_OPENAPI_OPERATIONS} operations`);
    const bases = version !== '2.0' && item.servers !== undefined ? serverBases(item.servers) : rootBases;
    for (const base of bases) {
      const full = base + (path === '/' && base !== '' ? '' : path);
      const had = byPath.get(full);
      if (had !== undefined) had.push(...ops);
      else if (byPath.size >= MAX_OPENAPI_ROUTES) throw new Error(`more than ${MAX_OPENAPI_ROUTES} routes once the servers' base paths are applied`);
      else byPath.set(full, [...ops]);
    }
  }
  const routes = [...byPath].map(([path, ops]) => ({ template: toTemplate(path), path, operations: ops }));
  routes.sort((a, b) => compareSpecificity(a.path, b.path));
  return { version, operations, routes };
}

/** `/users/{userId}/files/{name}.{ext}` → `/users/:userId/files/:name.:ext`. */
export function toTemplate(openApiPath: string): string {
  return openApiPath.replace(/\{([^{}/]*)\}/g, (_m, name: string) => `:${name.replace(/[^A-Za-z0-9_-]/g, '_') || 'param'}`);
}

/** Kinds of a segment, most specific first. */
export const LITERAL = 0;
export const MIXED = 1;
export const PARAM = 2;
type Kind = typeof LITERAL | typeof MIXED | typeof PARAM;

/** The kind of a segment of an OpenAPI path: `users`, `{name}.{ext}`, `{id}`. */
export function segmentKind(segment: string): Kind {
  if (!segment.includes('{')) return LITERAL;
  return /^\{[^{}]*\}$/.test(segment) ? PARAM : MIXED;
}

/**
 * Of two OpenAPI paths, negative when `a` is to be tried before `b`: at the first segment where their kinds differ, the
 * more specific kind first; then fewer segments first; then by text (a stable order).
 */
export function compareSpecificity(a: string, b: string): number {
  const sa = a.split('/');
  const sb = b.split('/');
  const n = Math.min(sa.length, sb.length);
  for (let i = 0; i < n; i++) {
    const d = segmentKind(sa[i]) - segmentKind(sb[i]);
    if (d !== 0) return d;
  }
  if (sa.length !== sb.length) return sa.length - sb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * What a segment of an OpenAPI path matches: a literal its text (a string), a parameter any
 * non-empty segment (null), a mixed segment (`{name}.{ext}`) its texts around non-empty
 * parameters (the texts, for matchMixed).
 */
export function segmentMatcher(segment: string): string | null | string[] {
  const kind = segmentKind(segment);
  if (kind === LITERAL) return segment;
  if (kind === PARAM) return null;
  return segment.split(/\{[^{}]*\}/);
}

/**
 * Whether `value` is `texts[0]`, a non-empty parameter, `texts[1]`, ... `texts[n-1]`: each
 * parameter ends at the first occurrence of the text after it, as routers read `{name}.{ext}`.
 * Linear in the segment (no backtracking: request paths are hostile).
 */
export function matchMixed(texts: readonly string[], value: string): boolean {
  const last = texts[texts.length - 1];
  if (!value.startsWith(texts[0]) || !value.endsWith(last)) return false;
  const end = value.length - last.length;
  let pos = texts[0].length;
  for (let i = 1; i < texts.length - 1; i++) {
    const t = texts[i];
    // An empty text between two parameters: the first takes one character at least.
    const at = t === '' ? pos + 1 : value.indexOf(t, pos + 1);
    if (at === -1 || at + t.length > end) return false;
    pos = at + t.length;
  }
  return pos < end;
}

function readDocument(text: string): unknown {
  const t = text.trimStart();
  if (t.startsWith('{')) {
    try {
      return JSON.parse(t) as unknown;
    } catch (err) {
      throw new Error(`not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  // Loaded when first needed: most sidecars never read a YAML document.
  const YAML = require('yaml') as typeof YamlModule;
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: false });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length !== 1) throw new Error(`not one YAML document (${list.length})`);
  const [d] = list;
  if (d.errors.length > 0) throw new Error(`not valid YAML: ${d.errors[0].message.split('\n')[0]}`);
  try {
    return d.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (err) {
    throw new Error(`not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

/** The base paths of `servers` (3.x): their URLs' path parts, variables at their defaults; none = `/`. */
function serverBases(servers: unknown): string[] {
  if (!Array.isArray(servers) || servers.length === 0) return [''];
  const bases = new Set<string>();
  for (const s of servers) {
    if (!isObject(s) || typeof s.url !== 'string') continue;
    const vars = isObject(s.variables) ? s.variables : {};
    const url = s.url.replace(/\{([^{}]*)\}/g, (_m, name: string) => {
      const v = vars[name];
      return isObject(v) && typeof v.default === 'string' ? v.default : '';
    });
    bases.add(basePath(url));
    if (bases.size > MAX_OPENAPI_BASE_PATHS) throw new Error(`more than ${MAX_OPENAPI_BASE_PATHS} base paths in one "servers" list`);
  }
  return bases.size === 0 ? [''] : [...bases];
}

function swaggerBase(basePathValue: unknown): string {
  return typeof basePathValue === 'string' ? basePath(basePathValue) : '';
}

/** The path part of a server URL (absolute, scheme-relative or relative), without its trailing `/`; `` for the root. */
function basePath(url: string): string {
  let path = url;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(url) ?? /^\/\/[^/]*/.exec(url);
  if (scheme) path = url.slice(scheme[0].length);
  path = path.replace(/[?#].*$/, '');
  if (!path.startsWith('/')) path = `/${path}`;
  path = path.replace(/\/+$/, '');
  return path;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
