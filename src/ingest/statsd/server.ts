/**
 * StatsD listeners: UDP (one packet = one or more lines) and TCP (newline-delimited stream), both
 * on STATSD_HOST (loopback by default: only the pod's own containers can send).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../log/logger';
import type { StatsdRecorder } from './recorder';
import { ListenError, listening } from '../../server/listen';

/** A TCP line longer than this is garbage (or an attack): it is dropped, and counted malformed. */
const MAX_TCP_LINE = 64 * 1024;
/** Default SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max and doubles it). */
export const DEFAULT_RECV_BUFFER = 8 * 1024 * 1024;
const TICK_MS = 1000;

export class StatsdServer {
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: StatsdRecorder,
    private readonly logger: Logger,
    private readonly recvBufferBytes = DEFAULT_RECV_BUFFER,
  ) {}

  /** The bound UDP socket (the status page reads its kernel drop count), undefined until started. */
  get udpSocket(): dgram.Socket | undefined {
    return this.udp;
  }

  async start(host: string, port: number): Promise<void> {
    const udp = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: this.recvBufferBytes });
    udp.on('message', (msg) => this.store.handlePacket(msg.toString('utf8')));
    try {
      await listening(udp, (ready) => udp.bind(port, host, ready));
    } catch (err) {
      udp.close();
      throw new ListenError('STATSD_PORT', port, 'STATSD_HOST', host, err, 'UDP');
    }
    // Errors once bound (rare: the socket is loopback and receive-only) are logged; the bind's own went to the caller.
    udp.on('error', (err) => this.logger.error('statsd udp socket failed', { err }));
    this.udp = udp;

    const tcp = net.createServer((sock) => {
      this.sockets.add(sock);
      let buf = '';
      // Inside an over-long line: its remainder is skipped up to the next newline.
      let skipping = false;
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        if (skipping) {
          const nl = chunk.indexOf('\n');
          if (nl === -1) return;
          skipping = false;
          chunk = chunk.slice(nl + 1);
        }
        buf += chunk;
        const nl = buf.lastIndexOf('\n');
        if (nl !== -1) {
          this.store.handlePacket(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (buf.length > MAX_TCP_LINE) {
          this.store.countMalformed();
          buf = '';
          skipping = true;
        }
      });
      sock.on('end', () => {
        if (buf !== '') this.store.handlePacket(buf);
        buf = '';
      });
      sock.on('error', () => sock.destroy());
      sock.on('close', () => this.sockets.delete(sock));
    });
    try {
      await listening(tcp, (ready) => tcp.listen(port, host, ready));
    } catch (err) {
      tcp.close();
      throw new ListenError('STATSD_PORT', port, 'STATSD_HOST', host, err, 'TCP');
    }
    this.tcp = tcp;
    this.timer = setInterval(() => this.store.tick(), TICK_MS);
    this.timer.unref();
    this.logger.info('statsd listening', { host, port, transports: ['udp', 'tcp'] });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.udp?.close();
    this.tcp?.close();
    for (const s of this.sockets) s.destroy();
  }
}
