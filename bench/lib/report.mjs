/**
 * Shared plumbing for the benchmark scripts: environment knobs, preflight checks, CPU pinning,
 * machine/version metadata, plain-text tables, PASS/MISS verdicts and the JSON result file.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks } from './procs.mjs';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(BENCH_DIR, '..');
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

/** A logger to stderr with a `[bench:<name>]` prefix (stdout is kept for the report). */
export const logger = (name) => (msg) => process.stderr.write(`[bench:${name}] ${msg}\n`);

/** A positive number from the environment, or `dflt`. */
export function envNum(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

/** A boolean knob: "1"/"true"/"yes" or "0"/"false"/"no"; `dflt` when unset. */
export function envBool(name, dflt) {
  const v = (process.env[name] ?? '').toLowerCase();
  if (v === '') return dflt;
  if (['1', 'true', 'yes'].includes(v)) return true;
  if (['0', 'false', 'no'].includes(v)) return false;
  throw new Error(`${name} must be 1 or 0, got ${JSON.stringify(process.env[name])}`);
}

/** Absolute path of an executable on PATH, or undefined. */
export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function safe(fn, fallback = 'unknown') {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/**
 * Checks what every benchmark needs: Linux /proc, taskset, getconf, ≥ 2 CPUs, a built dist/
 * (`needFiles` relative to the repo root), plus `tools` ([name, hint] pairs) on PATH.
 */
export function preflight({ needFiles = ['dist/main.js'], tools = [], script = 'this benchmark' } = {}) {
  const missing = [];
  for (const [tool, hint] of [['taskset', 'apt-get install -y util-linux'], ['getconf', 'libc-bin'], ...tools]) {
    if (!which(tool)) missing.push(`${tool} (${hint})`);
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}`);
  for (const f of needFiles) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`${f} not found: run \`npm run build\` first (the npm script for ${script} does)`);
  }
  if (!fs.existsSync('/proc/self/stat')) throw new Error('/proc is required (Linux only)');
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  const allowed = fs.readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.*)$/m)?.[1] ?? '';
  if (cpus < 2) throw new Error(`needs 2 CPUs (system under test on CPU 0, load on CPU 1); this machine has ${cpus}`);
  return { cpus, allowed };
}

/** Pins this process (all its threads) to `cpu`. */
export function pinSelf(cpu) {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
}

/**
 * Machine and version metadata shared by every result file. Call before pinSelf() so that
 * nproc reports the machine rather than the affinity mask.
 */
export function baseMeta({ cpus, allowed }, versions = {}) {
  const git = (args) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return {
    timestamp: new Date().toISOString(),
    machine: {
      nproc: Number(safe(() => execFileSync('nproc', { encoding: 'utf8' }).trim(), String(cpus))),
      cpus_allowed: allowed,
      cpu_model: os.cpus()[0]?.model ?? 'unknown',
      kernel: `${os.type()} ${os.release()}`,
      total_memory_mb: Math.round(os.totalmem() / 2 ** 20),
      clk_tck: safe(() => clockTicks(), null),
    },
    versions: {
      node: process.version,
      sidecar: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
      git_commit: safe(() => git(['rev-parse', '--short', 'HEAD']).trim()),
      git_src_dirty: safe(() => git(['status', '--porcelain', '--', 'src']).trim() !== '', null),
      ...versions,
    },
  };
}

/** Version of an installed npm package (from its package.json), or 'not installed'. */
export function packageVersion(name) {
  return safe(() => JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version, 'not installed');
}

export function fmt(x, digits) {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

/** Integer with thousands separators (`1,234,567`), '-' when missing. */
export function fmtInt(x) {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US');
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(head, rows) {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (cs) =>
    cs
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** 'PASS' when value <= max, 'MISS' otherwise, 'n/a' when there is no value. */
export function atMost(value, max) {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value <= max ? 'PASS' : 'MISS';
}

/** 'PASS' when value >= min, 'MISS' otherwise, 'n/a' when there is no value. */
export function atLeast(value, min) {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value >= min ? 'PASS' : 'MISS';
}

/**
 * A ratio/target line: `label  value   target   PASS` with fixed columns, for the block under
 * each table.
 */
export function targetLine(label, value, target = '', verdict = '', labelWidth = 50) {
  return `${label.padEnd(labelWidth)}${String(value).padStart(12)}   ${target.padEnd(18)} ${verdict}`.trimEnd();
}

/** Writes `bench/results/<name>.json`; returns the path relative to the cwd. */
export function writeResults(name, json) {
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  return path.relative(process.cwd(), file) || file;
}

/**
 * Parses the sidecar's JSON log lines; counts by level+msg (the open-endpoint notice excluded).
 * `ignoreRaw` skips lines that are not JSON (output of diagnostic node flags such as --trace-gc).
 */
export function summariseSidecarLog(text, { ignoreRaw = false } = {}) {
  const counts = {};
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      if (ignoreRaw) continue;
      entry = { level: 'raw', msg: line.slice(0, 300) };
    }
    if (entry.msg === 'metrics endpoints are open to any client: no allow-list or credentials are configured') continue;
    const key = `${entry.level}: ${entry.msg}`;
    counts[key] = (counts[key] ?? 0) + 1;
    if (samples.length < 5) samples.push(line.slice(0, 500));
  }
  return { counts, samples };
}

/** The report lines for a run's warnings (none when there are none). */
export function warningLines(warnings) {
  return warnings.length ? ['', ...warnings.map((w) => `WARNING: ${w}`)] : [];
}
