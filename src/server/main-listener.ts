/**
 * The main port (web role). Every request gets one canonical target (proxy/target) first; then it
 * is refused by the sidecar (400/414: never forwarded), part of the reserved `/debug/` tree
 * (answered by the sidecar's Koa app, never forwarded), or forwarded to the application with that
 * canonical target.
 *
 * Client errors are the client's: what the sidecar refuses is recorded in the RED families with
 * its status under `path="/:unmatched"` (never as an exception), counted by reason in
 * `metrics_sidecar_client_errors_total`, and logged at debug only. Requests Node's parser refuses
 * before a request object exists (bad framing, header overflow, timeouts) only have that counter.
 *
 * Methods: TRACE (METHODS_REFUSED_BY_DEFAULT) is answered 405 unless UPSTREAM_ALLOWED_METHODS
 * lists it, and CONNECT always is; both with `Allow` naming the methods the sidecar forwards.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type Koa from 'koa';
import { targetOf } from '../proxy/target';
import { allowedUpgrade, replayWithoutUpgrade, type HandedOverSockets } from '../proxy/upgrade';
import type { Forwarder } from '../proxy/forwarder';
import type { RedRecorder } from '../proxy/red';
import { Counter, type Registry } from '../metrics/registry';
import { silentLogger, type Logger } from '../log/logger';
import type { Lifecycle } from './lifecycle';
import { METHODS_REFUSED_BY_DEFAULT } from '../config';

export interface MainServerOptions {
  forwarder: Forwarder | undefined;
  debugApp: Koa;
  lifecycle: Lifecycle;
  keepAliveTimeoutMs: number;
  /** Where refused requests are recorded (with their status, never as exceptions). */
  red?: RedRecorder;
  /** Where `metrics_sidecar_client_errors_total` is registered. */
  registry?: Registry;
  logger?: Logger;
  /** Lower-case `Upgrade` protocols passed to the app as upgrades (UPSTREAM_UPGRADE_PROTOCOLS). */
  upgradeProtocols: ReadonlySet<string>;
  /** Where sockets taken out of the HTTP server (upgrades, CONNECT) are kept until they close, for the stop to end them. */
  handedOver?: HandedOverSockets;
  /** Methods of METHODS_REFUSED_BY_DEFAULT forwarded anyway (UPSTREAM_ALLOWED_METHODS). */
  allowedMethods?: ReadonlySet<string>;
}

