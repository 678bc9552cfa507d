/**
 * The Koa apps that answer the sidecar's own endpoints:
 * - on the metrics port: `METRICS_PATH`, `/healthz`, `/readyz`, `/app-health` (with UPSTREAM_HEALTH_PATH);
 * - on the main port, for the reserved `/debug/` tree only: `METRICS_PATH` (when
 *   SERVE_PROMETHEUS_ENDPOINT=true), `/debug/healthz`, `/debug/readyz`, `/debug/app-health`;
 *   everything else there is 404.
 * Routing is on the normalised canonical path (see proxy/target and formats/request-path), so every
 * spelling that was reserved is answered here by the same rules. The factories never listen: tests can drive `app.callback()`.
 */
import Koa from 'koa';
import Router from '@koa/router';
import { normalizePath } from '../formats/request-path';
import { targetOf } from '../proxy/target';
import { exposition } from '../exposition/handler';
import type { Config } from '../config';
import type { SidecarMetrics } from '../metrics/sidecar';
import type { AccessGate, Listener } from '../access/gate';
import type { Merger } from '../ingest/merge/merger';
import type { Logger } from '../log/logger';
import type { AppHealth } from '../proxy/app-health';
import type { StatusService } from '../status/service';
import { statusHandlers } from '../status/page';
import { statusHostCheck } from '../status/host-check';
import type { AppState } from './lifecycle';

export interface EndpointsOptions {
  /** Which port the app answers on: the main port's `/debug/` tree, or the metrics port. */
  listener: Listener;
  config: Config;
  metrics: SidecarMetrics;
  /** Readiness, draining and the in-flight count (the Lifecycle). */
  state: AppState;
  gate: AccessGate;
  /** Merge targets, when MERGE_TARGETS is set. */
  merger?: Merger;
  /** `/app-health` and readiness, when UPSTREAM_HEALTH_PATH is set. */
  appHealth?: AppHealth;
  /** The status page; without it the page's paths are 404. */
  status?: StatusService;
  /** Where endpoint failures (500s) are logged. */
  logger?: Logger;
}

export function createEndpointsApp(opts: EndpointsOptions): Koa {
  const { listener, config, metrics, state, gate, merger, appHealth, status, logger } = opts;
  const app = new Koa();
  app.silent = true;
  // Koa answers 500 by itself; without this listener (and with `silent`) the failure would go unlogged.
  app.on('error', (err: Error & { status?: number; expose?: boolean }, ctx?: Koa.Context) => {
    if (err.status !== undefined && err.status < 500) return;
    logger?.error('endpoint failed', { listener, path: ctx?.path, err });
  });
  const router = new Router();
  const healthPrefix = listener === 'main' ? '/debug' : '';

  app.use(async (ctx, next) => {
    state.track(ctx.res);
    if (state.draining()) ctx.set('connection', 'close');
    // Routing on the canonical target (proxy/target), the one the main listener checked; a target
    // the sidecar refuses is 400 here too (the metrics port has no listener in front to do it).
    const t = targetOf(ctx.req);
    if (!t.ok) {
      ctx.status = t.status;
      ctx.body = 'bad request\n';
      return;
    }
    ctx.path = normalizePath(t.path);
    await next();
  });

  const guard = gate.middleware(listener);
  if (listener === 'main' && config.serveOnMainPort) {
    // Another method on the metrics path of the main port: 405 to a client the gate lets through,
    // the hidden tree's 404 to anyone else (the metrics port's 405s come from allowedMethods below).
    router.all(config.metricsPath, (ctx, next) =>
      ctx.method === 'GET' || ctx.method === 'HEAD' ? next() : guard(ctx, async () => methodNotAllowed(ctx, 'GET, HEAD')),
    );
  }
  if (listener === 'metrics' || config.serveOnMainPort) {
    router.get(config.metricsPath, guard, exposition(metrics, listener, merger, logger));
  }
  // The status page lives where the metrics do (on the main port only with SERVE_PROMETHEUS_ENDPOINT),
  // behind the same gate. status.js holds no data (the same file in every sidecar), so it is not gated.
  // Without credentials to ask for, the page and its data answer only a Host naming an IP address,
  // localhost or STATUS_ALLOWED_HOSTS (DNS rebinding, status/host-check); the metrics path keeps
  // answering any Host, as scrapers address pods by Service or DNS names too.
  if (status && (listener === 'metrics' || config.serveOnMainPort)) {
    const base = listener === 'main' ? '/debug' : '';
    const h = statusHandlers(status, base);
    const a = config.access;
    const credentials = a.basicAuth !== undefined || a.apiKeysFile !== undefined || a.kubernetes !== undefined;
    const gated = credentials ? [guard] : [statusHostCheck(listener, a.statusAllowedHosts, (l) => status.hostRefused(l)), guard];
    router.get(listener === 'main' ? ['/debug', '/debug/'] : '/', ...gated, h.page);
    router.get(`${base}/status.json`, ...gated, h.json);
    router.get(`${base}/status.js`, h.script);
  }
  router.get(`${healthPrefix}/healthz`, (ctx) => {
    ctx.body = 'ok\n';
  });
  router.get(`${healthPrefix}/readyz`, (ctx) => {
    // The app's health is the background loop's state: the probe never waits on the app. Nor on the
    // Kubernetes API: its start check runs in the background too (access/kubernetes).
    const ready = state.ready() && (appHealth?.ready() ?? true) && gate.ready();
    ctx.status = ready ? 200 : 503;
    ctx.body = ready
      ? 'ready\n'
      : !state.ready()
        ? 'draining\n'
        : !gate.ready()
          ? // The reason (a file path, missing RBAC) goes to the log only: this endpoint answers anyone.
            'kubernetes auth not ready (the log says why)\n'
          : `app unhealthy: ${appHealth?.reason() ?? ''}\n`;
  });
  if (appHealth) {
    // The app's health, asked now and relayed (status and the start of the body), for the kubelet
    // to probe an app that listens on 127.0.0.1 only. Open like the other health endpoints.
    router.get(`${healthPrefix}/app-health`, async (ctx) => {
      const answer = await appHealth.relay();
      // A status Koa cannot send (an app answering 99 or 1000) would become a 500 and an error log.
      ctx.status = answer.status >= 200 && answer.status <= 599 ? answer.status : 502;
      ctx.set('cache-control', 'no-store');
      ctx.set('x-content-type-options', 'nosniff');
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = answer.body;
    });
  }

  app.use(router.routes());
  // Only the metrics port tells a client which methods exist; the main port hides its /debug/ tree.
  if (listener === 'metrics') {
    // allowedMethods sets 405 and Allow once the fallback below has answered: the body says so too.
    app.use(async (ctx, next) => {
      await next();
      if (ctx.status === 405) ctx.body = 'method not allowed\n';
    });
    app.use(router.allowedMethods());
  }
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = 'not found\n';
  });
  return app;
}

/** 405 with the methods the path has, and a body that says it. */
function methodNotAllowed(ctx: Koa.Context, allow: string): void {
  ctx.status = 405;
  ctx.set('allow', allow);
  ctx.body = 'method not allowed\n';
}
