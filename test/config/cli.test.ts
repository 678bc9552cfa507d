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
import { TABLE_END, TABLE_PAGE, TABLE_START, configurationTable } from '../../src/config/docs';
import { MAIN_JS, killAll, spawnSidecar } from '../helpers/sidecar';
import { freePort, request } from '../helpers/net';
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
    expect(r.stdout).toMatch(/^ {2}METRICS_BASIC_AUTH_PASSWORD=\[REDACTED\]\n/m);
    expect(r.stdout).toMatch(/^ {2}MERGE_TARGETS=http:\/\/127\.0\.0\.1:9000\/metrics\?\[REDACTED\]\n/m);
    expect(r.stdout).toMatch(/^ {2}STATSD_MAPPING_FILE=\S+good\.yaml\n/m);
    expect(r.stdout + r.stderr).not.toContain('inline-secret-value');
    expect(r.stdout + r.stderr).not.toContain('query-secret');
  });
});

describe('--check-config prints the settings a start would use', () => {
  it.each([
    [{ UPSTREAM_URL: 'http://127.0.0.1:8000' }, ['SIDECAR_ROLE=web  (derived)', 'LISTEN_PORT=8080  (default)', 'UPSTREAM_URL=http://127.0.0.1:8000/']],
    [{ LISTEN_PORT: '0' }, ['SIDECAR_ROLE=worker  (derived)', 'LISTEN_PORT=0', 'PROMETHEUS_PORT=8491  (default)']],
    [{ LISTEN_PORT: '0', SIDECAR_ROLE: 'web' }, ['SIDECAR_ROLE=web']],
    [
      { LISTEN_PORT: '0', METRICS_ALLOWED_CIDRS: '10.0.0.0/8, 127.0.0.1', LOG_LEVEL: 'Warning', METRICS_PATH: '/debug//metrics' },
      ['METRICS_ALLOWED_CIDRS=10.0.0.0/8,127.0.0.1', 'LOG_LEVEL=warn', 'METRICS_PATH=/debug/metrics', 'TRUSTED_PROXIES=(none)  (default)'],
    ],
    [{ LISTEN_PORT: '0', LOG_LEVEL: '30' }, ['LOG_LEVEL=warn']],
    [
      // Set, but their feature is off: shown as written, said to be unused (and not validated).
      { LISTEN_PORT: '0', KUBECONFIG: '/nope', METRICS_KUBERNETES_TIMEOUT_MS: 'abc' },
      ['KUBECONFIG=/nope  (not used: its feature is off)', 'METRICS_KUBERNETES_TIMEOUT_MS=abc  (not used: its feature is off)'],
    ],
    [{ LISTEN_PORT: '0', MERGE_TARGETS: 'http://127.0.0.1:9000/metrics#token=FRAG' }, ['MERGE_TARGETS=http://127.0.0.1:9000/metrics#[REDACTED]']],
  ])('with %j: %j', (env, lines) => {
    const r = run(env, ['--check-config']);
    expect(r.status).toBe(0);
    const printed = r.stdout.split('\n').map((l) => l.trim());
    for (const line of lines) expect(printed).toContain(line);
    // Values, never the documentation of a default.
    expect(r.stdout).not.toContain('`');
  });
});

