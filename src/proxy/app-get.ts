/**
 * One GET the sidecar itself makes of the app (its health path, its OpenAPI document), on a fresh
 * connection of the same strict client the forwarder uses (the caller's client has `keepAlive`
 * false), bounded in time and in bytes read. `signal` ends it early (the sidecar stopping): its
 * connection and timer are gone at once. The callers decide what a status means; this says only
 * what came.
 */
import { UpstreamClient, isTimeout, type Controller } from './upstream-client';

/** The client for the sidecar's own GETs of the app at `url`: a connection per GET, none kept. */
export function appClient(url: URL, timeoutMs: number): UpstreamClient {
  return new UpstreamClient({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 80),
    timeoutMs,
    maxConnections: 0,
    keepAlive: false,
  });
}

export interface AppGetOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** `user-agent`, so the app's logs say which of the sidecar's requests this is. */
  userAgent: string;
  accept: string;
  /** Body bytes wanted at most; 0 = none (the answer ends at its status). */
  maxBytes: number;
  /**
   * Past maxBytes, or when the body is cut short after the status: `truncate` answers with what
   * came (a relay shows the start of a body), `refuse` fails (a document must be whole).
   */
  partial: 'truncate' | 'refuse';
  /** Whether the body of an answer with this status is wanted at all (default: yes). */
  wantBody?: (status: number) => boolean;
}

export interface AppGetResult {
  /** The app's status, when it answered. */
  status?: number;
  /** The body read (at most maxBytes), when one was wanted and the GET did not fail. */
  body?: Buffer;
  /** Why it failed: no answer in time, the sidecar stopping, a body over maxBytes (`refuse`), or another error. */
  failure?: 'timeout' | 'stopped' | 'too_large' | 'error';
  /** The failure for a log line (no secrets: the URL is the app's local path). */
  reason?: string;
}

export function getFromApp(client: UpstreamClient, url: URL, opts: AppGetOptions): Promise<AppGetResult> {
  const { timeoutMs, signal, maxBytes } = opts;
  if (signal?.aborted) return Promise.resolve({ failure: 'stopped', reason: 'stopped' });
  return new Promise((resolve) => {
    let done = false;
    let controller: Controller | undefined;
    let status: number | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (r: AppGetResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (controller !== undefined && !controller.aborted) controller.abort(new Error('GET of the app over'));
      resolve(r);
    };
    const answered = (): AppGetResult => (maxBytes > 0 ? { status, body: Buffer.concat(chunks).subarray(0, maxBytes) } : { status });
    const onAbort = (): void => finish({ failure: 'stopped', reason: 'stopped' });
    const timer = setTimeout(() => finish({ status, failure: 'timeout', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    client.dispatch(
      {
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers: ['host', url.host, 'user-agent', opts.userAgent, 'accept', opts.accept],
        body: null,
      },
      {
        onRequestStart: (c) => {
          controller = c;
        },
        onResponseStart: (_c, code) => {
          status = code;
          if (maxBytes === 0 || (opts.wantBody !== undefined && !opts.wantBody(code))) finish({ status });
        },
        onResponseData: (_c, chunk) => {
          size += chunk.length;
          if (size <= maxBytes || opts.partial === 'truncate') chunks.push(Buffer.from(chunk));
          if (size < maxBytes) return;
          if (opts.partial === 'truncate') finish(answered());
          else if (size > maxBytes) finish({ status, failure: 'too_large', reason: `body is larger than ${maxBytes} bytes` });
        },
        onResponseEnd: () => finish(answered()),
        onResponseError: (_c, err: Error & { code?: string }) => {
          if (status !== undefined && opts.partial === 'truncate') finish(answered());
          else if (isTimeout(err)) finish({ status, failure: 'timeout', reason: `no answer within ${timeoutMs} ms` });
          else finish({ status, failure: 'error', reason: err.code ?? err.message });
        },
      },
    );
  });
}
