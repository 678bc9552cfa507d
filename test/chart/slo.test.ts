/**
 * SLOs from values (slo.*): the rules that `helm template` renders pass `promtool check rules`,
 * follow Sloth's names and labels, and do what they are for — proven with `promtool test rules`
 * on synthetic series of the RED histogram, run against the rule file taken from the chart's real
 * render of ci/slo-values.yaml (never a copy; test/e2e/chart-rules.mjs writes it, as for users
 * without the Prometheus Operator): a 2 % error rate against a 99.9 % objective pages
 * within the hour, a 0.05 % error rate never pages, no traffic never pages, and a latency
 * regression pages on the latency SLO.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_HTTP_BUCKETS } from '../../src/config';
import { FULLNAME, NAMESPACE, RELEASE, ROOT, get, parseManifests, render, renderValues, scenarioFile, scenarioValues, type Manifest } from './helm';
import { parsePromQL } from './promql';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

const WEB_JOB = `${FULLNAME}-web`;
const RUNBOOKS = 'https://github.com/metrics-sidecar/metrics-sidecar/blob/main/charts/metrics-sidecar/RUNBOOK.md';
const SLI_WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'];
/** What ci/slo-values.yaml says (read from the file, so that the expectations follow it). */
const scenario = scenarioValues('slo') as {
  prometheusRule: { additionalRuleLabels: Record<string, string> };
  slo: { labels: Record<string, string>; excludePaths: string[]; routes: { name: string; path: string }[] };
};

let tmp: string;
let groups: Group[];
let rulesFile: string;

const groupsOf = (r: Manifest) => r.spec.groups as Group[];
const sloRule = (values: unknown): Manifest => {
  const r = renderValues(values);
  if (r.status !== 0) throw new Error(r.stderr);
  return get(parseManifests(r.stdout), 'PrometheusRule', FULLNAME);
};

function promtool(args: string[]) {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  expect(r.error).toBeUndefined();
  return { status: r.status, output: r.stdout + r.stderr };
}

