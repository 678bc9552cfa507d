#!/usr/bin/env node
/**
 * The null StatsD sink: a UDP socket that only receives packets and counts their lines (split on
 * '\n', empty lines skipped, as the sidecar does), with the same receive buffer the sidecar asks
 * for. The ceiling a StatsD server in Node can reach on one core. Its counts are served as JSON on
 * GET http://127.0.0.1:<http-port>/count.
 *
 *   node bench/lib/udp-sink.mjs --port <udp port> --http-port <tcp port>
 */
import dgram from 'node:dgram';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    'http-port': { type: 'string' },
    'recv-buffer': { type: 'string', default: String(8 * 1024 * 1024) },
  },
});

let packets = 0;
let lines = 0;
let bytes = 0;

const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: Number(opts['recv-buffer']) });
udp.on('message', (msg) => {
  packets++;
  bytes += msg.length;
  let start = 0;
  while (start < msg.length) {
    let end = msg.indexOf(10, start);
    if (end === -1) end = msg.length;
    if (end > start) lines++;
    start = end + 1;
  }
});
udp.bind(Number(opts.port), '127.0.0.1');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ packets, lines, bytes, recv_buffer: udp.getRecvBufferSize() }));
});
server.listen(Number(opts['http-port']), '127.0.0.1');

const shutdown = () => {
  udp.close();
  server.close();
  setTimeout(() => process.exit(0), 100).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
