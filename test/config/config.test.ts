import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, DEFAULT_HTTP_BUCKETS } from '../../src/config';
import { MAIN_JS } from '../helpers/sidecar';

function problemsOf(env: Record<string, string>): { variable: string; message: string }[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-config-'));
  const secretFile = path.join(tmp, 'password');
  fs.writeFileSync(secretFile, 's3cret-from-file\n');
  const keysFile = path.join(tmp, 'api-keys');
  fs.writeFileSync(keysFile, 'prometheus plain:k3y-from-file metrics\n');
  const mappingFile = path.join(tmp, 'mapping.yaml');
  fs.writeFileSync(mappingFile, 'mappings:\n  - match: "shop.*"\n    name: "shop_$1"\n');
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('should apply the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      role: 'web',
      appName: 'app',
      listenPort: 8080,
      upstream: undefined,
      serveOnMainPort: false,
      prometheusPort: 8491,
      metricsPath: '/debug/metrics',
      enableDbMetrics: false,
      statsd: { port: 9125, host: '127.0.0.1', tcp: { maxConnections: 256, idleTimeoutMs: 60_000, bufferBytesTotal: 16 * 1024 * 1024 } },
      http: { prefix: 'flask_http_request', buckets: DEFAULT_HTTP_BUCKETS, maxSeriesPerFamily: 2000 },
      access: { basicAuth: undefined, kubernetes: undefined, allowedCidrs: [], trustedProxies: [], apiKeyQueryParam: false, secretReloadMs: 5000 },
      mergeTargets: [],
      shutdown: { timeoutMs: 25000, delayMs: 0 },
    });
  });

  it('should return a frozen config', () => {
    const c = loadConfig({ METRICS_ALLOWED_CIDRS: '10.0.0.0/8' });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.http)).toBe(true);
    expect(Object.isFrozen(c.access.allowedCidrs)).toBe(true);
  });

  it('should parse every variable it owns', () => {
    const c = loadConfig({
      LISTEN_PORT: '9000',
      UPSTREAM_URL: 'http://127.0.0.1:8000',
      SERVE_PROMETHEUS_ENDPOINT: 'TRUE',
      PROMETHEUS_PORT: '9100',
      METRICS_PATH: '/debug/prom',
      ENABLE_DB_METRICS: 'yes',
      APP_NAME: 'shop',
      METRICS_BASIC_AUTH_USERNAME: 'prom',
      METRICS_BASIC_AUTH_PASSWORD_FILE: secretFile,
      METRICS_API_KEYS_FILE: keysFile,
      METRICS_ALLOWED_CIDRS: '10.0.0.0/8, 192.168.1.7, fd00::/8, ::ffff:172.16.0.0/108',
      TRUSTED_PROXIES: '127.0.0.1',
      METRICS_KUBERNETES_AUTH: 'true',
      METRICS_KUBERNETES_AUDIENCES: 'https://kubernetes.default.svc,sidecar',
      METRICS_KUBERNETES_DENY_TTL_MS: '500',
      METRICS_API_KEY_QUERY_PARAM: 'true',
      SECRET_RELOAD_INTERVAL_MS: '1000',
      STATSD_PORT: '0',
      STATSD_MAPPING_FILE: mappingFile,
      STATSD_TCP_MAX_CONNECTIONS: '32',
      STATSD_TCP_IDLE_TIMEOUT_MS: '15000',
      STATSD_TCP_BUFFER_BYTES_TOTAL: '2097152',
      MERGE_TARGETS: 'http://127.0.0.1:9000/metrics,https://localhost:9443/metrics',
      HTTP_METRICS_PREFIX: 'shop_http_request',
      ROUTE_PATTERNS: '/users/:id,/static/*',
      METRICS_EXCLUDE_PATHS: '/healthz,/internal/*',
      HTTP_DURATION_BUCKETS: '0.1,0.5,1',
      UPSTREAM_TIMEOUT_MS: '1500',
      SHUTDOWN_TIMEOUT_MS: '5000',
      SHUTDOWN_DELAY_MS: '100',
      LOG_LEVEL: 'WARN',
    });
    expect(c.listenPort).toBe(9000);
    expect(c.upstream?.href).toBe('http://127.0.0.1:8000/');
    expect(c.serveOnMainPort).toBe(true);
    expect(c.metricsPath).toBe('/debug/prom');
    expect(c.enableDbMetrics).toBe(true);
    expect(c.access.basicAuth).toEqual({ username: 'prom', password: { file: secretFile } });
    expect(c.access.allowedCidrs.map((x) => x.range[0].kind())).toEqual(['ipv4', 'ipv4', 'ipv6', 'ipv4']);
    expect(c.access.allowedCidrs[3].range[1]).toBe(12);
    expect(c.mergeTargets.map((u) => u.href)).toEqual(['http://127.0.0.1:9000/metrics', 'https://localhost:9443/metrics']);
    expect(c.http).toMatchObject({ prefix: 'shop_http_request', buckets: [0.1, 0.5, 1], routePatterns: ['/users/:id', '/static/*'] });
    expect(c.upstreamTimeoutMs).toBe(1500);
    expect(c.statsd.tcp).toEqual({ maxConnections: 32, idleTimeoutMs: 15000, bufferBytesTotal: 2097152 });
    expect(c.logLevel).toBe('warn');
    expect(c.access.apiKeyQueryParam).toBe(true);
    expect(c.access.secretReloadMs).toBe(1000);
    expect(c.access.kubernetes).toEqual({
      kubeconfig: undefined,
      audiences: ['https://kubernetes.default.svc', 'sidecar'],
      allowTtlMs: 60000,
      denyTtlMs: 500,
      staleMs: 300000,
      timeoutMs: 2000,
      maxRequestsPerSecond: 20,
    });
  });

  it('should make LISTEN_PORT=0 a worker', () => {
    expect(loadConfig({ LISTEN_PORT: '0' }).role).toBe('worker');
  });

  it.each([
    ['LISTEN_PORT', { LISTEN_PORT: 'http' }, /not a port number/],
    ['LISTEN_PORT', { LISTEN_PORT: '70000' }, /not a port number/],
    ['PROMETHEUS_PORT', { PROMETHEUS_PORT: '-1' }, /not a port number/],
    ['PROMETHEUS_PORT', { PROMETHEUS_PORT: '8080' }, /must differ from LISTEN_PORT/],
    ['PROMETHEUS_PORT', { PROMETHEUS_PORT: '0', LISTEN_PORT: '0' }, /both 0/],
    ['UPSTREAM_URL', { UPSTREAM_URL: '127.0.0.1:8000' }, /not an absolute URL|must use http/],
    ['UPSTREAM_URL', { UPSTREAM_URL: 'ftp://127.0.0.1' }, /must use http/],
    ['UPSTREAM_URL', { UPSTREAM_URL: 'http://127.0.0.1:8000/app' }, /must not have a path/],
    ['SERVE_PROMETHEUS_ENDPOINT', { SERVE_PROMETHEUS_ENDPOINT: 'sure' }, /not a boolean/],
    ['SERVE_PROMETHEUS_ENDPOINT', { SERVE_PROMETHEUS_ENDPOINT: 'true', LISTEN_PORT: '0' }, /LISTEN_PORT=0/],
    ['METRICS_PATH', { METRICS_PATH: 'metrics' }, /must start with/],
    ['METRICS_PATH', { METRICS_PATH: '/metrics', SERVE_PROMETHEUS_ENDPOINT: 'true' }, /under \/debug\//],
    ['ENABLE_DB_METRICS', { ENABLE_DB_METRICS: 'enabled' }, /not a boolean/],
    ['METRICS_BASIC_AUTH_PASSWORD', { METRICS_BASIC_AUTH_USERNAME: 'prom' }, /is required/],
    ['METRICS_BASIC_AUTH_USERNAME', { METRICS_BASIC_AUTH_PASSWORD: 'x' }, /is required/],
    ['METRICS_BASIC_AUTH_USERNAME', { METRICS_BASIC_AUTH_USERNAME: 'a:b', METRICS_BASIC_AUTH_PASSWORD: 'x' }, /must not contain/],
    ['METRICS_BASIC_AUTH_PASSWORD_FILE', { METRICS_BASIC_AUTH_USERNAME: 'p', METRICS_BASIC_AUTH_PASSWORD_FILE: '/nonexistent/pw' }, /not a readable file/],
    ['METRICS_API_KEYS_FILE', { METRICS_API_KEYS_FILE: '/nonexistent/keys' }, /not a readable file/],
    ['METRICS_ALLOWED_CIDRS', { METRICS_ALLOWED_CIDRS: '10.0.0.0/33' }, /not an IPv4\/IPv6/],
    ['METRICS_ALLOWED_CIDRS', { METRICS_ALLOWED_CIDRS: '10.1' }, /not an IPv4\/IPv6/],
    ['TRUSTED_PROXIES', { TRUSTED_PROXIES: 'localhost' }, /not an IPv4\/IPv6/],
    ['METRICS_KUBERNETES_AUTH', { METRICS_KUBERNETES_AUTH: '2' }, /not a boolean/],
    ['KUBECONFIG', { METRICS_KUBERNETES_AUTH: 'true', KUBECONFIG: '/nonexistent/kubeconfig' }, /not a readable file/],
    ['METRICS_KUBERNETES_TIMEOUT_MS', { METRICS_KUBERNETES_AUTH: 'true', METRICS_KUBERNETES_TIMEOUT_MS: '0' }, /not an integer/],
    ['METRICS_KUBERNETES_MAX_REQUESTS_PER_S', { METRICS_KUBERNETES_AUTH: 'true', METRICS_KUBERNETES_MAX_REQUESTS_PER_S: 'lots' }, /not an integer/],
    ['METRICS_API_KEY_QUERY_PARAM', { METRICS_API_KEY_QUERY_PARAM: 'please' }, /not a boolean/],
    ['SECRET_RELOAD_INTERVAL_MS', { SECRET_RELOAD_INTERVAL_MS: '10' }, /not an integer/],
    ['STATSD_PORT', { STATSD_PORT: 'udp' }, /not a port number/],
    ['STATSD_MAPPING_FILE', { STATSD_MAPPING_FILE: '/nonexistent/map.yaml' }, /not a readable file/],
    ['STATSD_TCP_MAX_CONNECTIONS', { STATSD_TCP_MAX_CONNECTIONS: '0' }, /not an integer/],
    ['STATSD_TCP_IDLE_TIMEOUT_MS', { STATSD_TCP_IDLE_TIMEOUT_MS: '60s' }, /not an integer/],
    ['STATSD_TCP_BUFFER_BYTES_TOTAL', { STATSD_TCP_BUFFER_BYTES_TOTAL: '16MiB' }, /not an integer/],
    ['STATSD_TCP_BUFFER_BYTES_TOTAL', { STATSD_TCP_BUFFER_BYTES_TOTAL: '65536' }, /cannot hold one whole line: at least 65537/],
    ['MERGE_TARGETS', { MERGE_TARGETS: 'http://127.0.0.1:9000/metrics,not a url' }, /not an absolute URL/],
    ['HTTP_METRICS_PREFIX', { HTTP_METRICS_PREFIX: 'flask-http' }, /not a valid metric name/],
    ['ROUTE_PATTERNS', { ROUTE_PATTERNS: 'users/:id' }, /not a path pattern/],
    ['METRICS_EXCLUDE_PATHS', { METRICS_EXCLUDE_PATHS: 'healthz' }, /must start with/],
    ['ROUTE_SEGMENT_MAX_VALUES', { ROUTE_SEGMENT_MAX_VALUES: '-1' }, /not an integer/],
    ['ROUTE_OPENAPI_URL', { ROUTE_OPENAPI_URL: 'openapi.json', UPSTREAM_URL: 'http://127.0.0.1:8000' }, /must be a path on the app/],
    ['ROUTE_OPENAPI_URL', { ROUTE_OPENAPI_URL: '/openapi.json' }, /needs UPSTREAM_URL/],
    ['ROUTE_OPENAPI_URL', { ROUTE_OPENAPI_URL: '/openapi.json', ROUTE_OPENAPI_FILE: '/nonexistent/openapi.yaml' }, /both set/],
    ['ROUTE_OPENAPI_FILE', { ROUTE_OPENAPI_FILE: '/nonexistent/openapi.yaml' }, /ENOENT/],
    ['ROUTE_OPENAPI_REFRESH_S', { ROUTE_OPENAPI_REFRESH_S: '5m' }, /not an integer/],
    ['HTTP_DURATION_BUCKETS', { HTTP_DURATION_BUCKETS: '1,0.5' }, /ascending/],
    ['METRICS_MAX_SERIES_PER_FAMILY', { METRICS_MAX_SERIES_PER_FAMILY: '0' }, /not an integer/],
    ['UPSTREAM_TIMEOUT_MS', { UPSTREAM_TIMEOUT_MS: '1s' }, /not an integer/],
    ['SHUTDOWN_TIMEOUT_MS', { SHUTDOWN_TIMEOUT_MS: 'soon' }, /not an integer/],
    ['SIDECAR_ROLE', { SIDECAR_ROLE: 'db' }, /not one of web, worker/],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }, /not one of/],
    ['UPSTREAM_ALLOWED_METHODS', { UPSTREAM_ALLOWED_METHODS: 'TRACE,CONNECT' }, /CONNECT is never forwarded/],
    ['UPSTREAM_ALLOWED_METHODS', { UPSTREAM_ALLOWED_METHODS: 'GET,POST' }, /GET is always forwarded/],
    ['UPSTREAM_ALLOWED_METHODS', { UPSTREAM_ALLOWED_METHODS: 'TRA CE' }, /not a method name/],
    ['STATUS_ALLOWED_HOSTS', { STATUS_ALLOWED_HOSTS: 'status.example.com:8491' }, /without a port/],
    ['STATUS_ALLOWED_HOSTS', { STATUS_ALLOWED_HOSTS: 'https://status.example.com' }, /not a host name/],
  ])('should name %s when it is bad (%j)', (variable, env, message) => {
    const problems = problemsOf(env as Record<string, string>);
    expect(problems).toEqual(expect.arrayContaining([expect.objectContaining({ variable, message: expect.stringMatching(message) })]));
  });

  it('should read ROUTE_OPENAPI_FILE at start: a malformed document is named with why, every bad variable at once', () => {
    const bad = path.join(tmp, 'openapi-bad.yaml');
    fs.writeFileSync(bad, 'openapi: 3.0.0\npaths:\n  users/{id}:\n    get: {}\n');
    const problems = problemsOf({ ROUTE_OPENAPI_FILE: bad, ROUTE_SEGMENT_MAX_VALUES: 'ten' });
    expect(problems).toEqual([
      expect.objectContaining({ variable: 'ROUTE_OPENAPI_FILE', message: expect.stringMatching(/path "users\/\{id\}" does not start with/) }),
      expect.objectContaining({ variable: 'ROUTE_SEGMENT_MAX_VALUES' }),
    ]);
    const good = path.join(tmp, 'openapi.yaml');
    fs.writeFileSync(good, 'swagger: "2.0"\nbasePath: /api\npaths:\n  /users/{id}:\n    get: {}\n');
    expect(loadConfig({ ROUTE_OPENAPI_FILE: good }).http.openApi).toEqual({ source: { file: good }, refreshMs: 300_000 });
    expect(loadConfig({}).http.openApi).toBeUndefined();
  });

  it('should read UPSTREAM_ALLOWED_METHODS in upper case (none by default)', () => {
    expect(loadConfig({}).upstreamAllowedMethods).toEqual([]);
    expect(loadConfig({ UPSTREAM_ALLOWED_METHODS: 'trace' }).upstreamAllowedMethods).toEqual(['TRACE']);
  });

  it('should read STATUS_ALLOWED_HOSTS in lower case without a trailing dot (none by default)', () => {
    expect(loadConfig({}).access.statusAllowedHosts).toEqual([]);
    const c = loadConfig({ STATUS_ALLOWED_HOSTS: 'Status.Example.com., *, 10.0.0.1, [::1], sidecar_status.svc' });
    expect(c.access.statusAllowedHosts).toEqual(['status.example.com', '*', '10.0.0.1', '[::1]', 'sidecar_status.svc']);
  });

  it('should report every bad variable at once', () => {
    const problems = problemsOf({ LISTEN_PORT: 'x', PROMETHEUS_PORT: 'y', UPSTREAM_URL: 'z', ENABLE_DB_METRICS: 'maybe' });
    expect(problems.map((p) => p.variable).sort()).toEqual(['ENABLE_DB_METRICS', 'LISTEN_PORT', 'PROMETHEUS_PORT', 'UPSTREAM_URL']);
  });

  it('should never echo a secret in a problem', () => {
    const problems = problemsOf({ METRICS_BASIC_AUTH_PASSWORD: 'hunter2-secret', UPSTREAM_URL: 'http://user:pa55word@127.0.0.1/' });
    const text = JSON.stringify(problems);
    expect(text).not.toContain('hunter2-secret');
    expect(text).not.toContain('pa55word');
  });
});

