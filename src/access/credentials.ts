/**
 * Parsing and constant-time checking of credentials: basic auth and scoped API keys.
 * Secrets are compared as SHA-256 digests with timingSafeEqual, so neither the content nor the
 * length of a guess changes the time an answer takes.
 */
import crypto from 'node:crypto';

export function sha256(v: string | Buffer): Buffer {
  return crypto.createHash('sha256').update(v).digest();
}

export function digestEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export type Presented =
  | { kind: 'none' }
  | { kind: 'malformed' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string }
  | { kind: 'apikey'; token: string };

/**
 * Reads the Authorization header (RFC 7617 basic with UTF-8, RFC 6750 bearer). `Apikey <key>` is
 * an API key only (never a Kubernetes token): the scheme Tiled's Prometheus example sends
 * (`authorization: {type: Apikey, credentials: ...}`), so such scrape configs work unchanged.
 */
export function presentedCredentials(authorization: string | undefined): Presented {
  if (authorization === undefined || authorization === '') return { kind: 'none' };
  const m = /^([A-Za-z]+) +(\S+) *$/.exec(authorization);
  if (!m) return { kind: 'malformed' };
  const scheme = m[1].toLowerCase();
  if (scheme === 'bearer') return { kind: 'bearer', token: m[2] };
  if (scheme === 'apikey') return { kind: 'apikey', token: m[2] };
  if (scheme !== 'basic' || !/^[A-Za-z0-9+/]+={0,2}$/.test(m[2])) return { kind: 'malformed' };
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return { kind: 'malformed' };
  return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class BasicCredentials {
  private readonly user: Buffer;
  private readonly pass: Buffer;

  constructor(username: string, password: string) {
    this.user = sha256(username);
    this.pass = sha256(password);
  }

  /** Both halves are always compared, so a right username is not told apart from a wrong one by time. */
  matches(username: string, password: string): boolean {
    const u = digestEquals(sha256(username), this.user);
    const p = digestEquals(sha256(password), this.pass);
    return u && p;
  }
}

export interface ApiKey {
  name: string;
  digest: Buffer;
  scopes: ReadonlySet<string>;
}

/**
 * The API keys file: one key per line, `#` comments and blank lines ignored.
 *
 *     # name       key                                                                 scopes
 *     prometheus   sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8  metrics
 *     grafana      plain:a-long-random-key                                             metrics,read
 *
 * `sha256:<hex>` stores the SHA-256 of the key (`printf %s "$KEY" | sha256sum`); `plain:<key>`
 * stores the key itself. Errors name the line, never its content.
 */
export function parseApiKeys(text: string): ApiKey[] {
  const keys: ApiKey[] = [];
  /** Line of each name's first use: a repeated name is told by its lines, never by the name (swapped columns would put a key there). */
  const names = new Map<string, number>();
  // Every bad line is reported in one run (an AggregateError), not only the first.
  const errors: Error[] = [];
  text.split('\n').forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const parts = t.split(/\s+/);
    const where = `line ${i + 1}`;
    if (parts.length !== 3) return void errors.push(new Error(`${where}: expected "<name> <sha256:hex|plain:key> <scope,...>"`));
    const [name, spec, scopeList] = parts;
    const first = names.get(name);
    if (first !== undefined) return void errors.push(new Error(`${where}: the same name as line ${first}`));
    names.set(name, i + 1);
    let digest: Buffer;
    if (spec.startsWith('sha256:') && /^[0-9a-fA-F]{64}$/.test(spec.slice(7))) digest = Buffer.from(spec.slice(7), 'hex');
    else if (spec.startsWith('plain:') && spec.length > 6) digest = sha256(spec.slice(6));
    else return void errors.push(new Error(`${where}: the key must be sha256:<64 hex digits> or plain:<key>`));
    const scopes = new Set(scopeList.split(',').filter(Boolean));
    if (scopes.size === 0) return void errors.push(new Error(`${where}: no scopes`));
    keys.push({ name, digest, scopes });
  });
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('; '));
  if (keys.length === 0) throw new Error('no keys');
  return keys;
}

/** The key matching a presented token (every key compared, constant time each). */
export function findApiKey(keys: readonly ApiKey[], token: string): ApiKey | undefined {
  const d = sha256(token);
  let found: ApiKey | undefined;
  for (const k of keys) if (digestEquals(d, k.digest)) found = k;
  return found;
}