function checkRules(g: Group[], name: string) {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify({ groups: g }));
  return promtool(['check', 'rules', file]);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-slo-'));
  groups = groupsOf(get(render([scenarioFile('slo')]), 'PrometheusRule', FULLNAME));
  // The rule file under test is the one a user without the Prometheus Operator gets from the
  // chart: test/e2e/chart-rules.mjs prints the PrometheusRule's groups (checked equal below).
  const r = spawnSync(process.execPath, [path.join(ROOT, 'test', 'e2e', 'chart-rules.mjs'), RELEASE, NAMESPACE, scenarioFile('slo')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chart-rules.mjs failed: ${r.stderr}`);
  rulesFile = path.join(tmp, 'rules.yaml');
  fs.writeFileSync(rulesFile, r.stdout);
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('SLO rules', () => {
  it('should pass promtool check rules for --set slo.enabled=true, the ci scenario, native histograms, and beside the other alerts', () => {
    const variants: [string, Group[]][] = [
      ['defaults', groupsOf(sloRule({ slo: { enabled: true } }))],
      ['scenario', groups],
      ['native', groupsOf(sloRule({ ...scenarioValues('slo'), slo: { ...scenario.slo, enabled: true, nativeHistograms: true } }))],
      ['with-alerts', groupsOf(sloRule({ prometheusRule: { enabled: true }, slo: { enabled: true, window: '28d' } }))],
    ];
    for (const [name, g] of variants) {
      const r = checkRules(g, name);
      expect([name, r.output]).toEqual([name, expect.stringMatching(/SUCCESS: \d+ rules found/)]);
      expect(r.status).toBe(0);
      for (const group of g)
        for (const rule of group.rules) expect([rule.record ?? rule.alert, parsePromQL(rule.expr).errors]).toEqual([rule.record ?? rule.alert, []]);
    }
    // The other alerts keep their groups, before the SLOs'.
    expect(variants[3][1].map((g) => g.name).slice(0, 2)).toEqual(['metrics-sidecar', 'metrics-sidecar-ingest']);
  });

  it('should be in the plain rule file for Prometheus without the operator (test/e2e/chart-rules.mjs)', () => {
    expect((YAML.parse(fs.readFileSync(rulesFile, 'utf8')) as { groups: Group[] }).groups).toEqual(groups);
  });

  it('should render no PrometheusRule while both prometheusRule and slo are off', () => {
    const r = renderValues({});
    expect(r.status).toBe(0);
    expect(parseManifests(r.stdout).filter((d) => d.kind === 'PrometheusRule')).toEqual([]);
  });

  it('should name groups, records and labels as Sloth does, one SLO per kind and route', () => {
    const slos = ['requests-availability', 'requests-latency', ...scenario.slo.routes.flatMap((r) => [`${r.name}-availability`, `${r.name}-latency`])];
    expect(groups.map((g) => g.name)).toEqual(
      slos.flatMap((s) =>
        ['sli', 'meta', 'alerts'].map(
          (kind) => `sloth-slo-${kind === 'sli' ? 'sli-recordings' : kind === 'meta' ? 'meta-recordings' : 'alerts'}-${FULLNAME}-${s}`,
        ),
      ),
    );
    for (const slo of slos) {
      const ids = { namespace: NAMESPACE, ...scenario.slo.labels, sloth_id: `${FULLNAME}-${slo}`, sloth_service: FULLNAME, sloth_slo: slo };
      const [sli, meta, alerts] = groups.filter((g) => g.name.endsWith(`-${FULLNAME}-${slo}`));
      expect(sli.rules.map((r) => [r.record, r.labels])).toEqual(
        [...SLI_WINDOWS, '30d'].map((w) => [`slo:sli_error:ratio_rate${w}`, { ...ids, sloth_window: w }]),
      );
      expect(meta.rules.map((r) => r.record)).toEqual([
        'slo:objective:ratio',
        'slo:error_budget:ratio',
        'slo:time_period:days',
        'slo:current_burn_rate:ratio',
        'slo:period_burn_rate:ratio',
        'slo:period_error_budget_remaining:ratio',
        'sloth_slo_info',
      ]);
      for (const r of meta.rules) expect(r.labels).toMatchObject(ids);
      expect(alerts.rules.map((r) => [r.alert, r.labels?.sloth_severity])).toEqual([
        [slo.endsWith('availability') ? 'MetricsSidecarAvailabilityBudgetBurn' : 'MetricsSidecarLatencyBudgetBurn', 'page'],
        [slo.endsWith('availability') ? 'MetricsSidecarAvailabilityBudgetBurn' : 'MetricsSidecarLatencyBudgetBurn', 'ticket'],
      ]);
    }
  });

  it('should alert on the workbook’s four burn-rate pairs for a 30d window, and scale them for another window', () => {
    const pairs = (g: Group[]) =>
      g
        .filter((x) => x.name.startsWith('sloth-slo-alerts-') && x.name.endsWith('requests-availability'))
        .flatMap((x) => x.rules)
        .map((r) => [...r.expr.matchAll(/ratio_rate(\w+)\{[^}]*\} > \(([\d.]+) \* ([\d.]+)\)/g)].map((m) => `${m[1]}>${m[2]}x${m[3]}`));
    expect(pairs(groups)).toEqual([
      ['5m>14.4x0.001', '1h>14.4x0.001', '30m>6x0.001', '6h>6x0.001'],
      ['2h>3x0.001', '1d>3x0.001', '6h>1x0.001', '3d>1x0.001'],
    ]);
    // Sloth's google-28d windows: the same shares of the budget, so the factors are 28/30 of these.
    const d28 = pairs(groupsOf(sloRule({ slo: { enabled: true, window: '28d' } })));
    expect(d28[0]).toEqual(['5m>13.44x0.001', '1h>13.44x0.001', '30m>5.6x0.001', '6h>5.6x0.001']);
    expect(d28[1].slice(2)).toEqual(['6h>0.9333333333333333x0.001', '3d>0.9333333333333333x0.001']);
  });

  it('should carry severity, runbook_url and the extra labels on every alert', () => {
    for (const r of groups.flatMap((g) => g.rules).filter((x) => x.alert)) {
      expect(r.labels).toMatchObject({
        ...scenario.prometheusRule.additionalRuleLabels,
        severity: r.labels?.sloth_severity === 'page' ? 'critical' : 'warning',
      });
      expect(r.annotations?.runbook_url).toBe(`${RUNBOOKS}#${r.alert!.toLowerCase()}`);
      expect(r.annotations?.summary).toContain(`(${r.labels?.sloth_severity})`);
    }
    const runbook = fs.readFileSync(path.join(__dirname, '..', '..', 'charts', 'metrics-sidecar', 'RUNBOOK.md'), 'utf8');
    for (const a of ['MetricsSidecarAvailabilityBudgetBurn', 'MetricsSidecarLatencyBudgetBurn']) expect(runbook).toContain(`\n## ${a}\n`);
    const own = groupsOf(sloRule({ slo: { enabled: true, availability: { runbookUrl: 'https://wiki.example/slo' } } }));
    const urls = own
      .flatMap((g) => g.rules)
      .filter((r) => r.alert)
      .map((r) => [r.alert, r.annotations?.runbook_url]);
    expect(urls).toContainEqual(['MetricsSidecarAvailabilityBudgetBurn', 'https://wiki.example/slo']);
    expect(urls).toContainEqual(['MetricsSidecarLatencyBudgetBurn', `${RUNBOOKS}#metricssidecarlatencybudgetburn`]);
  });

  it('should name the bucket its latency alert reads, and give its labels as strings whatever the service is called', () => {
    // The scenario's 0.3 s threshold reads the 0.5 s bucket; the route's 1 s is a bucket itself.
    const latency = (slo: string) => groups.find((g) => g.name === `sloth-slo-alerts-${FULLNAME}-${slo}`)!.rules[0].annotations!;
    expect(latency('requests-latency').description).toContain("requests slower than 0.5s (the histogram's bucket at or above the 0.3s threshold)");
    expect(latency('checkout-latency').description).toContain('requests slower than 1s burn');
    for (const service of ['true', '0123']) {
      const r = renderValues({ slo: { enabled: true } }, ['--set-string', `slo.service=${service}`]);
      expect(r.status).toBe(0);
      const alerts = groupsOf(parseManifests(r.stdout).find((m) => m.kind === 'PrometheusRule')!)
        .flatMap((g) => g.rules)
        .filter((x) => x.alert);
      expect(alerts.length).toBeGreaterThan(0);
      for (const a of alerts) expect(a.labels?.sloth_service).toBe(service);
    }
  });

  it('should leave excluded and overridden paths out of the service-wide SLIs, and read only its own path in a route’s', () => {
    const sli = (slo: string) => groups.find((g) => g.name === `sloth-slo-sli-recordings-${FULLNAME}-${slo}`)!.rules[0].expr;
    const left = [...scenario.slo.excludePaths, ...scenario.slo.routes.map((r) => r.path)];
    expect(sli('requests-availability')).toContain(`path!~${JSON.stringify(left.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'))}`);
    expect(sli('checkout-availability')).toContain(`path="${scenario.slo.routes[0].path}"`);
    expect(sli('checkout-availability')).not.toContain('path!~');
  });

  it('should read the latency SLI from the bucket at or just above the threshold, of the sidecar’s buckets or HTTP_DURATION_BUCKETS', () => {
    const le = (values: unknown) => /le=~("[^"]*")/.exec(groupsOf(sloRule(values)).find((g) => g.name.endsWith('requests-latency'))!.rules[0].expr)?.[1];
    // The scenario's 0.3 s reads the 0.5 s bucket; a route's 1 s matches both spellings of an integer bound.
    expect(groups.find((g) => g.name.endsWith('-requests-latency'))!.rules[0].expr).toContain('le=~"0.5"');
    expect(groups.find((g) => g.name.endsWith('-checkout-latency'))!.rules[0].expr).toContain('le=~"1|1[.]0"');
    expect(le({ slo: { enabled: true, latency: { thresholdSeconds: 0.25 } } })).toBe('"0.25"');
    const env = (v: string) => ({ sidecar: { env: [{ name: 'HTTP_DURATION_BUCKETS', value: v }] } });
    expect(le({ ...env('0.1,0.4,2'), slo: { enabled: true, latency: { thresholdSeconds: 0.3 } } })).toBe('"0.4"');
    expect(le({ common: { env: [{ name: 'HTTP_DURATION_BUCKETS', value: '0.2,3' }] }, slo: { enabled: true, latency: { thresholdSeconds: 0.3 } } })).toBe(
      '"3|3[.]0"',
    );
    // Above the largest bucket there is nothing to read: the render fails, naming the buckets, which
    // are the sidecar's own defaults.
    const r = renderValues({ slo: { enabled: true, latency: { thresholdSeconds: 60 } } });
    expect(r.status).not.toBe(0);
    const listed = /above the largest bucket of the RED histogram \(([^)]*)\)/.exec(r.stderr)?.[1];
    expect(listed?.split(',').map(Number)).toEqual(DEFAULT_HTTP_BUCKETS);
  });

  it('should reject SLO values the chart does not know', () => {
    for (const [values, message] of [
      [{ slo: { enabled: true, window: '720h' } }, /at '\/slo\/window'/],
      [{ slo: { enabled: true, objective: 99 } }, /additional properties 'objective' not allowed/],
      [{ slo: { enabled: true, availability: { objective: 100 } } }, /at '\/slo\/availability\/objective'/],
      [{ slo: { enabled: true, routes: [{ path: '/x' }] } }, /missing property 'name'/],
      // The ticket alerts read 3d: a shorter window would record the same rule twice.
      [{ slo: { enabled: true, window: '1d' } }, /at '\/slo\/window'/],
      [{ slo: { enabled: true, window: '3d' } }, /at '\/slo\/window'/],
      // Two routes of one name, or one named as the service-wide SLOs, would share rule groups.
      [
        {
          slo: {
            enabled: true,
            routes: [
              { name: 'a', path: '/a' },
              { name: 'a', path: '/b' },
            ],
          },
        },
        /slo.routes: the name "a" is given twice/,
      ],
      [{ slo: { enabled: true, routes: [{ name: 'requests', path: '/a' }] } }, /slo.routes: the name "requests"/],
    ] as const) {
      const r = renderValues(values);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }
  });
});

