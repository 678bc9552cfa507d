/**
 * Prometheus Pushgateway (Debian `prometheus-pushgateway`) as a comparison point: detection,
 * optional on-demand install, start (in memory, loopback only, pinned), push and version.
 */
import fs from 'node:fs';
import { run, start, waitForHttp } from './procs.mjs';
import { sendBody } from './http.mjs';
import { which } from './report.mjs';

export const PUSHGATEWAY = process.env.PUSHGATEWAY_BIN || '/usr/bin/prometheus-pushgateway';

const isExecutable = (p) => {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The pushgateway binary, or {skipped: reason}. With `install` (BENCH_INSTALL_PUSHGATEWAY=1) and
 * when running as root with apt-get available, tries `apt-get install -y prometheus-pushgateway`
 * once (bounded in time); any failure only means the comparison is skipped. Installing is opt-in
 * because the Debian package also enables a pushgateway service on :9091 on systemd hosts.
 */
export async function findPushgateway({ install = false, log = () => {} } = {}) {
  if (isExecutable(PUSHGATEWAY)) return { bin: PUSHGATEWAY };
  if (!install) {
    return { skipped: `${PUSHGATEWAY} not found (apt-get install -y prometheus-pushgateway, or BENCH_INSTALL_PUSHGATEWAY=1 to let the benchmark install it)` };
  }
  if (process.getuid?.() !== 0 || !which('apt-get')) return { skipped: `${PUSHGATEWAY} not found and cannot install it (needs root and apt-get)` };
  log('installing prometheus-pushgateway with apt-get (BENCH_INSTALL_PUSHGATEWAY=1)');
  try {
    const res = await run('apt-get', 'apt-get', ['install', '-y', '-q', 'prometheus-pushgateway'], {
      timeoutMs: 180000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (res.code !== 0) {
      return {
        skipped: `apt-get install prometheus-pushgateway failed (exit ${res.code ?? res.signal}): ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ')}`,
      };
    }
    if (!isExecutable(PUSHGATEWAY)) return { skipped: `apt-get installed prometheus-pushgateway but ${PUSHGATEWAY} is still missing` };
  } catch (err) {
    return { skipped: `apt-get install prometheus-pushgateway failed: ${err.message}` };
  }
  return { bin: PUSHGATEWAY, installed: true };
}

export async function pushgatewayVersion(bin = PUSHGATEWAY) {
  const res = await run('pushgateway-version', bin, ['--version'], { timeoutMs: 5000 });
  const text = `${res.stdout}${res.stderr}`;
  return /version\s+(\S+)/.exec(text)?.[1] ?? text.split('\n')[0].trim();
}

/**
 * Starts a pushgateway on 127.0.0.1:`port`, metrics in memory only (no persistence file), pinned
 * to `cpus` (Go then sets GOMAXPROCS to the number of CPUs it may use). Resolves when it is ready.
 */
export async function startPushgateway(bin, port, { cpus } = {}) {
  const m = start('pushgateway', bin, [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file=', '--log.level=warn'], { cpus });
  await waitForHttp(`http://127.0.0.1:${port}/-/ready`, m, 15000);
  return m;
}

/** Replaces the group `job=<job>` with a text-format exposition (PUT). */
export async function push(port, text, job = 'bench') {
  const res = await sendBody('PUT', `http://127.0.0.1:${port}/metrics/job/${job}`, text, {
    headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
    timeoutMs: 120000,
  });
  if (res.status < 200 || res.status >= 300) throw new Error(`pushgateway refused the push: HTTP ${res.status} ${res.body.slice(0, 500)}`);
}
