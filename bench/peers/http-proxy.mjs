#!/usr/bin/env node
/**
 * Peer for bench:proxy: node-http-proxy (`http-proxy`), the classic Node reverse proxy, with a
 * keep-alive agent to the upstream (its documented setup for performance).
 *
 *   node bench/peers/http-proxy.mjs <listenPort> <upstreamPort>
 */
import http from 'node:http';
import httpProxy from 'http-proxy';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  if (res.headersSent) res.destroy();
  else res.writeHead(502).end();
});
const server = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => proxy.web(req, res));
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
