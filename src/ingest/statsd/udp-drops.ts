/**
 * The kernel's receive drops for the StatsD UDP socket. When datagrams arrive faster than the
 * event loop reads them, the socket's receive buffer fills and the kernel discards what no longer
 * fits: the sidecar never sees those lines, so no counter of its own can count them. Linux keeps
 * a per-socket count (`sk_drops`), shown as the last column of /proc/net/udp and /proc/net/udp6;
 * this module reads it for our socket, found by its inode (from /proc/self/fd) or, failing that,
 * by its local address and port.
 *
 * Exported as metrics_sidecar_statsd_udp_receive_drops_total, read when a scrape or the status
 * page asks (one read of a small /proc file), never on a timer.
 */
import fs from 'node:fs';
import type dgram from 'node:dgram';
import { Counter, type Registry } from '../../metrics/registry';

export const UDP_DROPS_METRIC = 'metrics_sidecar_statsd_udp_receive_drops_total';

export interface UdpSocketStats {
  /** Datagrams the kernel dropped for this socket since it was opened. */
  drops: number;
  /** Bytes waiting in the receive queue right now. */
  rxQueueBytes: number;
}

interface Identity {
  family: 'udp4' | 'udp6';
  port: number;
  inode: number | undefined;
}

/** Reads /proc/net/udp{,6} for one bound socket; undefined when not on Linux or not found. */
export class UdpDropReader {
  private identity: Identity | undefined;

  constructor(
    private readonly socket: () => dgram.Socket | undefined,
    private readonly procRoot = '/proc',
  ) {}

  read(): UdpSocketStats | undefined {
    const id = this.identify();
    if (id === undefined) return undefined;
    let text: string;
    try {
      text = fs.readFileSync(`${this.procRoot}/net/${id.family === 'udp6' ? 'udp6' : 'udp'}`, 'latin1');
    } catch {
      return undefined;
    }
    return findSocket(text, id.port, id.inode);
  }

  private identify(): Identity | undefined {
    const sock = this.socket();
    if (sock === undefined) {
      this.identity = undefined;
      return undefined;
    }
    if (this.identity !== undefined) return this.identity;
    let addr;
    try {
      addr = sock.address();
    } catch {
      return undefined; // not bound (yet, or any more)
    }
    this.identity = { family: addr.family === 'IPv6' ? 'udp6' : 'udp4', port: addr.port, inode: socketInode(sock, this.procRoot) };
    return this.identity;
  }
}

/**
 * The socket's inode, through its file descriptor. Node keeps the libuv handle (which knows the
 * fd) in a symbol-keyed state object; that is not a public API (and `_handle` is deprecated),
 * hence the care: without it, the port alone identifies the socket.
 */
function socketInode(sock: dgram.Socket, procRoot: string): number | undefined {
  let fd: unknown;
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    const state = (sock as unknown as Record<symbol, unknown>)[sym];
    if (state && typeof state === 'object' && 'handle' in state) {
      fd = (state as { handle?: { fd?: unknown } }).handle?.fd;
      break;
    }
  }
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`${procRoot}/self/fd/${fd}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finds a socket in the text of /proc/net/udp{,6}: by inode when known, else the first socket
 * bound to `port`. Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when
 * retrnsmt uid timeout inode ref pointer drops.
 */
export function findSocket(text: string, port: number, inode: number | undefined): UdpSocketStats | undefined {
  const lines = text.split('\n');
  let byPort: UdpSocketStats | undefined;
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].trim().split(/\s+/);
    if (f.length < 13) continue;
    const colon = f[1].lastIndexOf(':');
    if (colon === -1 || parseInt(f[1].slice(colon + 1), 16) !== port) continue;
    const queues = f[4].split(':');
    const stats = { drops: Number(f[12]), rxQueueBytes: parseInt(queues[1] ?? '0', 16) };
    if (!Number.isFinite(stats.drops)) continue;
    if (inode !== undefined && Number(f[9]) === inode) return stats;
    byPort ??= stats;
  }
  // Without an inode, or when the inode was not listed (another network namespace view), the port decides.
  return byPort;
}

/** Registers the drop counter, refreshed from /proc before every render. */
export function registerUdpDropsMetric(registry: Registry, reader: UdpDropReader): void {
  const family = registry.register(
    new Counter({
      name: UDP_DROPS_METRIC,
      help: 'StatsD datagrams the kernel dropped because the UDP socket receive buffer was full (Linux, from /proc/net/udp).',
    }),
  );
  const series = family.child([]);
  registry.addCollector(() => {
    const s = reader.read();
    if (s !== undefined && series) series.value = s.drops;
  });
}
