/**
 * Structured JSON logs, one line per event (pino's shape: level, time, msg, then fields).
 * Callers pass fields, never secrets: the logger does not know what a secret is, so nothing that
 * holds one (headers, URLs with credentials, config values of *_PASSWORD) may be handed to it.
 */
import type { LogLevel } from '../config';

const LEVELS: Record<LogLevel | 'fatal', number> = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

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

const stdoutSink: Sink = (line) => {
  process.stdout.write(line);
};

export function createLogger(level: LogLevel = 'info', sink: Sink = stdoutSink, base: Fields = {}): Logger {
  const min = LEVELS[level];
  const write = (lvl: keyof typeof LEVELS, msg: string, fields?: Fields): void => {
    if (LEVELS[lvl] < min) return;
    const entry = { level: lvl, time: new Date().toISOString(), msg, ...base, ...fields };
    sink(`${JSON.stringify(entry, errorReplacer)}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    fatal: (m, f) => write('fatal', m, f),
    isDebug: () => min <= LEVELS.debug,
  };
}

/** Errors serialise as their code and message (no stack unless debugging matters: keep lines short). */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    return code ? { code, message: value.message } : { message: value.message };
  }
  return value;
}

/** A logger that drops everything (tests and benchmarks that do not read logs). */
export const silentLogger: Logger = createLogger('error', () => undefined);
