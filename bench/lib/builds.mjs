/**
 * Other builds of the sidecar to benchmark beside the current dist/, in the same interleaved
 * rounds (bench:proxy):
 * - `baselineDist(spec)`: an earlier version. `spec` is a dist/ directory, or a git ref whose
 *   tree is exported (`git archive`) under .tools/bench-builds/ and compiled there with this
 *   checkout's TypeScript and node_modules (cached by commit). The dependencies are today's: a
 *   ref whose package.json differs is compiled anyway, with a warning.
 * - `undiciDist()`: today's dist/ with proxy/upstream-client.js replaced by
 *   bench/peers/undici-upstream-client.cjs (the forwarder on undici's Pool; ADR 0003).
 * Both live under the repository (.tools/, gitignored) so that their `require`s find its
 * node_modules.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, BENCH_DIR } from './report.mjs';

const BUILDS = path.join(ROOT, '.tools', 'bench-builds');

/** Resolves a baseline spec to a dist/ directory holding main.js; `warn` receives notes. */
export function baselineDist(spec, warn = () => {}) {
  const asDir = path.resolve(spec);
  if (fs.existsSync(path.join(asDir, 'main.js'))) return asDir;
  if (fs.existsSync(path.join(asDir, 'dist', 'main.js'))) return path.join(asDir, 'dist');
  let sha;
  try {
    sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', `${spec}^{commit}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`BENCH_BASELINE=${spec}: neither a dist/ directory nor a git commit of this repository`);
  }
  const dir = path.join(BUILDS, `baseline-${sha.slice(0, 12)}`);
  const dist = path.join(dir, 'dist');
  if (fs.existsSync(path.join(dist, 'main.js'))) return dist;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tar = execFileSync('git', ['-C', ROOT, 'archive', '--format=tar', sha], { maxBuffer: 1024 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar, maxBuffer: 64 * 1024 * 1024 });
  const oldPkg = fs.readFileSync(path.join(dir, 'package.json'), 'utf8');
  const pkg = JSON.parse(oldPkg);
  const now = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  if (JSON.stringify(pkg.dependencies) !== JSON.stringify(now.dependencies))
    warn(`baseline ${sha.slice(0, 12)} declares other dependencies than today's; compiled and run with today's node_modules`);
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(dir, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  return dist;
}

/** Today's dist/ on undici's Pool instead of the own upstream client. */
export function undiciDist() {
  const dist = path.join(BUILDS, 'undici', 'dist');
  fs.rmSync(path.dirname(dist), { recursive: true, force: true });
  fs.cpSync(path.join(ROOT, 'dist'), dist, { recursive: true });
  const adapter = path.join(BENCH_DIR, 'peers', 'undici-upstream-client.cjs');
  fs.writeFileSync(
    path.join(dist, 'proxy', 'upstream-client.js'),
    `'use strict';\n// bench:proxy sidecar-undici (ADR 0003)\nmodule.exports = require(${JSON.stringify(adapter)});\n`,
  );
  return dist;
}
