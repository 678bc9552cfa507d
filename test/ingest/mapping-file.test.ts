/**
 * STATSD_MAPPING_FILE speaks prometheus/statsd_exporter's mapping format: its README's examples
 * load unchanged and map the way that README says they do.
 */
import { Mapper, type Mapping } from '../../src/ingest/statsd/mapper';
import type { StoredType } from '../../src/metrics/contract';
import { duration, parseMappingFile } from '../../src/config/statsd-mapping';
import { StatsdRecorder } from '../../src/ingest/statsd/recorder';
import { Histogram, Registry } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';

const BUCKETS = [0.1, 1, 10];
const mapper = (yaml: string) => new Mapper(parseMappingFile(yaml), BUCKETS);
const labelsOf = (m: Mapping | 'drop') => (m === 'drop' ? 'drop' : Object.fromEntries(m.labels));

describe('statsd_exporter README examples', () => {
  it('glob matching: names, $n and ${n} captures, constant labels; unmatched names are sanitised', () => {
    const m = mapper(`
mappings:
- match: "test.dispatcher.*.*.*"
  name: "dispatcher_events_total"
  labels:
    processor: "$1"
    action: "$2"
    outcome: "$3"
    job: "test_dispatcher"
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server"
`);
    const a = m.map('test.dispatcher.FooProcessor.send.success', 'counter') as Mapping;
    expect(a.name).toBe('dispatcher_events_total');
    expect(labelsOf(a)).toEqual({ processor: 'FooProcessor', action: 'send', outcome: 'success', job: 'test_dispatcher' });
    const b = m.map('foo_product.signup.facebook.failure', 'counter') as Mapping;
    expect(b.name).toBe('signup_events_total');
    expect(labelsOf(b)).toEqual({ provider: 'facebook', outcome: 'failure', job: 'foo_product_server' });
    const c = m.map('test.web-server.foo.bar', 'gauge') as Mapping;
    expect(c.name).toBe('test_web_server_foo_bar');
    expect(c.labels).toEqual([]);
  });

  it('a capture in the metric name', () => {
    const m = mapper('mappings:\n- match: "test.*.*.counter"\n  name: "${2}_total"\n  labels:\n    provider: "$1"\n');
    const r = m.map('test.aws.requests.counter', 'counter') as Mapping;
    expect([r.name, labelsOf(r)]).toEqual(['requests_total', { provider: 'aws' }]);
  });

  it('glob * is one whole dot-separated component', () => {
    const m = mapper('mappings:\n- match: "a.*.c"\n  name: "abc"\n');
    expect((m.map('a.b.c', 'gauge') as Mapping).name).toBe('abc');
    expect((m.map('a.b.x.c', 'gauge') as Mapping).name).toBe('a_b_x_c');
    expect((m.map('a.b.c.d', 'gauge') as Mapping).name).toBe('a_b_c_d');
  });

  it('regex matching, with the README example, after all glob rules whatever their order', () => {
    const m = mapper(String.raw`
mappings:
- match: "(.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count"
  match_type: regex
  name: "request_total"
  labels:
    hostname: "$1"
    exec: "$2"
    protocol: "$3"
    code: "$4"
- match: "web1.*.*.*.*"
  name: "glob_wins"
`);
    const r = m.map('web2.exe--http.status.200.count', 'counter') as Mapping;
    expect([r.name, labelsOf(r)]).toEqual(['request_total', { hostname: 'web2', exec: 'exe', protocol: 'http', code: '200' }]);
    // Both match web1.…: the glob rule wins though it comes second.
    expect((m.map('web1.exe--http.status.200.count', 'counter') as Mapping).name).toBe('glob_wins_total');
  });

  it('regex: \\w classes, ${2}_total, and group 0 as the full name', () => {
    const m = mapper(
      [
        'mappings:',
        '- match: "test\\\\.(\\\\w+)\\\\.(\\\\w+)\\\\.counter"',
        '  match_type: regex',
        '  name: "${2}_total"',
        '  labels:',
        '    provider: "$1"',
        '- match: ".+"',
        '  match_type: regex',
        '  name: "$0"',
        '  labels:',
        '    statsd_metric_name: "$0"',
      ].join('\n'),
    );
    expect(m.map('test.aws.requests.counter', 'counter')).toMatchObject({ name: 'requests_total', labels: [['provider', 'aws']] });
    const r = m.map('my.statsd_counter', 'counter') as Mapping;
    expect(r.name).toBe('my_statsd_counter_total');
    expect(labelsOf(r)).toEqual({ statsd_metric_name: 'my.statsd_counter' });
  });

  it('help text', () => {
    const r = mapper(
      'mappings:\n- match: "http.request.*"\n  help: "Total number of http requests"\n  name: "http_requests_total"\n  labels:\n    code: "$1"\n',
    ).map('http.request.200', 'counter') as Mapping;
    expect(r).toMatchObject({ name: 'http_requests_total', help: 'Total number of http requests', labels: [['code', '200']] });
  });

  it('observer_type histogram with histogram_options.buckets; summary is accepted as a histogram with a note', () => {
    const file = parseMappingFile(`
mappings:
- match: "test.timing.*.*.*"
  observer_type: histogram
  histogram_options:
    buckets: [ 0.01, 0.025, 0.05, 0.1 ]
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server"
- match: "other.timing.*.*.*"
  observer_type: summary
  name: "my_summary_timer"
  summary_options:
    quantiles:
      - quantile: 0.99
        error: 0.001
    max_age: 30s
`);
    const m = new Mapper(file, BUCKETS);
    expect(m.map('test.timing.foo.github.ok', 'histogram')).toMatchObject({
      name: 'my_timer',
      buckets: [0.01, 0.025, 0.05, 0.1],
      labels: [
        ['provider', 'github'],
        ['outcome', 'ok'],
        ['job', 'foo_server'],
      ],
    });
    expect(m.map('other.timing.foo.github.ok', 'histogram')).toMatchObject({ name: 'my_summary_timer', buckets: BUCKETS });
    expect(file.notes.join('\n')).toMatch(/observer_type summary is observed as a histogram/);
  });

  it('the defaults block: observer type, buckets, match type, ordering, ttl', () => {
    const file = parseMappingFile(`
defaults:
  observer_type: histogram
  histogram_options:
    buckets: [.005, .01, .025, .05, .1, .25, .5, 1, 2.5 ]
  match_type: glob
  glob_disable_ordering: false
  ttl: 0 # metrics do not expire
mappings:
- match: "test.timing.*.*.*"
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server"
- match: "other.distribution.*.*.*"
  observer_type: summary
  name: "other_distribution"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server_other"
`);
    const m = new Mapper(file, BUCKETS);
    expect(m.map('test.timing.a.b.c', 'histogram')).toMatchObject({ name: 'my_timer', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], ttlMs: 0 });
    expect(m.map('other.distribution.a.b.c', 'histogram')).toMatchObject({
      name: 'other_distribution',
      labels: [
        ['provider', 'b'],
        ['outcome', 'c'],
        ['job', 'a_server_other'],
      ],
    });
  });

  it('drop action: a regex "." after a glob drops everything else', () => {
    const m = mapper(`
mappings:
- match: "test.timing.*.*.*"
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server"
- match: "."
  match_type: regex
  action: drop
  name: "dropped"
`);
    expect((m.map('test.timing.a.b.c', 'histogram') as Mapping).name).toBe('my_timer');
    expect(m.map('anything.else', 'counter')).toBe('drop');
  });

  it('match_metric_type: counter, gauge, observer', () => {
    const m = mapper(`
mappings:
- match: "test.foo.*"
  name: "test_foo"
  match_metric_type: counter
  labels:
    provider: "$1"
- match: "test.foo.*"
  name: "test_foo_gauge"
  match_metric_type: gauge
- match: "test.foo.*"
  name: "test_foo_seconds"
  match_metric_type: observer
`);
    const kinds: [StoredType, string][] = [
      ['counter', 'test_foo_total'],
      ['gauge', 'test_foo_gauge'],
      ['histogram', 'test_foo_seconds'],
    ];
    for (const [kind, name] of kinds) expect((m.map('test.foo.aws', kind) as Mapping).name).toBe(name);
  });

  it('ttl as a duration (30s, 5m, 1m20s), a rule of 0 taking the default', () => {
    const m = mapper('defaults:\n  ttl: 5m\nmappings:\n- match: "a.*"\n  name: "a"\n  ttl: 1m20s\n- match: "b.*"\n  name: "b"\n  ttl: 0\n');
    expect((m.map('a.x', 'gauge') as Mapping).ttlMs).toBe(80_000);
    expect((m.map('b.x', 'gauge') as Mapping).ttlMs).toBe(300_000);
    expect((m.map('c.x', 'gauge') as Mapping).ttlMs).toBe(300_000);
    expect(duration('30s', 'x')).toBe(30_000);
    expect(duration('250ms', 'x')).toBe(250);
    expect(duration('1h30m', 'x')).toBe(5_400_000);
  });
});

