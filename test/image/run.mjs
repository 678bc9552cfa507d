#!/usr/bin/env node
/**
 * npm run test:image: the real Dockerfile, built unchanged with podman on a locally assembled
 * node:20-bookworm-slim (scripts/image/), run the way the chart runs it (issue 19, item 2).
 *
 * The web pod of the chart's default render is the model: the sidecar container's env, ports,
 * probes, securityContext (UID/GID, read-only root filesystem, no privilege escalation, every
 * capability dropped; the pod's RuntimeDefault seccomp is podman's default profile), memory limit
 * and volume mounts become podman flags (a field of the render this does not know how to map fails
 * the run rather than being left out), and the pod's terminationGracePeriodSeconds is the stop
 * timeout. The app beside it is the project's demo app (src/demo/app.ts, from the same image),
 * with the chart's app container's securityContext, mounts and env, in the sidecar's network
 * namespace (`--network container:`), listening on that namespace's loopback only, as in a pod.
 * Only the sidecar's container ports are published, on 127.0.0.1.
 *
 * Containers are removed on the way out (also after a failure or a signal); a run killed harder
 * leaves them labelled, and the next run removes them first. Waits are a bounded number of tries.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runHelm } from '../helpers/helm-binary.cjs';
import { buildImage } from '../../scripts/image/build.mjs';
import { BASE_IMAGE } from '../../scripts/image/base.mjs';
import { ROOT, RLIMITS, commandLine, inspectImage, podman, podmanOk } from '../../scripts/image/podman.mjs';

const TAG = 'localhost/metrics-sidecar:test';
const LABEL = 'metrics-sidecar.test=image';
/** The helm release name of the render. */
const HELM_RELEASE = 'demo';
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
/**
 * Size budget of what the Dockerfile adds to its base (package.json, production node_modules,
 * dist), and of the whole image. See docs/container-image.md for the figures and why.
 */
const MiB = 1024 * 1024;
const APP_LAYERS_BUDGET = 88 * MiB;
const IMAGE_BUDGET = 320 * MiB;

