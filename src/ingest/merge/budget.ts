/**
 * How long one scrape may spend fetching the merge targets, from the timeout Prometheus announces
 * (X-Prometheus-Scrape-Timeout-Seconds) less a margin to render and send. Its own module so the
 * exposition handler needs neither the Merger class nor what it loads (node:https, tls).
 */

/** Prometheus's default scrape timeout is 10 s; leave room to render and send. */
const DEFAULT_BUDGET_MS = 9_500;
const BUDGET_MARGIN_MS = 500;
const MIN_BUDGET_MS = 100;
/** The client's header is believed up to this (Prometheus's scrape timeouts are seconds); setTimeout past 2^31 ms would fire at once. */
const MAX_BUDGET_MS = 120_000;

/** The budget for one scrape, from Prometheus's header when it sent one. */
export function mergeBudgetMs(timeoutHeader: string | undefined): number {
  const s = Number(timeoutHeader);
  if (!timeoutHeader || !Number.isFinite(s) || s <= 0) return DEFAULT_BUDGET_MS;
  return Math.min(MAX_BUDGET_MS, Math.max(MIN_BUDGET_MS, s * 1000 - BUDGET_MARGIN_MS));
}
