/**
 * Wires the sidecar from a validated Config: metric store, forwarder, listeners, lifecycle.
 * Nothing here reads the environment; `createSidecar` never listens until `start()`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config';
import type { Logger } from './log/logger';
import { createSidecarMetrics, type SidecarMetrics } from './metrics/sidecar';
import { Gauge } from './metrics/registry';
import { RedRecorder } from './proxy/red';
import { Forwarder } from './proxy/forwarder';
import { createEndpointsApp } from './server/endpoints-app';
import { createMainServer } from './server/main-listener';
import { Lifecycle } from './server/lifecycle';
import { ListenError, listening } from './runtime/listen';
import { AccessGate } from './access/gate';
import { Mapper } from './ingest/statsd/mapper';
import { StatsdRecorder } from './ingest/statsd/recorder';
import { StatsdServer } from './ingest/statsd/server';
import type { Merger } from './ingest/merge/merger';
import { startupFields } from './server/startup-fields';
import { rateLimited, type RateLimitedLogger } from './log/rate-limit';
import { accessLog } from './log/access';
import { Contract } from './metrics/contract';
import { AppHealth } from './proxy/app-health';
import { OpenApiSource } from './proxy/openapi-source';
import { registerUdpDropsMetric, UdpDropReader } from './ingest/statsd/udp-drops';
import { StatusService } from './status/service';
import { HelperThreadPriority } from './runtime/thread-priority';
import { HandedOverSockets } from './proxy/upgrade';

/** Node's default is 5 s, below most load balancers' idle timeouts (ALB: 60 s); stay above them. */
const MAIN_KEEPALIVE_TIMEOUT_MS = 65_000;

export interface Sidecar {
  metrics: SidecarMetrics;
  red: RedRecorder;
  lifecycle: Lifecycle;
  /** The status page's model (status.json). */
  status: StatusService;
  /** Listens on the configured ports; resolves with the bound ports (useful when 0 was asked). */
  start(): Promise<{ mainPort: number | undefined; metricsPort: number | undefined }>;
  /** Graceful shutdown; resolves when everything is closed. */
  stop(): Promise<{ forced: boolean }>;
}

export interface SidecarOverrides {
  /** Tests bind ephemeral ports: `0` here means "any free port", unlike LISTEN_PORT=0 (off). */
  mainPort?: number;
  metricsPort?: number;
  statsdPort?: number;
}

