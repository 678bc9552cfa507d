/**
 * Serves the registry's exposition as a Koa middleware, negotiated and optionally gzipped.
 * gzip runs on libuv's thread pool, so large expositions do not block the proxy while compressing.
 */
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { Context } from 'koa';
import { acceptsGzip, negotiateFormat, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE } from './negotiate';
import type { SidecarMetrics } from '../metrics/sidecar';
import type { Merger } from '../ingest/merge/merger';

const gzip = promisify(zlib.gzip);
/** Below this size gzip costs more than it saves. */
const GZIP_MIN_BYTES = 1024;

export type ListenerName = 'main' | 'metrics';

export function exposition(metrics: SidecarMetrics, listener: ListenerName, merger?: Merger) {
  return async (ctx: Context): Promise<void> => {
    const format = negotiateFormat(ctx.get('accept'));
    const om = format === 'openmetrics';
    metrics.scrapes.inc([listener, format]);
    // Fetch the merge targets first: their up/duration gauges then describe this very scrape.
    const merged = merger ? await merger.collect((merger.constructor as typeof Merger).budgetMs(ctx.get('x-prometheus-scrape-timeout-seconds')), om) : '';
    const chunks = await metrics.registry.renderChunks(om, merged);
    ctx.set('content-type', format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE);
    ctx.set('cache-control', 'no-store');
    ctx.vary('accept');
    ctx.vary('accept-encoding');
    const gz = acceptsGzip(ctx.get('accept-encoding'));
    if (chunks.length <= 3) {
      // Small: one piece, with a Content-Length.
      const body = chunks.join('');
      if (gz && body.length >= GZIP_MIN_BYTES) {
        ctx.set('content-encoding', 'gzip');
        ctx.body = await gzip(body);
      } else {
        ctx.body = body;
      }
      return;
    }
    // Large: streamed chunk by chunk (compressed on libuv's pool when gzip is accepted), so no
    // single join, conversion or compression step holds the event loop for long.
    const stream = Readable.from(chunks, { objectMode: false });
    if (gz) {
      ctx.set('content-encoding', 'gzip');
      ctx.body = stream.pipe(zlib.createGzip());
    } else {
      ctx.body = stream;
    }
  };
}
