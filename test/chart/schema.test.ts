/**
 * values.schema.json: helm refuses values with a key the chart does not own (a typo) or a value of
 * the wrong type, in `helm template`, `helm install` and `helm lint --strict` alike; and the
 * templates refuse combinations the schema cannot express.
 */
import { CHART, FULLNAME, get, helm, parseManifests, renderValues } from './helm';

const SCHEMA_ERROR = /values don't meet the specifications of the schema/;

describe('values.schema.json', () => {
  it.each([
    ['a misspelled top-level key', { serviceMonitr: { enabled: true } }, /additional properties 'serviceMonitr' not allowed/],
    ['a misspelled workload key', { web: { replicaCont: 3 } }, /at '\/web': additional properties 'replicaCont' not allowed/],
    ['a misspelled ServiceMonitor key', { serviceMonitor: { scrapeTimout: '5s' } }, /at '\/serviceMonitor': additional properties 'scrapeTimout' not allowed/],
    ['a misspelled auth key', { metrics: { basicAuth: { enable: true } } }, /at '\/metrics\/basicAuth': additional properties 'enable' not allowed/],
    ['a misspelled env entry key', { common: { env: [{ name: 'ENABLE_DB_METRICS', valeu: 'true' }] } }, /additional properties 'valeu' not allowed/],
    [
      'a misspelled alert key',
      { prometheusRule: { alerts: { errorRatio: { enabled: true, for: '5m', severity: 'warning', treshold: 1 } } } },
      /additional properties 'treshold' not allowed/,
    ],
  ])('should reject %s', (_what, values, message) => {
    const r = renderValues(values);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(SCHEMA_ERROR);
    expect(r.stderr).toMatch(message);
  });

  it.each([
    ['a string replica count', { web: { replicaCount: '2' } }, /at '\/web\/replicaCount': got string, want integer/],
    ['a boolean env value (Kubernetes wants strings)', { common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: true }] } }, /got boolean, want string/],
    ['a string port', { metrics: { port: '8491' } }, /at '\/metrics\/port': got string, want integer/],
    ['a port out of range', { sidecar: { listenPort: 70000 } }, /at '\/sidecar\/listenPort'/],
    ['a number as interval', { serviceMonitor: { interval: 60 } }, /at '\/serviceMonitor\/interval': got number, want string/],
    ['a duration without unit', { serviceMonitor: { scrapeTimeout: '10' } }, /at '\/serviceMonitor\/scrapeTimeout'/],
    ['an unknown auth method', { serviceMonitor: { auth: 'bearer' } }, /at '\/serviceMonitor\/auth'/],
    ['a quoted enabled flag', { networkPolicy: { enabled: 'true' } }, /at '\/networkPolicy\/enabled': got string, want boolean/],
    ['a CIDR list given as a string', { metrics: { allowedCidrs: '10.0.0.0/8' } }, /at '\/metrics\/allowedCidrs': got string, want array/],
    ['a merge target that is not a URL', { metrics: { mergeTargets: { web: ['127.0.0.1:9100'] } } }, /at '\/metrics\/mergeTargets\/web\/0'/],
    ['a basic auth username with a colon', { metrics: { basicAuth: { username: 'a:b' } } }, /at '\/metrics\/basicAuth\/username'/],
  ])('should reject %s', (_what, values, message) => {
    const r = renderValues(values);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(SCHEMA_ERROR);
    expect(r.stderr).toMatch(message);
  });

  it.each(['LISTEN_PORT', 'PROMETHEUS_PORT', 'UPSTREAM_URL', 'METRICS_BASIC_AUTH_PASSWORD_FILE', 'SHUTDOWN_TIMEOUT_MS'])(
    'should keep %s (set by the chart from other values) out of common.env and sidecar.env',
    (name) => {
      for (const values of [{ common: { env: [{ name, value: '1' }] } }, { sidecar: { env: [{ name, value: '1' }] } }]) {
        const r = renderValues(values);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(SCHEMA_ERROR);
      }
    },
  );

  it('should accept the seeds’ common.env form when it agrees with the explicit metrics.serveOnMainPort', () => {
    const r = renderValues({
      common: {
        env: [
          { name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'true' },
          { name: 'ENABLE_DB_METRICS', value: 'true' },
        ],
      },
      metrics: { serveOnMainPort: true },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.each(['HTTP_METRICS_PREFIX', 'UPSTREAM_HEALTH_PATH', 'UPSTREAM_HEALTH_FAILURE_THRESHOLD'])(
    'should keep %s (explicit values) out of sidecar.env',
    (name) => {
      const r = renderValues({ sidecar: { env: [{ name, value: '1' }] } });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(SCHEMA_ERROR);
    },
  );

  it.each([
    ['an unknown native mode', { sidecar: { native: 'maybe' } }, /at '\/sidecar\/native'/],
    ['a health path without a leading slash', { web: { healthCheck: { path: 'healthz' } } }, /at '\/web\/healthCheck\/path'/],
    ['a RED prefix that is not a metric name', { metrics: { httpPrefix: 'http-request' } }, /at '\/metrics\/httpPrefix'/],
    ['an unknown scrape scheme', { serviceMonitor: { scheme: 'ftp' } }, /at '\/serviceMonitor\/scheme'/],
  ])('should reject %s', (_what, values, message) => {
    const r = renderValues(values);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(SCHEMA_ERROR);
    expect(r.stderr).toMatch(message);
  });

  it('should fail helm lint --strict on a misspelled key', () => {
    const r = helm(['lint', '--strict', CHART, '--set', 'web.replicaCont=3']);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/replicaCont/);
  });
});

describe('where the web pods serve metrics: metrics.serveOnMainPort, or a SERVE_PROMETHEUS_ENDPOINT entry when it is unset', () => {
  const entry = (value: string) => ({ name: 'SERVE_PROMETHEUS_ENDPOINT', value });
  const fromConfigMap = { name: 'SERVE_PROMETHEUS_ENDPOINT', valueFrom: { configMapKeyRef: { name: 'app', key: 'serve' } } };
  it.each([
    ['nothing set', {}, 'false'],
    ['common.env "true" (the seeds’ form)', { common: { env: [entry('true')] } }, 'true'],
    ['common.env "TRUE " (as the sidecar reads it: any case, trimmed)', { common: { env: [entry('TRUE ')] } }, 'true'],
    ['common.env "1"', { common: { env: [entry('1')] } }, 'true'],
    ['common.env "0"', { common: { env: [entry('0')] } }, 'false'],
    ['sidecar.env "true"', { sidecar: { env: [entry('true')] } }, 'true'],
    ['common.env "true", then sidecar.env "false" (the last entry counts)', { common: { env: [entry('true')] }, sidecar: { env: [entry('false')] } }, 'false'],
    ['an explicit true', { metrics: { serveOnMainPort: true } }, 'true'],
    ['an explicit false with an agreeing entry', { common: { env: [entry('FALSE')] }, metrics: { serveOnMainPort: false } }, 'false'],
    ['an explicit true beside a valueFrom entry', { common: { env: [fromConfigMap] }, metrics: { serveOnMainPort: true } }, 'true'],
  ])('%s → %s', (_what, values, expected) => {
    const r = renderValues(values);
    expect(r.stderr).toBe('');
    const docs = parseManifests(r.stdout);
    const sidecar = (
      get(docs, 'Deployment', `${FULLNAME}-web`).spec.template.spec.initContainers as { name: string; env: { name: string; value?: string }[] }[]
    ).find((c) => c.name === 'metrics-sidecar')!;
    const env = sidecar.env.filter((e) => e.name === 'SERVE_PROMETHEUS_ENDPOINT');
    expect(env).toEqual([{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: expected }]);
    expect(sidecar.env.find((e) => e.name === 'PROMETHEUS_PORT')?.value).toBe(expected === 'true' ? '0' : '8491');
  });
});

describe('template guards', () => {
  it.each([
    ['a grace period shorter than the drain', { web: { terminationGracePeriodSeconds: 20 } }, /terminationGracePeriodSeconds \(20\) must exceed/],
    [
      'ServiceMonitor auth by a method that is off',
      { serviceMonitor: { enabled: true, auth: 'apiKey' } },
      /serviceMonitor.auth=apiKey but that method is not enabled/,
    ],
    [
      'a metrics path outside /debug/ served on the main port',
      { metrics: { serveOnMainPort: true, path: '/metrics' } },
      /metrics.path must be under \/debug\//,
    ],
    [
      'a SERVE_PROMETHEUS_ENDPOINT in common.env that disagrees with an explicit metrics.serveOnMainPort',
      { common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'true' }] }, metrics: { serveOnMainPort: false } },
      /SERVE_PROMETHEUS_ENDPOINT="true" in common.env\/sidecar.env disagrees with metrics.serveOnMainPort=false/,
    ],
    [
      'a SERVE_PROMETHEUS_ENDPOINT=false in sidecar.env that disagrees with an explicit metrics.serveOnMainPort',
      { sidecar: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'false' }] }, metrics: { serveOnMainPort: true } },
      /SERVE_PROMETHEUS_ENDPOINT="false" in common.env\/sidecar.env disagrees with metrics.serveOnMainPort=true/,
    ],
    [
      'a SERVE_PROMETHEUS_ENDPOINT the chart cannot read (valueFrom) without an explicit metrics.serveOnMainPort',
      { common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', valueFrom: { configMapKeyRef: { name: 'app', key: 'serve' } } }] } },
      /SERVE_PROMETHEUS_ENDPOINT in common.env\/sidecar.env is given by valueFrom, which the chart cannot read as true or false: set metrics.serveOnMainPort/,
    ],
    [
      'a SERVE_PROMETHEUS_ENDPOINT value the sidecar would refuse, without an explicit metrics.serveOnMainPort',
      { common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'ture' }] } },
      /SERVE_PROMETHEUS_ENDPOINT in common.env\/sidecar.env is "ture", which the chart cannot read/,
    ],
    [
      'a metrics path outside /debug/ when common.env turns serving on the main port on',
      { common: { env: [{ name: 'SERVE_PROMETHEUS_ENDPOINT', value: 'true' }] }, metrics: { path: '/metrics' } },
      /metrics.path must be under \/debug\//,
    ],
    [
      'both ServiceMonitors and PodMonitors',
      { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } },
      /enable serviceMonitor or podMonitor, not both/,
    ],
    [
      'Kubernetes auth in the ServiceMonitor with no token to send',
      { serviceMonitor: { enabled: true }, metrics: { kubernetesAuth: { enabled: true, scraper: { create: false } } } },
      /needs metrics.kubernetesAuth.scraper.create=true or metrics.kubernetesAuth.existingTokenSecret.name/,
    ],
  ])('should refuse %s', (_what, values, message) => {
    const r = renderValues(values);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});
