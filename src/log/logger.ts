/**
 * Structured JSON logs through pino: one line per event, level names operators know (`"level":
 * "warn"`), ISO time, then `msg` and the fields. The rest of the program sees only the small
 * `Logger` interface below (`logger.warn(msg, fields)`), so swapping the backend changed no call site.
 *
 * Secrets are kept out in two layers. Callers must not pass them (headers, config values of
 * *_PASSWORD, URLs with credentials); as a second defence every line goes through pino's `redact`
 * for the fields that usually carry one (authorization, cookie, password, token, api keys), and
 * the fields and message are scanned for URL userinfo (`https://user:PW@host` →
 * `https://[REDACTED]@host`) before they are serialised. Errors are serialised with their `code`
 * and their `cause` chain (socket errors wrapped by the upstream client or a library keep their origin there).
 *
 * Without a sink the lines go to stdout asynchronously (./stdout.ts): the hot path never blocks on a
 * write, and what is queued is written when the process exits, so the last lines before
 * `process.exit` are not lost. Tests pass a sink that receives each line.
 */
import pino from 'pino';
import { StdoutWriter } from './stdout';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  fatal(msg: string, fields?: Fields): void;
  isDebug(): boolean;
}

export type Sink = (line: string) => void;

/** Field names that carry secrets wherever they appear (top level, or up to three levels down). */
export const SECRET_KEYS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'password',
  'passwd',
  'token',
  'access_token',
  'refresh_token',
  'bearer',
  'secret',
  'api_key',
  'apikey',
  'apiKey',
  'x-api-key',
  'credentials',
  'private_key',
];

/**
 * pino `redact` paths: SECRET_KEYS at the top level. Nested ones are caught by the field scan below
 * (SECRET_KEY, any depth) before pino sees the fields: pino's wildcard paths cost ~9 µs a line for
 * `*.k` and ~30 µs for `*.*.k`, the scan ~1 µs.
 */
export const REDACT_PATHS = SECRET_KEYS.map((k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`));

export const REDACTED = '[REDACTED]';

/**
 * Any field whose name ends in one of these words is redacted too, in any case and at any depth
 * (`METRICS_BASIC_AUTH_PASSWORD`, `x-api-key`, `upstreamToken`): pino's paths are exact names.
 */
export const SECRET_KEY = /(^|[_\-.]|[a-z])(pass(word|wd)?|secret|token|bearer|authorization|cookie|api[_-]?key|credentials?|private[_-]?key)$/i;

const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi;

/**
 * A URL as the sidecar shows it anywhere (merge `target` label, logs, status page): without
 * user-info, query or fragment, which could carry a token.
 */
export function safeUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

/** `scheme://user:pw@host` → `scheme://[REDACTED]@host`, anywhere in a string. */
export function stripUrlCredentials(s: string): string {
  return s.includes('@') ? s.replace(URL_USERINFO, `$1${REDACTED}@`) : s;
}

const MAX_DEPTH = 6;
const MAX_CAUSES = 5;

/** An error as a plain object: type, code, message, and its cause chain (bounded). */
export function serializeError(err: Error, depth = 0): Fields {
  const out: Fields = { type: err.name || err.constructor?.name || 'Error', message: stripUrlCredentials(String(err.message)) };
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined) out.code = code;
  if (err.stack) out.stack = stripUrlCredentials(err.stack);
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined && depth < MAX_CAUSES) {
    out.cause = cause instanceof Error ? serializeError(cause, depth + 1) : clean(cause, MAX_DEPTH - 1);
  }
  if (err instanceof AggregateError && depth < MAX_CAUSES) {
    out.errors = err.errors.slice(0, 5).map((e: unknown) => (e instanceof Error ? serializeError(e, depth + 1) : clean(e, MAX_DEPTH - 1)));
  }
  return out;
}

/** Copies a field value with errors serialised, URLs and strings stripped of credentials. */
function clean(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return stripUrlCredentials(v);
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Error) return serializeError(v);
  if (v instanceof URL) return stripUrlCredentials(v.href);
  if (depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(v)) return v.map((x) => clean(x, depth + 1));
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  const out: Fields = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) ? REDACTED : clean(x, depth + 1);
  return out;
}

function cleanFields(fields: Fields | undefined): Fields | undefined {
  if (fields === undefined) return undefined;
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = SECRET_KEY.test(k) ? REDACTED : clean(v, 0);
  return out;
}

let stdoutWriter: StdoutWriter | undefined;

/** One stdout writer per process, shared by every logger writing there. */
function stdout(): StdoutWriter {
  stdoutWriter ??= new StdoutWriter(1);
  return stdoutWriter;
}

/** Resolves once every line logged so far is written to stdout (before an exit that must keep them). */
export function flushLogs(): Promise<void> {
  return stdoutWriter?.flush() ?? Promise.resolve();
}

export function createLogger(level: LogLevel = 'info', sink?: Sink, base: Fields = {}): Logger {
  const destination: pino.DestinationStream = sink ? { write: (line: string) => sink(line) } : stdout();
  const p = pino(
    {
      level,
      base: Object.keys(base).length > 0 ? base : null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Errors are serialised above (with their cause chain); pino's own `err` serializer would fold it.
      serializers: { err: (v: unknown) => v },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    destination,
  );
  const at =
    (lvl: 'debug' | 'info' | 'warn' | 'error' | 'fatal') =>
    (msg: string, fields?: Fields): void => {
      if (!p.isLevelEnabled(lvl)) return;
      const f = cleanFields(fields);
      if (f) p[lvl](f, stripUrlCredentials(msg));
      else p[lvl](stripUrlCredentials(msg));
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    isDebug: () => p.isLevelEnabled('debug'),
  };
}

/** A logger that drops everything (tests and benchmarks that do not read logs). */
export const silentLogger: Logger = createLogger('error', () => undefined);
