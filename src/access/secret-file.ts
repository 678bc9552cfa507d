/**
 * A value read from a mounted file (a Kubernetes Secret) and re-read when the file changes.
 * Kubernetes swaps Secret contents through a symlink, which file watchers miss, so the file is
 * polled (it is small). A broken new version keeps the last good one and says why in the log,
 * never what the file holds.
 */
import fs from 'node:fs';
import type { Logger } from '../log/logger';

export class SecretFile<T> {
  private value: T;
  private raw: string;
  private readonly timer: NodeJS.Timeout;

  /**
   * Reads and parses the file now (throws if that fails: start-up must not go on without it),
   * then checks it every `intervalMs`.
   */
  constructor(
    private readonly path: string,
    private readonly parse: (text: string) => T,
    private readonly logger: Logger,
    private readonly what: string,
    intervalMs: number,
  ) {
    this.raw = fs.readFileSync(path, 'utf8');
    this.value = parse(this.raw);
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  get current(): T {
    return this.value;
  }

  /** Re-reads the file now (also what the timer does). */
  check(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (err) {
      this.logger.warn(`${this.what} file cannot be read; keeping the last good one`, { file: this.path, code: (err as NodeJS.ErrnoException).code });
      return;
    }
    if (text === this.raw) return;
    try {
      this.value = this.parse(text);
      this.raw = text;
      this.logger.info(`${this.what} reloaded`, { file: this.path });
    } catch (err) {
      this.raw = text; // do not log the same broken version every interval
      this.logger.warn(`${this.what} file is invalid; keeping the last good one`, { file: this.path, reason: (err as Error).message });
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
