/**
 * ACCESS_LOG=true: one `info` line per request on a listener, written when the response is done.
 * It listens to the server's 'request' event beside the real handler, so the proxy's path is
 * untouched. The query string is never logged (API keys and tokens travel there), nor any header.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from './logger';

const MAX_PATH = 200;

export function accessLog(server: http.Server, listener: string, logger: Logger): void {
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    const raw = req.url ?? '';
    const q = raw.search(/[?#]/);
    const path = q === -1 ? raw : raw.slice(0, q);
    res.once('close', () => {
      logger.info('request', {
        listener,
        method: req.method,
        path: path.length > MAX_PATH ? `${path.slice(0, MAX_PATH)}…` : path,
        status: res.statusCode,
        bytes: Number(res.getHeader('content-length') ?? 0) || undefined,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        completed: res.writableFinished,
        peer: req.socket.remoteAddress,
      });
    });
  });
}
