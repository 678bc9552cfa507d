/**
 * The attack classes of issue 9 for `npm run bench:attack` (bench/attack.mjs): traffic generators,
 * raw senders, a stand-in application that counts what reaches it, and the memory limit the
 * chart promises. Everything is bounded in count; nothing here sleeps for a fixed time.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { ROOT } from './report.mjs';
import { prng } from './statsd.mjs';

const UNITS = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9, '': 1 };

/**
 * The sidecar container's default memory limit: `sidecar.resources.limits.memory` of the chart's
 * values.yaml, or 256Mi (what issue 9 asks the chart to set) while the chart sets none.
 */
export function memoryLimit() {
  try {
    const values = YAML.parse(fs.readFileSync(path.join(ROOT, 'charts', 'metrics-sidecar', 'values.yaml'), 'utf8'));
    const q = values?.sidecar?.resources?.limits?.memory;
    if (q !== undefined) {
      const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G|)$/.exec(String(q).trim());
      if (m) return { bytes: Number(m[1]) * UNITS[m[2]], quantity: String(q), from: 'values.yaml' };
    }
  } catch {
    // unreadable: the default
  }
  return { bytes: 256 * 1024 ** 2, quantity: '256Mi', from: 'default (values.yaml sets none)' };
}

/** Peak (VmHWM) and current (VmRSS) resident memory of a process, bytes; null once it is gone. */
export function rssOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
    return { peak: kb('VmHWM'), now: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** A small deterministic PRNG (mulberry32, bench/lib/statsd.mjs): attacks are the same on every run. */
export { prng };

export function letters(n, rand) {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(rand() * 26));
  return s;
}

export function* take(n, make) {
  for (let i = 0; i < n; i++) yield make(i);
}

/** What issue 9 lists for finding 2, plus the usual path-confusion families: one list with test/adversarial. */
const spellings = JSON.parse(fs.readFileSync(new URL('../../test/fixtures/debug-spellings.json', import.meta.url), 'utf8'));
export const DOT_SPELLINGS = [...spellings.from_issue, ...spellings.more];

/**
 * The application stand-in: `/hello`, `/api/reports/summary` and `/reset-password/*` answer 200,
 * its own `/debug/` tree answers 200 and is counted (a leak), anything else 404. It switches
 * protocols for any Upgrade it is offered, and counts them by protocol.
 */
export async function startApp() {
  const seen = { requests: 0, debug: 0, upgrades: {}, attackIds: 0 };
  const server = http.createServer((req, res) => {
    seen.requests++;
    if (req.headers['x-attack-id']) seen.attackIds++;
    const p = (req.url ?? '/').split('?')[0];
    if (/^\/debug(\/|$)/.test(p)) {
      seen.debug++;
      res.end('APP-DEBUG-TREE-REACHED\n');
    } else if (p === '/hello' || p === '/api/reports/summary' || p.startsWith('/reset-password/') || p.startsWith('/during/')) {
      res.end('ok\n');
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  server.on('upgrade', (req, socket) => {
    const proto = String(req.headers.upgrade ?? '').toLowerCase();
    seen.upgrades[proto] = (seen.upgrades[proto] ?? 0) + 1;
    if (/^\/debug(\/|$)/.test(req.url ?? '')) seen.debug++;
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`);
  });
  server.keepAliveTimeout = 5000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    reset() {
      Object.assign(seen, { requests: 0, debug: 0, upgrades: {}, attackIds: 0 });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One GET; resolves with the status (0 on a socket error). */
export function get(port, pathname, agent = false) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

/** GETs every path with `concurrency` keep-alive connections; resolves with {status: count}. */
export async function flood(port, paths, concurrency = 8) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = {};
  const it = paths[Symbol.iterator]();
  const worker = async () => {
    for (let n = it.next(); !n.done; n = it.next()) {
      const s = await get(port, n.value, agent);
      statuses[s] = (statuses[s] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return statuses;
}

/** Sends raw bytes; resolves with the status of the answer (0 when none) once the peer closes or after `ms`. */
export function raw(port, bytes, ms = 1500) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => sock.destroy(), ms);
    sock.on('data', (c) => (data += c.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0));
    });
    sock.write(bytes);
  });
}

/** Runs `fn` over `items` with `concurrency` at a time. */
export async function each(items, concurrency, fn) {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let n = it.next(); !n.done; n = it.next()) await fn(n.value);
    }),
  );
}

/** Lines joined into ~256 KB chunks for a TCP stream. */
export function* chunked(lines) {
  let buf = '';
  for (const l of lines) {
    buf += `${l}\n`;
    if (buf.length > 256 * 1024) {
      yield buf;
      buf = '';
    }
  }
  if (buf !== '') yield buf;
}

/** Writes the chunks to a TCP port with backpressure, then closes; resolves when closed (or on error). */
export function sendTcp(port, chunks) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => resolve());
    sock.on('close', () => resolve());
    sock.on('connect', () => {
      const it = chunks[Symbol.iterator]();
      const pump = () => {
        for (;;) {
          const n = it.next();
          if (n.done) return void sock.end();
          if (!sock.write(n.value)) return void sock.once('drain', pump);
        }
      };
      pump();
    });
  });
}

/**
 * Opens `n` TCP connections, `batch` at a time, each writing `payload` and then holding the
 * connection open (a refused one closes, and counts as opened). Resolves once all are opened, with
 * `close()`, which destroys them all and resolves when each has closed.
 */
export async function holdTcp(port, n, payload, batch = 100) {
  const sockets = [];
  const one = () =>
    new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sockets.push(sock);
      sock.on('error', () => undefined);
      sock.on('close', () => resolve());
      sock.on('connect', () => {
        sock.write(payload);
        resolve();
      });
    });
  for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, one));
  return {
    close: () =>
      Promise.all(
        sockets.map(
          (s) =>
            new Promise((resolve) => {
              if (s.closed) return resolve();
              s.once('close', resolve);
              s.destroy();
            }),
        ),
      ),
  };
}

export function sendUdp(port, payload) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.send(payload, port, '127.0.0.1', () => {
      s.close();
      resolve();
    });
  });
}

/**
 * A merge target serving ~`bytes` of valid exposition: all but the last line at once, then the
 * last line once that has been written and `pauseMs` passed, calling `onComplete` then.
 */
export async function startBigTarget(bytes, pauseMs = 400) {
  const lines = ['# HELP app_cache_entries Entries per cache shard.', '# TYPE app_cache_entries gauge'];
  let size = 100;
  for (let i = 0; size < bytes - 200; i++) {
    const line = `app_cache_entries{shard="${String(i).padStart(7, '0')}",region="eu-west-1",cache="sessions-and-other-things"} ${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  const head = `${lines.join('\n')}\n`;
  const tail = 'app_cache_entries{shard="last",region="eu-west-1",cache="sessions-and-other-things"} 1\n';
  const t = { onComplete: () => undefined, bytes: Buffer.byteLength(head) + Buffer.byteLength(tail) };
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': String(t.bytes) });
    res.write(head, () => setTimeout(() => res.end(tail, () => t.onComplete()), pauseMs));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.url = `http://127.0.0.1:${server.address().port}/metrics`;
  t.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return t;
}
