/**
 * Forwards requests from the main listener to the application and records RED metrics.
 *
 * This is the hot path: raw header arrays in and out (no header objects built), a keep-alive client
 * written for this one job (upstream-client.ts), bodies streamed with backpressure in both
 * directions, one `close` listener per response to finish the bookkeeping.
 */
import http from 'node:http';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { CLIENT_BODY_STALLED, UpstreamClient, isTimeout, type Controller } from './upstream-client';
import type { CanonicalTarget } from './target';
import { allowedUpgrade } from './upgrade';
import { routeName, type RedRecorder, type TraceIds } from './red';
import { parseSampledTraceparent } from './traceparent';
import { Transfers, type SlowKind, type Transfer, type TransferLimits } from './transfers';
import { addForwardingHeaders, forwardingHeader, ForwardingTrust, FORWARDED_FOR, FORWARDED_HOST, FORWARDED_PROTO, NOT_FORWARDING } from './forwarding-headers';
import type { Cidr } from '../config';
import type { Logger } from '../log/logger';

export interface ForwarderOptions {
  upstream: URL;
  timeoutMs: number;
  /** Connections to the application at most (0 = unlimited); further requests queue. */
  maxConnections: number;
  /** UPSTREAM_KEEPALIVE: reuse a client connection's upstream connection for its next request (false = one per request). */
  keepAlive: boolean;
  red: RedRecorder;
  logger: Logger;
  /** True while the sidecar drains: responses then carry `Connection: close`. */
  draining: () => boolean;
  /** Lower-case `Upgrade` protocols passed to the app as upgrades (UPSTREAM_UPGRADE_PROTOCOLS); others are removed from the header. */
  upgradeProtocols: ReadonlySet<string>;
  /** Request and answer buffering, and the clients' minimum data rates (transfers.ts). */
  transfers: TransferLimits;
  /** TRUSTED_PROXIES: peers whose forwarding headers are passed on (extended); from others they are replaced (forwarding-headers.ts). */
  trustedProxies?: readonly Cidr[];
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies also strip. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Only meaningful for an h2c upgrade, which is never passed on (RFC 7540 §3.2.1).
  'http2-settings',
  // Node already answered `100 Continue` to the client; the upstream must not wait for it again.
  'expect',
]);

/** The status the sidecar reports when the client went away before an answer (nginx's). */
export const CLIENT_CLOSED = 499;

interface UpstreamRequestHeaders {
  headers: string[];
  hasBody: boolean;
}

export class Forwarder {
  private readonly client: UpstreamClient;
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;
  private readonly upgraded = new Set<Duplex>();
  /** Marks a client connection whose close already drops its upstream connections (a property of the socket: no set to churn). */
  private readonly ownedKey = Symbol('owned by the forwarder');
  private readonly transfers: Transfers;
  /** Told of each client the sidecar cut off (`slow_upload`, `slow_read`): the main listener counts them. */
  onClientError: ((reason: string) => void) | undefined;
  private readonly upgradeProtocols: ReadonlySet<string>;
  private readonly trust: ForwardingTrust;

  constructor(private readonly opts: ForwarderOptions) {
    this.host = opts.upstream.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(opts.upstream.port || 80);
    // No pipelining; an upstream connection carries the requests of one client connection only,
    // and closes with it (see upstream-client.ts); a request that meets a keep-alive socket the
    // app just closed is sent again by the client (idempotent, no body).
    this.client = new UpstreamClient({
      host: this.host,
      port: this.port,
      timeoutMs: opts.timeoutMs,
      maxConnections: opts.maxConnections,
      keepAliveMs: 4_000,
      keepAlive: opts.keepAlive,
    });
    this.hostHeader = opts.upstream.host;
    this.upgradeProtocols = opts.upgradeProtocols;
    this.transfers = new Transfers(opts.transfers);
    this.trust = new ForwardingTrust(opts.trustedProxies ?? []);
  }

