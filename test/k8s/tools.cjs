// What `npm run test:k8s` runs on: etcd from Debian's packages and kube-apiserver v1.20.2 built from
// Debian bookworm's source package src:kubernetes, built once and cached under .tools/k8s/.
// Neither Debian nor npm ships a kube-apiserver binary; the source package carries the whole tree
// with vendor/, and Debian's Go 1.19 builds it the way its debian/rules does.
// CommonJS so that the runner (ESM) and the suite (TypeScript under Jest) share this one copy.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const TOOLS = path.join(ROOT, '.tools', 'k8s');
/** The cached binary; its presence is the cache hit (written last, by rename). */
const APISERVER = path.join(TOOLS, 'bin', 'kube-apiserver-v1.20.2');
const ETCD = '/usr/bin/etcd';
const SOURCE_PACKAGE = 'kubernetes';
const SUITE = 'bookworm';
/** Debian's packages the build and the run need (etcd-client brings etcdctl, for looking at etcd by hand). */
const APT_PACKAGES = ['etcd-server', 'etcd-client', 'golang-go', 'rsync', 'golang-github-modern-go-reflect2-dev', 'dpkg-dev', 'make', 'openssl'];
const REFLECT2_DEB = '/usr/share/gocode/src/github.com/modern-go/reflect2';

