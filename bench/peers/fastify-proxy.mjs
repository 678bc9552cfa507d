#!/usr/bin/env node
/**
 * Peer for bench:proxy: `@fastify/http-proxy` on fastify 5 (undici underneath, its defaults),
 * logging off.
 *
 *   node bench/peers/fastify-proxy.mjs <listenPort> <upstreamPort>
 */
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const app = Fastify({ logger: false, keepAliveTimeout: 65000 });
await app.register(proxy, { upstream: `http://127.0.0.1:${upstreamPort}` });
await app.listen({ port: listenPort, host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
