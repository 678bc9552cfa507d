/**
 * The effective configuration as the status page shows it: every setting flattened to a dotted
 * key, with secrets replaced. The walk is generic (settings added later show up by themselves),
 * so the rules are about shapes, not names of today's settings:
 * - a key that names a secret (password, secret, token, credential, api key, username) shows
 *   only whether it is set; a `*File` path stays visible (a path is not a secret);
 * - URLs lose their user-info, query and fragment;
 * - CIDRs show as written.
 * `secretsOf` lists the secret strings themselves, so that the finished document can be
 * scrubbed of them a second time, whatever field they might have slipped into.
 */
import type { Config } from '../config';
import { safeUrl } from '../log/logger';

export const REDACTED = '<redacted>';
const SECRET_KEY = /pass(word)?|secret|token|credential|api_?key(?!s?_?file)|username|bearer|authorization/i;
const MAX_DEPTH = 6;

export type Printable = string | number | boolean | null;

export function redactedConfig(config: Config): Record<string, Printable> {
  const out: Record<string, Printable> = {};
  walk(config, '', false, 0, out);
  return out;
}

function walk(v: unknown, key: string, secret: boolean, depth: number, out: Record<string, Printable>): void {
  const leafSecret = secret || (key !== '' && SECRET_KEY.test(lastSegment(key)) && !/file$/i.test(lastSegment(key)));
  if (v === undefined || v === null) {
    out[key] = null;
  } else if (v instanceof URL) {
    out[key] = leafSecret ? REDACTED : safeUrl(v);
  } else if (typeof v === 'string') {
    out[key] = leafSecret ? REDACTED : v;
  } else if (typeof v === 'number' || typeof v === 'boolean') {
    out[key] = v; // settings typed as numbers or switches are never secrets (a numeric password is still a string)
  } else if (Array.isArray(v)) {
    if (v.length === 0) out[key] = '';
    else if (v.every((x) => typeof x === 'string' || typeof x === 'number')) out[key] = leafSecret ? REDACTED : v.join(',');
    else if (v.every(isCidr)) out[key] = v.map((c: { text: string }) => c.text).join(',');
    else if (v.every((x) => x instanceof URL)) out[key] = leafSecret ? REDACTED : v.map((u: URL) => safeUrl(u)).join(',');
    else v.forEach((x, i) => walk(x, `${key}[${i}]`, leafSecret, depth + 1, out));
  } else if (typeof v === 'object' && depth < MAX_DEPTH) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      // A secret's sub-keys (`password.value`, `password.file`): the file path shows, the value never.
      walk(x, key === '' ? k : `${key}.${k}`, leafSecret && k !== 'file', depth + 1, out);
    }
  } else {
    out[key] = leafSecret ? REDACTED : String(v);
  }
}

function lastSegment(key: string): string {
  const dot = key.lastIndexOf('.');
  return key.slice(dot + 1).replace(/\[\d+\]$/, '');
}

function isCidr(x: unknown): x is { text: string } {
  return typeof x === 'object' && x !== null && typeof (x as { text?: unknown }).text === 'string' && Array.isArray((x as { range?: unknown }).range);
}

export { safeUrl };

/**
 * Every secret string the configuration holds (inline values under secret keys, URL user-info,
 * query values), for the final scrub. Files' contents are not read here: they never enter the
 * document in the first place.
 */
export function secretsOf(config: Config): string[] {
  const found = new Set<string>();
  const visit = (v: unknown, secret: boolean, depth: number): void => {
    if (v === undefined || v === null || depth > MAX_DEPTH) return;
    if (v instanceof URL) {
      for (const s of [v.username, v.password, decodeSafe(v.username), decodeSafe(v.password)]) if (s) found.add(s);
      for (const [, val] of v.searchParams) if (val) found.add(val);
      if (v.hash.length > 1) found.add(v.hash.slice(1));
      return;
    }
    if (typeof v === 'string') {
      if (secret && v !== '') found.add(v);
      return;
    }
    if (Array.isArray(v)) {
      for (const x of v) visit(x, secret, depth + 1);
      return;
    }
    if (typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k === 'file' || /file$/i.test(k)) continue;
        visit(x, secret || SECRET_KEY.test(k), depth + 1);
      }
    }
  };
  visit(config, false, 0);
  // Very short values (a one-letter username) would scrub ordinary text; they are redacted at their key anyway.
  return [...found].filter((s) => s.length >= 4);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Every JSON string, in order (so tokens stay aligned), with the `:` that makes it a key, if any. */
const JSON_STRING = /"(?:[^"\\]|\\.)*"(\s*:)?/g;

/**
 * Replaces every secret inside the string values of a JSON text (each in its JSON-escaped
 * spelling) with REDACTED. Keys, numbers and literals are left alone: a secret that happens to
 * read `true`, `8491` or a key name must not turn the document into invalid JSON.
 */
export function scrub(json: string, secrets: readonly string[]): string {
  const escaped = secrets.map((s) => JSON.stringify(s).slice(1, -1)).filter((e) => e !== '' && json.includes(e));
  if (escaped.length === 0) return json;
  return json.replace(JSON_STRING, (token, key: string | undefined) => {
    if (key !== undefined) return token;
    let out = token;
    for (const e of escaped) if (out.includes(e)) out = out.split(e).join(REDACTED);
    return out;
  });
}
