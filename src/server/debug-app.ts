/**
 * The Koa apps that answer the sidecar's own endpoints:
 * - on the metrics port: `METRICS_PATH`, `/healthz`, `/readyz`;
 * - on the main port, for the reserved `/debug/` tree only: `METRICS_PATH` (when
 *   SERVE_PROMETHEUS_ENDPOINT=true), `/debug/healthz`, `/debug/readyz`; everything else there is 404.
 * Routing is on the normalised path (see proxy/reserved), so every spelling that was reserved is
 * answered here by the same rules. The factories never listen: tests can drive `app.callback()`.
 */
import Koa from 'koa';
import Router from '@koa/router';
import { normalizePath } from '../proxy/reserved';
import { exposition, type ListenerName } from '../exposition/handler';
import type { Config } from '../config';
import type { SidecarMetrics } from '../metrics/sidecar';
import type { AccessGate } from '../access/gate';
import type { Merger } from '../ingest/merge/merger';
import type { Logger } from '../log/logger';

export interface AppState {
  /** False once draining has begun: readiness answers 503. */
  ready(): boolean;
  /** Marks responses `Connection: close` while draining. */
  draining(): boolean;
  /** Every response passes here: the lifecycle counts in-flight requests. */
  track(res: import('node:http').ServerResponse, forwarded?: boolean): void;
}

export function createDebugApp(listener: ListenerName, config: Config, metrics: SidecarMetrics, state: AppState, gate: AccessGate, merger?: Merger, logger?: Logger): Koa {
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
    ctx.path = normalizePath(ctx.req.url ?? '/');
    await next();
  });

  if (listener === 'metrics' || config.serveOnMainPort) {
    router.get(config.metricsPath, gate.middleware(listener), exposition(metrics, listener, merger));
  }
  router.get(`${healthPrefix}/healthz`, (ctx) => {
    ctx.body = 'ok\n';
  });
  router.get(`${healthPrefix}/readyz`, (ctx) => {
    const ready = state.ready();
    ctx.status = ready ? 200 : 503;
    ctx.body = ready ? 'ready\n' : 'draining\n';
  });

  app.use(router.routes());
  // Only the metrics port tells a client which methods exist; the main port hides its /debug/ tree.
  if (listener === 'metrics') app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = 'not found\n';
  });
  return app;
}