const started = Date.now();
const say = (msg) => process.stderr.write(`image [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------
// The chart's default render: the web pod.

function helmTemplate(chart) {
  const r = runHelm(['template', HELM_RELEASE, chart]);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter(Boolean);
}

function renderWebPod() {
  const docs = helmTemplate(path.join(ROOT, 'charts', 'metrics-sidecar'));
  const web = docs.find((d) => d.kind === 'Deployment' && d.metadata.name.endsWith('-web'));
  assert.ok(web, 'the default render has a web Deployment');
  const pod = web.spec.template.spec;
  const all = [...(pod.initContainers ?? []), ...pod.containers];
  const sidecar = all.find((c) => c.name === 'metrics-sidecar');
  const app = pod.containers.find((c) => c.name !== 'metrics-sidecar');
  assert.ok(sidecar && app, 'the web pod has the sidecar and an app container');
  // The sidecar's fields that podmanFlags() maps or that the checks read (probes, ports); any
  // other (command, args, envFrom, lifecycle, ...) would change how it runs, unseen here.
  const known = [
    'name',
    'image',
    'imagePullPolicy',
    'restartPolicy',
    'env',
    'ports',
    'resources',
    'securityContext',
    'volumeMounts',
    'startupProbe',
    'livenessProbe',
    'readinessProbe',
  ];
  assert.deepEqual(
    Object.keys(sidecar).filter((k) => !known.includes(k)),
    [],
    'fields of the sidecar container this test does not map',
  );
  return { pod, sidecar, app };
}

/** A Kubernetes quantity of bytes ("256Mi", "1G", "134217728") as a number. */
function bytes(quantity) {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  if (!m) throw new Error(`memory quantity ${quantity} is not one this test reads`);
  const unit = { Ki: 1024, Mi: MiB, Gi: 1024 * MiB, Ti: 1024 * 1024 * MiB, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] ?? 1;
  return Number(m[1]) * unit;
}

/**
 * The podman flags that run `container` of `pod` as the kubelet would: what is not mapped here
 * fails, so that a new field in the chart is looked at instead of silently dropped.
 */
function podmanFlags(pod, container) {
  const flags = [];
  const seccomp = pod.securityContext?.seccompProfile?.type;
  // podman applies its default seccomp profile unless told otherwise: RuntimeDefault.
  if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`seccompProfile ${seccomp} is not mapped`);
  const sc = container.securityContext ?? {};
  for (const key of Object.keys(sc)) {
    if (!['runAsNonRoot', 'runAsUser', 'runAsGroup', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'capabilities'].includes(key)) {
      throw new Error(`securityContext.${key} of ${container.name} is not mapped`);
    }
  }
  if (sc.runAsUser !== undefined) flags.push('--user', `${sc.runAsUser}:${sc.runAsGroup ?? sc.runAsUser}`);
  if (sc.readOnlyRootFilesystem) flags.push('--read-only', '--read-only-tmpfs=false'); // the kubelet adds no tmpfs of its own
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) flags.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) flags.push('--cap-add', cap);
  const limit = container.resources?.limits?.memory;
  if (limit !== undefined) flags.push('--memory', String(bytes(limit)), '--memory-swap', String(bytes(limit))); // no swap, as on a kubelet
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  for (const m of container.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    // An emptyDir (on disk or in memory) is empty at the start and gone with the pod: a tmpfs here.
    if (!v?.emptyDir || m.readOnly || m.subPath)
      throw new Error(`volume mount ${m.name} of ${container.name} is not a whole emptyDir, the one kind this test maps`);
    flags.push('--tmpfs', `${m.mountPath}:rw,nosuid,nodev${v.emptyDir.sizeLimit ? `,size=${bytes(v.emptyDir.sizeLimit)}` : ''}`);
  }
  for (const e of container.env ?? []) {
    if (e.value === undefined) throw new Error(`env ${e.name} of ${container.name} is not a plain value`);
    flags.push('--env', `${e.name}=${e.value}`);
  }
  return flags;
}

const envOf = (container, name) => container.env?.find((e) => e.name === name)?.value;

// ------------------------------------------------------------------------------------------------
// Containers.

const ctx = {};
const names = { sidecar: `msi-sidecar-${process.pid}`, app: `msi-app-${process.pid}` };

let cleaned = false;
/** Removes this test's containers, those of an earlier run killed too hard to clean up too. */
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  const ids = (await podmanOk(['ps', '--all', '--quiet', '--filter', `label=${LABEL}`])).split('\n').filter(Boolean);
  // --depend: the app, in the sidecar's network namespace, goes with it (and before it).
  if (ids.length > 0) await podmanOk(['rm', '--force', '--depend', '--ignore', '--time', '0', ...ids]);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    say(`${signal}: removing the containers`);
    cleanup().finally(() => process.exit(1));
  });
}

/** The host port (on 127.0.0.1) published for a container port of the sidecar. */
async function publishedPort(containerPort) {
  const out = (await podmanOk(['port', names.sidecar, `${containerPort}/tcp`])).trim();
  const m = /^127\.0\.0\.1:(\d+)$/m.exec(out);
  if (!m) throw new Error(`container port ${containerPort} is not published on 127.0.0.1: ${out}`);
  return Number(m[1]);
}

/** The published port of a container port given by number or by name (as probes give it). */
function hostPort(port) {
  const containerPort = typeof port === 'number' ? port : ctx.chart.sidecar.ports.find((p) => p.name === port)?.containerPort;
  const published = ctx.ports.get(containerPort);
  if (published === undefined) throw new Error(`port ${port} of the sidecar is not published`);
  return published;
}

async function get(port, p) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

/** Tries `fn` up to `tries` times, `everyMs` apart, until it returns without throwing. */
async function untilOk(what, fn, { tries = 100, everyMs = 100 } = {}) {
  let last;
  for (let i = 0; i < tries; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await pause(everyMs);
    }
  }
  throw new Error(`${what}: not so after ${tries} tries: ${last?.message}`);
}

async function logsOf(name) {
  const r = await podman(['logs', name]);
  return `${r.stdout}${r.stderr}`;
}

const execIn = (name, script) => podman(['exec', name, 'sh', '-c', script]);

/** The demo app, listening on the pod's loopback, StatsD to the sidecar as the chart's env says. */
function demoAppScript(port) {
  return [
    "const demo = require('/app/dist/demo/app.js');",
    'const statsd = demo.createStatsdSender(Number(process.env.STATSD_PORT), process.env.STATSD_HOST);',
    `const server = demo.createDemoApp({ statsd }).listen(${port}, '127.0.0.1', () => console.log('demo app listening on 127.0.0.1:${port}'));`,
    "process.on('SIGTERM', () => server.close(() => process.exit(0)));",
  ].join('\n');
}

before(async () => {
  await cleanup();
  cleaned = false;
  ctx.chart = renderWebPod();
  const { pod, sidecar, app } = ctx.chart;
  ctx.sidecarFlags = podmanFlags(pod, sidecar);
  ctx.appFlags = podmanFlags(pod, app);

  const { image, base } = await buildImage([TAG], { say });
  ctx.image = image;
  ctx.base = base;

  const publish = sidecar.ports.flatMap((p) => ['--publish', `127.0.0.1::${p.containerPort}/${(p.protocol ?? 'TCP').toLowerCase()}`]);
  const run = ['run', '--detach', '--name', names.sidecar, '--label', LABEL, ...RLIMITS, ...ctx.sidecarFlags, ...publish, TAG];
  say(commandLine(run));
  await podmanOk(run);
  const upstream = new URL(envOf(sidecar, 'UPSTREAM_URL'));
  assert.equal(upstream.hostname, '127.0.0.1', 'the chart points the sidecar at the app on the pod loopback');
  const appRun = [
    'run',
    '--detach',
    '--name',
    names.app,
    '--label',
    LABEL,
    '--network',
    `container:${names.sidecar}`,
    ...RLIMITS,
    ...ctx.appFlags,
    '--entrypoint',
    'node',
    TAG,
    '-e',
    demoAppScript(Number(upstream.port)),
  ];
  say(commandLine(appRun.slice(0, -1)).concat(' <demo app script>'));
  await podmanOk(appRun);

  ctx.ports = new Map();
  for (const p of sidecar.ports) ctx.ports.set(p.containerPort, await publishedPort(p.containerPort));
  ctx.main = hostPort(Number(envOf(sidecar, 'LISTEN_PORT')));
  ctx.metricsPort = hostPort(Number(envOf(sidecar, 'PROMETHEUS_PORT')));
  const readiness = sidecar.readinessProbe.httpGet;
  await untilOk('the sidecar is ready', async () => assert.equal((await get(hostPort(readiness.port), readiness.path)).status, 200));
  await untilOk('the demo app answers through the sidecar', async () => assert.equal((await get(ctx.main, '/')).status, 200));
  say(`sidecar ready: main port on 127.0.0.1:${ctx.main}, metrics on 127.0.0.1:${ctx.metricsPort}`);
});

after(async () => {
  if (ctx.chart && !ctx.stopped) {
    for (const name of Object.values(names)) say(`${name} log:\n${(await logsOf(name)).trimEnd()}`);
  }
  await cleanup();
});

// ------------------------------------------------------------------------------------------------

test('the image is the Dockerfile on the local base, with the user the chart runs it as', async () => {
  const base = await inspectImage(BASE_IMAGE);
  const { RootFS: rootfs, Config: config } = ctx.image;
  assert.equal(base.Id, ctx.base.id);
  assert.deepEqual(rootfs.Layers.slice(0, base.RootFS.Layers.length), base.RootFS.Layers, "the base's layers come first");
  assert.ok(rootfs.Layers.length > base.RootFS.Layers.length, 'and the Dockerfile adds layers on top');
  assert.deepEqual(config.Entrypoint, ['node', 'dist/main.js']);
  const sc = ctx.chart.sidecar.securityContext;
  assert.equal(config.User, `${sc.runAsUser}:${sc.runAsGroup}`, "the image's USER is the chart's runAsUser:runAsGroup");
  assert.ok(Number(config.User.split(':')[0]) > 0, 'non-root, as runAsNonRoot requires');
});

test('--version prints the version of package.json', async () => {
  const r = await podmanOk(['run', '--rm', '--label', LABEL, ...RLIMITS, ...ctx.sidecarFlags, '--network', 'none', TAG, '--version']);
  assert.equal(r.trim(), PKG.version);
});

test('the container runs as the chart says: UID/GID, no capabilities, no new privileges, seccomp, memory limit, read-only root', async () => {
  const { sidecar } = ctx.chart;
  const status = await execIn(names.sidecar, 'cat /proc/1/status');
  assert.equal(status.code, 0, status.stderr);
  const field = (name) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status.stdout)?.[1].split(/\s+/);
  assert.deepEqual(field('Uid'), Array(4).fill(String(sidecar.securityContext.runAsUser)));
  assert.deepEqual(field('Gid'), Array(4).fill(String(sidecar.securityContext.runAsGroup)));
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(field(set)[0], '0000000000000000', set);
  assert.equal(field('NoNewPrivs')[0], '1');
  assert.equal(field('Seccomp')[0], '2', 'a seccomp filter is in force');
  const limit = await execIn(names.sidecar, 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max');
  assert.equal(Number(limit.stdout.trim()), bytes(sidecar.resources.limits.memory));
  const comm = await execIn(names.sidecar, 'cat /proc/1/cmdline | tr "\\0" " "');
  assert.equal(comm.stdout.trim(), 'node dist/main.js', 'node is PID 1: SIGTERM reaches it');
  for (const dir of ['/app', '/', '/tmp', '/home']) {
    const w = await execIn(names.sidecar, `touch ${dir}/written-by-the-test`);
    const mountsTmp = (sidecar.volumeMounts ?? []).some((m) => m.mountPath === dir);
    if (mountsTmp) assert.equal(w.code, 0, `${dir} is the chart's emptyDir: writable`);
    else assert.match(w.stderr, /Read-only file system/, `${dir} is read-only`);
  }
});