describe('glob rule order', () => {
  const rules = 'mappings:\n- match: "a.*.*"\n  name: "wild"\n- match: "a.b.c"\n  name: "exact"\n';
  it('should take the first matching glob in file order by default', () => {
    expect((mapper(rules).map('a.b.c', 'gauge') as Mapping).name).toBe('wild');
  });
  it('should take the most specific glob with glob_disable_ordering: true', () => {
    const m = mapper(`defaults:\n  glob_disable_ordering: true\n${rules}- match: "a.*.c"\n  name: "half"\n`);
    expect((m.map('a.b.c', 'gauge') as Mapping).name).toBe('exact');
    expect((m.map('a.x.c', 'gauge') as Mapping).name).toBe('half');
    expect((m.map('a.x.y', 'gauge') as Mapping).name).toBe('wild');
  });
});

describe('errors and the older spelling', () => {
  it.each([
    ['a bad name', 'mappings:\n- match: "a.*"\n  name: "bad name!"\n', /mappings\[0\] \(match "a\.\*"\): "name" "bad name!" is not a metric name/],
    ['no name', 'mappings:\n- match: "a.*"\n', /"name" is required/],
    ['a bad regex', 'mappings:\n- match: "(a"\n  match_type: regex\n  name: x\n', /invalid regex/],
    ['a partial glob', 'mappings:\n- match: "a.b*"\n  name: x\n', /invalid glob/],
    ['an unknown match_type', 'mappings:\n- match: "a"\n  match_type: fuzzy\n  name: x\n', /"match_type" must be one of glob, regex/],
    ['an unknown observer_type', 'mappings:\n- match: "a"\n  observer_type: gauge\n  name: x\n', /"observer_type" must be one of histogram, summary/],
    ['buckets in both places', 'mappings:\n- match: "a"\n  name: x\n  buckets: [1]\n  histogram_options: {buckets: [2]}\n', /both set/],
    ['descending buckets', 'mappings:\n- match: "a"\n  name: x\n  histogram_options: {buckets: [2, 1]}\n', /ascending/],
    ['a bare-number ttl (the old spelling)', 'mappings:\n- match: "a"\n  name: x\n  ttl: 600\n', /600 is a bare number; write a duration such as "600s"/],
    ['a bad duration', 'defaults:\n  ttl: 10 minutes\nmappings: []\n', /"10 minutes" is not a duration/],
    ['YAML errors', 'mappings: [\n', /not valid YAML/],
  ])('should refuse %s with a clear message', (_what, yaml, message) => {
    expect(() => parseMappingFile(yaml)).toThrow(message);
  });

  it("should keep the older top-level buckets working (statsd_exporter's deprecated spelling too)", () => {
    const m = mapper('defaults:\n  buckets: [1, 2]\nmappings:\n- match: "a.*"\n  name: "a_$1"\n  buckets: [0.5, 5]\n- match: "b.*"\n  name: "b"\n');
    expect((m.map('a.x', 'histogram') as Mapping).buckets).toEqual([0.5, 5]);
    expect((m.map('b.x', 'histogram') as Mapping).buckets).toEqual([1, 2]);
  });
});

