/**
 * Warnings that repeat (an upstream outage, a dead merge target, a StatsD flood) must not write a
 * line per request or per scrape: the log would drown what matters and cost CPU on the hot path.
 * `rateLimited(logger)` returns a Logger whose `warn` and `error` let through `burst` lines per
 * kind per window (kind = the message text, or `fields.kind` when given), count what they hold
 * back, and report that count as `suppressed` on the next line of the same kind that passes (or
 * in a summary line when the window ends). `debug`, `info` and `fatal` pass unchanged.
 */
import type { Fields, Logger } from './logger';

export interface RateLimitOptions {
  /** Lines per kind per window that pass. */
  burst?: number;
  windowMs?: number;
  /** Kinds tracked at most (a bound on memory when kinds come from input). */
  maxKinds?: number;
  now?: () => number;
}

interface KindState {
  windowStart: number;
  passed: number;
  suppressed: number;
  timer: NodeJS.Timeout | undefined;
  /** What the timer writes at the end of the window (close() writes it early). */
  summary: (() => void) | undefined;
}

/** A rate-limited Logger, and how to end it. */
export interface RateLimitedLogger extends Logger {
  /**
   * Writes now the summary lines of windows still holding lines back and clears their timers;
   * from then on every line passes (a stopped sidecar writes few, and arms no more timers).
   */
  close(): void;
}

export function rateLimited(logger: Logger, opts: RateLimitOptions = {}): RateLimitedLogger {
  const burst = opts.burst ?? 5;
  const windowMs = opts.windowMs ?? 30_000;
  const maxKinds = opts.maxKinds ?? 1000;
  const now = opts.now ?? Date.now;
  const kinds = new Map<string, KindState>();
  let closed = false;

  const limited =
    (lvl: 'warn' | 'error') =>
    (msg: string, fields?: Fields): void => {
      if (closed) {
        logger[lvl](msg, fields);
        return;
      }
      const kind = `${lvl} ${typeof fields?.kind === 'string' ? fields.kind : msg}`;
      const t = now();
      let s = kinds.get(kind);
      if (s === undefined) {
        if (kinds.size >= maxKinds) {
          const oldest = kinds.keys().next().value as string;
          clearTimeout(kinds.get(oldest)?.timer);
          kinds.delete(oldest);
        }
        s = { windowStart: t, passed: 0, suppressed: 0, timer: undefined, summary: undefined };
        kinds.set(kind, s);
      }
      if (t - s.windowStart >= windowMs) {
        s.windowStart = t;
        s.passed = 0;
      }
      if (s.passed < burst) {
        s.passed++;
        const suppressed = s.suppressed;
        s.suppressed = 0;
        logger[lvl](msg, suppressed > 0 ? { ...fields, suppressed } : fields);
        return;
      }
      s.suppressed++;
      if (s.timer === undefined) {
        // Say at the end of the window how many were held back, even if none follows.
        const state = s;
        state.summary = () => {
          state.timer = undefined;
          state.summary = undefined;
          if (state.suppressed === 0) return;
          logger[lvl](`${msg} (repeated)`, { ...fields, suppressed: state.suppressed, window_ms: windowMs });
          state.suppressed = 0;
        };
        state.timer = setTimeout(state.summary, Math.max(0, windowMs - (t - s.windowStart)));
        state.timer.unref();
      }
    };

  return {
    debug: (m, f) => logger.debug(m, f),
    info: (m, f) => logger.info(m, f),
    warn: limited('warn'),
    error: limited('error'),
    fatal: (m, f) => logger.fatal(m, f),
    isDebug: () => logger.isDebug(),
    close: () => {
      closed = true;
      for (const s of kinds.values()) {
        clearTimeout(s.timer);
        s.summary?.();
      }
      kinds.clear();
    },
  };
}
