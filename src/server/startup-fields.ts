/**
 * The start-up line: what an operator wants to see once (version, role, ports, access methods,
 * StatsD, merge sources), never a secret, a URL's credentials or its query.
 */
import type { Config } from '../config';
import { VERSION } from '../version';
import { safeUrl } from '../log/logger';

export function startupFields(
  config: Config,
  bound: { mainPort: number | undefined; metricsPort: number | undefined },
  helperThreadsLowered = 0,
): Record<string, unknown> {
  const a = config.access;
  const methods = [a.allowedCidrs.length > 0 && 'cidr', a.basicAuth && 'basic', a.apiKeysFile && 'api_keys', a.kubernetes && 'kubernetes'].filter(Boolean);
  return {
    version: VERSION,
    role: config.role,
    main_port: bound.mainPort ?? null,
    metrics_port: bound.metricsPort ?? null,
    metrics_path: config.metricsPath,
    serve_on_main_port: config.serveOnMainPort,
    upstream: config.upstream?.origin ?? null,
    upstream_health_path: config.appHealth ? `${config.appHealth.url.pathname}${config.appHealth.url.search ? '?…' : ''}` : null, // a query may hold a token
    access: methods.length > 0 ? methods : ['open'],
    statsd: config.statsd.port !== 0 ? { host: config.statsd.host, port: config.statsd.port, mapping_file: config.statsd.mappingFile ?? null } : null,
    merge_targets: config.mergeTargets.map(safeUrl),
    log_level: config.logLevel,
    access_log: config.accessLog,
    helper_threads: { nice_increment: config.helperThreadsNice, lowered: helperThreadsLowered },
  };
}
