/**
 * `npm run bench:log`: the cost of one log line on the caller, for the logger as configured
 * (pino, field scan for secrets, top-level redact paths, asynchronous stdout) and for the
 * alternatives it was measured against: bare pino, pino with `*.k` and `*.*.k` redact paths.
 * Prints a table with ratios to bare pino and writes bench/results/log.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, RESULTS_DIR } from './lib/report.mjs';

const require = createRequire(import.meta.url);
const pino = require('pino');
const { createLogger, REDACT_PATHS, SECRET_KEYS } = require(path.join(ROOT, 'dist', 'log', 'logger.js'));

const N = Number(process.env.BENCH_LOG_LINES ?? 50_000);
const ROUNDS = 5;
const fields = (i) => ({ method: 'GET', route: '/users/:id', code: 'ECONNREFUSED', i });
const noop = { write() {} };
const base = { level: 'info', base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (l) => ({ level: l }) } };
const wild = (depth) => SECRET_KEYS.map((k) => `${'*.'.repeat(depth)}${/^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`}`.replace('.["', '["'));

const subjects = {
  'pino, no redact': () => {
    const p = pino(base, noop);
    return (i) => p.warn(fields(i), 'upstream failed');
  },
  'sidecar logger (scan + top-level redact)': () => {
    const l = createLogger('info', () => undefined);
    return (i) => l.warn('upstream failed', fields(i));
  },
  'pino, redact *.k paths': () => {
    const p = pino({ ...base, redact: { paths: [...REDACT_PATHS, ...wild(1)] } }, noop);
    return (i) => p.warn(fields(i), 'upstream failed');
  },
  'pino, redact *.k and *.*.k paths': () => {
    const p = pino({ ...base, redact: { paths: [...REDACT_PATHS, ...wild(1), ...wild(2)] } }, noop);
    return (i) => p.warn(fields(i), 'upstream failed');
  },
};

const results = {};
for (const [name, make] of Object.entries(subjects)) {
  const f = make();
  for (let i = 0; i < 2000; i++) f(i); // warm up
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) f(i);
    rounds.push(Number(process.hrtime.bigint() - t0) / N / 1000);
  }
  rounds.sort((a, b) => a - b);
  results[name] = rounds[Math.floor(ROUNDS / 2)];
}

const ref = results['pino, no redact'];
const w = Math.max(...Object.keys(results).map((k) => k.length));
console.log(`log line cost on the caller, median of ${ROUNDS} rounds of ${N} lines`);
console.log(`${'subject'.padEnd(w)}  µs/line  ratio`);
for (const [name, us] of Object.entries(results)) console.log(`${name.padEnd(w)}  ${us.toFixed(2).padStart(7)}  ${(us / ref).toFixed(2).padStart(5)}x`);
fs.mkdirSync(RESULTS_DIR, { recursive: true });
fs.writeFileSync(path.join(RESULTS_DIR, 'log.json'), `${JSON.stringify({ lines: N, rounds: ROUNDS, us_per_line: results }, null, 2)}\n`);
