/**
 * The log's way to stdout: lines are queued and written with asynchronous `fs.write`, batched per
 * turn of the event loop, so the hot path never blocks on a write; `flushSync` writes what is
 * queued synchronously and runs on process exit, so the last lines before `process.exit` are kept.
 *
 * Why not pino's own destination (sonic-boom 4): its `flushSync`, which pino also calls on exit,
 * retries every write error forever, EPIPE included, so a process whose stdout reader is gone
 * (`node dist/main.js | head`, a dead log collector) hangs on exit instead of finishing its drain.
 * Here a broken stdout is noticed once and the log is dropped from then on; the sidecar goes on.
 */
import fs from 'node:fs';

/** Past this many queued bytes (stdout stalled), new lines are dropped, not buffered. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
const EAGAIN_RETRIES = 200;

export class StdoutWriter {
  private queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  private broken = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly fd = 1) {
    process.once('exit', () => this.flushSync());
  }

  /** pino calls this once per line. */
  write(line: string): boolean {
    // Dropped: stdout stalled past MAX_QUEUED_BYTES or broke.
    if (this.broken || this.queued > MAX_QUEUED_BYTES) return true;
    const b = Buffer.from(line, 'utf8');
    this.queue.push(b);
    this.queued += b.length;
    if (!this.writing) {
      this.writing = true;
      setImmediate(() => this.drain());
    }
    return true;
  }

  /** Resolves once everything queued so far is written (or stdout broke). */
  flush(): Promise<void> {
    if (!this.writing || this.broken) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Writes the queue now, synchronously; gives up on a broken stdout instead of retrying it. */
  flushSync(): void {
    if (this.broken || this.queue.length === 0) return;
    let data = Buffer.concat(this.queue);
    this.queue = [];
    this.queued = 0;
    let eagain = 0;
    while (data.length > 0) {
      try {
        data = data.subarray(fs.writeSync(this.fd, data));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'EAGAIN' || code === 'EBUSY') && eagain++ < EAGAIN_RETRIES) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
          continue;
        }
        this.broken = true;
        return;
      }
    }
  }

  private drain(): void {
    if (this.broken || this.queue.length === 0) {
      this.writing = false;
      for (const w of this.waiters.splice(0)) w();
      return;
    }
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
    this.queued = 0;
    this.writeAsync(data, 0);
  }

  private writeAsync(data: Buffer, eagain: number): void {
    fs.write(this.fd, data, (err, n) => {
      if (err) {
        if ((err.code === 'EAGAIN' || err.code === 'EBUSY') && eagain < EAGAIN_RETRIES) {
          setTimeout(() => this.writeAsync(data, eagain + 1), 5);
          return;
        }
        this.broken = true;
        this.queue = [];
        this.queued = 0;
        this.drain();
        return;
      }
      if (n < data.length) {
        this.writeAsync(data.subarray(n), 0);
        return;
      }
      this.drain();
    });
  }
}