/** The methods an `Allow` header names: the registered ones the sidecar forwards (whether the app implements them is the app's business). */
const FORWARDED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export function createMainServer(opts: MainServerOptions): http.Server {
  const { forwarder, debugApp, lifecycle, keepAliveTimeoutMs, red } = opts;
  const logger = opts.logger ?? silentLogger;
  const allowed = opts.upgradeProtocols;
  const refusedMethods = new Set(METHODS_REFUSED_BY_DEFAULT.filter((m) => !opts.allowedMethods?.has(m)));
  const allow = FORWARDED_METHODS.concat(METHODS_REFUSED_BY_DEFAULT.filter((m) => !refusedMethods.has(m))).join(', ');
  const clientErrors = new Counter({
    name: 'metrics_sidecar_client_errors_total',
    help: 'Requests on the main port the sidecar refused as malformed, by reason; never forwarded, never counted as exceptions.',
    labelNames: ['reason'],
  });
  opts.registry?.register(clientErrors);
  // Clients the forwarder cut off for their own slowness (slow_upload, slow_read).
  if (forwarder !== undefined) forwarder.onClientError = (reason) => clientErrors.inc([reason]);
  const debug = debugApp.callback();
  /** A request the sidecar answers as the client's error: counted by reason, recorded with its status, never an exception. */
  const countRefusal = (req: http.IncomingMessage, status: number, reason: string, start: number): void => {
    clientErrors.inc([reason]);
    logger.debug('request refused', { reason, status, method: req.method });
    red?.refused(req.method ?? 'GET', status, (performance.now() - start) / 1000);
  };

  const server = http.createServer(
    {
      keepAliveTimeout: keepAliveTimeoutMs,
      // Must exceed keepAliveTimeout, or a reused connection can time out mid-headers.
      headersTimeout: keepAliveTimeoutMs + 1000,
      // Long uploads and downloads are legitimate here; the upstream timeout bounds idle ones.
      requestTimeout: 0,
    },
    (req, res) => {
      const start = performance.now();
      noteResponse(req.socket, res);
      const t = targetOf(req);
      const reason = !t.ok
        ? t.reason
        : duplicateHost(req.rawHeaders)
          ? 'duplicate_host'
          : refusedMethods.has(req.method ?? '')
            ? 'method_not_allowed'
            : undefined;
      if (!t.ok || reason !== undefined) {
        const status = !t.ok ? t.status : reason === 'method_not_allowed' ? 405 : 400;
        countRefusal(req, status, t.ok ? (reason ?? 'other') : t.reason, start);
        lifecycle.track(res);
        const body = status === 414 ? 'request target too long\n' : status === 405 ? 'method not allowed\n' : 'bad request\n';
        const headers = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length)];
        if (status === 405) headers.push('allow', allow);
        // A body we do not read, or a drain: do not keep the connection.
        if (hasBody(req) || lifecycle.draining()) headers.push('connection', 'close');
        res.writeHead(status, headers).end(body);
        return;
      }
      if (t.reserved) {
        void debug(req, res);
        return;
      }
      lifecycle.track(res, true);
      if (forwarder === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('no upstream configured\n');
        return;
      }
      forwarder.handle(req, res, t);
    },
  );

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (allowedUpgrade(req.headers.upgrade, allowed) === '') {
      // h2c and any other protocol not allowed: a plain request, parsed again without its Upgrade.
      logger.debug('upgrade removed', { protocol: String(req.headers.upgrade).slice(0, 64) });
      replayWithoutUpgrade(server, req, socket, head);
      return;
    }
    // Node removed its own error listener when it handed the socket over: a client resetting the
    // connection now must not become an uncaught 'error' (it would take the process down).
    socket.on('error', destroyOnError);
    opts.handedOver?.add(socket);
    const start = performance.now();
    const t = targetOf(req);
    // An upgrade that announces a body: Node hands the socket over before reading it, so the app
    // would get the header without the bytes (they follow only after a 101) and wait for them.
    const reason = !t.ok
      ? t.reason
      : duplicateHost(req.rawHeaders)
        ? 'duplicate_host'
        : hasBody(req)
          ? 'upgrade_with_body'
          : refusedMethods.has(req.method ?? '')
            ? 'method_not_allowed'
            : undefined;
    if (reason !== undefined) {
      const status = !t.ok ? t.status : reason === 'method_not_allowed' ? 405 : 400;
      countRefusal(req, status, reason, start);
      const allowLine = status === 405 ? `allow: ${allow}\r\n` : '';
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${allowLine}content-length: 0\r\nconnection: close\r\n\r\n`);
      return;
    }
    if (forwarder === undefined || !t.ok || t.reserved || lifecycle.draining()) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    forwarder.upgrade(req, socket, head, t);
  });

  // CONNECT asks for a tunnel; the sidecar is not a forward proxy. (Without a listener Node drops the socket silently.)
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', destroyOnError);
    opts.handedOver?.add(socket);
    clientErrors.inc(['connect']);
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: ${allow}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    red?.refused(req.method ?? 'CONNECT', 405, 0);
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const { status, reason } = classifyClientError(err);
    clientErrors.inc([reason]);
    logger.debug('client error', { reason, code: err.code });
    // Answer only when nothing of a response is on the wire yet (a keep-alive request may be mid-response).
    if (status === 0 || !socket.writable || attachedResponse(socket)?.headersSent === true) {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
  });
  return server;
}

/**
 * The responses of a client connection not finished yet, oldest first, on the connection itself:
 * Node writes pipelined responses in that order, each once the one before it has finished. Kept
 * here because Node has no public way from a socket to the response it is writing (its own
 * `clientError` default reads the internal `socket._httpMessage`). A response leaves its list when
 * it closes (Node emits 'close' after 'finish', and on an abort), so an idle keep-alive connection
 * holds none; the list's length is that of Node's own queue of pipelined responses.
 */
const RESPONSES = Symbol('responses');
const LIST = Symbol('responseList');
type TrackedSocket = Duplex & { [RESPONSES]?: http.ServerResponse[] };
type TrackedResponse = http.ServerResponse & { [LIST]?: http.ServerResponse[] };

/** Notes `res` as its connection's newest response, until it closes. */
function noteResponse(socket: Duplex, res: http.ServerResponse): void {
  const s = socket as TrackedSocket;
  const list = (s[RESPONSES] ??= []);
  list.push(res);
  (res as TrackedResponse)[LIST] = list;
  // One module-level listener, no closure per request: `this` is the response.
  res.on('close', forgetResponse);
}

function forgetResponse(this: TrackedResponse): void {
  const list = this[LIST];
  if (list === undefined) return;
  const i = list.indexOf(this);
  if (i !== -1) list.splice(i, 1);
  this[LIST] = undefined;
}

/** The response the connection is writing now, if any: the oldest one not finished. */
function attachedResponse(socket: Duplex): http.ServerResponse | undefined {
  const list = (socket as TrackedSocket)[RESPONSES];
  if (list !== undefined) for (const res of list) if (!res.writableFinished) return res;
  return undefined;
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Status (0: just close) and a bounded reason label for an error of Node's HTTP parser or socket. */
export function classifyClientError(err: NodeJS.ErrnoException): { status: number; reason: string } {
  const code = err.code ?? '';
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason: 'header_overflow' };
    case 'HPE_URI_TOO_LONG':
      return { status: 414, reason: 'uri_too_long' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return { status: 408, reason: 'timeout' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { status: 0, reason: 'reset' };
  }
  // llhttp's error codes are a fixed set: safe as label values.
  if (/^HPE_[A-Z_]{1,40}$/.test(code)) return { status: 400, reason: code.slice(4).toLowerCase() };
  return { status: 400, reason: 'other' };
}

/** True when a request brings a body (one the sidecar would have to read before reusing the connection). */
function hasBody(req: http.IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** Two `Host` headers: servers behind may pick either one (RFC 9112 §3.2: answer 400). */
function duplicateHost(raw: string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