export function createSidecar(config: Config, logger: Logger, overrides: SidecarOverrides = {}): Sidecar {
  const metrics = createSidecarMetrics(config);
  const inflight = metrics.inflight.child([]);
  const lifecycle = new Lifecycle(logger, inflight);
  const red = new RedRecorder(metrics.registry, config.http);
  const openApi = config.http.openApi ? new OpenApiSource(config.http.openApi, red, metrics.registry, logger) : undefined;
  // Closed by stop(): each holds a timer while it holds lines back.
  const limiters: RateLimitedLogger[] = [];
  const limited = (): RateLimitedLogger => {
    const l = rateLimited(logger);
    limiters.push(l);
    return l;
  };
  // Rate-limited: a client sending bad tokens faster than the Kubernetes API is asked must not write a warning per request.
  const gate = new AccessGate(config, limited(), metrics.registry);
  const statsd = config.statsd.port !== 0 ? createStatsd(config, metrics, logger) : undefined;
  const merger = config.mergeTargets.length > 0 ? createMerger(config, metrics, limited()) : undefined;
  const appHealth = config.appHealth ? new AppHealth(config.appHealth, metrics.registry, logger) : undefined;
  const udpDrops = statsd ? new UdpDropReader(() => statsd.udpSocket) : undefined;
  if (udpDrops) registerUdpDropsMetric(metrics.registry, udpDrops);
  const status = new StatusService({
    config,
    registry: metrics.registry,
    // Ready as /readyz answers it: the sidecar running, and the app healthy when a health path is set.
    lifecycle: { ready: () => lifecycle.ready() && (appHealth?.ready() ?? true) && gate.ready(), draining: () => lifecycle.draining() },
    accessOpen: gate.open,
    statsdSocket: () => statsd?.udpSocket,
    udpStats: () => udpDrops?.read(),
    upstreamHealth: appHealth
      ? () => {
          const healthy = appHealth.ready();
          return { healthy, detail: healthy ? undefined : appHealth.reason() };
        }
      : undefined,
    templates: () => red.templateSources(),
    openApi: openApi ? () => openApi.state : undefined,
    operation: (method, template) => red.operationOf(method, template),
  });
  if (merger) merger.onFetch = (f) => status.onMergeFetch(f);
  gate.onCidrRefused = (address, listener) => status.cidrRefused(address, listener);

  // One set for the main listener (which upgrades it passes on) and the forwarder (which Upgrade values it keeps).
  const upgradeProtocols: ReadonlySet<string> = new Set(config.upstreamUpgradeProtocols);
  const forwarder = config.upstream
    ? new Forwarder({
        upstream: config.upstream,
        timeoutMs: config.upstreamTimeoutMs,
        maxConnections: config.upstreamMaxConnections,
        keepAlive: config.upstreamKeepAlive,
        transfers: config.transfers,
        red,
        logger: limited(),
        draining: () => lifecycle.draining(),
        upgradeProtocols,
        trustedProxies: config.access.trustedProxies,
      })
    : undefined;

  if (forwarder) {
    const buffered = metrics.registry.register(
      new Gauge({
        name: 'metrics_sidecar_proxy_buffered_bytes',
        help: 'Bytes held in request buffers and in answers queued for slow clients now (at most PROXY_BUFFER_BYTES_TOTAL).',
      }),
    );
    const series = buffered.child([]);
    metrics.registry.addCollector(() => {
      if (series) series.value = forwarder.bufferedBytes;
    });
  }

  const servers: { name: 'main' | 'metrics'; server: http.Server; port: number; variable: 'LISTEN_PORT' | 'PROMETHEUS_PORT' }[] = [];
  // Upgrades and CONNECTs taken out of the main listener: the stop ends those still open.
  const handedOver = new HandedOverSockets();
  const endpoints = { config, metrics, state: lifecycle, gate, merger, appHealth, status, logger };
  if (config.listenPort !== 0) {
    const debugApp = createEndpointsApp({ ...endpoints, listener: 'main' });
    const server = createMainServer({
      forwarder,
      debugApp,
      lifecycle,
      keepAliveTimeoutMs: MAIN_KEEPALIVE_TIMEOUT_MS,
      red,
      registry: metrics.registry,
      logger,
      upgradeProtocols,
      handedOver,
      allowedMethods: new Set(config.upstreamAllowedMethods),
    });
    servers.push({ name: 'main', server, port: overrides.mainPort ?? config.listenPort, variable: 'LISTEN_PORT' });
  }
  if (config.prometheusPort !== 0) {
    const app = createEndpointsApp({ ...endpoints, listener: 'metrics' });
    servers.push({
      name: 'metrics',
      server: http.createServer(app.callback()),
      port: overrides.metricsPort ?? config.prometheusPort,
      variable: 'PROMETHEUS_PORT',
    });
  }
  for (const s of servers) lifecycle.addServer(s.server);
  const threads = new HelperThreadPriority(config.helperThreadsNice);
  if (config.accessLog) for (const s of servers) accessLog(s.server, s.name, logger);

  /** Everything but the listeners that start() opens or sets off (the drain closes those). */
  const release = (): void => {
    forwarder?.close();
    handedOver.destroyAll();
    merger?.close();
    appHealth?.stop();
    openApi?.stop();
    gate.close();
    statsd?.close();
    status.stop();
    threads.stop();
    for (const l of limiters) l.close();
  };

  return {
    metrics,
    red,
    lifecycle,
    status,
    async start() {
      await gate.init();
      // A file's templates are in use before the first request; a URL's are fetched in the background.
      openApi?.start();
      const bound: Record<string, number> = {};
      try {
        // Its own failure is a ListenError already (naming UDP or TCP).
        await statsd?.start(config.statsd.host, overrides.statsdPort ?? config.statsd.port);
        for (const s of servers) {
          await listening(s.server, (ready) => s.server.listen(s.port, config.listenHost, ready)).catch((err: unknown) => {
            throw new ListenError(s.variable, s.port, 'LISTEN_HOST', config.listenHost, err);
          });
          bound[s.name] = (s.server.address() as AddressInfo).port;
        }
      } catch (err) {
        // Close what did open, so that a caller who goes on (a test) is left with nothing running.
        release();
        for (const s of servers) if (s.server.listening) s.server.close();
        throw err;
      }
      appHealth?.start();
      gate.startChecks();
      // Last, once the listeners and libuv's pool exist: every helper thread there is gets found now.
      threads.start();
      logger.info('listening', startupFields(config, { mainPort: bound.main, metricsPort: bound.metrics }, threads.lowered));
      if (gate.open) {
        logger.warn('metrics endpoints are open to any client: no allow-list or credentials are configured', {
          see: 'METRICS_ALLOWED_CIDRS, METRICS_BASIC_AUTH_USERNAME, METRICS_API_KEYS_FILE, METRICS_KUBERNETES_AUTH',
        });
      }
      return { mainPort: bound.main, metricsPort: bound.metrics };
    },
    stop() {
      // Everything start() opened or set off is closed here; test/server/stop-handles.test.ts
      // checks that nothing the sidecar created outlives this.
      return lifecycle.drain(config.shutdown, release);
    },
  };
}

function createStatsd(config: Config, metrics: SidecarMetrics, logger: Logger): StatsdServer {
  // The mapping file was read and validated with the rest of the configuration.
  const store = new StatsdRecorder(metrics.registry, new Mapper(config.statsd.mapping, config.http.buckets), {
    enableDbMetrics: config.enableDbMetrics,
    maxSeriesPerFamily: config.http.maxSeriesPerFamily,
    maxFamilies: config.limits.maxFamiliesPerSource,
    maxLabels: config.limits.maxLabelsPerSeries,
    maxLabelValueBytes: config.limits.maxLabelValueBytes,
    contract: new Contract(config.http.prefix),
    native: config.http.native,
  });
  return new StatsdServer(store, logger, config.statsd.receiveBufferBytes, config.statsd.tcp);
}

/** Loaded only when MERGE_TARGETS is set (it brings node:https and tls): plain start-up stays fast. */
function createMerger(config: Config, metrics: SidecarMetrics, logger: Logger): Merger {
  const { Merger: MergerClass } = require('./ingest/merge/merger') as typeof import('./ingest/merge/merger');
  return new MergerClass(config.mergeTargets, metrics.registry, logger, config.mergeMaxBytes, {
    ...config.limits,
    contract: new Contract(config.http.prefix),
  });
}
