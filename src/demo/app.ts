/**
 * The demo application: a small web app with the shapes RED metrics care about (ids in paths,
 * slow routes, errors) and its own `/debug/` page that the sidecar must keep from the public.
 */
import http from 'node:http';
import crypto from 'node:crypto';

export function createDemoApp(): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const p = url.pathname;
    if (p === '/') return send(200, { hello: 'from the demo app' });
    if (/^\/users\/\d+$/.test(p)) return send(200, { user: p.split('/')[2] });
    if (/^\/orders\/[0-9a-f-]{36}$/.test(p)) return send(200, { order: p.split('/')[2] });
    if (p === '/slow') {
      setTimeout(() => send(200, { slow: true }), 50 + Math.floor(Math.random() * 250));
      return;
    }
    if (p === '/error') return send(500, { error: 'something broke' });
    if (p.startsWith('/debug/')) return send(200, { secret: "the app's own debug page: the sidecar never lets the public reach it" });
    return send(404, { error: 'not found' });
  });
}

/** A random request path for the traffic generator. */
export function randomPath(): string {
  const r = Math.random();
  if (r < 0.35) return `/users/${1 + Math.floor(Math.random() * 500)}`;
  if (r < 0.55) return `/orders/${crypto.randomUUID()}`;
  if (r < 0.7) return '/slow';
  if (r < 0.78) return '/error';
  if (r < 0.85) return '/missing';
  return '/';
}