describe('ports and addresses refused before anything listens', () => {
  it.each([
    [{ LISTEN_PORT: '18080', STATSD_PORT: '18080' }, 'STATSD_PORT', /must differ from LISTEN_PORT \(both 18080\)/],
    [{ LISTEN_PORT: '0', PROMETHEUS_PORT: '18491', STATSD_PORT: '18491' }, 'STATSD_PORT', /must differ from PROMETHEUS_PORT \(both 18491\)/],
    [{ LISTEN_HOST: 'no-such-host.invalid' }, 'LISTEN_HOST', /"no-such-host\.invalid" is not an IP address to bind/],
    [{ STATSD_HOST: 'statsd.monitoring.svc' }, 'STATSD_HOST', /is not an IP address to bind/],
  ])('%j → %s', (env, variable, why) => {
    const r = run({ UPSTREAM_URL: 'http://127.0.0.1:8000', ...env }, ['--check-config']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^  ${variable}: `, 'm'));
    expect(r.stderr).toMatch(why);
  });

  it('should take an IPv6 LISTEN_HOST with or without brackets', () => {
    expect(loadConfig({ LISTEN_HOST: '[::1]' }).listenHost).toBe('::1');
    expect(loadConfig({ LISTEN_HOST: '::' }).listenHost).toBe('::');
  });
});

describe('a port that is taken', () => {
  it('should name the UDP port of StatsD when only its UDP side is taken, and leave nothing open', async () => {
    const dgram = await import('node:dgram');
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((r) => holder.bind(0, '127.0.0.1', r));
    const taken = holder.address().port;
    try {
      const r = run({
        UPSTREAM_URL: 'http://127.0.0.1:8000',
        LISTEN_PORT: String(await freePort()),
        PROMETHEUS_PORT: String(await freePort()),
        STATSD_PORT: String(taken),
      });
      expect(r.status).toBe(2);
      const lines = r.stdout.trim().split('\n');
      // One line: no error line with a stack before it.
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toMatchObject({
        level: 'fatal',
        variable: 'STATSD_PORT',
        msg: expect.stringContaining(`UDP port ${taken} is already in use`),
      });
    } finally {
      holder.close();
    }
  });

  it.each(['LISTEN_PORT', 'PROMETHEUS_PORT', 'STATSD_PORT'])('should print one line naming %s and its value, and exit 2 without a stack', async (variable) => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, r));
    const taken = (holder.address() as AddressInfo).port;
    try {
      const env: Record<string, string> = {
        UPSTREAM_URL: 'http://127.0.0.1:8000',
        LISTEN_PORT: String(await freePort()),
        PROMETHEUS_PORT: String(await freePort()),
        STATSD_PORT: String(await freePort()),
        [variable]: String(taken),
      };
      const r = run(env);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe('');
      const fatal = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.level === 'fatal');
      expect(fatal).toEqual([
        expect.objectContaining({
          variable,
          port: taken,
          errno: 'EADDRINUSE',
          msg: expect.stringMatching(new RegExp(`^${variable}=${taken}: (TCP )?port ${taken} is already in use .*set ${variable} to a free port$`)),
        }),
      ]);
      expect(r.stdout).not.toMatch(/stack|\n\s+at /);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});

describe('files report every mistake in one run', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-files-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('should name each bad rule of a mapping file and each bad line of an API keys file', () => {
    const mapping = path.join(tmp, 'mapping.yaml');
    fs.writeFileSync(
      mapping,
      [
        'defaults:',
        '  ttl: 10',
        'mappings:',
        '  - match: "a.*"',
        '    name: "bad name!"',
        '  - match: "good.*"',
        '    name: "good_$1"',
        '  - match: "b..c"',
        '    name: "b_c"',
        '  - match: "c.*"',
        '    name: "c_total"',
        '    ttl: 5',
        '',
      ].join('\n'),
    );
    const keys = path.join(tmp, 'keys');
    fs.writeFileSync(
      keys,
      ['prometheus not-a-key metrics', 'grafana plain:abc read', 'lonely', 'grafana plain:def read', 'ci plain:x-key-value ,', ''].join('\n'),
    );
    const r = run({ UPSTREAM_URL: 'http://127.0.0.1:8000', STATSD_MAPPING_FILE: mapping, METRICS_API_KEYS_FILE: keys }, ['--check-config']);
    expect(r.status).toBe(2);
    const problems = r.stderr.split('\n').filter((l) => l.startsWith('  '));
    expect(problems.filter((l) => l.startsWith('  STATSD_MAPPING_FILE: ')).map((l) => /: (defaults\.ttl|mappings\[\d\])/.exec(l)?.[1])).toEqual([
      'defaults.ttl',
      'mappings[0]',
      'mappings[2]',
      'mappings[3]',
    ]);
    expect(problems.filter((l) => l.startsWith('  METRICS_API_KEYS_FILE: ')).map((l) => /: (line \d)/.exec(l)?.[1])).toEqual([
      'line 1',
      'line 3',
      'line 4',
      'line 5',
    ]);
    // Errors name the line, never the key.
    expect(r.stderr).not.toContain('x-key-value');
  });
});

describe('unknown variables', () => {
  it.each([
    ['METRICS_ALLOWED_CIDR', '10.0.0.0/8', 'METRICS_ALLOWED_CIDRS'],
    ['METRICS_BASIC_AUTH_PASWORD_FILE', '/etc/secret/password', 'METRICS_BASIC_AUTH_PASSWORD_FILE'],
    ['UPSTREAM_URl', 'http://127.0.0.1:8000', 'UPSTREAM_URL'],
    ['STATSD_PROT', '9125', 'STATSD_PORT'],
    ['METRICS_BASIC_AUTH_USERANME', 'prom', 'METRICS_BASIC_AUTH_USERNAME'],
    ['metrics_allowed_cidrs', '10.0.0.0/8', 'METRICS_ALLOWED_CIDRS'],
    ['METRIC_ALLOWED_CIDRS', '10.0.0.0/8', 'METRICS_ALLOWED_CIDRS'],
    ['UPSTRAEM_URL', 'http://127.0.0.1:8000', 'UPSTREAM_URL'],
    ['SERVER_PROMETHEUS_ENDPOINT', 'true', 'SERVE_PROMETHEUS_ENDPOINT'],
    // Named like an access-control setting, however far from the real name: ignored, it would leave the endpoint open.
    ['METRICS_ALLOWED_IPS', '10.0.0.0/8', 'METRICS_ALLOWED_CIDRS'],
    ['METRICS_BASIC_AUTH_USER', 'prom', 'METRICS_BASIC_AUTH_USERNAME'],
    ['METRICS_BASIC_AUTH_PASS', 'secret', 'METRICS_BASIC_AUTH_PASSWORD'],
    ['METRICS_API_KEYS', '/etc/keys', 'METRICS_API_KEYS_FILE'],
  ])('should refuse the near miss %s=%s (exit 2, naming both) in --check-config and at start alike', (name, value, meant) => {
    const env = { UPSTREAM_URL: 'http://127.0.0.1:8000', [name]: value };
    const check = run(env, ['--check-config']);
    expect(check.status).toBe(2);
    expect(check.stdout).toBe('');
    expect(check.stderr).toMatch(new RegExp(`^  ${name}: unknown variable[^;]*; did you mean ${meant}\\?`, 'm'));
    expect(check.stderr).toContain('CONFIG_ALLOW_UNKNOWN=true');

    const start = run(env);
    expect(start.status).toBe(2);
    const entry = JSON.parse(start.stdout.trim()) as { level: string; problems: { variable: string; message: string }[] };
    expect(entry.level).toBe('fatal');
    expect(entry.problems).toEqual([{ variable: name, message: expect.stringContaining(`did you mean ${meant}?`) }]);
  });

  it('should name every near miss, and every other bad variable, in one message', () => {
    expect(() => loadConfig({ METRICS_ALLOWED_CIDR: '10.0.0.0/8', UPSTREAM_URl: 'x', LISTEN_PORT: 'x' })).toThrow(
      /invalid configuration \(3 problems\): LISTEN_PORT: .*; METRICS_ALLOWED_CIDR: .*; UPSTREAM_URl: /,
    );
  });

  it('should turn near misses back into warnings with CONFIG_ALLOW_UNKNOWN=true', () => {
    const check = run({ UPSTREAM_URL: 'http://127.0.0.1:8000', METRICS_ALLOWED_CIDR: '10.0.0.0/8', CONFIG_ALLOW_UNKNOWN: 'true' }, ['--check-config']);
    expect(check.status).toBe(0);
    expect(check.stdout).toContain('warning: unknown variable METRICS_ALLOWED_CIDR is ignored; did you mean METRICS_ALLOWED_CIDRS?');
  });

  it('should refuse every one-edit misspelling of every variable with a sidecar prefix (generated)', () => {
    const known = new Set<string>(VARIABLE_NAMES);
    const prefixed = VARIABLE_NAMES.filter((n) =>
      /^(METRICS|STATSD|MERGE|UPSTREAM|LISTEN|PROMETHEUS|SHUTDOWN|HTTP|SIDECAR|SECRET|ROUTE|TRUSTED|SERVE)_/.test(n),
    );
    const letter = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ_'.split(''));
    fc.assert(
      fc.property(fc.constantFrom(...prefixed), fc.nat(), letter, fc.constantFrom('drop', 'insert', 'replace', 'swap', 'lower'), (name, at, ch, edit) => {
        // Edits after the prefix, so the name keeps the prefix that marks it as the sidecar's.
        const from = name.indexOf('_') + 1;
        const i = from + (at % (name.length - from));
        const typo =
          edit === 'drop'
            ? name.slice(0, i) + name.slice(i + 1)
            : edit === 'insert'
              ? name.slice(0, i) + ch + name.slice(i)
              : edit === 'replace'
                ? name.slice(0, i) + ch + name.slice(i + 1)
                : edit === 'swap'
                  ? name.slice(0, i - 1) + name[i] + name[i - 1] + name.slice(i + 1)
                  : name.slice(0, i) + name[i].toLowerCase() + name.slice(i + 1);
        if (known.has(typo) || (edit === 'swap' && i === from)) return;
        const u = unknownVariables({ [typo]: '1' });
        expect(u).toEqual([{ name: typo, suggestion: expect.any(String), refused: expect.stringMatching(/^(near_miss|access_control)$/) }]);
        expect(() => loadConfig({ [typo]: '1', LISTEN_PORT: '0' })).toThrow(ConfigError);
      }),
      { numRuns: 3000 },
    );
  });

  // What a Flask app under gunicorn with prometheus_client (multiprocess) and a StatsD client
  // really has in its environment, shared with the sidecar through the chart's common.env.
  const APP_ENV = {
    PROMETHEUS_MULTIPROC_DIR: '/tmp/prometheus-multiproc',
    prometheus_multiproc_dir: '/tmp/prometheus-multiproc',
    STATSD_HOST: '127.0.0.1',
    STATSD_PREFIX: 'myapp',
    STATSD_MAXUDPSIZE: '512',
    STATSD_IPV6: 'false',
    METRICS_ENABLED: 'true',
    METRICS_PORT: '9100',
    METRICS_AUTH_TOKEN: 'push-token',
    STATS_PORT: '8125',
    GUNICORN_CMD_ARGS: '--bind=127.0.0.1:8000 --workers=2',
    WEB_CONCURRENCY: '2',
    FLASK_APP: 'app:app',
    FLASK_DEBUG: '0',
    LOG_LEVEL: 'WARNING',
    SECRET_KEY: 'app-secret',
    DATABASE_URL: 'postgresql://app@db/app',
    DD_AGENT_HOST: '127.0.0.1',
    DD_DOGSTATSD_PORT: '9125',
  };

  it('should start with the environment of a gunicorn + prometheus_client + statsd app (the app’s variables stay the app’s)', async () => {
    const check = run({ ...APP_ENV, UPSTREAM_URL: 'http://127.0.0.1:8000' }, ['--check-config']);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    // Merely sharing a prefix is a warning at most, never a refusal.
    expect(check.stdout.split('\n').filter((l) => l.startsWith('warning:'))).toEqual([
      'warning: unknown variable METRICS_AUTH_TOKEN is ignored',
      'warning: unknown variable METRICS_ENABLED is ignored',
      'warning: unknown variable METRICS_PORT is ignored; did you mean METRICS_PATH?',
      'warning: unknown variable PROMETHEUS_MULTIPROC_DIR is ignored',
      'warning: unknown variable STATSD_IPV6 is ignored',
      'warning: unknown variable STATSD_MAXUDPSIZE is ignored',
      'warning: unknown variable STATSD_PREFIX is ignored',
      'warning: unknown variable STATS_PORT is ignored; did you mean STATSD_PORT?',
      'warning: unknown variable prometheus_multiproc_dir is ignored',
    ]);
    expect(check.stdout).toContain('  LOG_LEVEL=warn\n');
    const sidecar = await spawnSidecar({
      ...APP_ENV,
      UPSTREAM_URL: 'http://127.0.0.1:8000',
      STATSD_PORT: String(await freePort()),
      LOG_LEVEL: APP_ENV.LOG_LEVEL,
    });
    try {
      expect((await request(sidecar.metricsPort, '/readyz')).status).toBe(200);
    } finally {
      await killAll([sidecar]);
    }
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

  it('should equal the configuration table of docs/configuration.md (run npm run docs:config when this fails)', () => {
    const page = fs.readFileSync(path.join(ROOT, TABLE_PAGE), 'utf8');
    const a = page.indexOf(TABLE_START);
    const b = page.indexOf(TABLE_END);
    expect(a).toBeGreaterThan(-1);
    expect(page.slice(a + TABLE_START.length + 1, b)).toBe(configurationTable());
    // The same rows as the variable table, only its links pointed at the pages that hold them.
    expect(configurationTable().replace(/\]\([^)]*\)/g, ']()')).toBe(markdownTable().replace(/\]\([^)]*\)/g, ']()'));
  });

  it('should equal docs/variables.json, the names the chart reserves (npm run docs:config)', () => {
    expect(fs.readFileSync(path.join(ROOT, 'docs', 'variables.json'), 'utf8')).toBe(variablesJson());
  });
});