test('it answers its probes, /healthz, /readyz and the metrics path', async () => {
  const { sidecar } = ctx.chart;
  const probes = ['startupProbe', 'livenessProbe', 'readinessProbe'].map((k) => sidecar[k]?.httpGet).filter(Boolean);
  assert.ok(probes.length >= 2, 'the chart gives the sidecar HTTP probes');
  for (const p of probes) {
    const r = await get(hostPort(p.port), p.path);
    assert.equal(r.status, 200, `${p.path} on ${p.port}`);
  }
  for (const p of ['/healthz', '/readyz']) assert.equal((await get(ctx.metricsPort, p)).status, 200, `${p} on the metrics port`);
  const metricsPath = envOf(sidecar, 'METRICS_PATH');
  const m = await get(ctx.metricsPort, metricsPath);
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain/);
  const info = new RegExp(`^metrics_sidecar_info\\{[^}]*\\} 1$`, 'm').exec(m.body)?.[0] ?? '';
  assert.match(info, new RegExp(`version="${PKG.version.replace(/\./g, '\\.')}"`));
  assert.match(info, new RegExp(`app_name="${envOf(sidecar, 'APP_NAME')}"`));
  assert.match(info, new RegExp(`role="${envOf(sidecar, 'SIDECAR_ROLE')}"`));
  assert.match(m.body, new RegExp(`^metrics_sidecar_build_info\\{[^}]*nodejs_version="${ctx.base.node.reported}"[^}]*\\} 1$`, 'm'));
  // Not served on the main port in the default render: reserved, never forwarded to the app.
  assert.equal(envOf(sidecar, 'SERVE_PROMETHEUS_ENDPOINT'), 'false');
  assert.equal((await get(ctx.main, metricsPath)).status, 404);
});

