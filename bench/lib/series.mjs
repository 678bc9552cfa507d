/**
 * A deterministic set of metric series for the render benchmark, fed identically (same families,
 * same label sets, same values, same order) to every implementation under comparison.
 *
 * Variants:
 *   flat       100,000 counter and gauge series in 10 families of 10,000, with 2 or 3 labels each
 *              (services, endpoints, status codes, queues, partitions, ...).
 *   histogram  7,150 histograms in 5 families (11 buckets: 12 bucket lines with +Inf, _sum, _count = 14
 *              exposed series each), i.e. 100,100 exposed series, 5 observations per histogram.
 *
 * Label values are built on the fly (fresh strings, not held by this module), so the heap a store
 * keeps for them is charged to the store.
 */
import { prng } from './statsd.mjs';

/** Mapper default buckets, seconds (what a StatsD timer gets). */
export const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const STATUS = ['200', '201', '204', '301', '400', '401', '403', '404', '429', '500', '502', '503'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];
const RESULTS = ['hit', 'miss', 'error', 'stale'];
const REGIONS = ['eu-west-1', 'eu-central-1', 'us-east-1', 'us-west-2', 'ap-south-1'];

/** How each label name turns a digit k (0 ≤ k < radix) into a value. */
const LABEL_VALUE = {
  service: (k) => `svc-${k}`,
  endpoint: (k) => `/api/v1/resource${k}/items`,
  status: (k) => STATUS[k % STATUS.length],
  method: (k) => METHODS[k % METHODS.length],
  queue: (k) => `jobs.q${k}`,
  partition: (k) => String(k),
  cache: (k) => `cache-${k}`,
  operation: (k) => ['get', 'set', 'delete', 'touch'][k % 4],
  result: (k) => RESULTS[k % RESULTS.length],
  host: (k) => `10.0.${k >> 8}.${k & 255}`,
  region: (k) => REGIONS[k % REGIONS.length],
  table: (k) => `table_${k}`,
  pool: (k) => `pool-${k}`,
  route: (k) => `/v1/orders/{id}/step${k}`,
  worker: (k) => `worker-${k}`,
  topic: (k) => `events.topic${k}`,
  consumer_group: (k) => `cg-${k}`,
  tenant: (k) => `tenant-${k}`,
  feature: (k) => `flag_${k}`,
};

/** [name, type, labelNames, radices]: the product of the radices is the family's series count. */
const FLAT = [
  ['app_http_client_requests_total', 'counter', ['service', 'endpoint', 'status'], [25, 50, 8]],
  ['app_queue_messages', 'gauge', ['queue', 'partition'], [200, 50]],
  ['app_cache_operations_total', 'counter', ['cache', 'operation', 'result'], [625, 4, 4]],
  ['app_upstream_connections', 'gauge', ['host', 'pool'], [1000, 10]],
  ['app_db_rows_read_total', 'counter', ['table', 'operation'], [2500, 4]],
  ['app_worker_inflight_jobs', 'gauge', ['worker', 'queue'], [100, 100]],
  ['app_events_consumed_total', 'counter', ['topic', 'consumer_group', 'region'], [100, 20, 5]],
  ['app_consumer_lag_messages', 'gauge', ['topic', 'partition'], [100, 100]],
  ['app_feature_evaluations_total', 'counter', ['feature', 'tenant', 'result'], [50, 50, 4]],
  ['app_tenant_storage_bytes', 'gauge', ['tenant', 'region'], [2000, 5]],
];

const HISTOGRAMS = [
  ['app_request_duration_seconds', 'histogram', ['service', 'route', 'method'], [26, 11, 5]],
  ['app_db_query_duration_seconds', 'histogram', ['table', 'operation'], [715, 2]],
  ['app_upstream_latency_seconds', 'histogram', ['service', 'status'], [143, 10]],
  ['app_job_duration_seconds', 'histogram', ['queue', 'worker'], [143, 10]],
  ['app_cache_latency_seconds', 'histogram', ['cache', 'operation'], [715, 2]],
];

export const VARIANTS = ['flat', 'histogram'];
const OBSERVATIONS_PER_HISTOGRAM = 5;

/** The families of a variant: {name, type, help, labelNames, buckets?, series}. */
export function families(variant) {
  const list = variant === 'flat' ? FLAT : variant === 'histogram' ? HISTOGRAMS : null;
  if (!list) throw new Error(`unknown variant ${variant} (one of ${VARIANTS.join(', ')})`);
  return list.map(([name, type, labelNames, radix]) => ({
    name,
    type,
    help: `Benchmark ${type} ${name.replace(/_/g, ' ')}.`,
    labelNames,
    radix,
    series: radix.reduce((a, b) => a * b, 1),
    ...(type === 'histogram' ? { buckets: BUCKETS } : {}),
  }));
}

/**
 * Counts for a variant: `stored` = series objects a store keeps (one per label set),
 * `exposed` = time series in the exposition (a histogram exposes buckets + 1 (+Inf) + 2).
 */
export function seriesCounts(variant) {
  const fams = families(variant);
  const stored = fams.reduce((a, f) => a + f.series, 0);
  const exposed = fams.reduce((a, f) => a + f.series * (f.type === 'histogram' ? f.buckets.length + 3 : 1), 0);
  return { stored, exposed };
}

/**
 * Calls `fn(familyIndex, labelValues, value)` for every series of the variant, in a fixed order,
 * with fresh label value strings. `value` is a number for counters (a whole count) and gauges (a
 * float), an array of observations (seconds) for histograms.
 */
export function forEachSeries(variant, fn) {
  const fams = families(variant);
  const rnd = prng(0x5eed);
  fams.forEach((f, fi) => {
    const digits = new Array(f.radix.length).fill(0);
    for (let i = 0; i < f.series; i++) {
      let rest = i;
      for (let d = f.radix.length - 1; d >= 0; d--) {
        digits[d] = rest % f.radix[d];
        rest = Math.floor(rest / f.radix[d]);
      }
      const values = f.labelNames.map((n, d) => LABEL_VALUE[n](digits[d]));
      let v;
      if (f.type === 'counter') v = Math.floor(rnd() * 1e6);
      else if (f.type === 'gauge') v = Math.round(rnd() * 1e6) / 1000;
      else {
        v = [];
        for (let k = 0; k < OBSERVATIONS_PER_HISTOGRAM; k++) v.push(Math.round(rnd() ** 3 * 12 * 1e4) / 1e4);
      }
      fn(fi, values, v);
    }
  });
}