  /**
   * Forwards one request to its canonical target, the one the main listener checked (what was
   * checked is what is sent); never throws, always ends the response.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse, canonical: CanonicalTarget): void {
    const start = performance.now();
    const { red } = this.opts;
    const method = req.method ?? 'GET';
    const target = canonical.target;
    const route = red.route(canonical.path);
    const { headers, hasBody } = this.forwardedHeaders(req, false);
    // A sampled trace's ids become the request's exemplar; an unsampled or malformed header, none.
    const trace = red.exemplars ? sampledTrace(req.headers.traceparent) : undefined;
    let status = 0;
    let failed = false;
    /** The sidecar ended this exchange as the client's fault (a slow upload or read): nothing more is written. */
    let clientFault = false;
    let controller: Controller | undefined;
    // Made only when needed (a body, or a client behind its answer): most requests need none.
    let transfer: Transfer | undefined;
    const track = (): Transfer => (transfer ??= this.transfers.start(req, res, onSlow));
    const onSlow = (kind: SlowKind): void => {
      clientFault = true;
      this.onClientError?.(kind);
      this.opts.logger.debug('client too slow', { reason: kind, method, route: routeName(route) });
      if (controller && !controller.aborted) controller.abort(new Error(kind));
      if (kind === 'slow_upload' && !res.headersSent && !res.destroyed) {
        // The upload is not worth reading on: 408, and the connection goes.
        status = 408;
        const body = 'request body too slow\n';
        res.writeHead(408, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), 'connection', 'close']).end(body);
        req.unpipe();
        return;
      }
      res.destroy();
    };

    const fail = (err: Error & { code?: string }): void => {
      if (clientFault) return;
      if (err.code === CLIENT_BODY_STALLED) {
        // The upload stalled while the app waited for it: the client's fault (408), as a slow upload is.
        onSlow('slow_upload');
        return;
      }
      // The client's request stream broke (aborted upload, bad chunked framing): the client's error, not the app's.
      if (req.errored != null || (req.destroyed && !req.complete)) {
        this.opts.logger.debug('client request failed', { method, route: routeName(route), code: upstreamErrorCode(err) });
        if (!res.headersSent && !res.destroyed) {
          status = 400;
          const body = 'bad request\n';
          res.writeHead(400, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), 'connection', 'close']).end(body);
        } else res.destroy();
        return;
      }
      failed = true;
      if (res.headersSent || res.destroyed) {
        // The status is already out: all that is left is to cut the client off.
        res.destroy();
        return;
      }
      const timedOut = isTimeout(err);
      status = timedOut ? 504 : 502;
      this.opts.logger.warn(timedOut ? 'upstream timed out' : 'upstream failed', { method, route: routeName(route), code: upstreamErrorCode(err) });
      const body = timedOut ? 'upstream timed out\n' : 'upstream unavailable\n';
      res.writeHead(status, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'connection', 'close']);
      res.end(body);
    };

    res.on('close', () => {
      if (transfer !== undefined) this.transfers.end(transfer);
      if (!res.writableFinished) {
        // The client went away (or we cut it off): stop the upstream work too.
        if (controller && !controller.aborted) controller.abort(new Error('client closed the connection'));
        if (status === 0) status = CLIENT_CLOSED;
      }
      const seconds = (performance.now() - start) / 1000;
      // A slow upload the sidecar refused is the client's, recorded like the sidecar's other refusals (no new template).
      if (status === 408 && clientFault) red.refused(method, 408, seconds);
      else if (route !== null) red.record(method, route, status, seconds, failed, trace);
    });

    // The client connection owns the upstream connections its requests use: when it closes, so do they.
    const owner = req.socket as typeof req.socket & Record<symbol, boolean | undefined>;
    if (owner[this.ownedKey] !== true) {
      owner[this.ownedKey] = true;
      owner.once('close', () => this.client.dropOwner(owner));
    }
    const dispatch = (body: Readable | Buffer | null): void => {
      if (clientFault || res.destroyed) return;
      this.client.dispatch(
        { path: target, method, headers, body, owner },
        {
          onRequestStart: (c) => {
            controller = c;
          },
          onResponseStart: (_c, code, uheaders, statusMessage) => {
            status = code;
            if (noBuffering(uheaders)) track().unbuffered = true;
            res.writeHead(code, statusMessage, this.responseHeaders(uheaders));
          },
          onResponseData: (c, chunk) => {
            // Read at the app's speed into what the client has yet to take, up to the answer's
            // bound and the budget; past them a slow client slows the app down (backpressure).
            if (!res.write(chunk)) {
              // The client is behind: its rate is watched from now on.
              const t = track();
              this.transfers.watch(t);
              if (this.transfers.mustPause(t)) {
                c.pause();
                res.once('drain', () => {
                  this.transfers.drained(t);
                  c.resume();
                });
              }
            }
          },
          onResponseEnd: () => {
            res.end();
          },
          onResponseError: (_c, err: Error & { code?: string }) => {
            if (res.destroyed && !res.writableFinished) return; // the client left first; already recorded
            fail(err);
          },
        },
      );
    };
    if (!hasBody) dispatch(null);
    else this.receiveBody(req, track(), dispatch, fail);
  }

  /**
   * A request body: read whole before the app sees the request when it fits the buffer bound and
   * the budget (an upload at any speed then never holds a worker), streamed otherwise; counted
   * for the minimum data rate either way.
   */
  private receiveBody(req: http.IncomingMessage, t: Transfer, dispatch: (body: Readable | Buffer) => void, fail: (err: Error) => void): void {
    const limit = this.transfers.limits.requestBufferBytes;
    const declared = req.headers['content-length'];
    const length = declared === undefined ? undefined : Number(declared);
    t.uploading = true;
    t.uploadStart = performance.now();
    this.transfers.watch(t);
    const count = (chunk: Buffer): void => {
      t.uploadBytes += chunk.length;
    };
    const ended = (): void => {
      t.uploading = false;
      this.transfers.unwatch(t);
    };
    req.once('end', ended);
    if (limit === 0 || (length !== undefined && length > limit) || !this.transfers.mayBuffer(length ?? 0)) {
      req.on('data', count);
      dispatch(req);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      count(chunk);
      size += chunk.length;
      if (size <= limit && this.transfers.mayBuffer(chunk.length)) {
        chunks.push(chunk);
        this.transfers.setHeld(t, size);
        return;
      }
      // Larger than the bound (a chunked upload), or the budget ran out: what came so far, then the rest, streamed.
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.on('data', count);
      const rest = new PassThrough();
      for (const c of chunks) rest.write(c);
      rest.write(chunk);
      this.transfers.setHeld(t, 0);
      req.on('error', (err) => rest.destroy(err));
      req.pipe(rest);
      dispatch(rest);
    };
    const onEnd = (): void => {
      req.off('error', onError);
      dispatch(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => fail(err);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  }

  /** WebSocket and other `Upgrade` requests: handshake forwarded, then bytes piped both ways. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, canonical: CanonicalTarget): void {
    const start = performance.now();
    const method = req.method ?? 'GET';
    const target = canonical.target;
    const route = this.opts.red.route(canonical.path);
    const record = (status: number, failed: boolean): void => {
      if (route !== null) this.opts.red.record(method, route, status, (performance.now() - start) / 1000, failed);
    };
    const { headers } = this.forwardedHeaders(req, true);
    const ureq = http.request({ agent: false, host: this.host, port: this.port, method, path: target, headers, setHost: false });
    ureq.setTimeout(this.opts.timeoutMs, () => ureq.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
    socket.on('error', () => ureq.destroy());

    ureq.on('upgrade', (ures, usocket, uhead) => {
      ureq.setTimeout(0);
      socket.write(statusLine(ures) + rawHeaderLines(ures.rawHeaders));
      if (uhead.length > 0) socket.write(uhead);
      if (head.length > 0) usocket.write(head);
      this.upgraded.add(socket);
      const done = (): void => {
        this.upgraded.delete(socket);
        socket.destroy();
        usocket.destroy();
      };
      usocket.on('error', done).on('close', done);
      socket.on('error', done).on('close', done);
      usocket.pipe(socket).pipe(usocket);
      record(ures.statusCode ?? 101, false);
    });
    ureq.on('response', (ures) => {
      // The upstream declined the upgrade: relay its answer as a plain response, then close.
      socket.write(
        statusLine(ures) +
          rawHeaderLines(this.responseHeaders(ures.rawHeaders.map((h, i) => (i % 2 === 0 ? h.toLowerCase() : h))).concat('connection', 'close')),
      );
      ures.pipe(socket);
      record(ures.statusCode ?? 502, ures.statusCode === 500);
    });
    ureq.on('error', (err: NodeJS.ErrnoException) => {
      if (!socket.writable) return;
      const timedOut = err.code === 'ETIMEDOUT';
      socket.end(`HTTP/1.1 ${timedOut ? '504 Gateway Timeout' : '502 Bad Gateway'}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      record(timedOut ? 504 : 502, true);
    });
    ureq.end();
  }

  close(): void {
    for (const s of this.upgraded) s.destroy();
    this.upgraded.clear();
    this.client.close();
    this.transfers.close();
  }

  /** Bytes held in request buffers and answer backlogs now. */
  get bufferedBytes(): number {
    return this.transfers.held;
  }

  /**
   * The request's headers minus hop-by-hop ones (and those its `Connection` header names) and
   * those with `_` in their name; forwarding headers replaced by the sidecar's own, or extended
   * when the peer is a trusted proxy (forwarding-headers.ts).
   * A body without Content-Length is sent chunked again by the upstream client (or Node, for upgrades).
   * For an upgrade, `Connection: upgrade` and `Upgrade` are kept. One pass over the raw headers
   * also tells whether a body follows (a non-zero Content-Length or a Transfer-Encoding).
   */
  private forwardedHeaders(req: http.IncomingMessage, upgrade: boolean): UpstreamRequestHeaders {
    const raw = req.rawHeaders;
    const out: string[] = [];
    const named = namedByConnection(raw);
    const trusted = this.trust.trusts(req.socket);
    let xff: string | undefined;
    let sawProto = false;
    let sawHost = false;
    let host: string | undefined;
    let hasBody = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      const lower = name.toLowerCase();
      const value = raw[i + 1];
      if ((lower === 'content-length' && value !== '0') || lower === 'transfer-encoding') hasBody = true;
      // A name with `_` never goes on (nginx's `underscores_in_headers off`): WSGI/CGI servers map
      // `-` and `_` to the same variable, and gunicorn believes a `SCRIPT_NAME` header from
      // loopback (its forwarder_headers default), which would strip a client-chosen prefix off the
      // checked path and route `/x/debug/...` into the app's /debug/ tree.
      if (lower.includes('_')) continue;
      if (HOP_BY_HOP.has(lower) || (named !== undefined && named.has(lower))) {
        if (upgrade && lower === 'upgrade') {
          const kept = allowedUpgrade(value, this.upgradeProtocols);
          if (kept !== '') out.push(name, kept);
        }
        continue;
      }
      const kind = forwardingHeader(lower);
      if (kind !== NOT_FORWARDING) {
        // A stranger's say about the client, scheme, host or path never reaches the app.
        if (!trusted) continue;
        if (kind === FORWARDED_FOR) {
          xff = xff === undefined ? value : `${xff}, ${value}`;
          continue;
        }
        if (kind === FORWARDED_PROTO) sawProto = true;
        else if (kind === FORWARDED_HOST) sawHost = true;
      } else if (lower === 'host') host = value;
      out.push(name, value);
    }
    if (host === undefined) out.push('host', this.hostHeader);
    addForwardingHeaders(out, clientAddress(req), xff, sawProto, sawHost, host ?? this.hostHeader);
    if (upgrade) out.push('connection', 'upgrade');
    return { headers: out, hasBody };
  }

  /**
   * The upstream's response headers (flat, lower-case names) minus hop-by-hop ones, for writeHead.
   * `X-Accel-Buffering: no` (nginx's convention) turns buffering off for this answer and, as nginx
   * does, stays between the app and the proxy.
   */
  private responseHeaders(headers: string[]): string[] {
    const out: string[] = [];
    const named = namedByConnection(headers);
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i];
      if (HOP_BY_HOP.has(name) || (named !== undefined && named.has(name))) continue;
      if (name.length === 17 && name === 'x-accel-buffering') continue;
      out.push(name, headers[i + 1]);
    }
    if (this.opts.draining()) out.push('connection', 'close');
    return out;
  }
}

