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
import { Merger } from '../ingest/merge/merger';

const gzip = promisify(zlib.gzip);
/** Below this size gzip costs more than it saves. */
const GZIP_MIN_BYTES = 1024;
/** Up to this many characters the exposition is sent whole; past it, streamed. */
const SMALL_CHARS = 128 * 1024;

export type ListenerName = 'main' | 'metrics';

export function exposition(metrics: SidecarMetrics, listener: ListenerName, merger?: Merger) {
  return async (ctx: Context): Promise<void> => {
    const format = negotiateFormat(ctx.get('accept'));
    const om = format === 'openmetrics';
    metrics.scrapes.inc([listener, format]);
    // Fetch the merge targets first: their up/duration gauges then describe this very scrape.
    const merged = merger ? await merger.collect(Merger.budgetMs(ctx.get('x-prometheus-scrape-timeout-seconds')), om) : [];
    const chunks = metrics.registry.renderStream(om, merged);
    ctx.set('content-type', format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE);
    ctx.set('cache-control', 'no-store');
    ctx.vary('accept');
    ctx.vary('accept-encoding');
    const gz = acceptsGzip(ctx.get('accept-encoding'));
    // Small expositions (all of it within SMALL_CHARS) go out in one piece, with a Content-Length.
    const head: string[] = [];
    let size = 0;
    let done = false;
    while (size < SMALL_CHARS) {
      const r = await chunks.next();
      if (r.done) {
        done = true;
        break;
      }
      head.push(r.value);
      size += r.value.length;
    }
    if (done) {
      const body = head.join('');
      if (gz && body.length >= GZIP_MIN_BYTES) {
        ctx.set('content-encoding', 'gzip');
        ctx.body = await gzip(body);
      } else {
        ctx.body = body;
      }
      return;
    }
    // Large: streamed chunk by chunk as the client reads (compressed on libuv's pool when gzip is
    // accepted): a slow reader holds a chunk or two in memory, never the whole exposition, and no
    // single join, conversion or compression step holds the event loop for long.
    async function* all(): AsyncGenerator<string> {
      yield* head;
      yield* chunks;
    }
    const stream = Readable.from(all(), { objectMode: false });
    if (gz) {
      ctx.set('content-encoding', 'gzip');
      ctx.body = stream.pipe(zlib.createGzip());
    } else {
      ctx.body = stream;
    }
  };
}
