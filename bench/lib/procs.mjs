/**
 * Child-process helpers for the benchmarks: every process is started in its own process group
 * and remembered, so one cleanup (normal end, error, Ctrl-C, SIGTERM) stops all of them and
 * nothing else. Also: free ports, readiness polling, and CPU time from /proc/<pid>/stat.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** @type {Set<Managed>} */
const live = new Set();

/**
 * @typedef {object} Managed
 * @property {string} name
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {Promise<{code: number|null, signal: string|null}>} exited
 * @property {boolean} done
 * @property {boolean} stopping   true once we asked it to stop (an exit is then expected)
 * @property {() => string} output  captured stdout+stderr (bounded)
 * @property {string} [exitInfo]  how it ended ("exit code N" / "signal SIGX"), once done
 */

const MAX_CAPTURE = 256 * 1024;

/**
 * Starts `cmd args` (optionally pinned to `cpus` with taskset, which execs, so the pid is the
 * real process). stdout/stderr are captured in memory (last 256 KiB) and, if `logFile` is given,
 * appended to it as well.
 */
export function start(name, cmd, args, { cpus, env, cwd, logFile } = {}) {
  const argv = cpus !== undefined ? ['taskset', ['-c', String(cpus), cmd, ...args]] : [cmd, args];
  const child = spawn(argv[0], argv[1], {
    env: env ?? process.env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: the group can be signalled as a whole (nginx master + worker).
    detached: true,
  });
  let captured = '';
  const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : undefined;
  const onData = (buf) => {
    captured += buf.toString();
    if (captured.length > MAX_CAPTURE) captured = captured.slice(-MAX_CAPTURE);
    log?.write(buf);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  /** @type {Managed} */
  const m = {
    name,
    child,
    pid: child.pid,
    done: false,
    stopping: false,
    output: () => captured,
    exited: new Promise((resolve) => {
      child.on('error', (err) => {
        captured += `\n[spawn error] ${err.message}\n`;
        m.exitInfo = `spawn error: ${err.message}`;
        m.done = true;
        live.delete(m);
        resolve({ code: null, signal: null, error: err });
      });
      child.on('exit', (code, signal) => {
        m.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        m.done = true;
        live.delete(m);
        log?.end();
        resolve({ code, signal });
      });
    }),
  };
  if (child.pid === undefined) {
    // spawn failed synchronously-ish; 'error' will fire.
    m.pid = -1;
  }
  live.add(m);
  return m;
}

function signalGroup(m, sig) {
  if (m.done || m.pid <= 0) return;
  try {
    process.kill(-m.pid, sig);
  } catch {
    try {
      process.kill(m.pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Asks a process (group) to stop with `signal`, escalating to SIGKILL after `graceMs`. */
export async function stop(m, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (m.done) return m.exited;
  m.stopping = true;
  signalGroup(m, signal);
  const res = await Promise.race([m.exited, sleep(graceMs).then(() => null)]);
  if (res) {
    // The leader exited; make sure nothing of its group lingers (e.g. an nginx worker).
    signalGroup(m, 'SIGKILL');
    return res;
  }
  signalGroup(m, 'SIGKILL');
  return m.exited;
}

export async function stopAll(opts) {
  await Promise.all([...live].map((m) => stop(m, opts)));
}

/** Synchronous last resort, for process 'exit'. */
function killAllNow() {
  for (const m of live) {
    try {
      process.kill(-m.pid, 'SIGKILL');
    } catch {
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

let cleanupInstalled = false;
let interruptedBy = null;
/** The signal that interrupted the run, if any (failures after it are just its consequences). */
export function interrupted() {
  return interruptedBy;
}

/**
 * Installs signal/exit handlers that stop every started process. `onCleanup` (sync) runs once,
 * after the processes are gone (e.g. to remove the temp dir).
 */
export function installCleanup(onCleanup = () => {}) {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  let ran = false;
  const finalCleanup = () => {
    if (ran) return;
    ran = true;
    killAllNow();
    try {
      onCleanup();
    } catch {
      /* best effort */
    }
  };
  process.on('exit', finalCleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (interruptedBy) {
        finalCleanup();
        process.exit(130);
      }
      interruptedBy = sig;
      process.stderr.write(`\n${sig}: stopping benchmark processes...\n`);
      stopAll({ graceMs: 2000 }).finally(() => {
        finalCleanup();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }
}

/** `n` distinct free TCP ports on 127.0.0.1 (all held open until each is known, then released). */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

/** GETs `url` once; resolves with the status code (or rejects). */
export function httpGet(url, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Polls `url` until it answers 200, the process exits, or `timeoutMs` passes. */
export async function waitForHttp(url, m, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (m?.done) throw new Error(`${m.name} ended (${m.exitInfo}) before ${url} was ready:\n${tail(m.output())}`);
    try {
      const { status } = await httpGet(url, 1000);
      if (status === 200) return;
      last = `status ${status}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(50);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})${m ? `\n${m.name} output:\n${tail(m.output())}` : ''}`);
}

export function tail(text, lines = 30) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Clock ticks per second (for /proc/<pid>/stat utime/stime). */
export function clockTicks() {
  const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  if (!Number.isFinite(v) || v <= 0) throw new Error(`getconf CLK_TCK gave ${v}`);
  return v;
}

/** utime + stime of one process (all its threads), in clock ticks. */
export function cpuTicksOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is parenthesised and may contain spaces: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  return utime + stime;
}

export function cpuTicks(pids) {
  let sum = 0;
  for (const pid of pids) sum += cpuTicksOf(pid);
  return sum;
}

/** Direct children of `pid` (via /proc/<pid>/task/<tid>/children). */
export function childPids(pid) {
  const out = new Set();
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  for (const tid of tids) {
    try {
      const txt = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const c of txt.split(/\s+/)) if (c) out.add(Number(c));
    } catch {
      /* thread gone */
    }
  }
  return [...out];
}

/** Runs a command to completion with a time bound; resolves {code, stdout, stderr}. */
export function run(name, cmd, args, { cpus, timeoutMs = 60000, env } = {}) {
  return new Promise((resolve, reject) => {
    const m = start(name, cmd, args, { cpus, env });
    let stdout = '';
    let stderr = '';
    m.child.stdout.on('data', (b) => (stdout += b));
    m.child.stderr.on('data', (b) => (stderr += b));
    const timer = setTimeout(() => {
      stop(m, { signal: 'SIGKILL', graceMs: 1000 });
      reject(new Error(`${name} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    // 'exit' can come before the last of stdout has been read (two wrk at once lost a whole
    // report that way): the answer waits for 'close' as well, when the pipes have ended.
    const closed = new Promise((r) => m.child.on('close', r));
    m.exited.then(async ({ code, signal, error }) => {
      if (!error) await closed;
      clearTimeout(timer);
      if (error) reject(new Error(`${name}: could not start ${cmd}: ${error.message}`));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The start of every benchmark run: a temp dir (removed at the end unless BENCH_KEEP_TMP=1),
 * cleanup of every started process on exit or signal, and an overall time limit after which
 * everything is stopped and the run fails. Returns the temp dir and that timer (clear it at the end).
 */
export function beginRun(prefix, overallMs, log) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const keepTmp = process.env.BENCH_KEEP_TMP === '1';
  installCleanup(() => {
    if (!keepTmp) fs.rmSync(tmp, { recursive: true, force: true });
  });
  const overall = setTimeout(() => {
    log(`overall time limit (${overallMs / 1000}s) reached: aborting`);
    stopAll({ graceMs: 1000 }).finally(() => process.exit(1));
  }, overallMs);
  overall.unref();
  return { tmp, overall };
}

/**
 * Runs a benchmark's main(): its resolved value is the exit code; a failure is reported, every
 * started process stopped, and the exit is 1 (after Ctrl-C the signal handler reports instead).
 */
export function runMain(name, main) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    async (err) => {
      if (interrupted()) return;
      process.stderr.write(`\nbench:${name} failed: ${err.stack ?? err}\n`);
      await stopAll({ graceMs: 2000 }).catch(() => {});
      process.exit(1);
    },
  );
}
