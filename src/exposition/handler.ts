/**
 * Serves the registry's exposition as a Koa middleware, negotiated and optionally gzipped.
 *
 * Rendering goes straight into byte chunks (./render) in slices of about a millisecond. A small
 * exposition (the first slice finishes it) is sent whole with a Content-Length; a large one is
 * streamed chunk by chunk with backpressure, so neither rendering nor a slow client holds the
 * event loop or much memory. gzip runs on libuv's thread pool (zlib's async API) in both cases.
 * The protobuf format (./protobuf) is driven the same way: both writers are ChunkWriters.
 */
import { pipeline, type Writable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Context } from 'koa';
import { acceptsGzip, negotiate } from './negotiate';
import { CHUNK_BYTES, ExpositionWriter, sharedPool, streamExposition } from './render';
import { ProtobufWriter, type ChunkWriter, type ProtobufSources } from './protobuf';
import type { Logger } from '../log/logger';
import type { SidecarMetrics } from '../metrics/sidecar';
import type { Merger } from '../ingest/merge/merger';
import type { Listener } from '../access/gate';
import { mergeBudgetMs } from '../ingest/merge/budget';

const gzip = promisify(zlib.gzip);
/** Below this size gzip costs more than it saves. */
const GZIP_MIN_BYTES = 1024;
/** Rendering work done before the event loop is let through. */
const SLICE_MS = 1;
/** An exposition up to this size, rendered within one slice, is sent whole with a Content-Length. */
const WHOLE_MAX_BYTES = 4 * CHUNK_BYTES;
/**
 * gzip level of streamed (large) expositions. Levels 1-3 are zlib's fast strategy: on 100k series
 * level 3 took 12 ms of CPU for 4.4 MB (0.71 MB out) where the default 6 took 27 ms (0.68 MB),
 * and that CPU comes from the core the proxy runs on.
 */
const STREAM_GZIP_LEVEL = 3;

/**
 * What the store holds beyond classic samples, as the protobuf writer asks for it: native buckets
 * (only while their counts are whole numbers: `positive_delta` is an integer field, and a series
 * recorded with a fractional StatsD sample-rate weight is then served with its classic buckets
 * alone) and exemplars.
 */
const STORE_SOURCES: ProtobufSources = {
  native: (_family, s) => {
    if (s.nh === undefined) return undefined;
    const snap = s.nh.snapshot();
    return snap.integerCounts ? snap : undefined;
  },
  counterExemplar: (_family, s) => s.ex,
  bucketExemplar: (_family, s, i) => s.ex?.[i],
};

export function exposition(metrics: SidecarMetrics, listener: Listener, merger?: Merger, logger?: Logger) {
  return async (ctx: Context): Promise<void> => {
    const { format, contentType } = negotiate(ctx.get('accept'));
    const om = format === 'openmetrics';
    metrics.scrapes.inc([listener, format]);
    // Fetch the merge targets first: their up/duration gauges then describe this very scrape.
    const merged = merger ? await merger.collect(mergeBudgetMs(ctx.get('x-prometheus-scrape-timeout-seconds')), om) : '';
    // prom-client's process and runtime metrics, then the merged families, after ours.
    const extra = (await metrics.registry.renderExternals(om)) + merged;
    ctx.set('content-type', contentType);
    ctx.set('cache-control', 'no-store');
    ctx.vary('accept');
    ctx.vary('accept-encoding');
    const gz = acceptsGzip(ctx.get('accept-encoding'));

    const registry = metrics.registry;
    registry.collect();
    // Protobuf: the externals and merged families (text) are parsed back and encoded too; a family
    // that cannot be is left out and logged.
    const writer: ChunkWriter =
      format === 'protobuf'
        ? new ProtobufWriter(registry.all(), extra, {
            sources: STORE_SOURCES,
            onSkip: (family, reason) => logger?.warn('family left out of the protobuf exposition', { family, reason }),
          })
        : new ExpositionWriter(registry.all(), om, extra);
    // The first slice: a small exposition is complete after it.
    const first: Buffer[] = [];
    let bytes = 0;
    let calls = 0;
    const deadline = performance.now() + SLICE_MS;
    while (!writer.done && bytes < WHOLE_MAX_BYTES && (calls++ === 0 || performance.now() < deadline)) {
      const chunk = writer.next();
      if (chunk === undefined) break;
      if (chunk.length === 0) continue; // work done, nothing ready yet (protobuf)
      first.push(chunk);
      bytes += chunk.length;
    }
    if (writer.done) {
      // Small: one piece, with a Content-Length.
      const body = first.length === 1 ? Buffer.from(first[0]) : Buffer.concat(first, bytes);
      // (first may be empty: a protobuf exposition of no family at all is an empty body.)
      for (const c of first) sharedPool.give(c);
      if (gz && body.length >= GZIP_MIN_BYTES) {
        ctx.set('content-encoding', 'gzip');
        ctx.body = await gzip(body);
      } else {
        ctx.body = body;
      }
      return;
    }

    // Large: streamed by hand (Koa steps aside), so that each chunk's buffer returns to the pool
    // once the socket or zlib has consumed it.
    ctx.status = 200;
    ctx.respond = false;
    const res = ctx.res;
    if (gz) res.setHeader('content-encoding', 'gzip');
    if (ctx.method === 'HEAD') {
      for (const c of first) sharedPool.give(c);
      res.end();
      return;
    }
    let out: Writable = res;
    if (gz) {
      const z = zlib.createGzip({ level: STREAM_GZIP_LEVEL, chunkSize: CHUNK_BYTES });
      // pipeline destroys the gzip stream if the client goes away, which ends the render below.
      pipeline(z, res, () => {});
      out = z;
    }
    try {
      await streamExposition(writer, out, { sliceMs: SLICE_MS }, first);
    } catch (err) {
      // Headers are gone: all that can be done is to cut the response short.
      res.destroy(err as Error);
    }
  };
}
