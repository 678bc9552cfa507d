#!/usr/bin/env node
/**
 * Peer for bench:proxy: an L4 byte pipe in Node. Each client connection gets its own upstream
 * connection and bytes are piped both ways; no HTTP is parsed at all. It is the floor for any
 * Node proxy: the cost of the sockets and the event loop alone.
 *
 *   node bench/peers/l4-pipe.mjs <listenPort> <upstreamPort>
 */
import net from 'node:net';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  const done = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', done).on('close', done);
  upstream.on('error', done).on('close', done);
  client.pipe(upstream).pipe(client);
});
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