/** The app asks for no buffering of this answer: `X-Accel-Buffering: no` (nginx's convention). */
function noBuffering(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === 17 && headers[i] === 'x-accel-buffering') return headers[i + 1].trim().toLowerCase() === 'no';
  }
  return false;
}

/** Header names a `Connection` header lists (hop-by-hop by declaration), if any. */
function namedByConnection(raw: string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of connectionTokens(raw[i + 1])) (named ??= new Set()).add(t);
    }
  }
  return named;
}

/** `Connection` values that name no header to remove. */
const NAMES_NO_HEADER = /^(keep-alive|close)$/i;

function connectionTokens(value: string): string[] {
  // The common case, `keep-alive` or `close`, names no header: skip the split.
  if (value.length <= 10 && NAMES_NO_HEADER.test(value)) return [];
  return value
    .toLowerCase()
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade');
}

/** The peer's address, with IPv4-mapped IPv6 shown as IPv4. */
function clientAddress(req: http.IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function statusLine(res: http.IncomingMessage): string {
  return `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
}

function rawHeaderLines(raw: string[]): string {
  let s = '';
  for (let i = 0; i < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return `${s}\r\n`;
}

/** The code of an upstream failure (Node's socket error codes, or the client's own). */
function upstreamErrorCode(err: Error & { code?: string }): string {
  return err.code ?? 'UNKNOWN';
}

/** The ids of the trace a `traceparent` header names, when it is well-formed and sampled (flags bit 0). */
function sampledTrace(header: string | string[] | undefined): TraceIds | undefined {
  // Node joins a repeated traceparent with ", " (which the parser refuses); an array never comes, but is no trace either.
  if (header === undefined || typeof header !== 'string') return undefined;
  const t = parseSampledTraceparent(header);
  return t !== undefined ? { traceId: t.traceId, spanId: t.spanId } : undefined;
}
