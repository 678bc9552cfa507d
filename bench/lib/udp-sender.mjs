#!/usr/bin/env node
/**
 * StatsD load generator: sends multi-line DogStatsD packets of the benchmark mix (bench/lib/statsd.mjs)
 * to 127.0.0.1:<port> as fast as it can (or at `--rate` lines/s), until `--lines` lines are sent
 * or `--seconds` pass.
 * Distinct packets are built up front and cycled. Prints one JSON object:
 * {packets, lines, bytes, start_ms, end_ms, ms, lines_per_s, send_errors} (start/end in ms since
 * the epoch, so they can be lined up with another process's clock readings).
 *
 *   node bench/lib/udp-sender.mjs --port 9125 [--lines 5000000] [--seconds 15] [--distinct 2000]
 *                                 [--max-bytes 1400] [--seed 42] [--rate <lines/s>]
 */
import { parseArgs } from 'node:util';
import { mixPackets, udpClient } from './statsd.mjs';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    lines: { type: 'string', default: '5000000' },
    seconds: { type: 'string', default: '15' },
    distinct: { type: 'string', default: '2000' },
    'max-bytes': { type: 'string', default: '1400' },
    seed: { type: 'string', default: '42' },
    batch: { type: 'string', default: '64' },
    rate: { type: 'string' },
  },
});
const maxLines = Number(opts.lines);
const maxMs = Number(opts.seconds) * 1000;
const batch = Number(opts.batch);
/** Lines per second when paced; unset = as fast as possible. */
const rate = opts.rate === undefined ? undefined : Number(opts.rate);
const { packets, lines: perPacket } = mixPackets(Number(opts.distinct), Number(opts['max-bytes']), Number(opts.seed));
const sock = await udpClient(Number(opts.port));

const epoch = () => performance.timeOrigin + performance.now();
let sentPackets = 0;
let sentLines = 0;
let sentBytes = 0;
let sendErrors = 0;
let k = 0;
const start = epoch();
const deadline = start + maxMs;

await new Promise((resolve) => {
  const onSent = (err) => {
    if (err) sendErrors++;
  };
  const step = () => {
    const now = epoch();
    if (sentLines >= maxLines || now >= deadline) {
      resolve();
      return;
    }
    // Paced: send what is due by now (bursts about every millisecond), else wait for the next tick.
    const limit = rate === undefined ? maxLines : Math.min(maxLines, ((now - start) / 1000) * rate);
    if (sentLines >= limit) {
      setTimeout(step, 1);
      return;
    }
    // A batch, then continue when its last datagram has left (keeps libuv's queue short).
    for (let b = 0; b < batch && sentLines < limit; b++) {
      const buf = packets[k];
      sentLines += perPacket[k];
      sentBytes += buf.length;
      sentPackets++;
      k = k + 1 === packets.length ? 0 : k + 1;
      if (b === batch - 1 || sentLines >= limit) {
        sock.send(buf, (err) => {
          onSent(err);
          step();
        });
      } else {
        sock.send(buf, onSent);
      }
    }
  };
  step();
});
const end = epoch();
sock.close();
process.stdout.write(
  `${JSON.stringify({
    packets: sentPackets,
    lines: sentLines,
    bytes: sentBytes,
    start_ms: start,
    end_ms: end,
    ms: end - start,
    lines_per_s: Math.round(sentLines / ((end - start) / 1000)),
    send_errors: sendErrors,
  })}\n`,
);
