/**
 * The main port (web role). Every request is either part of the reserved `/debug/` tree, answered
 * by the sidecar's Koa app and never forwarded, or forwarded to the application.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type Koa from 'koa';
import { isReservedTarget } from '../proxy/reserved';
import type { Forwarder } from '../proxy/forwarder';
import type { Lifecycle } from './lifecycle';

export interface MainServerOptions {
  forwarder: Forwarder | undefined;
  debugApp: Koa;
  lifecycle: Lifecycle;
  keepAliveTimeoutMs: number;
}

export function createMainServer({ forwarder, debugApp, lifecycle, keepAliveTimeoutMs }: MainServerOptions): http.Server {
  const debug = debugApp.callback();
  const server = http.createServer(
    {
      keepAliveTimeout: keepAliveTimeoutMs,
      // Must exceed keepAliveTimeout, or a reused connection can time out mid-headers.
      headersTimeout: keepAliveTimeoutMs + 1000,
      // Long uploads and downloads are legitimate here; the upstream timeout bounds idle ones.
      requestTimeout: 0,
    },
    (req, res) => {
      if (isReservedTarget(req.url ?? '/')) {
        void debug(req, res);
        return;
      }
      lifecycle.track(res, true);
      if (forwarder === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('no upstream configured\n');
        return;
      }
      forwarder.handle(req, res);
    },
  );
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (forwarder === undefined || isReservedTarget(req.url ?? '/') || lifecycle.draining()) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    forwarder.upgrade(req, socket, head);
  });
  server.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}
