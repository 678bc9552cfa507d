/**
 * The access gate over real HTTP to running sidecars: basic auth, scoped API keys, CIDR
 * allow-lists with X-Forwarded-For, their combination, both listeners, hot reload of a rotated
 * password. Every log line and every response body is kept and checked for secrets at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { request, type Reply, type RequestOptions } from '../helpers/net';
import { startSidecar, type Env, type Running } from '../helpers/sidecar';
import { parseExposition, value } from '../helpers/exposition';

const USER = 'prometheus';
const PASSWORD = 'pässwörd-Ω-correct horse';
const NEW_PASSWORD = 'rotated-Ω-battery staple';
const KEY_METRICS = 'key-metrics-4f1d2c9a8b7e6d5c';
const KEY_HASHED = 'key-hashed-9a8b7c6d5e4f3a2b';
const KEY_OTHER_SCOPE = 'key-readonly-1a2b3c4d5e6f7a8b';
const SECRETS = [PASSWORD, NEW_PASSWORD, KEY_METRICS, KEY_HASHED, KEY_OTHER_SCOPE];

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`, 'utf8').toString('base64')}`;
const bearer = (t: string) => `Bearer ${t}`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-access-'));
const passwordFile = path.join(tmp, 'password');
const keysFile = path.join(tmp, 'api-keys');
fs.writeFileSync(passwordFile, `${PASSWORD}\n`);
fs.writeFileSync(
  keysFile,
  [
    '# name      key                 scopes',
    `prometheus  plain:${KEY_METRICS}  metrics`,
    `hashed      sha256:${crypto.createHash('sha256').update(KEY_HASHED).digest('hex')}  read,metrics`,
    `dashboards  plain:${KEY_OTHER_SCOPE}  read`,
    '',
  ].join('\n'),
);

/** Everything the sidecars logged and answered, for the no-secrets check. */
const seen: string[] = [];
const running: Running[] = [];

async function sidecar(env: Env): Promise<Running> {
  const sc = await startSidecar({ SERVE_PROMETHEUS_ENDPOINT: 'true', ...env });
  running.push(sc);
  return sc;
}

async function call(port: number, opts: RequestOptions & { path?: string } = {}): Promise<Reply> {
  const r = await request(port, opts.path ?? '/debug/metrics', opts);
  seen.push(r.text, JSON.stringify(r.headers));
  return r;
}