test('the main port forwards to the app on the pod loopback; the app reaches StatsD there too', async () => {
  const r = await get(ctx.main, '/users/42');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { user: '42' });
  const metricsPath = envOf(ctx.chart.sidecar, 'METRICS_PATH');
  const prefix = envOf(ctx.chart.sidecar, 'HTTP_METRICS_PREFIX');
  const body = await untilOk('the StatsD timer the app sent is counted', async () => {
    const m = await get(ctx.metricsPort, metricsPath);
    assert.match(m.body, /^github_api_call_latency_count\{endpoint="\/users\/\{username\}",status="200"\} [1-9]/m);
    return m.body;
  });
  assert.match(body, new RegExp(`^${prefix}_total\\{method="GET",status="200"\\} [1-9]`, 'm'));
  assert.match(body, new RegExp(`^${prefix}_duration_seconds_count\\{method="GET",path="/users/:id",status="200"\\} 1$`, 'm'));
});

test('SIGTERM drains (readiness 503, still forwarding) and the sidecar exits 0 within the grace period', async () => {
  const { pod, sidecar } = ctx.chart;
  const grace = pod.terminationGracePeriodSeconds;
  assert.ok(Number.isInteger(grace) && grace > 0, 'the chart sets terminationGracePeriodSeconds');
  const readiness = sidecar.readinessProbe.httpGet;
  // podman stop: SIGTERM (the image's stop signal), then SIGKILL if still running after `grace` s.
  const stopping = podman(['stop', '--time', String(grace), names.sidecar], { timeoutMs: (grace + 60) * 1000 });
  await untilOk('readiness answers 503 while draining', async () => assert.equal((await get(hostPort(readiness.port), readiness.path)).status, 503));
  const during = await get(ctx.main, '/users/7');
  assert.equal(during.status, 200, 'requests are still forwarded during the drain delay');
  const stop = await stopping;
  ctx.stopped = true;
  assert.equal(stop.code, 0, stop.stderr);
  const state = JSON.parse(await podmanOk(['inspect', names.sidecar]))[0].State;
  assert.equal(state.Status, 'exited');
  assert.equal(state.OOMKilled, false);
  assert.equal(state.ExitCode, 0, 'exit 0: not killed at the end of the grace period (137)');
  const lines = (await logsOf(names.sidecar))
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  const msg = (m) => lines.find((l) => l.msg === m);
  assert.equal(msg('shutdown requested')?.signal, 'SIGTERM');
  assert.equal(msg('draining')?.delay_ms, Number(envOf(sidecar, 'SHUTDOWN_DELAY_MS')));
  assert.equal(msg('stopped')?.forced, false, 'drained, not cut at the drain timeout');
  ctx.logLines = lines;
});

