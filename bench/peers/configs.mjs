/**
 * Configurations of the non-Node peers of bench:proxy, each a reverse proxy on 127.0.0.1 with a
 * keep-alive pool to the upstream and no access log, as close to nginx's setup as each allows.
 */

/** HAProxy (Debian), one thread, HTTP mode, server-side keep-alive with connection reuse. */
export function haproxyConf(port, upstreamPort) {
  return `global
  nbthread 1
  maxconn 4096
  log stdout format raw local0 emerg

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout http-keep-alive 65s

frontend fe
  bind 127.0.0.1:${port}
  default_backend app

backend app
  server app 127.0.0.1:${upstreamPort}
`;
}

/** Caddy (Debian), admin API off, no HTTPS, plain reverse_proxy (keep-alive pool by default). */
export function caddyConf(port, upstreamPort) {
  return `{
  admin off
  auto_https off
  log {
    level ERROR
  }
}

http://127.0.0.1:${port} {
  reverse_proxy 127.0.0.1:${upstreamPort}
}
`;
}
