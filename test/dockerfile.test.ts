/**
 * The quick checks, with no container runtime: every file the Dockerfile copies exists, the
 * runtime stage is non-root with an exec-form entrypoint, and that entrypoint runs from a
 * directory laid out as the image lays it out. `npm run test:image` (test/image/run.mjs) builds
 * the image with podman and runs it as the chart does.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.join(__dirname, '..');
const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const stages = dockerfile.split(/^FROM /m).slice(1);

describe('Dockerfile', () => {
  it('should be multi-stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
  });

  it('should copy only files that exist in the build context', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    expect(sources.length).toBeGreaterThan(0);
    for (const s of sources) expect(fs.existsSync(path.join(root, s))).toBe(true);
  });

  it('should install with the project .npmrc (no install scripts: nothing is compiled, as in npm ci here)', () => {
    const build = stages[0];
    const copy = /^COPY (.+) \.\/$/m.exec(build.slice(0, build.indexOf('RUN npm ci')));
    expect(copy?.[1].split(/\s+/)).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', '.npmrc']));
    expect(fs.readFileSync(path.join(root, '.npmrc'), 'utf8')).toMatch(/^ignore-scripts=true$/m);
  });

  it('should not ignore what it copies', () => {
    const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').filter(Boolean);
    for (const s of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'tsconfig.build.json', 'src']) expect(ignored).not.toContain(s);
  });

  it('should run the final stage as a numeric non-root user with an exec-form entrypoint', () => {
    const final = stages[stages.length - 1];
    const user = /^USER (\d+)(?::(\d+))?$/m.exec(final);
    expect(user).not.toBeNull();
    expect(Number(user![1])).toBeGreaterThan(0);
    expect(final).toMatch(/^ENTRYPOINT \["node", "dist\/main\.js"\]$/m);
    expect(final).toMatch(/^EXPOSE .*8080.*8491/m);
    expect(final).not.toMatch(/^COPY (?!--from)/m);
  });

  it('should start from the image layout (/app with package.json, node_modules, dist)', () => {
    const app = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-image-'));
    fs.copyFileSync(path.join(root, 'package.json'), path.join(app, 'package.json'));
    fs.cpSync(path.join(root, 'dist'), path.join(app, 'dist'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(app, 'node_modules'));
    const r = spawnSync('node', ['dist/main.js', '--check-config'], {
      cwd: app,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('configuration is valid');
    fs.rmSync(app, { recursive: true, force: true });
  });
});