test('nothing is written outside /tmp: podman diff, the container layer, and the logs', async () => {
  assert.ok(ctx.stopped, 'runs after the sidecar stopped');
  // What podman itself creates in every container's layer, before the process starts: mount points
  // for the files it bind-mounts (hosts, hostname, resolv.conf, .containerenv) and /etc/mtab.
  const podmanOwn = new Set(['/etc', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/run', '/run/.containerenv']);
  const underTmp = (p) => p === '/tmp' || p.startsWith('/tmp/');
  for (const name of Object.values(names)) {
    const diff = JSON.parse(await podmanOk(['diff', '--format', 'json', name]));
    const changed = [...(diff.added ?? []), ...(diff.changed ?? []), ...(diff.deleted ?? [])];
    assert.deepEqual(
      changed.filter((p) => !underTmp(p) && !podmanOwn.has(p)),
      [],
      `podman diff of ${name}`,
    );
    const upper = JSON.parse(await podmanOk(['inspect', name]))[0].GraphDriver.Data.UpperDir;
    const found = [];
    const walk = (dir) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        const inContainer = `/${path.relative(upper, full)}`;
        const st = fs.lstatSync(full);
        if (!underTmp(inContainer)) {
          const podmans = podmanOwn.has(inContainer) && st.uid === 0 && (st.isDirectory() || st.isSymbolicLink() || st.size === 0);
          if (!podmans) found.push(`${inContainer} (uid ${st.uid}, ${st.size} B)`);
        }
        if (entry.isDirectory()) walk(full);
      }
    };
    walk(upper);
    assert.deepEqual(found, [], `files in the container layer of ${name}`);
  }
  const bad = ctx.logLines.filter((l) => l.level === 'error' || l.level === 'fatal' || /EROFS|read-only/i.test(JSON.stringify(l)));
  assert.deepEqual(bad, [], 'no error in the sidecar log (a refused write would show here)');
});