/** One kind of request: how many a minute, on which path, with which status and duration. */
interface Requests {
  path: string;
  status: string;
  seconds: number;
  perMinute: number;
}
/** Traffic by phase: each phase lasts `minutes` and has its own mix of requests. */
type Phases = { minutes: number; requests: Requests[] }[];

/**
 * The RED histogram's series (`_count` and every classic `_bucket`, as the sidecar exports them
 * with its default buckets) for the phases, in promtool's expanding notation, one sample a minute
 * from 0.
 */
function histogramSeries(phases: Phases): { series: string; values: string }[] {
  const kinds = new Map<string, { path: string; status: string }>();
  for (const p of phases) for (const r of p.requests) kinds.set(`${r.path} ${r.status}`, r);
  const out: { series: string; values: string }[] = [];
  for (const { path: p, status } of kinds.values()) {
    const labels = `namespace="${NAMESPACE}", job="${WEB_JOB}", method="GET", path="${p}", status="${status}"`;
    const counter = (within: (seconds: number) => boolean) => {
      let v = 0;
      const parts = ['0'];
      for (const phase of phases) {
        const rate = phase.requests.filter((r) => r.path === p && r.status === status && within(r.seconds)).reduce((a, r) => a + r.perMinute, 0);
        parts.push(`${v + rate}+${rate}x${phase.minutes - 1}`);
        v += rate * phase.minutes;
      }
      return parts.join(' ');
    };
    out.push({ series: `flask_http_request_duration_seconds_count{${labels}}`, values: counter(() => true) });
    for (const le of [...DEFAULT_HTTP_BUCKETS, Infinity])
      out.push({ series: `flask_http_request_duration_seconds_bucket{${labels}, le="${le === Infinity ? '+Inf' : le}"}`, values: counter((s) => s <= le) });
  }
  return out;
}

