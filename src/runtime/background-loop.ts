/**
 * A loop in the background, as the app health check and the OpenAPI source run one: `start()`
 * takes a first step now, and each step says how long to wait before the next (or that there is
 * none); `stop()` clears the timer and aborts the step in flight through its signal (its
 * connection and timer go at once). A waiting step never keeps a drained process alive. Started
 * again after a stop, it is a new loop with a new signal; a step of the old one ends unheard.
 */
export abstract class BackgroundLoop {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Aborted by stop(): what the loop (and whatever the subclass ties to it) has in flight. */
  protected controller = new AbortController();

  /** One step; resolves with the milliseconds to wait before the next, or undefined for no next. */
  protected abstract step(signal: AbortSignal): Promise<number | undefined>;

  /** Starts the loop (a first step now); a running loop is left as it is. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.controller.signal.aborted) this.controller = new AbortController();
    this.tick();
  }

  /** Stops the loop and ends what is in flight. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort();
  }

  private tick(): void {
    const signal = this.controller.signal;
    void this.step(signal).then((wait) => {
      // Stopped meanwhile (and perhaps started again, with a loop of its own): this one ends here.
      if (signal.aborted || this.stopped || wait === undefined) return;
      this.timer = setTimeout(() => this.tick(), wait);
      this.timer.unref();
    });
  }
}
