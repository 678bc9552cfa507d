/**
 * What a fresh machine needs from the repository itself: `npm test` provisions promtool or stops
 * at once with the one command to run; `npm ci` compiles nothing (no dependency install script
 * runs) and has no engine to warn about on the Node version `engines` names.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// semver ships no types here (a transitive dependency of npm's tooling and jest); the two calls used:
const semver = require('semver') as {
  minVersion(range: string): { version: string } | null;
  satisfies(version: string, range: string, opts?: { includePrerelease?: boolean }): boolean;
};

const ROOT = path.join(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, '.ci', 'ensure-promtool');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }; scripts: Record<string, string> };
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { optional?: boolean; hasInstallScript?: boolean; engines?: { node?: string } | string[]; os?: string[] }>;
};

describe('promtool on a fresh machine', () => {
  it('should run first in npm test', () => {
    expect(pkg.scripts.test.startsWith('sh .ci/ensure-promtool && ')).toBe(true);
  });

  it('should pass at once when promtool is on PATH', () => {
    const r = spawnSync('sh', [SCRIPT], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('should stop at once with the one command to run when it cannot install it', () => {
    // A PATH with a shell and the basics but neither promtool nor apt-get.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-nopromtool-'));
    try {
      for (const tool of ['sh', 'id']) fs.symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), path.join(bin, tool));
      const r = spawnSync(path.join(bin, 'sh'), [SCRIPT], { encoding: 'utf8', env: { PATH: bin } });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('sudo apt-get install -y prometheus');
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('npm ci on a fresh machine', () => {
  it('should skip dependency install scripts (.npmrc), and only optional packages (and checks we need not run) have one', () => {
    const npmrc = fs.readFileSync(path.join(ROOT, '.npmrc'), 'utf8');
    expect(npmrc).toMatch(/^ignore-scripts=true$/m);
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript);
    // If a needed package ever ships an install script, ignore-scripts must be revisited.
    // protobufjs (a dev dependency: the tests' independent protobuf decoder) has a postinstall that
    // only warns about its dependents' version ranges (scripts/postinstall.js); skipping it loses nothing.
    expect(withScripts.map(([name, p]) => [name, p.optional === true])).toEqual([
      ['node_modules/protobufjs', false],
      ['node_modules/unix-dgram', true],
    ]);
  });

  it('should state the real minimum Node version, and every locked package should accept it', () => {
    expect(pkg.engines.node).toBe('>=20.19');
    const min = semver.minVersion(pkg.engines.node)!.version;
    const refusing = Object.entries(lock.packages)
      .filter(([name, p]) => name !== '' && p.engines && !Array.isArray(p.engines) && typeof p.engines.node === 'string')
      .filter(([, p]) => !semver.satisfies(min, (p.engines as { node: string }).node, { includePrerelease: true }))
      .map(([name, p]) => `${name} wants node ${(p.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
  });

  it('should run on this Node (client-node 1.x is ESM loaded through require: 20.19 or later)', () => {
    expect(semver.satisfies(process.versions.node, pkg.engines.node)).toBe(true);
  });
});