type Severity = 'page' | 'ticket';
const ALERT = { availability: 'MetricsSidecarAvailabilityBudgetBurn', latency: 'MetricsSidecarLatencyBudgetBurn' } as const;

/** An alert promtool must see firing: its labels as the SLO's, and its annotations as rendered. */
function firing(kind: 'availability' | 'latency', severity: Severity) {
  const slo = `requests-${kind}`;
  const rule = groups.find((g) => g.name === `sloth-slo-alerts-${FULLNAME}-${slo}`)!.rules.find((r) => r.labels?.sloth_severity === severity)!;
  return {
    exp_labels: {
      namespace: NAMESPACE,
      ...scenario.slo.labels,
      ...scenario.prometheusRule.additionalRuleLabels,
      sloth_id: `${FULLNAME}-${slo}`,
      sloth_service: FULLNAME,
      sloth_slo: slo,
      sloth_severity: severity,
      severity: severity === 'page' ? 'critical' : 'warning',
    },
    exp_annotations: rule.annotations,
  };
}

interface AlertTest {
  at: string;
  kind: 'availability' | 'latency';
  firing: Severity[];
}
interface ExprTest {
  at: string;
  expr: string;
  /** Expected values of the expression's samples (no labels: each expression is one sum). */
  values: number[];
}

