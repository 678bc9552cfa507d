/**
 * metrics_sidecar_statsd_udp_receive_drops_total: the kernel's count of StatsD datagrams dropped
 * because the socket's receive buffer was full. Tested for real: a small receive buffer
 * (STATSD_RECEIVE_BUFFER_BYTES), a burst of datagrams sent by another process while this
 * process's event loop is blocked (spawnSync), then the drops in the metric and in status.json.
 */
import { spawnSync } from 'node:child_process';
import { findSocket } from '../../src/ingest/statsd/udp-drops';
import { startSidecar } from '../helpers/sidecar';
import { freePort, request } from '../helpers/net';
import { parseExposition, value } from '../helpers/exposition';

const PROC_UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  411: 0100007F:23A5 00000000:0000 07 00000000:00000300 00:00000000 00000000  1000        0 55501 2 0000000000000000 17
  412: 00000000:23A5 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 55502 2 0000000000000000 4
  900: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 1234 2 0000000000000000 0
`;
const PROC_UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000000000000000000001000000:23A5 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 777 2 0000000000000000 9
`;

describe('findSocket (/proc/net/udp{,6} parsing)', () => {
  it('should find the socket by inode, with its drops and receive queue', () => {
    expect(findSocket(PROC_UDP, 9125, 55502)).toEqual({ drops: 4, rxQueueBytes: 0 });
    expect(findSocket(PROC_UDP, 9125, 55501)).toEqual({ drops: 17, rxQueueBytes: 0x300 });
  });
  it('should fall back to the first socket on the port without an inode', () => {
    expect(findSocket(PROC_UDP, 9125, undefined)).toEqual({ drops: 17, rxQueueBytes: 0x300 });
    expect(findSocket(PROC_UDP6, 9125, 1)).toEqual({ drops: 9, rxQueueBytes: 0 });
  });
  it('should find nothing for another port or a garbled file', () => {
    expect(findSocket(PROC_UDP, 8125, undefined)).toBeUndefined();
    expect(findSocket('garbage\nmore garbage\n', 9125, undefined)).toBeUndefined();
  });
});

describe('UDP receive drops, overflowing a small receive buffer', () => {
  it('should count the datagrams the kernel dropped, in the metric and in status.json', async () => {
    const statsdPort = await freePort();
    const sc = await startSidecar({ STATSD_PORT: String(statsdPort), STATSD_RECEIVE_BUFFER_BYTES: '4096' });
    try {
      const before = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      expect(value(before, 'metrics_sidecar_statsd_udp_receive_drops_total', {})).toBe(0);

      // 2,000 datagrams from another process while this event loop (the sidecar's) is blocked:
      // nothing reads the socket, so its few-KiB buffer overflows.
      const sender = `
        const s = require('node:dgram').createSocket('udp4');
        let sent = 0;
        const next = () => { if (sent++ >= 2000) return s.close(); s.send('burst_total:1|c', ${statsdPort}, '127.0.0.1', next); };
        next();`;
      const r = spawnSync(process.execPath, ['-e', sender], { stdio: 'inherit' });
      expect(r.status).toBe(0);

      const after = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
      const drops = value(after, 'metrics_sidecar_statsd_udp_receive_drops_total', {});
      expect(drops).toBeGreaterThan(0);
      // What was not dropped was read: received + dropped = sent.
      const accepted = value(after, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' }) ?? 0;
      expect(accepted + (drops ?? 0)).toBeLessThanOrEqual(2000);
      expect(accepted).toBeGreaterThan(0);

      const doc = JSON.parse((await request(sc.metricsPort, '/status.json')).text);
      expect(doc.sources.statsd.udp.receive_drops_total).toBeGreaterThanOrEqual(drops!);
      expect(doc.sources.statsd.udp.receive_buffer_bytes).toBeLessThan(64 * 1024);
    } finally {
      await sc.stop();
    }
  });
});
