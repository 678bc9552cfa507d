#!/usr/bin/env node
// Builds the repository's Dockerfile, unchanged, with podman on the local base image (base.mjs).
//
// Build flags, none of which changes what the Dockerfile says:
//   --pull=never     the base comes from local storage only (no registry can be reached here);
//   --network host   the build stage's `npm ci` reaches the npm registry the way the machine's own
//                    npm does, with no bridge or NAT in between;
//   -v <dir>:/usr/local/etc:ro, only when the machine's npm trusts a CA file of its own (npm's
//                    `cafile`, or NODE_EXTRA_CA_CERTS, as on machines whose registry traffic
//                    goes through a TLS-inspecting proxy): the RUN steps see an npmrc there (npm's
//                    global config in the image) naming that CA bundle and the machine's registry.
//                    It is a build-time mount, in no layer; only the build stage runs npm, and the
//                    runtime stage copies node_modules and dist from it, nothing else.
//
//   node scripts/image/build.mjs [tag ...]     (default tag: localhost/metrics-sidecar:dev)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ensureBase, tail } from './base.mjs';
import { IMAGE_DIR, ROOT, RLIMITS, checkPrerequisites, inspectImage, podman } from './podman.mjs';

const SELF = fileURLToPath(import.meta.url);
const DEFAULT_REGISTRY = 'https://registry.npmjs.org/';

function npmConfig(key) {
  const r = spawnSync('npm', ['config', 'get', key], { cwd: ROOT, encoding: 'utf8' });
  const v = r.status === 0 ? r.stdout.trim() : '';
  return v === '' || v === 'null' || v === 'undefined' ? undefined : v;
}

/**
 * The npm configuration the build's RUN steps need on this machine, as a directory to mount on
 * /usr/local/etc, or undefined when the machine's npm uses the public registry with Node's own CAs.
 */
function npmBuildConfig() {
  const cafile = npmConfig('cafile');
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  const registry = npmConfig('registry') ?? DEFAULT_REGISTRY;
  if (!cafile && !extra && registry === DEFAULT_REGISTRY) return undefined;
  // npm's cafile replaces Node's CA list, so a lone extra CA is added to Node's own roots.
  const pems = cafile ? [fs.readFileSync(cafile, 'utf8')] : [...tls.rootCertificates];
  if (extra && fs.existsSync(extra)) pems.push(fs.readFileSync(extra, 'utf8'));
  const dir = path.join(IMAGE_DIR, 'npm-build-config');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'npm-build-ca.pem'), `${pems.map((p) => p.trim()).join('\n')}\n`);
  fs.writeFileSync(path.join(dir, 'npmrc'), `cafile=/usr/local/etc/npm-build-ca.pem\nregistry=${registry}\n`);
  return dir;
}

/**
 * Builds the Dockerfile (the base first, if needed) and tags the result with every tag given;
 * resolves with the image's `podman image inspect` and the base's record.
 */
export async function buildImage(tags, { say = () => undefined } = {}) {
  checkPrerequisites();
  const base = await ensureBase({ say });
  const logFile = path.join(IMAGE_DIR, 'logs', 'build.log');
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  fs.writeFileSync(logFile, '');
  const config = npmBuildConfig();
  const args = [
    'build',
    '--pull=never',
    '--network',
    'host',
    ...RLIMITS,
    ...(config ? ['--volume', `${config}:/usr/local/etc:ro`] : []),
    ...tags.flatMap((t) => ['--tag', t]),
    '--file',
    path.join(ROOT, 'Dockerfile'),
    ROOT,
  ];
  const started = Date.now();
  say(`podman build of the Dockerfile (log: ${path.relative(ROOT, logFile)})`);
  const r = await podman(args, { logFile, timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new Error(`podman build failed (exit ${r.code}); the end of ${path.relative(ROOT, logFile)}:\n${tail(logFile, 40)}`);
  const image = await inspectImage(tags[0]);
  say(`built ${tags.join(', ')} in ${Math.round((Date.now() - started) / 1000)} s: ${image.Id.slice(0, 12)}`);
  return { image, base };
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  const tags = process.argv.slice(2);
  buildImage(tags.length > 0 ? tags : ['localhost/metrics-sidecar:dev'], { say: (m) => process.stderr.write(`${m}\n`) }).then(
    ({ image }) => process.stdout.write(`${image.Id}\n`),
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
