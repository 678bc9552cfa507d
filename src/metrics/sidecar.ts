/**
 * The sidecar's own health metrics (`metrics_sidecar_*`), including process metrics under that
 * prefix so they never collide with the `process_*` families of an application merged in later.
 */
import fs from 'node:fs';
import { Counter, Gauge, Registry } from './registry';
import type { Config } from '../config';
import { VERSION } from '../version';

export interface SidecarMetrics {
  registry: Registry;
  scrapes: Counter;
  seriesDropped: Counter;
  inflight: Gauge;
}

export function createSidecarMetrics(config: Config): SidecarMetrics {
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

  const inflight = registry.register(
    new Gauge({ name: 'metrics_sidecar_inflight_requests', help: 'Requests being forwarded to the application right now.' }),
  );
  inflight.set([], 0);

  registerProcessMetrics(registry);
  return { registry, scrapes, seriesDropped, inflight };
}

function registerProcessMetrics(registry: Registry): void {
  const p = 'metrics_sidecar_process_';
  const cpu = registry.register(new Counter({ name: `${p}cpu_seconds_total`, help: 'User and system CPU time spent by the sidecar, in seconds.' }));
  const rss = registry.register(new Gauge({ name: `${p}resident_memory_bytes`, help: 'Resident memory of the sidecar, in bytes.' }));
  const heap = registry.register(new Gauge({ name: `${p}heap_bytes`, help: 'V8 heap used by the sidecar, in bytes.' }));
  const start = registry.register(new Gauge({ name: `${p}start_time_seconds`, help: 'Start time of the sidecar since the Unix epoch, in seconds.' }));
  const fds = registry.register(new Gauge({ name: `${p}open_fds`, help: 'Open file descriptors of the sidecar.' }));

  start.set([], Math.round(Date.now() / 1000 - process.uptime()));
  const cpuSeries = cpu.child([]);
  registry.addCollector(() => {
    const u = process.cpuUsage();
    if (cpuSeries) cpuSeries.value = (u.user + u.system) / 1e6;
    const m = process.memoryUsage();
    rss.set([], m.rss);
    heap.set([], m.heapUsed);
    try {
      fds.set([], fs.readdirSync('/proc/self/fd').length);
    } catch {
      // Not Linux: leave the gauge at its last value.
    }
  });
}
