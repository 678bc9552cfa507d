/**
 * Small parsers for environment values. Each returns a value or records a problem; none throws,
 * so one pass over the environment can report every bad variable at once.
 */
import fs from 'node:fs';
import ipaddr from 'ipaddr.js';

export interface Problem {
  variable: string;
  message: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Collects problems while reading variables from one environment. */
export class EnvReader {
  readonly problems: Problem[] = [];
  /** Every name read, so a test can check each is declared in the variable table. */
  readonly read = new Set<string>();

  constructor(private readonly env: Env) {}

  problem(variable: string, message: string): void {
    this.problems.push({ variable, message });
  }

  /** The trimmed value, or undefined when unset or blank. */
  raw(name: string): string | undefined {
    this.read.add(name);
    const v = this.env[name];
    if (v === undefined) return undefined;
    const t = v.trim();
    return t === '' ? undefined : t;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    const l = v.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(l)) return true;
    if (['false', '0', 'no', 'off'].includes(l)) return false;
    this.problem(name, `${quote(v)} is not a boolean (use true or false)`);
    return fallback;
  }

  int(name: string, fallback: number, min: number, max: number, what = 'an integer'): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      this.problem(name, `${quote(v)} is not ${what} (${min}-${max})`);
      return fallback;
    }
    return Number(v);
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, 0, 65535, 'a port number');
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    const l = v.toLowerCase() as T;
    if (allowed.includes(l)) return l;
    this.problem(name, `${quote(v)} is not one of ${allowed.join(', ')}`);
    return fallback;
  }

  list(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  /** Ascending, positive, finite numbers (histogram bucket bounds). Every bad item is named. */
  buckets(name: string, fallback: readonly number[]): number[] {
    const items = this.list(name);
    if (items.length === 0) return [...fallback];
    const out: number[] = [];
    const bad: string[] = [];
    for (const item of items) {
      const n = Number(item);
      if (!Number.isFinite(n) || n <= 0) bad.push(`${quote(item)} is not a positive number`);
      else out.push(n);
    }
    const unordered = out.findIndex((n, i) => i > 0 && n <= out[i - 1]);
    if (unordered !== -1) bad.push(`bucket bounds must be strictly ascending (${out[unordered - 1]} then ${out[unordered]})`);
    if (bad.length > 0) {
      this.problem(name, bad.join('; '));
      return [...fallback];
    }
    return out;
  }

  cidrs(name: string): Cidr[] {
    const out: Cidr[] = [];
    for (const item of this.list(name)) {
      const c = parseCidr(item);
      if (c) out.push(c);
      else this.problem(name, `${quote(item)} is not an IPv4/IPv6 address or CIDR range`);
    }
    return out;
  }

  url(name: string, protocols: readonly string[]): URL | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    return this.parseUrl(name, v, protocols);
  }

  /**
   * An absolute URL of one of `protocols`. Credentials are checked first, on the raw text, so no
   * message built after that (bad scheme, bad port, unparsable) can echo them; the messages quote
   * the value only when it holds no userinfo.
   */
  parseUrl(name: string, v: string, protocols: readonly string[]): URL | undefined {
    if (hasUserinfo(v)) {
      this.problem(name, 'must not contain credentials (user:password@); the value is not shown');
      return undefined;
    }
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      this.problem(name, `${shownUrl(v)} is not an absolute URL`);
      return undefined;
    }
    if (u.username || u.password) {
      this.problem(name, 'must not contain credentials (user:password@); the value is not shown');
      return undefined;
    }
    if (!protocols.includes(u.protocol)) {
      this.problem(name, `${shownUrl(v)} must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}`);
      return undefined;
    }
    return u;
  }

  /** Reads a validated file's content through `parse` (which throws with the reason), as a problem of `name`. */
  fileContent<T>(name: string, file: string | undefined, parse: (text: string) => T): T | undefined {
    if (file === undefined) return undefined;
    try {
      return parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      // A parser that found several mistakes reports them all (AggregateError): one problem each.
      for (const e of err instanceof AggregateError ? (err.errors as Error[]) : [err as Error]) this.problem(name, `${quote(file)}: ${e.message}`);
      return undefined;
    }
  }

  /** A path to an existing, readable regular file. */
  file(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    try {
      fs.accessSync(v, fs.constants.R_OK);
      if (!fs.statSync(v).isFile()) throw new Error('not a file');
    } catch {
      this.problem(name, `${quote(v)} is not a readable file`);
      return undefined;
    }
    // Mapping rules, API keys, a password, a kubeconfig: all small. A huge file is a mistake, read whole at start.
    const size = fs.statSync(v).size;
    if (size > MAX_FILE_BYTES) {
      this.problem(name, `${quote(v)} is ${size} bytes; at most ${MAX_FILE_BYTES}`);
      return undefined;
    }
    return v;
  }
}

