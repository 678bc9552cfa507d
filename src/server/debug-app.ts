/**
 * The Koa apps that answer the sidecar's own endpoints:
 * - on the metrics port: `METRICS_PATH`, `/healthz`, `/readyz`;
 * - on the main port, for the reserved `/debug/` tree only: `METRICS_PATH` (when
 *   SERVE_PROMETHEUS_ENDPOINT=true), `/debug/healthz`, `/debug/readyz`; everything else there is 404.
 * Routing is on the normalised canonical path (see proxy/target and proxy/reserved), so every
 * spelling that was reserved is answered here by the same rules. The factories never listen: tests can drive `app.callback()`.
 */
import Koa from 'koa';
import Router from '@koa/router';
import { normalizePath } from '../proxy/reserved';
import { targetOf } from '../proxy/target';
import { exposition, type ListenerName } from '../exposition/handler';
import type { Config } from '../config';
import type { SidecarMetrics } from '../metrics/sidecar';
import type { AccessGate } from '../access/gate';
import type { Merger } from '../ingest/merge/merger';

export interface AppState {
  /** False once draining has begun: readiness answers 503. */
  ready(): boolean;
  /** Marks responses `Connection: close` while draining. */
  draining(): boolean;
  /** Every response passes here: the lifecycle counts in-flight requests. */
  track(res: import('node:http').ServerResponse, forwarded?: boolean): void;
}

export function createDebugApp(listener: ListenerName, config: Config, metrics: SidecarMetrics, state: AppState, gate: AccessGate, merger?: Merger): Koa {
  const app = new Koa();
  app.silent = true;
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
