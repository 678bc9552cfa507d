/**
 * The status page's `Host` check, against DNS rebinding. With no access method configured the
 * page and `status.json` answer anyone who reaches the port, and a page on another site, opened in
 * the browser of an operator running `kubectl port-forward`, can point its own host name at
 * 127.0.0.1 and read them as same-origin. Such a request carries the attacker's host name in
 * `Host`; one meant for the sidecar names an IP address (the pod's, or 127.0.0.1 through a
 * port-forward), `localhost`, or a name the operator listed in STATUS_ALLOWED_HOSTS.
 *
 * With a credential method configured (basic auth, API keys, Kubernetes tokens) the gate guards
 * the page: the browser never sends credentials to the attacker's origin. An allow-list alone does
 * not: the rebound request comes from the operator's own address (127.0.0.1 through a
 * port-forward), which the list lets in; so the check runs whenever no credential method is.
 */
import net from 'node:net';
import type { Context, Next } from 'koa';

/**
 * The host of a `Host` value: lower case, port and one trailing dot removed, IPv6 without its
 * brackets; `ip` when it is an IP literal. Undefined when the value is not `host[:port]`.
 */
export function hostOf(header: string): { name: string; ip: boolean } | undefined {
  let host: string;
  let rest: string;
  if (header.startsWith('[')) {
    const end = header.indexOf(']');
    if (end === -1) return undefined;
    host = header.slice(1, end);
    rest = header.slice(end + 1);
    if (!net.isIPv6(host)) return undefined;
  } else {
    const colon = header.lastIndexOf(':');
    host = colon === -1 ? header : header.slice(0, colon);
    rest = colon === -1 ? '' : header.slice(colon);
    // An IPv6 literal without brackets is not a Host value.
    if (host.includes(':')) return undefined;
  }
  if (rest !== '' && !/^:\d{0,5}$/.test(rest)) return undefined;
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === '') return undefined;
  return { name, ip: net.isIP(name) !== 0 };
}

/**
 * True when a request with this `Host` may read the status page while the gate is open: no `Host`
 * (HTTP/1.0: not a browser), an IP literal, `localhost`, or a listed name (`*`: any).
 */
export function statusHostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (header === undefined || allowed.has('*')) return true;
  const h = hostOf(header);
  return h !== undefined && (h.ip || h.name === 'localhost' || allowed.has(h.name));
}

/**
 * Koa middleware in front of the page and `status.json` (never status.js, which holds no data).
 * A refused request is counted through `refused` and answered 403 on the metrics port, 404 on the
 * main port (whose `/debug/` tree stays hidden, as for a refusal by the gate).
 */
export function statusHostCheck(listener: 'main' | 'metrics', allowedHosts: readonly string[], refused: (listener: 'main' | 'metrics') => void) {
  const allowed: ReadonlySet<string> = new Set(allowedHosts);
  return async (ctx: Context, next: Next): Promise<void> => {
    if (statusHostAllowed(ctx.req.headers.host, allowed)) return next();
    refused(listener);
    ctx.set('cache-control', 'no-store');
    if (listener === 'main') {
      ctx.status = 404;
      ctx.body = 'not found\n';
      return;
    }
    ctx.status = 403;
    ctx.body = 'forbidden: the status page answers an IP address, localhost or a name in STATUS_ALLOWED_HOSTS as Host\n';
  };
}
