/**
 * Parsing and constant-time checking of credentials: basic auth and scoped API keys.
 * Secrets are compared as SHA-256 digests with timingSafeEqual, so neither the content nor the
 * length of a guess changes the time an answer takes.
 */
import crypto from 'node:crypto';
import { sha256, type ApiKey } from '../formats/api-keys';

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

/** The key matching a presented token (every key compared, constant time each). */
export function findApiKey(keys: readonly ApiKey[], token: string): ApiKey | undefined {
  const d = sha256(token);
  let found: ApiKey | undefined;
  for (const k of keys) if (digestEquals(d, k.digest)) found = k;
  return found;
}