describe('mapping file bounds', () => {
  it('should refuse a rule with more than 100 buckets (each series holds one counter per bucket)', () => {
    const buckets = (n: number) => `[${Array.from({ length: n }, (_, i) => i + 1).join(', ')}]`;
    expect(() => parseMappingFile(`mappings:\n- match: "a.*"\n  name: "a"\n  histogram_options:\n    buckets: ${buckets(101)}\n`)).toThrow(
      /101 buckets; at most 100/,
    );
    expect(() => parseMappingFile(`mappings:\n- match: "a.*"\n  name: "a"\n  histogram_options:\n    buckets: ${buckets(100)}\n`)).not.toThrow();
  });
});

describe('help from the mapping file in the exposition', () => {
  it("should give the family the rule's help text as its # HELP line", () => {
    const registry = new Registry();
    const store = new StatsdRecorder(
      registry,
      mapper('mappings:\n- match: "http.request.*"\n  help: "Total number of http requests"\n  name: "http_requests_total"\n  labels:\n    code: "$1"\n'),
      {
        enableDbMetrics: false,
        maxSeriesPerFamily: 100,
        maxFamilies: 100,
      },
    );
    expect(store.handleLine('http.request.200:1|c')).toBe('accepted');
    expect(store.handleLine('other.thing:1|c')).toBe('accepted');
    const text = renderText(registry, false);
    expect(text).toContain('# HELP http_requests_total Total number of http requests\n');
    expect(text).toContain('# HELP other_thing_total Metric from StatsD (autogenerated by metrics-sidecar).\n');
  });

  it("should give a maintained family the contract's help when no rule gives one, and take a blank help as none", () => {
    const registry = new Registry();
    const store = new StatsdRecorder(
      registry,
      mapper(
        'mappings:\n- match: "gh.hook.*"\n  name: "github_webhook_latency"\n  labels:\n    event: "$1"\n- match: "blank.*"\n  help: "  "\n  name: "blank_total"\n',
      ),
      { enableDbMetrics: true, maxSeriesPerFamily: 100, maxFamilies: 100 },
    );
    expect(store.handleLine('gh.hook.push:12|ms')).toBe('accepted');
    expect(store.handleLine('graphql_requests:1|c|#operation:viewer')).toBe('accepted');
    expect(store.handleLine('sqlalchemy_query_latency:3|ms')).toBe('accepted');
    expect(store.handleLine('blank.x:1|c')).toBe('accepted');
    const text = renderText(registry, false);
    expect(text).toContain('# HELP github_webhook_latency Time the application took to handle a GitHub webhook, in seconds, by event.\n');
    expect(text).toContain('# HELP graphql_requests_total GraphQL requests the application served, by operation.\n');
    expect(text).toContain("# HELP sqlalchemy_query_latency_seconds Latency of the application's database queries (SQLAlchemy), in seconds, by statement.\n");
    expect(text).toContain('# HELP blank_total Metric from StatsD (autogenerated by metrics-sidecar).\n');
  });
});

