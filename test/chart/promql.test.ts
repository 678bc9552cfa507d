/**
 * Every PromQL expression the chart ships — the PrometheusRule's alerts and the Grafana
 * dashboard's panels and variables — parses with Prometheus's grammar and selects only metrics
 * the sidecar exports: the names are taken from a scrape of the built sidecar (`node
 * dist/main.js`, as the image runs it, with StatsD, DB metrics and a merge target on), and, for the
 * dashboard's SLO panels, from the names the chart's SLO rules record (slo.enabled; test/chart/slo.test.ts
 * tests those rules). `promtool check rules` accepts the rules.
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, request } from '../helpers/net';
import { spawnSidecar } from '../helpers/sidecar';
import { decode } from '../helpers/protobuf';
import { PROTOBUF_CONTENT_TYPE } from '../../src/exposition/negotiate';
import { CHART, FULLNAME, get, render, renderValues, parseManifests, scenarioFile, type Manifest } from './helm';
import { expandGrafanaVariables, exposedSeriesNames, labelValuesSelector, parsePromQL } from './promql';

/** Series Prometheus itself writes for every target. */
const PROMETHEUS_GENERATED = new Set(['up']);

/** The rule group that may use only families exported today. */
const STABLE_GROUP = 'metrics-sidecar';
/** The rule group for StatsD ingestion and merging. */
const INGEST_GROUP = 'metrics-sidecar-ingest';