/** Writes a promtool rule test of the chart's rules (rulesFile) and runs it. */
function promtoolTest(name: string, phases: Phases, alerts: AlertTest[], exprs: ExprTest[] = []) {
  const file = path.join(tmp, `${name}.test.yaml`);
  fs.writeFileSync(
    file,
    YAML.stringify(
      {
        rule_files: [path.basename(rulesFile)],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: histogramSeries(phases),
            alert_rule_test: alerts.map((a) => ({ eval_time: a.at, alertname: ALERT[a.kind], exp_alerts: a.firing.map((s) => firing(a.kind, s)) })),
            promql_expr_test: exprs.map((e) => ({ expr: e.expr, eval_time: e.at, exp_samples: e.values.map((value) => ({ labels: '{}', value })) })),
          },
        ],
      },
      { lineWidth: 0 },
    ),
  );
  const r = promtool(['test', 'rules', file]);
  expect([name, r.output]).toEqual([name, expect.stringContaining('SUCCESS')]);
  expect(r.status).toBe(0);
}

/** An SLI ratio or budget of a service-wide SLO, scaled and rounded, as one unlabelled sample. */
const scaled = (record: string, slo: string, by: number) => `round(sum(${record}{sloth_slo="${slo}"}) * ${by})`;

describe('promtool test rules on the rendered SLO rules', () => {
  const ok = (perMinute: number, extra: Partial<Requests> = {}): Requests => ({ path: '/api/items', status: '200', seconds: 0.05, perMinute, ...extra });
  const failed = (perMinute: number): Requests => ({ path: '/api/items', status: '500', seconds: 0.05, perMinute });

  it('should page within the hour on a 2 % error rate against the 99.9 % objective (and open a ticket first)', () => {
    // Three good hours, then 2 % of the requests answer 500: 20 times the budget's rate.
    const before = 180;
    promtoolTest(
      'availability-page',
      [
        { minutes: before, requests: [ok(1000)] },
        { minutes: 70, requests: [ok(980), failed(20)] },
      ],
      [
        { at: `${before - 1}m`, kind: 'availability', firing: [] },
        // 20 minutes in, the 1 h window has not reached 14.4x; the 6 h/3 d ticket pair has reached 1x.
        { at: `${before + 20}m`, kind: 'availability', firing: ['ticket'] },
        { at: `${before + 60}m`, kind: 'availability', firing: ['page', 'ticket'] },
        { at: `${before + 60}m`, kind: 'latency', firing: [] },
      ],
      [{ at: `${before + 60}m`, expr: scaled('slo:sli_error:ratio_rate5m', 'requests-availability', 10000), values: [(20 / 1000) * 10000] }],
    );
  });

  it('should never page or open a ticket on a 0.05 % error rate (half the budget)', () => {
    const minutes = 25 * 60;
    promtoolTest(
      'availability-quiet',
      [{ minutes, requests: [ok(999.5), failed(0.5)] }],
      ['5m', '1h', '6h', '12h', '1d', `${minutes - 1}m`].flatMap((at) => [
        { at, kind: 'availability' as const, firing: [] },
        { at, kind: 'latency' as const, firing: [] },
      ]),
      [
        { at: '1d', expr: scaled('slo:sli_error:ratio_rate1h', 'requests-availability', 100000), values: [(0.5 / 1000) * 100000] },
        // Half the budget's rate spends half of it over the period.
        { at: '1d', expr: scaled('slo:period_error_budget_remaining:ratio', 'requests-availability', 100), values: [50] },
      ],
    );
  }, 120_000);

  it('should never page on no traffic: no ratio is recorded (neither NaN nor 1), and excluded health checks do not count', () => {
    promtoolTest(
      'no-traffic',
      [
        // Requests once, then none for eight hours (past the longest page window); only the excluded health check keeps failing.
        { minutes: 10, requests: [ok(100)] },
        { minutes: 8 * 60, requests: [ok(0), failed(0), { path: scenario.slo.excludePaths[0], status: '503', seconds: 0.001, perMinute: 6 }] },
      ],
      ['30m', '2h', '7h', '8h'].flatMap((at) => [
        { at, kind: 'availability' as const, firing: [] },
        { at, kind: 'latency' as const, firing: [] },
      ]),
      [
        { at: '2h', expr: 'count(slo:sli_error:ratio_rate5m) or vector(0)', values: [0] },
        { at: '2h', expr: 'count(slo:current_burn_rate:ratio) or vector(0)', values: [0] },
        // The 1 d window still holds the ten good minutes: 0, not NaN.
        { at: '2h', expr: scaled('slo:sli_error:ratio_rate1d', 'requests-availability', 1), values: [0] },
      ],
    );
  }, 120_000);

  it('should page on the latency SLO when requests slow down past the threshold', () => {
    // Fast requests, then 30 % of them take 0.6 s: past the 0.3 s threshold and its 0.5 s bucket.
    // 0.4 s requests stay good: they are within the bucket the SLI reads.
    const before = 180;
    promtoolTest(
      'latency-page',
      [
        { minutes: before, requests: [ok(900), ok(100, { seconds: 0.4 })] },
        { minutes: 70, requests: [ok(600), ok(100, { seconds: 0.4 }), ok(300, { seconds: 0.6 })] },
      ],
      [
        { at: `${before - 1}m`, kind: 'latency', firing: [] },
        { at: `${before + 60}m`, kind: 'latency', firing: ['page', 'ticket'] },
        { at: `${before + 60}m`, kind: 'availability', firing: [] },
      ],
      [
        { at: `${before - 1}m`, expr: scaled('slo:sli_error:ratio_rate5m', 'requests-latency', 100), values: [0] },
        { at: `${before + 60}m`, expr: scaled('slo:sli_error:ratio_rate5m', 'requests-latency', 100), values: [30] },
      ],
    );
  });
});