describe('node dist/main.js', () => {
  const run = (env: Record<string, string>, args: string[] = []) =>
    spawnSync(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 10000 });

  it('should exit 0 for --check-config with a valid environment', () => {
    const r = run({ UPSTREAM_URL: 'http://127.0.0.1:8000' }, ['--check-config']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^configuration is valid\n/);
    expect(r.stdout).toMatch(/^ {2}UPSTREAM_URL=http:\/\/127\.0\.0\.1:8000\/\n/m);
    expect(r.stdout).toMatch(/^ {2}LISTEN_PORT=8080 {2}\(default\)\n/m);
  });

  it('should exit non-zero with one message naming every bad variable', () => {
    const r = run({ LISTEN_PORT: 'x', UPSTREAM_URL: 'nope', METRICS_ALLOWED_CIDRS: '300.1.1.1', METRICS_BASIC_AUTH_PASSWORD: 'topsecret' }, ['--check-config']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe('invalid configuration (4 problems):');
    expect(
      lines
        .slice(1)
        .map((l) => l.trim().split(':')[0])
        .sort(),
    ).toEqual(['LISTEN_PORT', 'METRICS_ALLOWED_CIDRS', 'METRICS_BASIC_AUTH_USERNAME', 'UPSTREAM_URL']);
    expect(r.stdout + r.stderr).not.toContain('topsecret');

    // A real start fails the same way: exit 2, one fatal line naming the same variables.
    const start = run({ LISTEN_PORT: 'x', UPSTREAM_URL: 'nope', METRICS_ALLOWED_CIDRS: '300.1.1.1', METRICS_BASIC_AUTH_PASSWORD: 'topsecret' });
    expect(start.status).toBe(2);
    const entry = JSON.parse(start.stdout.trim()) as { level: string; msg: string; problems: { variable: string }[] };
    expect(entry.level).toBe('fatal');
    expect(entry.problems.map((p) => p.variable).sort()).toEqual(['LISTEN_PORT', 'METRICS_ALLOWED_CIDRS', 'METRICS_BASIC_AUTH_USERNAME', 'UPSTREAM_URL']);
    expect(start.stdout + start.stderr).not.toContain('topsecret');
  });

  it('should fail the same way without --check-config, before opening any port', () => {
    const r = run({ PROMETHEUS_PORT: 'nine' });
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('PROMETHEUS_PORT');
  });
});
