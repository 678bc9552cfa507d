/**
 * The built sidecar (dist/main.js, its own process) against the real API server, for the test:k8s
 * suites; and what they wait with: bounded polls on a condition, never a fixed sleep.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { MAIN_JS, spawnSidecar, type Child, type Env } from '../helpers/sidecar';
import { freePort, request } from '../helpers/net';

export type { Child };

/** Polls `check` until it returns something other than undefined, at most `attempts` times 100 ms apart. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, attempts = 600): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const found = await check().catch(() => undefined);
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not after ${attempts} attempts`);
}

/** A sidecar with Kubernetes auth on, using `kubeconfig`, metrics on both ports. */
export function kubeSidecar(kubeconfig: string, env: Env = {}): Promise<Child> {
  return spawnSidecar({
    SERVE_PROMETHEUS_ENDPOINT: 'true',
    METRICS_KUBERNETES_AUTH: 'true',
    KUBECONFIG: kubeconfig,
    LOG_LEVEL: 'info',
    ...env,
  });
}

/** /readyz of the metrics port: status and body. */
export async function readyz(c: Child): Promise<{ status: number; text: string }> {
  const r = await request(c.metricsPort, '/readyz');
  return { status: r.status, text: r.text };
}

/** Waits until the sidecar's /readyz answers 200. */
export function untilReady(c: Child): Promise<true> {
  return until('sidecar /readyz 200', async () => ((await readyz(c)).status === 200 ? true : undefined));
}

export async function stop(c: Child | undefined): Promise<void> {
  if (!c) return;
  c.proc.kill('SIGTERM');
  await c.exited;
}

/** A GET (or `method`) of `path` with a bearer token. */
export async function scrape(port: number, token?: string, path = '/debug/metrics', method = 'GET') {
  return request(port, path, { method, headers: token ? { authorization: `Bearer ${token}` } : {}, body: method === 'POST' ? 'x' : undefined });
}

/** Processes runToExit started that have not exited yet: killed by killUnexited() (a test that failed before they exited). */
const unexited = new Set<import('node:child_process').ChildProcess>();

/** SIGKILLs what runToExit started and has not seen exit (an afterAll's; nothing when every test passed). */
export function killUnexited(): void {
  for (const p of unexited) p.kill('SIGKILL');
  unexited.clear();
}

/** Runs the built sidecar until it exits; resolves its exit code and everything it wrote. */
export async function runToExit(env: Env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const port = String(await freePort());
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN_JS], {
      env: { PATH: process.env.PATH ?? '', STATSD_PORT: '0', LISTEN_PORT: '0', PROMETHEUS_PORT: port, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    unexited.add(proc);
    proc.on('close', (code) => {
      unexited.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A TCP relay to 127.0.0.1:`port` that counts the connections made through it (each is one TLS connection to the API server). */
export async function countingRelay(port: number): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => (s === client ? upstream : client).destroy());
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * The same ServiceAccount token with its times moved: `exp` (and `iat`/`nbf` before it) set to
 * `expiresAt` (seconds since the epoch), signed again with the API server's ServiceAccount signing
 * key. Every other claim (issuer, audience, the ServiceAccount's name and uid) is the API server's
 * own, so the only thing it can refuse is the time. (1.20's TokenRequest refuses an
 * expirationSeconds below 600, so a token that expires within a test cannot be asked for.)
 */
export function withExpiry(token: string, expiresAt: number, signingKeyFile: string): string {
  const [header, payload] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  // Issued 10 minutes before it expires, or now if that is earlier (a token issued later is not valid yet).
  const iat = Math.min(expiresAt - 600, Math.floor(Date.now() / 1000));
  const moved = b64url(JSON.stringify({ ...claims, iat, nbf: iat, exp: expiresAt }));
  const signature = crypto.sign('RSA-SHA256', Buffer.from(`${header}.${moved}`), fs.readFileSync(signingKeyFile));
  return `${header}.${moved}.${b64url(signature)}`;
}
