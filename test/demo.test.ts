/**
 * `npm run demo` (after the build): the demo comes up, traffic flows, the printed lines hold; one
 * Ctrl-C stops everything quietly; a taken port is named by its DEMO_*_PORT variable; nothing is
 * left running after any of it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, request } from './helpers/net';
import { parseExposition, value } from './helpers/exposition';

const DEMO = path.join(__dirname, '..', 'dist', 'demo', 'main.js');

/** Processes whose environment holds `marker` (the sidecars the demo started get their ports in their env). */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(marker)) pids.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** Every process below `pid` (through /proc's parent links). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z';
  } catch {
    return false;
  }
};

function startDemo(env: Record<string, string>) {
  // Its own process group, so a "Ctrl-C" can be sent to the whole group as a terminal does.
  const proc = spawn(process.execPath, [DEMO], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('close', r));
  return { proc, exited, output: () => out };
}

describe('demo', () => {
  it('should start the app and both sidecars on 127.0.0.1, show traffic, and stop everything on one Ctrl-C without a second-signal warning', async () => {
    const [appPort, webPort, workerPort] = [await freePort(), await freePort(), await freePort()];
    const demo = startDemo({ DEMO_APP_PORT: String(appPort), DEMO_WEB_PORT: String(webPort), DEMO_WORKER_PORT: String(workerPort) });
    let tree: number[];
    try {
      for (let i = 0; i < 200 && !demo.output().includes('Traffic is flowing'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(demo.output()).toContain('Traffic is flowing');
      expect(demo.output()).toContain(`curl -s http://127.0.0.1:${webPort}/debug/metrics`);
      tree = descendants(demo.proc.pid!);
      expect(tree.length).toBeGreaterThanOrEqual(2);
      await new Promise((r) => setTimeout(r, 1000));

      const web = parseExposition((await request(webPort, '/debug/metrics')).text);
      expect(value(web, 'flask_http_request_total')).toBeGreaterThan(3);
      expect((await request(webPort, '/users/42')).status).toBe(200);
      expect((await request(webPort, '/debug/secret')).status).toBe(404);
      // The app itself does serve that page: the 404 above is the sidecar hiding it.
      expect((await request(appPort, '/debug/secret')).status).toBe(200);

      const worker = parseExposition((await request(workerPort, '/debug/metrics')).text);
      expect(worker.samples.find((s) => s.name === 'metrics_sidecar_info')?.labels).toMatchObject({ role: 'worker', app_name: 'demo-worker' });

      // Loopback only: another address of this machine is refused (when it has one).
      const other = Object.values(os.networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      if (other) {
        for (const port of [appPort, webPort, workerPort]) {
          const refused = await new Promise<boolean>((resolve) =>
            net
              .connect(port, other)
              .once('connect', function (this: net.Socket) {
                this.destroy();
                resolve(false);
              })
              .once('error', () => resolve(true)),
          );
          expect(refused).toBe(true);
        }
      }
    } finally {
      process.kill(-demo.proc.pid!, 'SIGINT'); // what a terminal's Ctrl-C does: the whole foreground group
    }
    expect(await demo.exited).toBe(0);
    expect(demo.output()).not.toContain('second signal');
    expect(demo.output()).not.toMatch(/"level":"(warn|error|fatal)"/);
    for (let i = 0; i < 50 && tree.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(tree.filter(alive)).toEqual([]);
    expect(processesWith(`LISTEN_PORT=${webPort}`)).toEqual([]);
  }, 60000);

  it.each(['DEMO_APP_PORT', 'DEMO_WEB_PORT', 'DEMO_WORKER_PORT'])(
    'should name %s when its port is taken, and leave nothing running',
    async (variable) => {
      const ports: Record<string, number> = { DEMO_APP_PORT: await freePort(), DEMO_WEB_PORT: await freePort(), DEMO_WORKER_PORT: await freePort() };
      const holder = net.createServer();
      await new Promise<void>((r) => holder.listen(ports[variable], '127.0.0.1', r));
      try {
        const demo = startDemo(Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])));
        expect(await demo.exited).toBe(1);
        expect(demo.output()).toContain(`port ${ports[variable]} on 127.0.0.1 is already in use; choose another with ${variable}=<port>`);
        expect(demo.output()).not.toContain('ReferenceError');
        expect(processesWith(`LISTEN_PORT=${ports.DEMO_WEB_PORT}`)).toEqual([]);
        expect(processesWith(`PROMETHEUS_PORT=${ports.DEMO_WORKER_PORT}`)).toEqual([]);
      } finally {
        await new Promise((r) => holder.close(r));
      }
    },
    30000,
  );

  it.each(['abc', '-1', '1e12'])('should refuse DEMO_DURATION_S=%s before starting anything', async (value) => {
    const demo = startDemo({ DEMO_APP_PORT: String(await freePort()), DEMO_DURATION_S: value });
    expect(await demo.exited).toBe(1);
    expect(demo.output()).toContain(`DEMO_DURATION_S=${JSON.stringify(value)} is not a number of seconds`);
  });

  it('should stop everything when a sidecar dies, naming it', async () => {
    const [appPort, webPort, workerPort] = [await freePort(), await freePort(), await freePort()];
    const demo = startDemo({ DEMO_APP_PORT: String(appPort), DEMO_WEB_PORT: String(webPort), DEMO_WORKER_PORT: String(workerPort) });
    for (let i = 0; i < 200 && !demo.output().includes('Traffic is flowing'); i++) await new Promise((r) => setTimeout(r, 100));
    const [worker] = processesWith(`PROMETHEUS_PORT=${workerPort}`);
    expect(worker).toBeDefined();
    const tree = descendants(demo.proc.pid!);
    process.kill(worker, 'SIGKILL');
    expect(await demo.exited).toBe(1);
    expect(demo.output()).toContain(`the worker sidecar (port ${workerPort}, DEMO_WORKER_PORT) exited`);
    for (let i = 0; i < 50 && tree.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(tree.filter(alive)).toEqual([]);
  }, 60000);
});
