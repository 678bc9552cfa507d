/**
 * Waiting on Prometheus in the e2e suites: a check is retried every 500 ms (a fraction of the 1 s
 * scrape interval) until it stops throwing, or its last error is thrown after `ms`.
 */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function eventually(fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}
