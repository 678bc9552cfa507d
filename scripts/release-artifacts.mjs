#!/usr/bin/env node
// npm run release:artifacts: the image and the chart as files a maintainer with registry access
// can push unchanged (issue 19, item 3), in release/ (gitignored; RELEASE_DIR moves it):
//   metrics-sidecar-<version>.oci.tar   the image (`podman save --format oci-archive`), built from
//                                       the unchanged Dockerfile on the local base (scripts/image/),
//                                       named metrics-sidecar:<version>, the chart's default image
//                                       (docker.io/library/… is how Docker, containerd and podman
//                                       spell that bare name)
//   metrics-sidecar-<version>.tgz       the chart (`helm package`)
//   provenance.json                     what went in: git commit, versions, the base's recipe and
//                                       Debian packages, tools, image id and manifest digest,
//                                       sha256 of each artifact
//   SHA256SUMS                          the same sums, for `sha256sum -c`
// A tree with uncommitted changes is refused (its commit would not say what was built) unless
// RELEASE_ALLOW_DIRTY=1, which provenance.json then records.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { buildImage } from './image/build.mjs';
import { ROOT, podmanOk } from './image/podman.mjs';
import helmBinary from '../test/helpers/helm-binary.cjs';

const SELF = fileURLToPath(import.meta.url);
const CHART = path.join(ROOT, 'charts', 'metrics-sidecar');

function sh(command, args) {
  const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

function helm(args) {
  const r = helmBinary.runHelm(args);
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const firstLine = (text) => text.split('\n')[0].trim();

/** The image the chart deploys by default, fully spelled: the name the archive carries. */
export function chartImage() {
  const chart = YAML.parse(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8'));
  const values = YAML.parse(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
  const { repository, tag } = values.sidecar.image;
  const ref = `${repository}:${tag || chart.appVersion}`;
  const firstPart = repository.split('/')[0];
  const hasRegistry = repository.includes('/') && (firstPart.includes('.') || firstPart.includes(':') || firstPart === 'localhost');
  const full = hasRegistry ? ref : repository.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
  return { chart, ref, full };
}

export async function releaseArtifacts({ outDir = path.join(ROOT, 'release'), allowDirty = false, say = () => undefined } = {}) {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const { chart, ref, full } = chartImage();
  if (chart.appVersion !== pkg.version) throw new Error(`the chart's appVersion ${chart.appVersion} is not package.json's version ${pkg.version}`);
  const commit = sh('git', ['rev-parse', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain']) !== '';
  if (dirty && !allowDirty)
    throw new Error('the work tree has uncommitted changes (git status): commit them, or set RELEASE_ALLOW_DIRTY=1 for a build that is not a release');

  const { image, base } = await buildImage([full], { say });
  fs.mkdirSync(outDir, { recursive: true });
  const imageFile = path.join(outDir, `${pkg.name}-${pkg.version}.oci.tar`);
  fs.rmSync(imageFile, { force: true });
  say(`podman save --format oci-archive ${full}`);
  await podmanOk(['save', '--format', 'oci-archive', '--output', imageFile, full], { timeoutMs: 10 * 60_000 });
  const index = JSON.parse(sh('tar', ['-xOf', imageFile, 'index.json']));
  const manifest = index.manifests[0];

  say('helm package');
  const chartFile = path.join(outDir, `${chart.name}-${chart.version}.tgz`);
  fs.rmSync(chartFile, { force: true });
  helm(['package', CHART, '--destination', outDir]);
  if (!fs.existsSync(chartFile)) throw new Error(`helm package wrote no ${chartFile}`);

  const artifacts = [imageFile, chartFile].map((f) => ({ file: path.basename(f), bytes: fs.statSync(f).size, sha256: sha256(f) }));
  const dpkgVersion = (p) => sh('dpkg-query', ['-W', '-f', '${Version}', p]);
  const provenance = {
    createdAt: new Date().toISOString(),
    git: { commit, dirty },
    package: { name: pkg.name, version: pkg.version },
    chart: { name: chart.name, version: chart.version, appVersion: chart.appVersion, defaultImage: ref },
    image: {
      name: full,
      id: `sha256:${image.Id}`,
      manifestDigest: manifest.digest,
      refName: manifest.annotations?.['org.opencontainers.image.ref.name'],
      uncompressedBytes: image.Size,
      built: 'the repository Dockerfile, unchanged, podman build --pull=never on the base below',
      user: image.Config.User,
      entrypoint: image.Config.Entrypoint,
    },
    base: {
      name: base.name,
      id: `sha256:${base.id}`,
      digest: base.digest,
      assembled: 'locally by scripts/image/base.mjs (no registry reachable): Debian from the mirror with mmdebstrap, Node and npm from the npm registry',
      node: base.node,
      npm: base.npm,
      debian: base.debian,
      builtAt: base.builtAt,
    },
    tools: {
      podman: `${sh('podman', ['--version'])} (Debian ${dpkgVersion('podman')})`,
      runc: `${firstLine(sh('runc', ['--version']))} (Debian ${dpkgVersion('runc')})`,
      mmdebstrap: `${sh('mmdebstrap', ['--version'])} (Debian ${dpkgVersion('mmdebstrap')})`,
      helm: helm(['version', '--short']),
      node: process.version,
      npm: sh('npm', ['--version']),
    },
    artifacts,
  };
  fs.writeFileSync(path.join(outDir, 'provenance.json'), `${JSON.stringify(provenance, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'SHA256SUMS'), artifacts.map((a) => `${a.sha256}  ${a.file}\n`).join(''));
  return { outDir, provenance };
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  const say = (m) => process.stderr.write(`${m}\n`);
  releaseArtifacts({
    outDir: process.env.RELEASE_DIR ? path.resolve(process.env.RELEASE_DIR) : undefined,
    allowDirty: process.env.RELEASE_ALLOW_DIRTY === '1',
    say,
  }).then(
    ({ outDir, provenance }) => {
      const rel = path.relative(process.cwd(), outDir) || '.';
      for (const a of provenance.artifacts) process.stdout.write(`${rel}/${a.file}  ${(a.bytes / 1e6).toFixed(1)} MB  sha256:${a.sha256}\n`);
      process.stdout.write(`${rel}/provenance.json  ${rel}/SHA256SUMS\nimage ${provenance.image.name} ${provenance.image.id}\n`);
    },
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
