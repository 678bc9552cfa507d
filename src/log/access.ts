/**
 * ACCESS_LOG=true: one `info` line per request on a listener, written when the response is done.
 * It listens to the server's 'request' event beside the real handler, so the proxy's path is
 * untouched. The query string is never logged (API keys and tokens travel there), nor any header,
 * and path segments that look like ids or tokens are logged as `:id` (`/reset-password/:id`), by
 * the rule the `path` label uses.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from './logger';
import { isIdLike } from '../formats/path-segment';

const MAX_PATH = 200;

export function accessLog(server: http.Server, listener: string, logger: Logger): void {
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    // Bytes written to this connection for this response (head and body), whatever the writeHead form.
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    const raw = req.url ?? '';
    const q = raw.search(/[?#]/);
    const path = q === -1 ? raw : raw.slice(0, q);
    res.once('close', () => {
      logger.info('request', {
        listener,
        method: req.method,
        path: shownPath(path),
        status: res.statusCode,
        bytes: socket.bytesWritten - bytesBefore,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        completed: res.writableFinished,
        peer: req.socket.remoteAddress,
      });
    });
  });
}

/** The path as logged: id- and token-like segments collapsed, cut at MAX_PATH characters. */
function shownPath(path: string): string {
  const cut = path.length > MAX_PATH ? path.slice(0, MAX_PATH) : path;
  const shown = cut
    .split('/')
    .map((seg) => (isIdLike(seg) ? ':id' : seg))
    .join('/');
  return cut === path ? shown : `${shown}…`;
}
