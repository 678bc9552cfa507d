#!/usr/bin/env node
/**
 * Peer for bench:proxy: the smallest sensible Node reverse proxy on undici, no metrics.
 * `node:http` server in front, an undici Pool (keep-alive, no pipelining) behind, raw header arrays
 * both ways, bodies streamed. It is the floor of the sidecar's previous design.
 *
 *   node bench/peers/undici-proxy.mjs <listenPort> <upstreamPort>
 */
import http from 'node:http';
import { Pool } from 'undici';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { pipelining: 1, keepAliveTimeout: 4000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

const server = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if ((lower === 'content-length' && raw[i + 1] !== '0') || lower === 'transfer-encoding') hasBody = true;
    if (!HOP.has(lower)) headers.push(raw[i], raw[i + 1]);
  }
  let controller;
  pool.dispatch(
    { path: req.url, method: req.method, headers, body: hasBody ? req : null },
    {
      onRequestStart: (c) => (controller = c),
      onResponseStart: (_c, code, h, msg) => {
        const out = [];
        for (const k in h) {
          if (HOP.has(k)) continue;
          const v = h[k];
          if (Array.isArray(v)) for (const x of v) out.push(k, x);
          else out.push(k, v);
        }
        res.writeHead(code, msg, out);
      },
      onResponseData: (c, chunk) => {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd: () => res.end(),
      onResponseError: () => {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      },
    },
  );
  res.on('close', () => {
    if (!res.writableFinished && controller && !controller.aborted) controller.abort(new Error('client closed'));
  });
});
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
