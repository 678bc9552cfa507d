/**
 * An app that breaks HTTP framing the ways real apps do, on purpose: a raw `net` server that
 * answers each request by the shape its `x-shape` header names, with the request's `x-req` id in
 * every body it writes, so a client can tell whose answer it got. Shapes:
 *
 *   ok            200, body `id:<id>`
 *   head-body     (for HEAD) a Content-Length and the body anyway
 *   204-body      204, then a whole response `late:<id>` in the same write
 *   304-body      304 with a Content-Length, then the body
 *   204-chunk-end 204, then `0\r\n\r\n`
 *   double        200 `id:<id>`, then a second response `late:<id>` in the same write
 *   late          200 `id:<id>`; a response `late:<id>` is armed and written on `fireLate()`
 *   late-408      200 `id:<id>`; an unsolicited `408 Request Timeout` is armed for `fireLate()`
 *
 * `late` bytes are what the attacker's pass used (they arrive 100-150 ms later in real apps):
 * here they are written whenever the test says, at any point of what the proxy is doing.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export const SHAPES = ['ok', 'head-body', '204-body', '304-body', '204-chunk-end', 'double', 'late', 'late-408'] as const;
export type Shape = (typeof SHAPES)[number];

export interface MisbehavingApp {
  port: number;
  url: string;
  /** Requests the app answered, by id. */
  answered: Set<string>;
  /** Writes every armed late answer (on sockets still open); resolves once they are written. */
  fireLate(): Promise<number>;
  close(): Promise<void>;
}

const response = (status: string, body: string, extra = ''): string => `HTTP/1.1 ${status}\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;

export async function startMisbehavingApp(): Promise<MisbehavingApp> {
  const sockets = new Set<net.Socket>();
  const armed: { socket: net.Socket; bytes: string }[] = [];
  const answered = new Set<string>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return; // wait for the body
        buf = buf.slice(end + 4 + length);
        answer(s, head);
      }
    });
  });
  const answer = (s: net.Socket, head: string): void => {
    const method = head.slice(0, head.indexOf(' '));
    const id = /\r\nx-req: *([^\r]*)/i.exec(head)?.[1] ?? '?';
    const shape = (/\r\nx-shape: *([^\r]*)/i.exec(head)?.[1] ?? 'ok') as Shape;
    answered.add(id);
    const own = `id:${id}`;
    const late = response('200 OK', `late:${id}`);
    switch (shape) {
      case 'head-body':
        s.write(method === 'HEAD' ? `HTTP/1.1 200 OK\r\ncontent-length: ${own.length}\r\n\r\n${own}` : response('200 OK', own));
        return;
      case '204-body':
        s.write(`HTTP/1.1 204 No Content\r\n\r\n${late}`);
        return;
      case '304-body':
        s.write(`HTTP/1.1 304 Not Modified\r\ncontent-length: ${own.length}\r\n\r\n${own}`);
        return;
      case '204-chunk-end':
        s.write('HTTP/1.1 204 No Content\r\n\r\n0\r\n\r\n');
        return;
      case 'double':
        s.write(response('200 OK', own) + late);
        return;
      case 'late':
        s.write(response('200 OK', own));
        armed.push({ socket: s, bytes: late });
        return;
      case 'late-408':
        s.write(response('200 OK', own));
        armed.push({ socket: s, bytes: response('408 Request Timeout', `late:${id}`, 'connection: close\r\n') });
        return;
      default:
        s.write(response('200 OK', own));
    }
  };
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    answered,
    fireLate: async () => {
      const due = armed.splice(0).filter((a) => !a.socket.destroyed && a.socket.writable);
      await Promise.all(due.map((a) => new Promise<void>((r) => a.socket.write(a.bytes, () => r()))));
      return due.length;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}