describe('native histogram options (statsd_exporter histogram_options)', () => {
  const GLOBAL = { bucketFactor: 1.1, maxBuckets: 160 };
  const families = (yaml: string, global: typeof GLOBAL | undefined) => {
    const registry = new Registry();
    const store = new StatsdRecorder(registry, mapper(yaml), { enableDbMetrics: false, maxSeriesPerFamily: 100, maxFamilies: 100, native: global });
    for (const line of ['fine.a:3|ms', 'coarse.a:3|ms', 'classic.a:3|ms', 'other_timer:3|ms']) expect(store.handleLine(line)).toBe('accepted');
    const native = (name: string) => (registry.get(name) as Histogram).native;
    return { fine: native('fine_seconds'), coarse: native('coarse_seconds'), classic: native('classic_seconds'), other: native('other_timer') };
  };
  const yaml = `
defaults:
  histogram_options:
    native_histogram_max_buckets: 80
mappings:
- match: "fine.*"
  name: fine_seconds
  histogram_options: { native_histogram_bucket_factor: 1.05, native_histogram_max_buckets: 300 }
- match: "coarse.*"
  name: coarse_seconds
  histogram_options: { native_histogram_bucket_factor: 2 }
- match: "classic.*"
  name: classic_seconds
  histogram_options: { native_histogram_bucket_factor: 0 }
`;

  it("should take a rule's factor and bucket limit over the defaults' and the global ones, and 0 as classic only", () => {
    expect(families(yaml, GLOBAL)).toEqual({
      fine: { bucketFactor: 1.05, maxBuckets: 300 },
      coarse: { bucketFactor: 2, maxBuckets: 80 },
      classic: undefined,
      other: { bucketFactor: 1.1, maxBuckets: 80 },
    });
  });

  it('should give native buckets only to the rules that ask for them when NATIVE_HISTOGRAM_BUCKET_FACTOR=0', () => {
    expect(families(yaml, undefined)).toEqual({
      fine: { bucketFactor: 1.05, maxBuckets: 300 },
      coarse: { bucketFactor: 2, maxBuckets: 80 },
      classic: undefined,
      other: undefined,
    });
  });

  it('should refuse a factor of 1 or below (but 0), a non-number, and a bucket limit that is not a positive integer', () => {
    for (const [opt, message] of [
      ['native_histogram_bucket_factor: 1', /native_histogram_bucket_factor" must be 0/],
      ['native_histogram_bucket_factor: 0.5', /native_histogram_bucket_factor" must be 0/],
      ['native_histogram_bucket_factor: "1.1"', /native_histogram_bucket_factor" must be 0/],
      ['native_histogram_max_buckets: 0', /native_histogram_max_buckets" must be an integer/],
      ['native_histogram_max_buckets: 1.5', /native_histogram_max_buckets" must be an integer/],
    ] as const)
      expect(() => parseMappingFile(`mappings:\n- match: "a.*"\n  name: a\n  histogram_options: { ${opt} }\n`)).toThrow(message);
  });
});
