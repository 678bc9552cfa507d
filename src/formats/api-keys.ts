/**
 * The API keys file (METRICS_API_KEYS_FILE): read by the configuration at start, to refuse a bad
 * file before anything listens, and by the access gate whenever the mounted file changes.
 */
import crypto from 'node:crypto';

/** Keys are held and compared as SHA-256 digests (access/credentials.ts compares them in constant time). */
export function sha256(v: string | Buffer): Buffer {
  return crypto.createHash('sha256').update(v).digest();
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