afterAll(async () => {
  for (const sc of running) {
    await sc.stop();
    seen.push(...sc.logs.map((l) => JSON.stringify(l)));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('basic auth and API keys', () => {
  let sc: Running;
  beforeAll(async () => {
    sc = await sidecar({ METRICS_BASIC_AUTH_USERNAME: USER, METRICS_BASIC_AUTH_PASSWORD_FILE: passwordFile, METRICS_API_KEYS_FILE: keysFile });
  });

  it.each([
    ['right basic credentials (UTF-8)', 200, { authorization: basic(USER, PASSWORD) }],
    ['a wrong password', 401, { authorization: basic(USER, 'wrong') }],
    ['a wrong username', 401, { authorization: basic('grafana', PASSWORD) }],
    ['the password with a different case', 401, { authorization: basic(USER, PASSWORD.toUpperCase()) }],
    ['no Authorization header', 401, {}],
    ['basic without a colon', 401, { authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` }],
    ['basic that is not base64', 401, { authorization: 'Basic !!!***' }],
    ['an unknown scheme', 401, { authorization: 'Digest username="x"' }],
    ['a scheme without a value', 401, { authorization: 'Bearer' }],
    ['an API key with the metrics scope', 200, { authorization: bearer(KEY_METRICS) }],
    ['a hashed API key with the metrics scope', 200, { authorization: bearer(KEY_HASHED) }],
    ['a lower-case bearer scheme', 200, { authorization: `bearer ${KEY_METRICS}` }],
    ['an API key without the metrics scope', 403, { authorization: bearer(KEY_OTHER_SCOPE) }],
    ['an API key in the Apikey scheme (Tiled’s Prometheus example)', 200, { authorization: `Apikey ${KEY_METRICS}` }],
    ['an API key without the metrics scope in the Apikey scheme', 403, { authorization: `Apikey ${KEY_OTHER_SCOPE}` }],
    ['an unknown API key', 401, { authorization: bearer('key-nobody-has') }],
    ['basic credentials sent as a bearer token', 401, { authorization: bearer(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')) }],
  ])('metrics port: %s → %i', async (_name, status, headers) => {
    const r = await call(sc.metricsPort, { headers });
    expect(r.status).toBe(status);
    if (status === 200) expect(r.text).toContain('# TYPE metrics_sidecar_info gauge');
    else expect(r.text).not.toContain('# TYPE');
    if (status === 401) expect(r.headers['www-authenticate']).toEqual(['Basic realm="metrics", charset="UTF-8"', 'Bearer realm="metrics"'].join(', '));
  });

  it.each([
    ['right basic credentials', 200, { authorization: basic(USER, PASSWORD) }],
    ['an API key with the metrics scope', 200, { authorization: bearer(KEY_METRICS) }],
    ['no credentials', 404, {}],
    ['a wrong password', 404, { authorization: basic(USER, 'wrong') }],
    ['an API key without the metrics scope', 404, { authorization: bearer(KEY_OTHER_SCOPE) }],
  ])('main port hides the path on failure: %s → %i', async (_name, status, headers) => {
    const r = await call(sc.mainPort, { headers });
    expect(r.status).toBe(status);
    expect(r.headers['www-authenticate']).toBeUndefined();
  });

  it('should refuse the api_key query parameter unless enabled', async () => {
    expect((await call(sc.metricsPort, { path: `/debug/metrics?api_key=${KEY_METRICS}` })).status).toBe(401);
  });

  it('should leave health endpoints open', async () => {
    expect((await call(sc.metricsPort, { path: '/healthz' })).status).toBe(200);
    expect((await call(sc.metricsPort, { path: '/readyz' })).status).toBe(200);
    expect((await call(sc.mainPort, { path: '/debug/readyz' })).status).toBe(200);
  });

  it('should count failures by listener and reason, and time decisions', async () => {
    const r = await call(sc.metricsPort, { headers: { authorization: bearer(KEY_METRICS) } });
    const p = parseExposition(r.text);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'metrics', reason: 'bad_credentials' })).toBe(5);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'metrics', reason: 'malformed' })).toBe(4);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'metrics', reason: 'scope' })).toBe(2);
    expect(value(p, 'metrics_sidecar_auth_failures_total', { listener: 'main', reason: 'missing' })).toBe(1);
    expect(value(p, 'metrics_sidecar_auth_duration_seconds_count', { listener: 'metrics' })).toBeGreaterThan(10);
  });
});

describe('API key in the query string', () => {
  it('should accept ?api_key= when METRICS_API_KEY_QUERY_PARAM=true, with the same scope rule', async () => {
    const sc = await sidecar({ METRICS_API_KEYS_FILE: keysFile, METRICS_API_KEY_QUERY_PARAM: 'true' });
    expect((await call(sc.metricsPort, { path: `/debug/metrics?api_key=${KEY_METRICS}` })).status).toBe(200);
    expect((await call(sc.metricsPort, { path: `/debug/metrics?api_key=${KEY_OTHER_SCOPE}` })).status).toBe(403);
    expect((await call(sc.metricsPort, { path: '/debug/metrics?api_key=nope' })).status).toBe(401);
  });
});

describe('CIDR allow-list', () => {
  it.each([
    ['IPv4 peer inside an IPv4 range', 200, { METRICS_ALLOWED_CIDRS: '127.0.0.0/8' }, '127.0.0.1', {}],
    ['IPv4 single address', 200, { METRICS_ALLOWED_CIDRS: '127.0.0.1' }, '127.0.0.1', {}],
    ['IPv4 peer outside', 403, { METRICS_ALLOWED_CIDRS: '10.0.0.0/8' }, '127.0.0.1', {}],
    ['IPv6 peer inside', 200, { METRICS_ALLOWED_CIDRS: '::1/128' }, '::1', {}],
    ['IPv6 peer outside', 403, { METRICS_ALLOWED_CIDRS: 'fd00::/8' }, '::1', {}],
    ['IPv6 peer against an IPv4 list', 403, { METRICS_ALLOWED_CIDRS: '127.0.0.0/8' }, '::1', {}],
    ['IPv4 peer (seen as ::ffff:127.0.0.1) against an IPv6 list', 403, { METRICS_ALLOWED_CIDRS: '::1' }, '127.0.0.1', {}],
    ['IPv4-mapped range written by the operator', 200, { METRICS_ALLOWED_CIDRS: '::ffff:127.0.0.0/104' }, '127.0.0.1', {}],
    ['spoofed X-Forwarded-For from an untrusted peer', 403, { METRICS_ALLOWED_CIDRS: '10.0.0.0/8' }, '127.0.0.1', { 'x-forwarded-for': '10.1.2.3' }],
    [
      'X-Forwarded-For from a trusted proxy',
      200,
      { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' },
      '127.0.0.1',
      { 'x-forwarded-for': '10.1.2.3' },
    ],
    [
      'trusted proxy, rightmost hop outside',
      403,
      { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' },
      '127.0.0.1',
      { 'x-forwarded-for': '10.1.2.3, 192.0.2.7' },
    ],
    [
      'trusted proxy, client-forged left hop ignored',
      200,
      { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' },
      '127.0.0.1',
      { 'x-forwarded-for': '192.0.2.7, 10.1.2.3' },
    ],
    [
      'trusted proxy chain',
      200,
      { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1,172.16.0.0/12' },
      '127.0.0.1',
      { 'x-forwarded-for': '10.9.9.9, 172.16.0.5' },
    ],
    ['trusted proxy, garbage hop', 403, { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' }, '127.0.0.1', { 'x-forwarded-for': 'not-an-ip' }],
    [
      'trusted proxy, mapped hop',
      200,
      { METRICS_ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' },
      '127.0.0.1',
      { 'x-forwarded-for': '::ffff:10.1.2.3' },
    ],
  ])('%s → %i', async (_name, status, env, host, headers) => {
    const sc = await sidecar(env as Env);
    expect((await call(sc.metricsPort, { host, headers })).status).toBe(status);
    expect((await call(sc.mainPort, { host, headers })).status).toBe(status === 200 ? 200 : 404);
  });
});

describe('combination', () => {
  let sc: Running;
  beforeAll(async () => {
    sc = await sidecar({
      METRICS_ALLOWED_CIDRS: '127.0.0.1/32',
      METRICS_BASIC_AUTH_USERNAME: USER,
      METRICS_BASIC_AUTH_PASSWORD: PASSWORD,
      METRICS_API_KEYS_FILE: keysFile,
    });
  });

  it.each([
    ['allowed address, right password', 200, '127.0.0.1', { authorization: basic(USER, PASSWORD) }],
    ['allowed address, right API key', 200, '127.0.0.1', { authorization: bearer(KEY_METRICS) }],
    ['allowed address, no credentials', 401, '127.0.0.1', {}],
    ['allowed address, wrong password', 401, '127.0.0.1', { authorization: basic(USER, 'nope') }],
    ['refused address, right password', 403, '::1', { authorization: basic(USER, PASSWORD) }],
    ['refused address, right API key', 403, '::1', { authorization: bearer(KEY_METRICS) }],
  ])('%s → %i', async (_name, status, host, headers) => {
    expect((await call(sc.metricsPort, { host, headers })).status).toBe(status);
  });
});

describe('open endpoints', () => {
  it('should serve everyone and warn once at start when nothing is configured', async () => {
    const sc = await sidecar({});
    expect((await call(sc.metricsPort)).status).toBe(200);
    expect(sc.logs.filter((l) => l.level === 'warn' && String(l.msg).includes('open to any client'))).toHaveLength(1);
  });

  it('should not warn when access control is configured', async () => {
    const sc = await sidecar({ METRICS_ALLOWED_CIDRS: '127.0.0.1' });
    expect(sc.logs.some((l) => String(l.msg).includes('open to any client'))).toBe(false);
  });
});

describe('hot reload of mounted secrets', () => {
  it('should accept a rotated password and refuse the old one, without a restart', async () => {
    const file = path.join(tmp, 'rotating-password');
    fs.writeFileSync(file, `${PASSWORD}\n`);
    const sc = await sidecar({ METRICS_BASIC_AUTH_USERNAME: USER, METRICS_BASIC_AUTH_PASSWORD_FILE: file, SECRET_RELOAD_INTERVAL_MS: '50' });
    expect((await call(sc.metricsPort, { headers: { authorization: basic(USER, PASSWORD) } })).status).toBe(200);

    // Kubernetes replaces a Secret's files by swapping a symlink; a rename does the same here.
    fs.writeFileSync(`${file}.new`, `${NEW_PASSWORD}\n`);
    fs.renameSync(`${file}.new`, file);
    await sc.untilLogged((l) => l.msg === 'basic auth password reloaded');
    expect((await call(sc.metricsPort, { headers: { authorization: basic(USER, PASSWORD) } })).status).toBe(401);
    expect((await call(sc.metricsPort, { headers: { authorization: basic(USER, NEW_PASSWORD) } })).status).toBe(200);

    // A broken new version (empty) keeps the last good password and says why.
    fs.writeFileSync(file, '');
    expect(await sc.untilLogged((l) => String(l.msg).includes('invalid; keeping the last good one'))).toMatchObject({ reason: 'the file is empty' });
    expect((await call(sc.metricsPort, { headers: { authorization: basic(USER, NEW_PASSWORD) } })).status).toBe(200);
  });

  it('should reload API keys, and keep the last good keys when the new file is broken', async () => {
    const file = path.join(tmp, 'rotating-keys');
    fs.writeFileSync(file, `prometheus plain:${KEY_METRICS} metrics\n`);
    const sc = await sidecar({ METRICS_API_KEYS_FILE: file, SECRET_RELOAD_INTERVAL_MS: '50' });
    expect((await call(sc.metricsPort, { headers: { authorization: bearer(KEY_METRICS) } })).status).toBe(200);
    fs.writeFileSync(file, `prometheus plain:${KEY_HASHED} metrics\n`);
    await sc.untilLogged((l) => l.msg === 'API keys reloaded');
    expect((await call(sc.metricsPort, { headers: { authorization: bearer(KEY_METRICS) } })).status).toBe(401);
    expect((await call(sc.metricsPort, { headers: { authorization: bearer(KEY_HASHED) } })).status).toBe(200);
    fs.writeFileSync(file, `prometheus ${KEY_OTHER_SCOPE}\n`);
    expect(await sc.untilLogged((l) => String(l.msg).includes('API keys file is invalid'))).toMatchObject({ reason: expect.stringMatching(/^line 1: /) });
    expect((await call(sc.metricsPort, { headers: { authorization: bearer(KEY_HASHED) } })).status).toBe(200);
  });
});

describe('secrets', () => {
  it('should never appear in a log line, a response body or a response header', async () => {
    // Stop every sidecar first so their last log lines are in.
    for (const sc of running.splice(0)) {
      await sc.stop();
      seen.push(...sc.logs.map((l) => JSON.stringify(l)));
    }
    const all = seen.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const s of SECRETS) {
      expect(all).not.toContain(s);
      expect(all).not.toContain(JSON.stringify(s).slice(1, -1));
      expect(all).not.toContain(Buffer.from(s).toString('base64'));
    }
  });
});
