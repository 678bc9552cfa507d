/**
 * The sidecar's own health metrics (`metrics_sidecar_*`), including process and Node.js runtime
 * metrics (prom-client's collectDefaultMetrics) under that prefix so they never collide with the
 * `process_*` families of an application merged in later.
 */
import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { Counter, Gauge, Registry, type RegistryLimits } from './registry';
import { SIDECAR_PREFIX } from './contract';
import { escapeLabelValue, familyHeader, familyName, formatLe, formatNumber } from '../formats/exposition';
import { VERSION } from '../version';

export interface SidecarMetrics {
  registry: Registry;
  scrapes: Counter;
  seriesDropped: Counter;
  inflight: Gauge;
}

/** What the sidecar's families are made from: the parts of the Config they read (the store sits below the config). */
export interface SidecarIdentity {
  appName: string;
  role: string;
  limits: RegistryLimits;
}

export function createSidecarMetrics(config: SidecarIdentity): SidecarMetrics {
  const registry = new Registry({
    maxSeriesTotal: config.limits.maxSeriesTotal,
    maxLabelBytesTotal: config.limits.maxLabelBytesTotal,
    maxLabelValueBytes: config.limits.maxLabelValueBytes,
  });

  const info = registry.register(
    new Gauge({ name: 'metrics_sidecar_info', help: 'Always 1; identifies the sidecar and the app it serves.', labelNames: ['version', 'app_name', 'role'] }),
  );
  info.set([VERSION, config.appName, config.role], 1);

  const build = registry.register(
    new Gauge({ name: 'metrics_sidecar_build_info', help: 'Always 1; the runtime the sidecar was started on.', labelNames: ['version', 'nodejs_version'] }),
  );
  build.set([VERSION, process.version], 1);

  const scrapes = registry.register(
    new Counter({ name: 'metrics_sidecar_scrapes_total', help: 'Expositions served, by listener and format.', labelNames: ['listener', 'format'] }),
  );
  const seriesDropped = registry.register(
    new Counter({
      name: 'metrics_sidecar_series_dropped_total',
      help: 'Label sets not stored, by family and reason (family_cap, series_budget, label_limit); their events went to the family\'s otel_metric_overflow="true" series.',
      labelNames: ['family', 'reason'],
    }),
  );
  registry.onDrop = (family, reason) => seriesDropped.inc([family, reason]);

  const inflight = registry.register(new Gauge({ name: 'metrics_sidecar_inflight_requests', help: 'Requests being forwarded to the application right now.' }));
  inflight.set([], 0);

  registry.addExternal(processMetrics());
  return { registry, scrapes, seriesDropped, inflight };
}

/**
 * prom-client's default metrics (process CPU, memory, file descriptors, event-loop lag, GC, heap
 * spaces, handles), on a private prom-client registry under the `metrics_sidecar_` prefix so they
 * never collide with an application's merged `process_*` / `nodejs_*`, rendered into our
 * exposition in either format.
 */
function processMetrics(): (openMetrics: boolean) => Promise<string> {
  // One per process, whatever the number of sidecars in it (tests run several): the metrics
  // describe the process, and each collectDefaultMetrics starts its own event-loop and GC monitors.
  if (processRegistry === undefined) {
    processRegistry = new PromRegistry();
    collectDefaultMetrics({ register: processRegistry, prefix: SIDECAR_PREFIX });
    // Gauges named `*_total` (active handles/requests/resources totals) read as counters to
    // Prometheus's linter and are invalid family names in OpenMetrics; the labelled gauges carry the same.
    for (const m of processRegistry.getMetricsAsArray()) {
      if (m.name.endsWith('_total') && (m as unknown as { type: string }).type !== 'counter') processRegistry.removeSingleMetric(m.name);
    }
  }
  const registry = processRegistry;
  return async (openMetrics) => renderPromClient(await registry.getMetricsAsJSON(), openMetrics);
}

let processRegistry: PromRegistry | undefined;

type PromJson = Awaited<ReturnType<PromRegistry['getMetricsAsJSON']>>;

/** prom-client's metrics (as JSON) in the text format or OpenMetrics, the way our families render. */
export function renderPromClient(metrics: PromJson, openMetrics: boolean): string {
  const out: string[] = [];
  for (const m of metrics) {
    const values = m.values as { value: number | null; labels: Record<string, string | number>; metricName?: string }[];
    if (values.length === 0) continue;
    const type = String(m.type);
    out.push(familyHeader(familyName(m.name, type, openMetrics), type, m.help, openMetrics));
    for (const v of values) {
      const pairs: string[] = [];
      for (const [k, raw] of Object.entries(v.labels)) {
        let lv = String(raw);
        if (k === 'le' && typeof raw === 'number') lv = formatLe(raw, openMetrics);
        pairs.push(`${k}="${escapeLabelValue(lv)}"`);
      }
      const labels = pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
      out.push(`${v.metricName ?? m.name}${labels} ${formatNumber(v.value ?? NaN)}\n`);
    }
  }
  return out.join('');
}
