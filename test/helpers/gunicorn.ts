/**
 * A real Flask app under gunicorn as the sidecar's upstream (test/adversarial/app.py), for the
 * findings of issues 9 and 18 that are about what the application sees (`/proxyfix/<x_for>`
 * answers what Flask concludes from the forwarding headers through werkzeug's ProxyFix).
 *
 * The Python side lives in a virtualenv, `.tools/adversarial-venv` (gitignored), created on first
 * use with pip, which works offline here from the machine's wheel index (PIP_RETRIES=0: fail over
 * to the other indexes at once, as test/e2e/run.mjs does). Two Jest workers may want it at the
 * same time, so it is built in a directory of its own and renamed into place; gunicorn is run as
 * `python -m gunicorn`, which does not care where the venv was built. If the venv cannot be made,
 * the test fails with pip's output: an adversarial suite that silently skips proves nothing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, request } from './net';

const ROOT = path.join(__dirname, '..', '..');
export const VENV = path.join(ROOT, '.tools', 'adversarial-venv');
const APP_DIR = path.join(ROOT, 'test', 'adversarial');
/** The same pins as the e2e's Flask app (test/e2e/requirements.txt), minus what this app does not use. */
const REQUIREMENTS = ['flask>=3,<4', 'gunicorn>=22'];

/** What app.py answers on its own `/debug/` tree. */
export const DEBUG_MARKER = 'APP-DEBUG-TREE-REACHED';

function python(venv: string): string {
  return path.join(venv, 'bin', 'python');
}

function usable(venv: string): boolean {
  if (!fs.existsSync(python(venv))) return false;
  return spawnSync(python(venv), ['-c', 'import flask, gunicorn'], { encoding: 'utf8' }).status === 0;
}

/** The venv's python, creating the venv when missing; throws with pip's output when it cannot. */
export function ensureVenv(): string {
  if (usable(VENV)) return python(VENV);
  fs.mkdirSync(path.dirname(VENV), { recursive: true });
  const building = `${VENV}.build-${process.pid}-${Date.now()}`;
  const env = { ...process.env, PIP_RETRIES: '0', PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONDONTWRITEBYTECODE: '1' };
  const steps: [string, string[]][] = [
    ['python3', ['-m', 'venv', building]],
    [python(building), ['-m', 'pip', 'install', '-q', ...REQUIREMENTS]],
  ];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) {
      fs.rmSync(building, { recursive: true, force: true });
      throw new Error(
        `cannot create the Flask/gunicorn virtualenv for the adversarial suite (${VENV}): \`${cmd} ${args.join(' ')}\` ` +
          `exited with ${r.status ?? r.signal ?? r.error?.message}\n${r.stdout}\n${r.stderr}`,
      );
    }
  }
  try {
    fs.renameSync(building, VENV);
  } catch {
    // Another worker put its venv in place first: use that one.
    fs.rmSync(building, { recursive: true, force: true });
  }
  if (!usable(VENV)) throw new Error(`the virtualenv ${VENV} exists but cannot import flask and gunicorn: delete it and run again`);
  return python(VENV);
}

/** One request as app.py recorded it. */
export interface AppSaw {
  raw_uri: string | null;
  path_info: string | null;
  method: string;
  endpoint: string | null;
  upgrade: string | null;
  hosts: string[];
  attack_id: string | null;
}

export interface Flask {
  port: number;
  url: string;
  proc: ChildProcess;
  /** Every request the app received so far, in the order the workers logged them. */
  saw(): AppSaw[];
  /** gunicorn's own output (errors, worker boots). */
  output(): string;
  stop(): Promise<void>;
}

/** Starts app.py under gunicorn on a free loopback port and waits until it answers. */
export async function startFlask(opts: { workers?: number } = {}): Promise<Flask> {
  const py = ensureVenv();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adversarial-app-'));
  const log = path.join(dir, 'requests.jsonl');
  fs.writeFileSync(log, '');
  let out = '';
  const proc = spawn(
    py,
    ['-m', 'gunicorn', '--chdir', APP_DIR, '--workers', String(opts.workers ?? 2), '--bind', `127.0.0.1:${port}`, '--graceful-timeout', '1', 'app:app'],
    { env: { PATH: process.env.PATH ?? '', ADV_LOG: log, PYTHONDONTWRITEBYTECODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(-proc.pid!, 'SIGTERM'); // gunicorn and its workers: the group started here
      } catch {
        // gone already
      }
      const killer = setTimeout(() => {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, 5_000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`gunicorn exited with ${proc.exitCode}:\n${out}`);
    try {
      if ((await request(port, '/hello')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`gunicorn did not answer /hello:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The readiness probe above is not part of any test.
  fs.writeFileSync(log, '');
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    saw: () =>
      fs
        .readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as AppSaw),
    output: () => out,
    stop,
  };
}
