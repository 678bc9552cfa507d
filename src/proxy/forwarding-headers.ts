/**
 * Forwarding headers that tell the truth (DESIGN.md, "Hostile input and limits").
 *
 * Apps and their servers believe what these headers say about the client's address, the scheme,
 * the host and the path prefix (Flask's `ProxyFix`, Django's `SECURE_PROXY_SSL_HEADER`, Rails'
 * `RemoteIp`, gunicorn's `secure_scheme_headers`, which it believes from 127.0.0.1, where the
 * sidecar connects from). Redirects, absolute URLs, `Secure` cookies and client IPs follow them.
 *
 * - From a peer outside `TRUSTED_PROXIES` every header of FORWARDING_HEADERS (and every
 *   `X-Forwarded-*`) is removed, and the sidecar writes its own: `X-Forwarded-For: <peer>`,
 *   `X-Forwarded-Proto: http` (the main listener's scheme), `X-Forwarded-Host: <Host>`.
 * - From a trusted peer (its socket address in `TRUSTED_PROXIES`) they pass as sent, and
 *   `X-Forwarded-For` gets the peer appended (nginx's `$proxy_add_x_forwarded_for`; several
 *   `X-Forwarded-For` headers are joined first); `X-Forwarded-Proto` and `X-Forwarded-Host` are
 *   added when the proxy sent none.
 *
 * The forwarder classifies each header in its one pass over the raw headers (forwardingHeader:
 * one Map lookup, plus a prefix test for `x-` names) and appends the sidecar's own at the end
 * (addForwardingHeaders). Whether a peer is trusted is decided once per connection.
 */
import type { Socket } from 'node:net';
import type { Cidr } from '../config';
import { inAny, parseAddress } from '../access/client-address';

/** Not a forwarding header: passed on as any other end-to-end header. */
export const NOT_FORWARDING = 0;
export const FORWARDED_FOR = 1;
export const FORWARDED_PROTO = 2;
export const FORWARDED_HOST = 3;
/** Any other forwarding header: removed from strangers, kept from trusted proxies. */
export const FORWARDING_OTHER = 4;

/**
 * Headers, besides every `X-Forwarded-*` one, that proxies set to tell the app about the client
 * and that some app, framework or server believes (lower case). docs/endpoints.md ("Behind an ingress
 * controller or load balancer") lists them.
 */
export const FORWARDING_HEADERS: readonly string[] = [
  // RFC 7239, and the draft it replaced.
  'forwarded',
  'x-forwarded',
  // Client addresses: nginx's realip, Rack/Rails, PHP's "real IP" snippets, CDNs (Akamai and
  // Cloudflare's True-Client-IP, Cloudflare, Fastly), Rackspace, ingress-nginx's copy of the
  // original X-Forwarded-For.
  'x-real-ip',
  'x-client-ip',
  'client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'cf-connecting-ipv6',
  'fastly-client-ip',
  'x-original-forwarded-for',
  // The path or host "really" asked for: IIS/ASP.NET and Symfony's X-Original-URL and
  // X-Rewrite-URL (an access-control bypass when a client can set them), nginx's auth_request
  // X-Original-URI, Azure's X-Original-Host, X-Host.
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-original-host',
  'x-host',
  // The scheme: Tornado's X-Scheme, X-Url-Scheme, Microsoft's Front-End-Https.
  'x-scheme',
  'x-url-scheme',
  'front-end-https',
];

const KIND = new Map<string, number>(FORWARDING_HEADERS.map((n) => [n, FORWARDING_OTHER]));
KIND.set('x-forwarded-for', FORWARDED_FOR).set('x-forwarded-proto', FORWARDED_PROTO).set('x-forwarded-host', FORWARDED_HOST);
/** 1 at the char code of each letter a forwarding header's name starts with (`x` for the `x-forwarded-` prefix). */
const FIRST_LETTERS = new Uint8Array(128);
for (const n of [...KIND.keys(), 'x-forwarded-']) FIRST_LETTERS[n.charCodeAt(0)] = 1;

/** What a lower-case header name is: NOT_FORWARDING, FORWARDED_FOR, _PROTO, _HOST or FORWARDING_OTHER. */
export function forwardingHeader(lower: string): number {
  // Most headers (host, accept-*, user-agent, sec-*, ...) stop at their first letter.
  if (FIRST_LETTERS[lower.charCodeAt(0) & 127] === 0) return NOT_FORWARDING;
  const kind = KIND.get(lower);
  if (kind !== undefined) return kind;
  // X-Forwarded-Port, -Prefix, -Server, -Ssl, -Scheme, -Protocol, -Uri, -Path, -Client-IP, ...
  return lower.startsWith('x-forwarded-') ? FORWARDING_OTHER : NOT_FORWARDING;
}

/** Which peers are trusted proxies (TRUSTED_PROXIES), decided once per connection. */
export class ForwardingTrust {
  private readonly bySocket = new WeakMap<Socket, boolean>();

  constructor(private readonly trusted: readonly Cidr[]) {}

  /** True when the request came over a connection from a trusted proxy. */
  trusts(socket: Socket): boolean {
    if (this.trusted.length === 0) return false;
    let t = this.bySocket.get(socket);
    if (t === undefined) {
      const peer = parseAddress(socket.remoteAddress ?? '');
      t = peer !== undefined && inAny(peer, this.trusted);
      this.bySocket.set(socket, t);
    }
    return t;
  }
}

/**
 * Appends the sidecar's forwarding headers to a request's headers (flat array): `X-Forwarded-For`
 * (the trusted proxy's chain, if any, and the peer), and `X-Forwarded-Proto` / `-Host` unless a
 * trusted proxy sent them. From a stranger `xff` is undefined and `sawProto`/`sawHost` false.
 */
export function addForwardingHeaders(out: string[], peer: string, xff: string | undefined, sawProto: boolean, sawHost: boolean, host: string): void {
  out.push('x-forwarded-for', xff ? `${xff}, ${peer}` : peer);
  if (!sawProto) out.push('x-forwarded-proto', 'http');
  if (!sawHost) out.push('x-forwarded-host', host);
}
