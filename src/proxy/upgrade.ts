/**
 * `Upgrade` handling on the main port (DESIGN.md: UPSTREAM_UPGRADE_PROTOCOLS, default `websocket`).
 *
 * Node hands every request carrying `Connection: upgrade` + `Upgrade` to the server's 'upgrade'
 * listener with a raw socket, whatever the protocol. Only the allowed protocols go on to the
 * application as an upgrade; for any other (`h2c`, ...) the request is replayed into Node's HTTP
 * parser without `Upgrade`, `HTTP2-Settings` and their `Connection` tokens, so it becomes a plain
 * HTTP request: body, keep-alive, reservation, canonical target and RED metrics all as usual.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';

/** Headers that only mean something for an upgrade the sidecar does not pass on (RFC 7540 §3.2.1). */
const UPGRADE_ONLY = new Set(['upgrade', 'http2-settings']);

/**
 * The tokens of an `Upgrade` value whose protocol name (before any `/version`) is allowed, joined
 * as received; '' when none is.
 */
export function allowedUpgrade(value: string | undefined, allowed: ReadonlySet<string>): string {
  if (value === undefined || allowed.size === 0) return '';
  const kept: string[] = [];
  for (const token of value.split(',')) {
    const t = token.trim();
    if (t === '') continue;
    const slash = t.indexOf('/');
    if (allowed.has((slash === -1 ? t : t.slice(0, slash)).toLowerCase())) kept.push(t);
  }
  return kept.join(', ');
}

/**
 * Re-parses an upgrade request as a plain request on the same socket: the request line and headers
 * are rebuilt without the upgrade headers, put back in front of the bytes already read, and the
 * socket is handed to the server's connection listener again.
 */
export function replayWithoutUpgrade(server: http.Server, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (UPGRADE_ONLY.has(lower)) continue;
    let value = raw[i + 1];
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !UPGRADE_ONLY.has(t.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    text += `${raw[i]}: ${value}\r\n`;
  }
  text += '\r\n';
  socket.unshift(head.length > 0 ? Buffer.concat([Buffer.from(text, 'latin1'), head]) : Buffer.from(text, 'latin1'));
  server.emit('connection', socket);
}

/**
 * Sockets Node's HTTP server handed over (`upgrade`, `connect`), from the hand-over until they
 * close. `closeAllConnections()` no longer reaches them, yet `server.close()` waits for them: a
 * handshake the app never completes, or a refusal the client never reads to its end (the socket
 * stays half-open), held a stopping sidecar until the upstream timeout or the client went away.
 */
export class HandedOverSockets {
  private readonly sockets = new Set<Duplex>();

  add(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /**
   * Destroys every one. With an error: that is what makes a pending upgrade abandon its request
   * to the app (the forwarder ends the handshake on the client socket's 'error'; an upgraded
   * pair closes on either side's 'close').
   */
  destroyAll(): void {
    const err = Object.assign(new Error('the sidecar is stopping'), { code: 'ESHUTDOWN' });
    for (const s of this.sockets) {
      if (s.listenerCount('error') === 0) s.on('error', () => undefined);
      s.destroy(err);
    }
    this.sockets.clear();
  }
}