export interface Cidr {
  /** As written by the operator, for logs. */
  text: string;
  range: [Address, number];
}

export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Parses one address (`10.1.2.3`, `::1`, `[::1]`, `fe80::1%eth0`); IPv4-mapped IPv6
 * (`::ffff:10.1.2.3`) becomes IPv4. ipaddr.js alone also accepts legacy IPv4 forms such as
 * `10.1` or octal; an allow-list must not. Undefined if invalid.
 */
export function parseAddress(text: string): Address | undefined {
  const t = text.trim().replace(/^\[(.*)\]$/, '$1');
  if (!t.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(t)) return undefined;
  try {
    return ipaddr.process(t.replace(/%.*$/, ''));
  } catch {
    return undefined;
  }
}

/** Parses "10.0.0.0/8", "::1", "fd00::/8" or "::ffff:10.0.0.0/104" (mapped ranges become IPv4). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) {
    const addr = parseAddress(text);
    return addr && { text, range: [addr, addr.kind() === 'ipv4' ? 32 : 128] };
  }
  if (parseAddress(text.slice(0, slash)) === undefined) return undefined;
  try {
    let [addr, bits] = ipaddr.parseCIDR(text);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      addr = (addr as ipaddr.IPv6).toIPv4Address();
      bits -= 96;
    }
    return { text, range: [addr, bits] };
  } catch {
    return undefined;
  }
}

/**
 * True when a URL-like text carries userinfo (`scheme://user:pw@host`, `//user@host`), decided on
 * the text alone so that even unparsable values (a bad port) are caught. Slashes are optional
 * (`http:user:pw@host` parses as a URL with credentials) and backslashes count as slashes, as
 * WHATWG URL parsing does for http(s).
 */
export function hasUserinfo(v: string): boolean {
  const m = /^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?[/\\]*([^/\\?#]*)/.exec(v.trim());
  return m !== null && m[1].includes('@');
}

/** A URL for a message: quoted, unless it holds an "@" anywhere (it could be userinfo in a spelling no check foresaw). */
/**
 * A URL as a config error may show it: never with user-info (the whole value is withheld), and
 * cut before its query or fragment, which may carry a token (`?token=...`).
 */
export function shownUrl(v: string): string {
  if (v.includes('@')) return 'the value (not shown: it contains "@")';
  const cut = v.search(/[?#]/);
  return cut === -1 ? quote(v) : `${quote(v.slice(0, cut))} (query not shown)`;
}

/** The largest file a variable may name (mapping rules, API keys, a password, a kubeconfig). */
export const MAX_FILE_BYTES = 1024 * 1024;

export function quote(v: string): string {
  return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
}

/** A file's text, refused (an Error saying so) when it is not a regular file or is larger than `maxBytes`. */
export function readBoundedFile(file: string, maxBytes: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > maxBytes) throw new Error(`document is ${st.size} bytes; at most ${maxBytes}`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
