/**
 * `npm run demo` (after the build): the demo comes up, traffic flows, StatsD lines from the app
 * and its worker reach the sidecars, both sidecars merge the app's own /metrics, the status pages
 * answer, the printed lines hold; one Ctrl-C stops everything quietly; a taken port (TCP, or UDP
 * for StatsD) is named by its DEMO_*_PORT variable; nothing is left running after any of it.
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, request } from './helpers/net';
import { parseExposition, value, type Parsed } from './helpers/exposition';

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

const VARIABLES = ['DEMO_APP_PORT', 'DEMO_WEB_PORT', 'DEMO_WORKER_PORT', 'DEMO_WEB_STATSD_PORT', 'DEMO_WORKER_STATSD_PORT'] as const;
type Ports = Record<(typeof VARIABLES)[number], number>;

/** A free port for each DEMO_*_PORT (the StatsD defaults, 9125 and 9126, would meet other suites' sidecars). */
async function demoPorts(): Promise<Ports> {
  const ports = {} as Ports;
  for (const v of VARIABLES) ports[v] = await freePort();
  return ports;
}

const asEnv = (ports: Ports): Record<string, string> => Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)]));

/** Polls `probe` until it returns something `ok` takes, at most ~20 s; returns its last answer for the assertions to judge. */
async function until<T>(probe: () => T | Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function scrape(port: number): Promise<Parsed & { text: string }> {
  const text = (await request(port, '/debug/metrics')).text;
  return { ...parseExposition(text), text };
}

/** `promtool check metrics`: exit status and every line it printed (lint findings included). */
function promtool(text: string): { status: number | null; lines: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, lines: `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '') };
}

/** True when this UDP port on 127.0.0.1 can be bound (nothing holds it). */
function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function startDemo(env: Record<string, string>) {
  // Its own process group, so a "Ctrl-C" can be sent to the whole group as a terminal does.
  const proc = spawn(process.execPath, [DEMO], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('close', r));
  const demo = { proc, exited, output: () => out };
  started.push(demo);
  return demo;
}

const started: { proc: ReturnType<typeof spawn>; exited: Promise<number | null> }[] = [];
afterEach(async () => {
  // A failed assertion must not leave a demo running (holding its ports and its sidecars): Ctrl-C it.
  for (const d of started.splice(0)) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) continue;
    process.kill(-d.proc.pid!, 'SIGINT');
    await d.exited;
  }
});

describe('demo', () => {
  it('should start the app and both sidecars on 127.0.0.1 with StatsD and merging, lead to both status pages, and stop everything on one Ctrl-C without a second-signal warning', async () => {
    const ports = await demoPorts();
    const { DEMO_APP_PORT: appPort, DEMO_WEB_PORT: webPort, DEMO_WORKER_PORT: workerPort } = ports;
    const demo = startDemo(asEnv(ports));
    let tree: number[];
    try {
      await until(demo.output, (o) => o.includes('Traffic is flowing'));
      const out = demo.output();
      expect(out).toContain('Traffic is flowing');
      expect(out).toContain(`curl -s http://127.0.0.1:${webPort}/debug/metrics`);
      expect(out).toContain(`curl -s http://127.0.0.1:${workerPort}/debug/metrics`);
      // The printed lines lead to both status pages, and say which families come from where.
      expect(out).toMatch(new RegExp(`^ +http://127\\.0\\.0\\.1:${webPort}/debug/ +the web sidecar's`, 'm'));
      expect(out).toMatch(new RegExp(`^ +http://127\\.0\\.0\\.1:${workerPort}/ +the worker sidecar's`, 'm'));
      expect(out).toMatch(
        /From StatsD: github_api_call_latency and graphql_requests_total \(web\), github_webhook_latency\s+and github_api_call_latency \(worker\)/,
      );
      expect(out).toMatch(/merged from the app's \/metrics \(MERGE_TARGETS\):\s+demo_app_jobs_processed_total/);
      expect(out).toContain(`> /dev/udp/127.0.0.1/${ports.DEMO_WEB_STATSD_PORT}`);
      tree = descendants(demo.proc.pid!);
      expect(tree.length).toBeGreaterThanOrEqual(2);

      // The web sidecar: RED from the traffic, StatsD from the app's requests, the app's own families merged.
      const web = await until(
        () => scrape(webPort),
        (p) =>
          value(p, 'flask_http_request_total') > 3 &&
          value(p, 'github_api_call_latency_count', { endpoint: '/users/{username}', status: '200' }) > 0 &&
          value(p, 'graphql_requests_total') > 0 &&
          value(p, 'demo_app_jobs_processed_total') > 0,
      );
      expect(value(web, 'flask_http_request_total')).toBeGreaterThan(3);
      expect(web.types.get('github_api_call_latency')).toBe('histogram');
      expect(value(web, 'github_api_call_latency_count', { endpoint: '/users/{username}', status: '200' })).toBeGreaterThan(0);
      expect(web.types.get('graphql_requests_total')).toBe('counter');
      expect(value(web, 'graphql_requests_total')).toBeGreaterThan(0);
      expect(web.types.get('demo_app_jobs_processed_total')).toBe('counter');
      expect(web.help.get('demo_app_jobs_processed_total')).toBe('Jobs the demo worker processed, by queue.');
      expect(value(web, 'demo_app_jobs_processed_total')).toBeGreaterThan(0);
      expect(value(web, 'metrics_sidecar_merge_up', { target: `http://127.0.0.1:${appPort}/metrics` })).toBe(1);
      expect(value(web, 'metrics_sidecar_statsd_lines_total', { outcome: 'accepted' })).toBeGreaterThan(0);
      // Every line the demo's sender wrote was StatsD the sidecar took.
      for (const outcome of ['malformed', 'type_conflict', 'limited'])
        expect([outcome, value(web, 'metrics_sidecar_statsd_lines_total', { outcome })]).toEqual([outcome, 0]);

      // The worker sidecar: StatsD from the worker loop, the same app families merged.
      const worker = await until(
        () => scrape(workerPort),
        (p) =>
          value(p, 'github_webhook_latency_count') > 0 &&
          value(p, 'github_api_call_latency_count') > 0 &&
          value(p, 'demo_app_jobs_processed_total', { queue: 'webhooks' }) > 0,
      );
      expect(worker.samples.find((s) => s.name === 'metrics_sidecar_info')?.labels).toMatchObject({ role: 'worker', app_name: 'demo-worker' });
      expect(worker.types.get('github_webhook_latency')).toBe('histogram');
      expect(value(worker, 'github_webhook_latency_count')).toBeGreaterThan(0);
      expect(value(worker, 'github_api_call_latency_count')).toBeGreaterThan(0);
      expect(value(worker, 'demo_app_jobs_processed_total', { queue: 'webhooks' })).toBeGreaterThan(0);
      expect(value(worker, 'metrics_sidecar_merge_up', { target: `http://127.0.0.1:${appPort}/metrics` })).toBe(1);
      for (const outcome of ['malformed', 'type_conflict', 'limited'])
        expect([outcome, value(worker, 'metrics_sidecar_statsd_lines_total', { outcome })]).toEqual([outcome, 0]);
      // The worker serves no web traffic: its RED families stay empty, and the app's graphql lines go to the web sidecar only.
      expect(value(worker, 'flask_http_request_total')).toBe(0);
      expect(value(worker, 'graphql_requests_total')).toBe(0);

      // What the demo shows passes promtool, lint included.
      expect(promtool(web.text)).toEqual({ status: 0, lines: [] });
      expect(promtool(worker.text)).toEqual({ status: 0, lines: [] });

      // The status pages the printed lines lead to.
      for (const [port, p, role] of [
        [webPort, '/debug/', 'web'],
        [workerPort, '/', 'worker'],
      ] as const) {
        const page = await request(port, p);
        expect([p, page.status]).toEqual([p, 200]);
        expect(page.headers['content-type']).toMatch(/^text\/html/);
        expect(page.text).toMatch(/^<!doctype html>/i);
        expect(page.text).toContain(`(${role}): metrics-sidecar status</title>`);
        expect(page.text).toContain('StatsD lines');
        expect(page.text).toContain(`http://127.0.0.1:${appPort}/metrics`);
      }

      expect((await request(webPort, '/users/42')).status).toBe(200);
      expect((await request(webPort, '/debug/secret')).status).toBe(404);
      // The app itself does serve that page: the 404 above is the sidecar hiding it.
      expect((await request(appPort, '/debug/secret')).status).toBe(200);

      // Loopback only: another address of this machine is refused (when it has one).
      const other = Object.values(os.networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      if (other) {
        for (const port of Object.values(ports)) {
          const refused = await new Promise<boolean>((resolve) =>
            net
              .connect(port, other)
              .once('connect', function (this: net.Socket) {
                this.destroy();
                resolve(false);
              })
              .once('error', () => resolve(true)),
          );
          expect([port, refused]).toEqual([port, true]);
        }
      }
    } finally {
      process.kill(-demo.proc.pid!, 'SIGINT'); // what a terminal's Ctrl-C does: the whole foreground group
    }
    expect(await demo.exited).toBe(0);
    expect(demo.output()).not.toContain('second signal');
    expect(demo.output()).not.toMatch(/"level":"(warn|error|fatal)"/);
    await until(
      () => tree.filter(alive),
      (a) => a.length === 0,
    );
    expect(tree.filter(alive)).toEqual([]);
    expect(processesWith(`LISTEN_PORT=${webPort}`)).toEqual([]);
    // The StatsD sockets went with their sidecars.
    expect(await udpFree(ports.DEMO_WEB_STATSD_PORT)).toBe(true);
    expect(await udpFree(ports.DEMO_WORKER_STATSD_PORT)).toBe(true);
  }, 90000);

  it.each([
    ['DEMO_APP_PORT', 'TCP'],
    ['DEMO_WEB_PORT', 'TCP'],
    ['DEMO_WORKER_PORT', 'TCP'],
    ['DEMO_WEB_STATSD_PORT', 'UDP'],
    ['DEMO_WORKER_STATSD_PORT', 'UDP'],
    ['DEMO_WORKER_STATSD_PORT', 'TCP'],
  ] as const)(
    'should name %s when its port is taken (%s), and leave nothing running',
    async (variable, proto) => {
      const ports = await demoPorts();
      let release: () => Promise<unknown>;
      if (proto === 'TCP') {
        const holder = net.createServer();
        await new Promise<void>((r) => holder.listen(ports[variable], '127.0.0.1', r));
        release = () => new Promise((r) => holder.close(r));
      } else {
        const holder = dgram.createSocket('udp4');
        await new Promise<void>((r) => holder.bind(ports[variable], '127.0.0.1', r));
        release = () => new Promise<void>((r) => holder.close(r));
      }
      try {
        const demo = startDemo(asEnv(ports));
        expect(await demo.exited).toBe(1);
        expect(demo.output()).toContain(`${proto} port ${ports[variable]} on 127.0.0.1 is already in use; choose another with ${variable}=<port>`);
        expect(demo.output()).not.toContain('ReferenceError');
        expect(processesWith(`LISTEN_PORT=${ports.DEMO_WEB_PORT}`)).toEqual([]);
        expect(processesWith(`PROMETHEUS_PORT=${ports.DEMO_WORKER_PORT}`)).toEqual([]);
      } finally {
        await release();
      }
    },
    30000,
  );

  it('should refuse two DEMO_*_PORT variables naming one port, before starting anything', async () => {
    const ports = await demoPorts();
    const demo = startDemo(asEnv({ ...ports, DEMO_WORKER_STATSD_PORT: ports.DEMO_WEB_PORT }));
    expect(await demo.exited).toBe(1);
    expect(demo.output()).toContain(`DEMO_WORKER_STATSD_PORT and DEMO_WEB_PORT are both ${ports.DEMO_WEB_PORT}; give each its own port`);
    expect(processesWith(`LISTEN_PORT=${ports.DEMO_WEB_PORT}`)).toEqual([]);
  });

  it.each(['abc', '-1', '1e12'])('should refuse DEMO_DURATION_S=%s before starting anything', async (value) => {
    const demo = startDemo({ DEMO_APP_PORT: String(await freePort()), DEMO_DURATION_S: value });
    expect(await demo.exited).toBe(1);
    expect(demo.output()).toContain(`DEMO_DURATION_S=${JSON.stringify(value)} is not a number of seconds`);
  });

  it('should stop everything when a sidecar dies, naming it', async () => {
    const ports = await demoPorts();
    const workerPort = ports.DEMO_WORKER_PORT;
    const demo = startDemo(asEnv(ports));
    await until(demo.output, (o) => o.includes('Traffic is flowing'));
    const [worker] = processesWith(`PROMETHEUS_PORT=${workerPort}`);
    expect(worker).toBeDefined();
    const tree = descendants(demo.proc.pid!);
    process.kill(worker, 'SIGKILL');
    expect(await demo.exited).toBe(1);
    expect(demo.output()).toContain(`the worker sidecar (port ${workerPort}, DEMO_WORKER_PORT) exited`);
    await until(
      () => tree.filter(alive),
      (a) => a.length === 0,
    );
    expect(tree.filter(alive)).toEqual([]);
  }, 60000);
});