test(`the image size is within its budget (app layers ${APP_LAYERS_BUDGET / MiB} MiB, image ${IMAGE_BUDGET / MiB} MiB)`, async (t) => {
  const image = ctx.image.Size;
  const base = ctx.base.size;
  const app = image - base;
  const du = await podmanOk([
    'run',
    '--rm',
    '--label',
    LABEL,
    ...RLIMITS,
    '--network',
    'none',
    '--entrypoint',
    'sh',
    TAG,
    '-c',
    [
      'du -sb /usr/local/bin/node /usr/local/include /usr/local/lib/node_modules/npm /app/node_modules /app/dist',
      // What a distroless-class runtime keeps: node, the libraries it links, the app.
      "echo $(ldd /usr/local/bin/node | awk '/=>/ {print $3} /ld-linux/ {print $1}' | xargs readlink -f | xargs du -bL | awk '{s+=$1} END {print s}') libs",
    ].join('; '),
  ]);
  const sizes = Object.fromEntries(
    du
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).reverse()),
  );
  const mb = (n) => `${(Number(n) / 1e6).toFixed(1)} MB`;
  const debian = base - ['/usr/local/bin/node', '/usr/local/include', '/usr/local/lib/node_modules/npm'].reduce((sum, k) => sum + Number(sizes[k]), 0);
  const floor = Number(sizes['/usr/local/bin/node']) + Number(sizes.libs) + Number(sizes['/app/node_modules']) + Number(sizes['/app/dist']);
  const report = [
    `image ${mb(image)} = base ${mb(base)} + app layers ${mb(app)}`,
    `base: node ${mb(sizes['/usr/local/bin/node'])}, Node headers ${mb(sizes['/usr/local/include'])}, npm ${mb(sizes['/usr/local/lib/node_modules/npm'])}, Debian bookworm-slim ${mb(debian)}`,
    `app: node_modules ${mb(sizes['/app/node_modules'])}, dist ${mb(sizes['/app/dist'])}`,
    `distroless-class floor (node + the ${mb(sizes.libs)} of libraries it links + /app): ${mb(floor)}`,
  ];
  for (const line of report) {
    t.diagnostic(line);
    say(line);
  }
  assert.ok(app <= APP_LAYERS_BUDGET, `app layers ${mb(app)} over the ${APP_LAYERS_BUDGET / MiB} MiB budget`);
  assert.ok(image <= IMAGE_BUDGET, `image ${mb(image)} over the ${IMAGE_BUDGET / MiB} MiB budget`);
});

test('release:artifacts: an OCI archive that loads, elsewhere, as the very image tested, and a chart that deploys it', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-release-'));
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-sidecar-load-'));
  try {
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'release-artifacts.mjs')], {
      cwd: ROOT,
      env: { ...process.env, RELEASE_DIR: out, RELEASE_ALLOW_DIRTY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const code = await new Promise((resolve) => child.once('close', resolve));
    assert.equal(code, 0, output);

    const provenance = JSON.parse(fs.readFileSync(path.join(out, 'provenance.json'), 'utf8'));
    assert.equal(provenance.package.version, PKG.version);
    assert.equal(provenance.git.commit, spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim());
    assert.equal(provenance.image.id, `sha256:${ctx.image.Id}`, 'the archive holds the image these tests ran');
    assert.equal(provenance.base.id, `sha256:${ctx.base.id}`);
    assert.equal(provenance.base.node.reported, `v${provenance.base.node.version}`);
    const sums = fs.readFileSync(path.join(out, 'SHA256SUMS'), 'utf8');
    assert.equal(provenance.artifacts.length, 2);
    for (const a of provenance.artifacts) {
      const file = path.join(out, a.file);
      assert.equal(crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'), a.sha256, a.file);
      assert.ok(sums.includes(`${a.sha256}  ${a.file}\n`), `SHA256SUMS lists ${a.file}`);
    }
    const [archive, chart] = provenance.artifacts.map((a) => path.join(out, a.file));

    // A machine that has only the archive: a storage of its own.
    await podmanOk(['load', '--input', archive], { storage: elsewhere, timeoutMs: 10 * 60_000 });
    const loaded = await inspectImage(provenance.image.name, { storage: elsewhere });
    assert.equal(`sha256:${loaded?.Id}`, provenance.image.id, 'podman load gives the same image id');
    const version = await podmanOk(['run', '--rm', ...RLIMITS, ...ctx.sidecarFlags, '--network', 'none', provenance.image.name, '--version'], {
      storage: elsewhere,
    });
    assert.equal(version.trim(), PKG.version);

    // The packaged chart deploys that image by default.
    const docs = helmTemplate(chart);
    const images = docs
      .filter((d) => d.kind === 'Deployment')
      .flatMap((d) => [...(d.spec.template.spec.initContainers ?? []), ...d.spec.template.spec.containers])
      .filter((c) => c.name === 'metrics-sidecar')
      .map((c) => c.image);
    assert.ok(images.length > 0);
    for (const image of images) assert.equal(image, provenance.chart.defaultImage);
    assert.equal(`docker.io/library/${provenance.chart.defaultImage}`, provenance.image.refName, "the archive's name is the chart's default image");
  } finally {
    await podman(['system', 'reset', '--force'], { storage: elsewhere });
    fs.rmSync(elsewhere, { recursive: true, force: true });
    fs.rmSync(out, { recursive: true, force: true });
  }
});