let exported: Set<string>;
/** Series the chart's SLO rules record (slo.enabled). */
let recorded: Set<string>;
let tmp: string;
let rule: Manifest;
let dashboardCm: Manifest;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-promql-'));
  // Kubernetes auth registers its cache counter; its start check finds no API server here (not Ready), which this test does not need.
  const kubeconfig = path.join(tmp, 'kubeconfig');
  fs.writeFileSync(
    kubeconfig,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { token: 'unused' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  const statsdPort = await freePort();
  const child = await spawnSidecar({
    SERVE_PROMETHEUS_ENDPOINT: 'true',
    // Nothing listens there: a forwarded request is a 502, which is all the RED families need.
    UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`,
    ENABLE_DB_METRICS: 'true',
    METRICS_BASIC_AUTH_USERNAME: 'prometheus',
    METRICS_BASIC_AUTH_PASSWORD: 'test-password',
    METRICS_KUBERNETES_AUTH: 'true',
    KUBECONFIG: kubeconfig,
    STATSD_PORT: String(statsdPort),
    MERGE_TARGETS: `http://127.0.0.1:${await freePort()}/metrics`,
    LOG_LEVEL: 'warn',
  });
  try {
    // One line of each maintained application family, so that a sidecar that ingests StatsD
    // exports them (one that does not yet ignores the datagram).
    const socket = dgram.createSocket('udp4');
    const lines = [
      'github_api_call_latency:12|ms|#endpoint:repos,status:200',
      'github_webhook_latency:30|ms|#event:push',
      'graphql_requests:1|c|#operation:viewer',
      'sqlalchemy_query_latency:3|ms|#statement:select',
    ];
    await new Promise<void>((resolve) => socket.send(lines.join('\n'), statsdPort, '127.0.0.1', () => resolve()));
    socket.close();
    const auth = { authorization: `Basic ${Buffer.from('prometheus:test-password').toString('base64')}` };
    // UDP is asynchronous: scrape until the families show up, briefly.
    for (let i = 0; ; i++) {
      const r = await request(child.metricsPort, '/debug/metrics', { headers: auth });
      expect(r.status).toBe(200);
      exported = exposedSeriesNames(r.text);
      if (exported.has('github_api_call_latency_bucket') || i === 10) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // One forwarded request (502) gives the RED histogram a series. A Prometheus that
    // scrapes protobuf stores a histogram that has native buckets under its own name: those names
    // are exported too (the dashboard asks for them first and falls back to the classic _bucket).
    await request(child.mainPort, '/');
    // The request is recorded once its response has closed, in the sidecar's process: the condition
    // is the scrape itself, asked again (each scrape a round trip, no timer) until it shows, bounded.
    for (let i = 0; !exported.has('flask_http_request_duration_seconds') && i < 200; i++) {
      const pb = await request(child.metricsPort, '/debug/metrics', { headers: { ...auth, accept: PROTOBUF_CONTENT_TYPE } });
      for (const f of decode(pb.body)) if (f.metric.some((m) => m.histogram?.schema !== undefined)) exported.add(f.name);
    }
    expect(exported.has('flask_http_request_duration_seconds')).toBe(true);
  } finally {
    child.proc.kill('SIGTERM');
    await child.exited;
  }

  const docs = render([scenarioFile('rules-dashboard')]);
  rule = get(docs, 'PrometheusRule', FULLNAME);
  dashboardCm = get(docs, 'ConfigMap', `${FULLNAME}-dashboard`);
  const slo = renderValues({ slo: { enabled: true } });
  expect(slo.status).toBe(0);
  recorded = new Set(groups(get(parseManifests(slo.stdout), 'PrometheusRule', FULLNAME)).flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

const groups = (r: Manifest) => r.spec.groups as Group[];
const known = (names: string[], allowed: Set<string>[]) => names.filter((n) => !allowed.some((s) => s.has(n)));

describe('the sidecar’s exposition (the reference list of names)', () => {
  it('should hold the families of the metric contract that exist today', () => {
    for (const n of [
      'flask_http_request_duration_seconds_bucket',
      'flask_http_request_total',
      'flask_http_request_exceptions_total',
      'metrics_sidecar_info',
      'metrics_sidecar_series_dropped_total',
      'metrics_sidecar_auth_failures_total',
      'metrics_sidecar_kubernetes_auth_cache_total',
    ]) {
      expect([n, exported.has(n)]).toEqual([n, true]);
    }
  });
});

describe('PrometheusRule', () => {
  const runbook = fs.readFileSync(path.join(CHART, 'RUNBOOK.md'), 'utf8');

  it('should use metrics.httpPrefix in the RED alerts', () => {
    const r = renderValues({ prometheusRule: { enabled: true }, metrics: { httpPrefix: 'http_request' } });
    expect(r.status).toBe(0);
    const text = JSON.stringify(groups(get(parseManifests(r.stdout), 'PrometheusRule', FULLNAME)));
    expect(text).not.toContain('flask_http_request');
    expect(text).toContain('rate(http_request_total{');
    expect(text).toContain('http_request_duration_seconds_bucket{');
  });

  it('should have the stable alerts and the being-added ones in separate groups', () => {
    const byGroup = Object.fromEntries(groups(rule).map((g) => [g.name, g.rules.map((r) => r.alert)]));
    expect(byGroup).toEqual({
      [STABLE_GROUP]: ['MetricsSidecarHighErrorRatio', 'MetricsSidecarHighLatencyP99', 'MetricsSidecarTargetDown', 'MetricsSidecarSeriesDropped'],
      [INGEST_GROUP]: ['MetricsSidecarMergeSourceDown', 'MetricsSidecarStatsdParseErrors'],
    });
  });

  it('should parse every expression with the PromQL grammar', () => {
    for (const g of groups(rule)) for (const r of g.rules) expect([r.alert, parsePromQL(r.expr).errors]).toEqual([r.alert, []]);
  });

  it('should use only exported metrics in the stable group', () => {
    const g = groups(rule).find((x) => x.name === STABLE_GROUP)!;
    for (const r of g.rules) expect([r.alert, known(parsePromQL(r.expr).metrics, [exported, PROMETHEUS_GENERATED])]).toEqual([r.alert, []]);
  });

  it('should use only exported metrics in the ingest group', () => {
    const g = groups(rule).find((x) => x.name === INGEST_GROUP)!;
    for (const r of g.rules) {
      const metrics = parsePromQL(r.expr).metrics;
      expect(metrics.length).toBeGreaterThan(0);
      expect([r.alert, known(metrics, [exported])]).toEqual([r.alert, []]);
    }
  });

  it('should select this release’s targets in every expression, and carry severity and extra labels', () => {
    for (const g of groups(rule)) {
      for (const r of g.rules) {
        expect(r.expr).toContain(`job=~"${FULLNAME}-web|${FULLNAME}-worker"`);
        expect(r.labels).toMatchObject({ severity: expect.stringMatching(/^(warning|critical)$/), team: 'platform' });
        expect(r.annotations?.summary).toBeTruthy();
        expect(r.annotations?.description).toBeTruthy();
        // Every alert links its runbook section (a heading named after the alert in RUNBOOK.md).
        expect(r.annotations?.runbook_url).toBe(
          `https://github.com/metrics-sidecar/metrics-sidecar/blob/main/charts/metrics-sidecar/RUNBOOK.md#${r.alert!.toLowerCase()}`,
        );
        expect(runbook).toContain(`\n## ${r.alert}\n`);
      }
    }
    const latency = groups(rule)[0].rules.find((r) => r.alert === 'MetricsSidecarHighLatencyP99')!;
    expect(latency.expr).toMatch(/\) > 0\.5$/);
    expect(latency.for).toBe('15m');
  });

  it('should pass promtool check rules (default and custom selector, and with alerts switched off)', () => {
    const variants: Manifest[] = [rule];
    for (const values of [
      { prometheusRule: { enabled: true, selector: 'cluster="prod", namespace="apps"' } },
      {
        prometheusRule: {
          enabled: true,
          alerts: {
            mergeSourceDown: { enabled: false, for: '5m', severity: 'warning' },
            statsdParseErrors: { enabled: false, for: '5m', severity: 'warning' },
          },
        },
      },
    ]) {
      const r = renderValues(values);
      expect(r.stderr).toBe('');
      variants.push(get(parseManifests(r.stdout), 'PrometheusRule', FULLNAME));
    }
    expect(groups(variants[2]).map((g) => g.name)).toEqual([STABLE_GROUP]);
    variants.forEach((v, i) => {
      const file = path.join(tmp, `rules-${i}.yaml`);
      fs.writeFileSync(file, YAML.stringify({ groups: groups(v) }));
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(r.error).toBeUndefined();
      expect(r.stdout + r.stderr).toMatch(/SUCCESS: \d+ rules found/);
      expect(r.status).toBe(0);
      for (const g of groups(v)) for (const rr of g.rules) expect(parsePromQL(rr.expr).errors).toEqual([]);
    });
  });
});

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

describe('Grafana dashboard', () => {
  const file = path.join(CHART, 'dashboards', 'metrics-sidecar.json');
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8')) as Dashboard;
  const panels = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...panels(p.panels ?? [])]);
  const graphs = panels(dashboard.panels).filter((p) => p.type !== 'row');
  const exprs = graphs.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  const variableQueries = dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ variable: v.name, query: typeof v.query === 'string' ? v.query : v.query.query }));

  it('should be shipped in the ConfigMap labelled for the Grafana sidecar, changed only in its uid and title (unique per release)', () => {
    expect(dashboardCm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(dashboardCm.metadata.namespace).toBe('monitoring');
    expect(dashboardCm.metadata.annotations).toEqual({ grafana_folder: 'Apps' });
    const shipped = JSON.parse((dashboardCm.data as Record<string, string>)['metrics-sidecar.json']) as Dashboard & { uid: string; title: string };
    expect({ ...shipped, uid: 'x', title: 'x' }).toEqual({ ...dashboard, uid: 'x', title: 'x' });
    expect(shipped.uid).toMatch(/^[a-zA-Z0-9-]{1,40}$/);
    expect(shipped.title).toBe('metrics-sidecar (apps/demo)');
  });

  it('should give each release its own dashboard uid and title, and use metrics.httpPrefix in the RED queries', () => {
    const cm = (values: unknown, release = 'demo') => {
      const r = renderValues(values, [], release);
      expect(r.status).toBe(0);
      const d = parseManifests(r.stdout).find((x) => x.kind === 'ConfigMap' && x.metadata.name.endsWith('-dashboard'))!;
      return JSON.parse((d.data as Record<string, string>)['metrics-sidecar.json']) as Dashboard & { uid: string; title: string };
    };
    const a = cm({ grafanaDashboard: { enabled: true } }, 'one');
    const b = cm({ grafanaDashboard: { enabled: true } }, 'two');
    expect(a.uid).not.toBe(b.uid);
    expect(a.title).not.toBe(b.title);
    const prefixed = JSON.stringify(cm({ grafanaDashboard: { enabled: true }, metrics: { httpPrefix: 'http_request' } }));
    expect(prefixed).not.toContain('flask_http_request');
    expect(prefixed).toContain('rate(http_request_total{');
    expect(prefixed).toContain('http_request_duration_seconds_bucket');
  });

  it('should have unique panel ids and query the selected data source', () => {
    const ids = panels(dashboard.panels).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of graphs) {
      expect([p.title, p.datasource?.uid]).toEqual([p.title, '${datasource}']);
      expect([p.title, (p.targets ?? []).length > 0]).toEqual([p.title, true]);
    }
  });

  it('should show request rate, error ratio, latency quantiles by path, the app metrics and sidecar health', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    expect(all).toMatch(/rate\(flask_http_request_total\{/);
    expect(all).toMatch(/status=~"5\.\."/);
    expect(all).toMatch(/histogram_quantile\(0\.99, sum by \(path, le\) \(rate\(flask_http_request_duration_seconds_bucket/);
    expect(all).toMatch(/histogram_quantile\(0\.5, sum by \(path, le\)/);
    for (const n of ['github_api_call_latency_bucket', 'github_webhook_latency_bucket', 'graphql_requests_total', 'sqlalchemy_query_latency_seconds_bucket'])
      expect(all).toContain(n);
    for (const n of [
      'up{',
      'metrics_sidecar_info',
      'metrics_sidecar_auth_failures_total',
      'metrics_sidecar_series_dropped_total',
      'metrics_sidecar_statsd_lines_total',
      'metrics_sidecar_merge_up',
    ])
      expect(all).toContain(n);
  });

  it('should parse every panel expression and variable query with the PromQL grammar', () => {
    expect(exprs.length).toBeGreaterThan(10);
    for (const { panel, expr } of exprs) expect([panel, expr, parsePromQL(expandGrafanaVariables(expr)).errors]).toEqual([panel, expr, []]);
    expect(variableQueries.length).toBeGreaterThan(0);
    for (const { variable, query } of variableQueries) {
      const selector = labelValuesSelector(query);
      expect([variable, selector !== undefined]).toEqual([variable, true]);
      expect([variable, parsePromQL(selector!).errors]).toEqual([variable, []]);
    }
  });

  it('should select only metrics the sidecar exports, or that the chart’s SLO rules record', () => {
    for (const { panel, expr } of exprs) {
      const metrics = parsePromQL(expandGrafanaVariables(expr)).metrics;
      expect([panel, metrics.length > 0]).toEqual([panel, true]);
      expect([panel, known(metrics, [exported, PROMETHEUS_GENERATED, recorded])]).toEqual([panel, []]);
    }
    for (const { variable, query } of variableQueries) {
      expect([variable, known(parsePromQL(labelValuesSelector(query)!).metrics, [exported, recorded])]).toEqual([variable, []]);
    }
  });

  it('should show each SLO’s error budget remaining and burn rate from the recorded series', () => {
    const slo = exprs.filter((e) => parsePromQL(expandGrafanaVariables(e.expr)).metrics.some((m) => recorded.has(m)));
    const all = slo.map((e) => e.expr).join('\n');
    expect(all).toContain('slo:period_error_budget_remaining:ratio{');
    expect(all).toContain('slo:current_burn_rate:ratio{');
    for (const { panel, expr } of slo) expect([panel, expr]).toEqual([panel, expect.stringContaining('sloth_service=~"$slo_service"')]);
  });
});
