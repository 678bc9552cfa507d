/**
 * The app's own /metrics for merge tests (a `MERGE_TARGETS` entry): a loopback HTTP server, and
 * the rig most merge findings need around it (a plain upstream, and the built sidecar merging
 * from the target).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawnSidecar, type Child, type Env } from './sidecar';
import { startUpstream, type Upstream } from './upstream';

const EXPOSITION_TYPE = { 'content-type': 'text/plain; version=0.0.4' };

/** A handler answering 200 with an exposition: one body, or one per request path. */
export function exposition(body: string | Record<string, string>): http.RequestListener {
  return (req, res) => {
    res.writeHead(200, EXPOSITION_TYPE).end(typeof body === 'string' ? body : (body[req.url ?? ''] ?? ''));
  };
}

export interface MergeTarget {
  server: http.Server;
  /** The URL of `path` on the target, as MERGE_TARGETS takes it. */
  url(path?: string): string;
  close(): Promise<void>;
}

export async function startMergeTarget(handler: http.RequestListener): Promise<MergeTarget> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    url: (path = '/metrics') => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export interface MergeRig {
  upstream: Upstream;
  target: MergeTarget;
  sc: Child;
  close(): Promise<void>;
}

/**
 * A plain upstream, a merge target answering with `handler`, and `node dist/main.js` forwarding to
 * the one and merging `paths` of the other (env adds to or overrides that).
 */
export async function startMergeRig(handler: http.RequestListener, env: Env = {}, paths: string[] = ['/metrics']): Promise<MergeRig> {
  const upstream = await startUpstream();
  const target = await startMergeTarget(handler);
  const sc = await spawnSidecar({ UPSTREAM_URL: upstream.url, MERGE_TARGETS: paths.map((p) => target.url(p)).join(','), LOG_LEVEL: 'info', ...env });
  return {
    upstream,
    target,
    sc,
    close: async () => {
      sc.proc.kill('SIGKILL');
      await sc.exited;
      await upstream.close();
      await target.close();
    },
  };
}