function log(msg) {
  process.stderr.write(`[test:k8s] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
}

function installed(pkg) {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return out.includes('install ok installed');
  } catch {
    return false;
  }
}

/** Installs what is missing of APT_PACKAGES (as root, no prompt: CI has no stdin). */
function ensureAptPackages() {
  const missing = APT_PACKAGES.filter((p) => !installed(p));
  if (missing.length === 0) return;
  if (process.getuid && process.getuid() !== 0) {
    throw new Error(`test:k8s needs Debian packages ${missing.join(' ')}: run as root or install them (apt-get install ${missing.join(' ')})`);
  }
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  // dpkg's progress lines are noise in a test log; errors still reach stderr.
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * The machine's Debian mirror and keyring, read from its own apt sources (deb822 .sources files or
 * one-line .list files), so that the private deb-src entry points where the machine's deb entries do.
 */
function machineMirror() {
  const files = [];
  if (fs.existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  if (fs.existsSync('/etc/apt/sources.list.d')) {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.sources') || f.endsWith('.list')) files.push(path.join('/etc/apt/sources.list.d', f));
    }
  }
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name) => {
          const m = new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza);
          return m ? m[1].trim() : undefined;
        };
        if (/^enabled:\s*no/im.test(stanza)) continue;
        const suites = (field('Suites') ?? '').split(/\s+/);
        const uri = (field('URIs') ?? '').split(/\s+/)[0];
        if (uri && suites.includes(SUITE) && (field('Components') ?? '').split(/\s+/).includes('main')) {
          return { uri, signedBy: field('Signed-By') };
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^deb(?:-src)?\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.trim());
        if (m && m[3] === SUITE && m[4].split(/\s+/).includes('main')) {
          const signed = /signed-by=(\S+)/.exec(m[1] ?? '');
          return { uri: m[2], signedBy: signed ? signed[1] : undefined };
        }
      }
    }
  }
  throw new Error(`no apt source for ${SUITE} main on this machine: test:k8s needs Debian ${SUITE}'s source package ${SOURCE_PACKAGE}`);
}

/**
 * `apt-get source kubernetes` through a private apt directory under .tools/k8s/apt/: its own
 * sources list (one deb-src entry), its own lists and cache, so the machine's sources and package
 * lists are untouched. Returns the unpacked source tree.
 */
function fetchSource(workDir) {
  const aptDir = path.join(TOOLS, 'apt');
  const lists = path.join(aptDir, 'lists');
  const cache = path.join(aptDir, 'cache');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  fs.mkdirSync(path.join(cache, 'archives', 'partial'), { recursive: true });
  const { uri, signedBy } = machineMirror();
  const sources = path.join(aptDir, 'sources.list');
  const opts = signedBy ? ` [signed-by=${signedBy}]` : '';
  fs.writeFileSync(sources, `deb-src${opts} ${uri} ${SUITE} main\n`);
  const aptOpts = [
    '-o',
    `Dir::Etc::sourcelist=${sources}`,
    '-o',
    'Dir::Etc::sourceparts=-',
    '-o',
    `Dir::State::Lists=${lists}`,
    '-o',
    `Dir::Cache=${cache}`,
    '-o',
    'APT::Get::List-Cleanup=0',
  ];
  log(`apt-get update (private lists: ${path.relative(ROOT, lists)})`);
  run('apt-get', [...aptOpts, 'update', '-qq']);
  fs.mkdirSync(workDir, { recursive: true });
  log(`apt-get source ${SOURCE_PACKAGE} (${SUITE})`);
  run('apt-get', [...aptOpts, 'source', '-qq', `${SOURCE_PACKAGE}/${SUITE}`], { cwd: workDir });
  const dir = fs.readdirSync(workDir).find((d) => d.startsWith(`${SOURCE_PACKAGE}-`) && fs.statSync(path.join(workDir, d)).isDirectory());
  if (!dir) throw new Error(`apt-get source ${SOURCE_PACKAGE} left no source tree in ${workDir}`);
  return path.join(workDir, dir);
}

/**
 * Builds kube-apiserver once (~4.5 min, ~1.4 GB on 2 cores) unless the cached binary is there;
 * returns its path. The vendored github.com/modern-go/reflect2 1.0.1 crashes under Go >= 1.18 the
 * first time a custom resource is decoded: Debian's 1.0.2 replaces it, as Debian's own build does.
 */
function ensureApiServer() {
  ensureAptPackages();
  if (fs.existsSync(APISERVER)) return APISERVER;
  const started = Date.now();
  const workDir = path.join(TOOLS, 'src');
  fs.rmSync(workDir, { recursive: true, force: true });
  const tree = fetchSource(workDir);
  const vendored = path.join(tree, 'vendor', 'github.com', 'modern-go', 'reflect2');
  if (!fs.existsSync(REFLECT2_DEB)) throw new Error(`${REFLECT2_DEB} missing: apt-get install golang-github-modern-go-reflect2-dev`);
  fs.rmSync(vendored, { recursive: true, force: true });
  fs.cpSync(REFLECT2_DEB, vendored, { recursive: true, dereference: true });
  log(`make WHAT=cmd/kube-apiserver in ${path.relative(ROOT, tree)}`);
  const gocache = path.join(TOOLS, 'gocache');
  run('make', ['WHAT=cmd/kube-apiserver'], {
    cwd: tree,
    env: {
      PATH: `/usr/lib/go/bin:${process.env.PATH}`,
      HOME: process.env.HOME ?? TOOLS,
      GOCACHE: gocache,
      GOFLAGS: '-mod=vendor',
      GO111MODULE: 'on',
      GOPROXY: 'off',
      // What the version flag and /version say: Debian's tarball carries no git metadata.
      KUBE_GIT_VERSION: 'v1.20.2',
      KUBE_GIT_TREE_STATE: 'clean',
      KUBE_GIT_COMMIT: 'debian-bookworm-src-kubernetes',
      KUBE_BUILD_PLATFORMS: 'linux/amd64',
    },
  });
  const built = path.join(tree, '_output', 'local', 'bin', 'linux', 'amd64', 'kube-apiserver');
  const alt = path.join(tree, '_output', 'bin', 'kube-apiserver');
  const binary = fs.existsSync(built) ? built : alt;
  if (!fs.existsSync(binary)) throw new Error(`make WHAT=cmd/kube-apiserver built no binary in ${tree}/_output`);
  fs.mkdirSync(path.dirname(APISERVER), { recursive: true });
  const tmp = `${APISERVER}.${process.pid}.tmp`;
  fs.copyFileSync(binary, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, APISERVER);
  // The tree and Go's cache are ~1.3 GB the cached binary no longer needs.
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.rmSync(gocache, { recursive: true, force: true });
  log(`kube-apiserver built in ${Math.round((Date.now() - started) / 1000)} s: ${path.relative(ROOT, APISERVER)}`);
  return APISERVER;
}

module.exports = { ROOT, TOOLS, APISERVER, ETCD, ensureAptPackages, ensureApiServer };
