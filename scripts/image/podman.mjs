// Debian's podman (4.3), as this project runs it: rootful, everything it keeps (images, layers,
// containers, its run state, its CNI network config) under .tools/image/ (gitignored) instead of
// the machine's /var/lib/containers, and with the two settings this kind of machine needs:
//   --runtime runc   crun refuses the machine's hybrid cgroup layout (v1 controllers + a v2 mount)
//   --ulimit         podman's defaults (nofile 1048576, nproc 32768) are above the sandbox's hard
//                    limits and runc then fails to set them ("error setting rlimits ... EPERM");
//                    RLIMITS are at or below them, for every `build` and `run`.
// Used by the local base image (base.mjs), the build (build.mjs), `npm run test:image` and
// `npm run release:artifacts`.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Everything podman and the base image build keep; `rm -rf .tools/image` starts from nothing. */
export const IMAGE_DIR = path.join(ROOT, '.tools', 'image');
export const RLIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/** podman's global flags; `storage` (default IMAGE_DIR) holds its images, containers and state. */
function globalFlags(storage = IMAGE_DIR) {
  return [
    '--root',
    path.join(storage, 'storage'),
    '--runroot',
    path.join(storage, 'run'),
    '--tmpdir',
    path.join(storage, 'libpod'),
    '--network-config-dir',
    path.join(storage, 'cni'),
    '--runtime',
    'runc',
    '--storage-driver',
    'overlay',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
  ];
}

/** The podman command line (for messages and logs). */
export function commandLine(args, storage) {
  return ['podman', ...globalFlags(storage), ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Runs podman to completion; resolves with its exit code and output. Output goes to `logFile`
 * as well when given (a build's is long). `timeoutMs` bounds it: podman is then killed. `storage`
 * is another directory for podman's storage and state than .tools/image.
 */
export function podman(args, { logFile, timeoutMs = 120_000, storage } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', [...globalFlags(storage), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : undefined;
    log?.write(`$ ${commandLine(args, storage)}\n`);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
      log?.write(c);
    });
    child.stderr.on('data', (c) => {
      stderr += c;
      log?.write(c);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' ? new Error(`podman is not installed: ${INSTALL_HINT}`) : err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      log?.end();
      if (timedOut) reject(new Error(`${commandLine(args, storage)} did not finish within ${timeoutMs / 1000} s`));
      else resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** podman that must succeed; resolves with its stdout. */
export async function podmanOk(args, opts) {
  const r = await podman(args, opts);
  if (r.code !== 0) throw new Error(`${commandLine(args, opts?.storage)} exited ${r.code}:\n${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export const INSTALL_HINT = 'apt-get install -y --no-install-recommends podman runc mmdebstrap (as root; .ci/run does it)';

/** Fails with one message when what the image build and run need is missing. */
export function checkPrerequisites({ needMmdebstrap = false } = {}) {
  const problems = [];
  if (process.getuid?.() !== 0) problems.push('runs as root only (rootful podman; mmdebstrap in root mode)');
  const tools = ['podman', 'runc', ...(needMmdebstrap ? ['mmdebstrap'] : [])];
  for (const tool of tools) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    if (r.status !== 0) problems.push(`${tool} is missing`);
  }
  if (problems.length > 0) throw new Error(`${problems.join('; ')}: ${INSTALL_HINT}`);
}

/** `podman image inspect` of one image, or undefined when there is no such image. */
export async function inspectImage(ref, opts) {
  const r = await podman(['image', 'inspect', ref], opts);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout)[0];
}
