/**
 * The command line as an operator meets it: `node dist/main.js` with --help, --version and
 * --check-config, and a real start with the same environment. Everything the process reads at
 * start (files included) is validated in one phase: --check-config and a start fail the same way.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ConfigError, loadConfig, readConfig } from '../../src/config';
import { EnvReader } from '../../src/config/parse';
import { VARIABLES, VARIABLE_NAMES, helpText, unknownVariables, readVariable, markdownTable, variablesJson } from '../../src/config/variables';
import { TABLE_END, TABLE_START } from '../../src/config/docs';
import { MAIN_JS } from '../helpers/sidecar';
import { VERSION } from '../../src/version';
import { MAX_FILE_BYTES } from '../../src/config/parse';

const ROOT = path.join(__dirname, '..', '..');
const run = (env: Record<string, string>, args: string[] = []) =>
  spawnSync(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', STATSD_PORT: '0', ...env }, encoding: 'utf8', timeout: 20000 });

/** Holds two ports for the duration of `fn`: a process that tried to listen on them would fail. */
async function holdingPorts<T>(fn: (ports: [number, number]) => T): Promise<T> {
  const servers = [net.createServer(), net.createServer()];
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  try {
    return fn(servers.map((s) => (s.address() as AddressInfo).port) as [number, number]);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

describe('--help and --version', () => {
  it('should print every variable with its default and meaning, and exit 0 without listening', async () => {
    await holdingPorts(([a, b]) => {
      const r = run({ LISTEN_HOST: '127.0.0.1', LISTEN_PORT: String(a), PROMETHEUS_PORT: String(b) }, ['--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(helpText(VERSION));
      for (const name of VARIABLE_NAMES) expect(r.stdout).toContain(`  ${name}  (default: `);
      for (const flag of ['--help', '--version', '--check-config']) expect(r.stdout).toContain(flag);
      expect(r.stdout).toContain('LISTEN_PORT  (default: 8080)');
      expect(r.stdout).toContain('prefix of the RED families');
      expect(r.stderr).toBe('');
    });
  });

  it('should print the version and exit 0 without listening', async () => {
    await holdingPorts(([a, b]) => {
      const r = run({ LISTEN_HOST: '127.0.0.1', LISTEN_PORT: String(a), PROMETHEUS_PORT: String(b) }, ['--version']);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}\n`);
    });
  });

  it('should refuse an unknown argument with exit 2', () => {
    const r = run({}, ['--chek-config']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--chek-config');
  });
});

describe('one validation phase: files read at start are checked by --check-config too', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-cli-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const file = (name: string, content: string) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, content);
    return p;
  };

  const cases: [string, () => Record<string, string>, string, RegExp][] = [
    [
      'a mapping file that is not YAML',
      () => ({ STATSD_MAPPING_FILE: file('yaml-error.yaml', 'mappings:\n  - match: [unclosed\n') }),
      'STATSD_MAPPING_FILE',
      /yaml-error\.yaml.*not valid YAML/,
    ],
    [
      'a mapping rule with a bad name',
      () => ({ STATSD_MAPPING_FILE: file('bad-name.yaml', 'mappings:\n  - match: "a.*"\n    name: "bad name!"\n') }),
      'STATSD_MAPPING_FILE',
      /bad-name\.yaml.*mappings\[0\].*"bad name!" is not a metric name/,
    ],
    [
      'a malformed API keys file',
      () => ({ METRICS_API_KEYS_FILE: file('keys', 'prometheus not-a-key metrics\n') }),
      'METRICS_API_KEYS_FILE',
      /keys": line 1: the key must be/,
    ],
    [
      'an empty password file',
      () => ({ METRICS_BASIC_AUTH_USERNAME: 'prom', METRICS_BASIC_AUTH_PASSWORD_FILE: file('password', '') }),
      'METRICS_BASIC_AUTH_PASSWORD_FILE',
      /password": the file is empty/,
    ],
    [
      'a kubeconfig without a server',
      () => ({
        METRICS_KUBERNETES_AUTH: 'true',
        KUBECONFIG: file(
          'kubeconfig',
          'apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n',
        ),
      }),
      'KUBECONFIG',
      /kubeconfig": cluster "c" has no server/,
    ],
    ['a missing file', () => ({ STATSD_MAPPING_FILE: path.join(tmp, 'nope.yaml') }), 'STATSD_MAPPING_FILE', /nope\.yaml" is not a readable file/],
    [
      'bad bucket lists',
      () => ({ HTTP_DURATION_BUCKETS: '1,0.5,abc' }),
      'HTTP_DURATION_BUCKETS',
      /"abc" is not a positive number; bucket bounds must be strictly ascending \(1 then 0\.5\)/,
    ],
  ];

  it.each(cases)('should fail --check-config and a real start alike (exit 2) for %s', (_what, envOf, variable, why) => {
    const env = envOf();
    const check = run(env, ['--check-config']);
    expect(check.status).toBe(2);
    expect(check.stderr).toMatch(new RegExp(`^  ${variable}: `, 'm'));
    expect(check.stderr).toMatch(why);

    const start = run({ ...env, LISTEN_PORT: '0', PROMETHEUS_PORT: '0' }); // invalid anyway: nothing would listen
    expect(start.status).toBe(2);
    const entry = JSON.parse(start.stdout.trim().split('\n')[0]) as { level: string; problems: { variable: string; message: string }[] };
    expect(entry.level).toBe('fatal');
    const problem = entry.problems.find((p) => p.variable === variable);
    expect(problem?.message).toMatch(why);
  });

  it('should name both problems of HTTP_DURATION_BUCKETS=1,0.5,abc', () => {
    expect(() => loadConfig({ HTTP_DURATION_BUCKETS: '1,0.5,abc' })).toThrow(/"abc" is not a positive number; bucket bounds must be strictly ascending/);
  });

  it('should accept valid files and print the effective settings with secrets hidden', () => {
    const env = {
      UPSTREAM_URL: 'http://127.0.0.1:8000',
      METRICS_BASIC_AUTH_USERNAME: 'prom',
      METRICS_BASIC_AUTH_PASSWORD: 'inline-secret-value',
      METRICS_API_KEYS_FILE: file('good-keys', 'prometheus plain:a-key-value metrics\n'),
      STATSD_MAPPING_FILE: file('good.yaml', 'mappings:\n  - match: "a.*"\n    name: "a_$1"\n    ttl: 5m\n'),
      MERGE_TARGETS: 'http://127.0.0.1:9000/metrics?token=query-secret',
    };
    const r = run(env, ['--check-config']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/METRICS_BASIC_AUTH_PASSWORD +\[REDACTED\]\n/);
    expect(r.stdout).toMatch(/MERGE_TARGETS +http:\/\/127\.0\.0\.1:9000\/metrics\?\[REDACTED\]\n/);
    expect(r.stdout).toMatch(/STATSD_MAPPING_FILE +\S+good\.yaml\n/);
    expect(r.stdout + r.stderr).not.toContain('inline-secret-value');
    expect(r.stdout + r.stderr).not.toContain('query-secret');
  });
});

describe('warnings', () => {
  it('should say "did you mean" for a misspelt variable, in --check-config and at start', () => {
    const check = run({ UPSTREAM_URL: 'http://127.0.0.1:8000', METRICS_ALLOWED_CIDR: '10.0.0.0/8' }, ['--check-config']);
    expect(check.status).toBe(0);
    expect(check.stdout).toContain('warning: unknown variable METRICS_ALLOWED_CIDR is ignored; did you mean METRICS_ALLOWED_CIDRS?');

    const { warnings } = readConfig({
      UPSTREAM_URL: 'http://127.0.0.1:8000',
      METRICS_ALLOWED_CIDR: '10.0.0.0/8',
      STATSD_PROT: '1',
      HTTP_PROXY: 'http://proxy:3128',
      PATH: '/bin',
    });
    expect(warnings).toEqual([
      'unknown variable METRICS_ALLOWED_CIDR is ignored; did you mean METRICS_ALLOWED_CIDRS?',
      'unknown variable STATSD_PROT is ignored; did you mean STATSD_PORT?',
    ]);
  });

  it.each(['METRICS_', 'STATSD_', 'MERGE_', 'UPSTREAM_', 'LISTEN_', 'PROMETHEUS_', 'SHUTDOWN_', 'HTTP_', 'SIDECAR_'])(
    'should warn about an unknown %s variable',
    (prefix) => {
      expect(unknownVariables({ [`${prefix}SOMETHING_ELSE`]: 'x' }).map((u) => u.name)).toEqual([`${prefix}SOMETHING_ELSE`]);
    },
  );

  it('should not warn about what Kubernetes Service links inject', () => {
    expect(
      unknownVariables({ PROMETHEUS_SERVICE_HOST: '10.0.0.1', PROMETHEUS_PORT_9090_TCP_ADDR: '10.0.0.1', METRICS_SIDECAR_SERVICE_PORT_HTTP: '80' }),
    ).toEqual([]);
  });

  it('should warn when a web role has no UPSTREAM_URL, and not for a worker', () => {
    expect(readConfig({}).warnings).toEqual([expect.stringContaining('web role without UPSTREAM_URL')]);
    expect(readConfig({ LISTEN_PORT: '0' }).warnings).toEqual([]);
  });
});

describe('files named by variables', () => {
  it('should refuse a file larger than MAX_FILE_BYTES, naming the variable (it would be read whole at start)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-big-'));
    const big = path.join(dir, 'mapping.yaml');
    fs.writeFileSync(big, `# ${'x'.repeat(MAX_FILE_BYTES)}\nmappings: []\n`);
    try {
      expect(() => loadConfig({ STATSD_MAPPING_FILE: big })).toThrow(/STATSD_MAPPING_FILE: .* bytes; at most 1048576/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('URL credentials never reach a message (issue 9, finding 5)', () => {
  const problemsText = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
      return '';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return `${err.message}\n${err.text}\n${JSON.stringify(err.problems)}`;
    }
  };

  it.each([
    ['UPSTREAM_URL', 'https://alice:PW-secret-1@host'],
    ['UPSTREAM_URL', 'http://alice:PW-secret-1@host:99999'],
    ['UPSTREAM_URL', 'http:alice:PW-secret-1@host'],
    ['UPSTREAM_URL', 'http:\\\\alice:PW-secret-1@host/'],
    ['MERGE_TARGETS', 'ftp://alice:PW-secret-1@host/metrics'],
    ['MERGE_TARGETS', 'http://127.0.0.1:9000/metrics,http://alice:PW-secret-1@[::1:9000/'],
  ])('should refuse %s=%s without echoing it', (variable, value) => {
    const text = problemsText({ [variable]: value });
    expect(text).toContain(variable);
    expect(text).toContain('must not contain credentials');
    expect(text).not.toContain('PW-secret-1');
    expect(text).not.toContain('alice');
  });

  it.each([
    ['MERGE_TARGETS', 'ftp://host/metrics?token=Q-secret-2'],
    ['UPSTREAM_URL', 'gopher://host/?api_key=Q-secret-2'],
    ['UPSTREAM_URL', 'not a url?token=Q-secret-2'],
    ['UPSTREAM_HEALTH_PATH', 'healthz?token=Q-secret-2'],
  ])('should refuse %s=%s without echoing its query (it may carry a token)', (variable, value) => {
    const text = problemsText({ UPSTREAM_URL: 'http://127.0.0.1:8000', [variable]: value });
    expect(text).toContain(variable);
    expect(text).not.toContain('Q-secret-2');
  });

  it('should hold for generated URLs with credentials, schemes and ports', () => {
    const word = fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/);
    fc.assert(
      fc.property(
        fc.constantFrom('http', 'https', 'ftp', 'gopher', 'HTTP', 'ws', ''),
        fc.constantFrom('://', ':', ':/', ':\\\\', '://\\'),
        word,
        word,
        fc.constantFrom('host', '127.0.0.1', '[::1]', 'exa mple', ''),
        fc.constantFrom('', ':80', ':99999', ':-1', ':abc'),
        fc.constantFrom('UPSTREAM_URL', 'MERGE_TARGETS'),
        (scheme, sep, user, pw, host, port, variable) => {
          const secret = `S3cr3t${pw}`;
          const text = problemsText({ [variable]: `${scheme}${sep}${user}:${secret}@${host}${port}/` });
          return !text.includes(secret);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('the variable table', () => {
  it('should declare every variable the reader reads (another helper adding r.int("X") must add its entry)', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-table-'));
    try {
      const kubeconfig = path.join(tmp, 'kubeconfig');
      fs.writeFileSync(
        kubeconfig,
        'current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n',
      );
      // Every branch on: all optional parts of the configuration are read.
      const env: Record<string, string> = { METRICS_KUBERNETES_AUTH: 'true', KUBECONFIG: kubeconfig, LISTEN_PORT: '0', SERVE_PROMETHEUS_ENDPOINT: 'false' };
      const seen = new Set<string>();
      const proxy = new Proxy(env, {
        get: (t, k) => {
          if (typeof k === 'string') seen.add(k);
          return t[k as string];
        },
      });
      readConfig(proxy);
      const declared = new Set<string>(VARIABLE_NAMES);
      expect([...seen].filter((n) => !declared.has(n) && n !== 'KUBERNETES_SERVICE_HOST')).toEqual([]);
      expect(VARIABLE_NAMES.filter((n) => !seen.has(n))).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('should give every entry a default and a meaning', () => {
    for (const name of VARIABLE_NAMES) {
      expect(VARIABLES[name].default).not.toBe('');
      expect(VARIABLES[name].doc.length).toBeGreaterThan(10);
    }
    expect(readVariable(new EnvReader({ LISTEN_PORT: '9000' }), 'LISTEN_PORT')).toBe(9000);
  });

  it('should equal the README configuration table (run npm run docs:config when this fails)', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const a = readme.indexOf(TABLE_START);
    const b = readme.indexOf(TABLE_END);
    expect(a).toBeGreaterThan(-1);
    expect(readme.slice(a + TABLE_START.length + 1, b)).toBe(markdownTable());
  });

  it('should equal docs/variables.json, the names the chart reserves (npm run docs:config)', () => {
    expect(fs.readFileSync(path.join(ROOT, 'docs', 'variables.json'), 'utf8')).toBe(variablesJson());
  });
});
