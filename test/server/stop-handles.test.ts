/**
 * `Sidecar.stop()` leaves nothing behind: every socket, server, UDP socket and timer the sidecar
 * created while it ran is destroyed once `stop()` has resolved (and the loop has turned a few
 * times for close callbacks), whatever was in flight when it was called. Unref'd timers and
 * idle pooled sockets count too: they do not keep the process alive, but they still run, log and
 * hold descriptors after the stop (and in a test runner, they outlive the suite).
 *
 * The sidecar runs in this process with every part on; the app, the merge targets and all the
 * clients run in another (test/fixtures/stop-world.js), started before tracking begins, so
 * whatever the tracker sees created can only be the sidecar's. The other process never closes
 * its ends first: each connection must be closed by the sidecar itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { createSidecar } from '../../src/app';
import { createSidecarMetrics } from '../../src/metrics/sidecar';
import { trackResources, turnLoop, type Tracker } from '../helpers/handles';
import { freePort } from '../helpers/net';

interface WorldMessage {
  ports?: { app: number; merge: number; dead: number };
  healthPath?: string;
  driven?: { scrapes: number; targetRequests: number; held: { health: number; upgrade: number }; appConnections: number; targetConnections: number };
  closed?: boolean;
  fail?: string;
}

describe('Sidecar.stop()', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-stop-'));
  let world: ChildProcess;
  let messages: AsyncIterator<WorldMessage>;
  let tracker: Tracker | undefined;
  /** 'stopping' while stop() has not resolved. */
  let phase: 'running' | 'stopping' | 'stopped' = 'running';

  const next = async (): Promise<WorldMessage> => {
    const m = await messages.next();
    if (m.done) throw new Error('the world process ended');
    if (m.value.fail !== undefined) throw new Error(`world: ${m.value.fail}`);
    return m.value;
  };
  const tell = (msg: object): void => {
    world.stdin!.write(`${JSON.stringify(msg)}\n`);
  };

  beforeAll(() => {
    world = spawn(process.execPath, [path.join(__dirname, '..', 'fixtures', 'stop-world.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: world.stdout! });
    messages = (async function* () {
      for await (const line of lines) yield JSON.parse(line) as WorldMessage;
    })();
  });

  afterAll(async () => {
    // Read before the world exits: its sockets closing would end a hung stop() now.
    const hung = phase === 'stopping';
    const left = tracker?.alive() ?? [];
    tracker?.stop();
    const exited = new Promise((r) => world.once('exit', r));
    world.stdin!.end();
    await exited;
    fs.rmSync(tmp, { recursive: true, force: true });
    // A stop() that never resolves ends the test at its timeout: say what it was still holding.
    if (hung) throw new Error(`stop() did not resolve; still open:\n${left.map((r) => `${r.type} created at\n${r.stack}`).join('\n')}`);
  });

  it('should destroy every socket, server and timer it created, with a check, a probe, an upgrade and keep-alive connections in flight', async () => {
    const { ports, healthPath } = await next();
    // UDP and TCP on one port (an ephemeral one, free a moment ago), as StatsD clients expect.
    const statsdPort = await freePort();
    const passwordFile = path.join(tmp, 'password');
    fs.writeFileSync(passwordFile, 'stop-secret\n');
    const config = loadConfig({
      LISTEN_PORT: '1',
      PROMETHEUS_PORT: '2',
      STATSD_PORT: String(statsdPort),
      UPSTREAM_URL: `http://127.0.0.1:${ports!.app}`,
      UPSTREAM_HEALTH_PATH: healthPath!,
      // Nothing the sidecar waits on may end by itself during the test: only stop() may end it.
      UPSTREAM_HEALTH_TIMEOUT_MS: '60000',
      UPSTREAM_HEALTH_INTERVAL_MS: '600000',
      UPSTREAM_TIMEOUT_MS: '600000',
      MERGE_TARGETS: `http://127.0.0.1:${ports!.merge}/metrics,http://127.0.0.1:${ports!.dead}/metrics`,
      METRICS_BASIC_AUTH_USERNAME: 'prometheus',
      METRICS_BASIC_AUTH_PASSWORD_FILE: passwordFile,
      SECRET_RELOAD_INTERVAL_MS: '600000',
      // The relayed probe is still in flight at the bound: the drain gives up on it (forced).
      SHUTDOWN_TIMEOUT_MS: '100',
      // In-process: the test runner's own threads keep their priority (thread-priority.test.ts spawns).
      HELPER_THREADS_NICE: '0',
      LOG_LEVEL: 'debug',
    });
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger(config.logLevel, (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
    // prom-client's runtime monitors (event-loop delay, GC) are made once per process, by design,
    // whatever the number of sidecars in it: made here, before tracking, they are not this sidecar's.
    createSidecarMetrics(config);

    tracker = trackResources();
    const sidecar = createSidecar(config, logger, { mainPort: 0, metricsPort: 0 });
    const { mainPort, metricsPort } = await sidecar.start();
    tell({ drive: { mainPort, metricsPort, statsdPort, auth: 'prometheus:stop-secret' } });
    const { driven } = await next();
    // What the test means to be open at stop() is, as the other side saw it.
    expect(driven).toMatchObject({ held: { health: 2, upgrade: 1 } });
    expect(driven!.targetConnections).toBeGreaterThanOrEqual(1);
    expect(driven!.scrapes).toBeGreaterThanOrEqual(7);
    // The dead target's warnings: 5 passed, the rest held back (the limiter's timer is armed).
    expect(logs.filter((l) => l.msg === 'merge target failed')).toHaveLength(5);

    phase = 'stopping';
    expect(await sidecar.stop()).toEqual({ forced: true });
    phase = 'stopped';
    await turnLoop(() => tracker!.alive().length === 0);
    const left = tracker.alive();
    tracker.stop();
    expect(left.map((r) => `${r.type} created at\n${r.stack}`)).toEqual([]);

    // What the limiter held back was said at the stop, not lost with its timer.
    expect(logs.find((l) => l.msg === 'merge target failed (repeated)')).toMatchObject({ suppressed: driven!.scrapes - 5 });
    // And from the other side: every connection the sidecar opened to the app and the target is closed.
    tell({ closed: true });
    expect(await next()).toEqual({ closed: true });
  });
});
