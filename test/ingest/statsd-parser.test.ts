import { parseLine, parseTags, sanitizeLabelName, sanitizeMetricName, StatsdParseError } from '../../src/ingest/statsd/parser';
import { Mapper } from '../../src/ingest/statsd/mapper';
import { parseMappingFile } from '../../src/config/statsd-mapping';
import { StatsdRecorder } from '../../src/ingest/statsd/recorder';
import { Registry } from '../../src/metrics/registry';
import { renderText } from '../helpers/text-oracle';

describe('parseLine', () => {
  it.each([
    ['hits:1|c', { name: 'hits', type: 'c', values: [1], rate: 1, tags: '', delta: false }],
    ['hits:2.5|c|@0.1', { type: 'c', values: [2.5], rate: 0.1 }],
    ['temp:21.5|g', { type: 'g', values: [21.5], delta: false }],
    ['temp:+3|g', { type: 'g', values: [3], delta: true }],
    ['temp:-3|g', { type: 'g', values: [-3], delta: true }],
    ['lat:320|ms', { type: 'ms', values: [320] }],
    ['lat:320:410:99|ms', { type: 'ms', values: [320, 410, 99] }],
    ['size:1e3|h', { type: 'h', values: [1000] }],
    ['size:.5|d|@0.5|#env:prod,region:eu', { type: 'd', values: [0.5], rate: 0.5, tags: 'env:prod,region:eu' }],
    ['users:alice|s', { type: 's' }],
    ['x.y-z:1|c|#a:b|c:abc123|T1656581400', { name: 'x.y-z', tags: 'a:b' }],
    ['api:1|c|#url:http://x/y', { tags: 'url:http://x/y' }],
  ])('should parse %s', (line, expected) => {
    expect(parseLine(line)).toMatchObject(expected);
  });

  /** Thirty-odd malformed lines; each must raise StatsdParseError (counted, never a crash). */
  const MALFORMED = [
    '',
    'novalue',
    ':1|c',
    'name:|c',
    'name:1',
    'name:1|',
    'name:1|x',
    'name:1|cc',
    'name:1|C',
    'name:abc|c',
    'name:1.2.3|c',
    'name:0x10|c',
    'name:NaN|g',
    'name:Infinity|g',
    'name:1e999|ms',
    'name:-1|c',
    'name:1|c|@0',
    'name:1|c|@1.5',
    'name:1|c|@-0.5',
    'name:1|c|@abc',
    'name:1|c|@',
    'name:1|c|unknown',
    'name:1|c||',
    'name:1 |c',
    'name: 1|c',
    'name:1::2|ms',
    'name:1:|ms',
    'na|me:1|c',
    'na#me:1|c',
    'na@me:1|c',
    'name:1|g|#a:b|x',
    'name:++1|g',
    'name:|s',
  ];

  it('should have at least 30 malformed cases', () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(30);
  });

  it.each(MALFORMED)('should refuse %p', (line) => {
    expect(() => parseLine(line)).toThrow(StatsdParseError);
  });
});

describe('names and tags', () => {
  it.each([
    ['github.api_call-latency', 'github_api_call_latency'],
    ['9lives', '_9lives'],
    ['ok_name:sub', 'ok_name:sub'],
  ])('should sanitise metric name %s', (a, b) => expect(sanitizeMetricName(a)).toBe(b));

  it.each([
    ['env', 'env'],
    ['k8s.namespace', 'k8s_namespace'],
    ['1st', '_1st'],
    ['__reserved', '_reserved'],
  ])('should sanitise label name %s', (a, b) => expect(sanitizeLabelName(a)).toBe(b));

  it('should read DogStatsD tags and skip those without a value', () => {
    expect(parseTags('a:1,b,c:,d:x:y')).toEqual([
      ['a', '1'],
      ['d', 'x:y'],
    ]);
  });
});

describe('Mapper', () => {
  const file = parseMappingFile(`
defaults:
  buckets: [1, 2]
  ttl: 30s
mappings:
  - match: "shop.*.checkout.*"
    name: "shop_checkout_\${2}_seconds"
    labels: { region: "$1" }
    buckets: [0.1, 1]
    ttl: 5s
  - match: "debug.*"
    action: drop
`);
  const m = new Mapper(file, [9]);

  it('should apply a glob rule with captures, labels, buckets and TTL', () => {
    expect(m.map('shop.eu.checkout.pay', 'histogram')).toEqual({
      name: 'shop_checkout_pay_seconds',
      labels: [['region', 'eu']],
      buckets: [0.1, 1],
      ttlMs: 5000,
      db: false,
    });
  });

  it('should not let * cross a dot', () => {
    expect(m.map('shop.eu.west.checkout.pay', 'histogram')).toMatchObject({ name: 'shop_eu_west_checkout_pay' });
  });

  it('should drop by rule', () => {
    expect(m.map('debug.anything', 'counter')).toBe('drop');
  });

  it('should map the maintained families with second-based buckets', () => {
    expect(m.map('github_api_call_latency', 'histogram')).toMatchObject({ name: 'github_api_call_latency', db: false });
    expect(m.map('graphql_requests', 'counter')).toMatchObject({ name: 'graphql_requests_total' });
    expect(m.map('sqlalchemy_query_latency', 'histogram')).toMatchObject({ name: 'sqlalchemy_query_latency_seconds', db: true });
  });

  it('should sanitise unmapped names, with _total on counters and the file defaults', () => {
    expect(m.map('app.jobs-done', 'counter')).toEqual({ name: 'app_jobs_done_total', labels: [], buckets: [1, 2], ttlMs: 30000, db: false });
  });

  it.each([
    ['mappings: {}', /must be a list/],
    ['mappings: [{ name: x }]', /mappings\[0\]: "match"/],
    ['mappings: [{ match: "a.*", name: x, action: keep }]', /"action" must be one of map, drop/],
    ['mappings: [{ match: "a.*", name: x, buckets: [2, 1] }]', /ascending/],
    ['mappings: [{ match: "a.*", name: x, ttl: 10 }]', /bare number; write a duration such as "10s"/],
    ['mappings: [{ match: "a.*", name: x, labels: { "bad-name": x } }]', /label name/],
    ['mappings: [{ match: "a.*", name: "bad name" }]', /not a metric name/],
    ['mappings: [{ match: "a.*.*", name: "a_$2_seconds" }]', /"\$2_seconds" refers to a capture named "2_seconds" \(empty\); write "\$\{2\}_seconds"/],
  ])('should reject %p', (text, message) => {
    expect(() => parseMappingFile(text)).toThrow(message);
  });
});

describe('DogStatsD per-line fields and the recorder cache', () => {
  it('should key a line by type and tags only when it carries a timestamp, container id or external data', () => {
    expect(parseLine('a:1|c|#x:y|T1700000000').rest).toBe(parseLine('a:1|c|#x:y|T1700000001').rest);
    expect(parseLine('a:1|c|c:abc|#x:y|T17').rest).toBe('c|#x:y');
    expect(parseLine('a:1|ms|@0.5|T17').rest).toBe('ms');
    expect(parseLine('a:1|c|@0.5|#x:y').rest).toBe('c|@0.5|#x:y');
  });

  it('should map a name once for lines that differ only in their timestamp, and count each line', () => {
    let maps = 0;
    class CountingMapper extends Mapper {
      override map(name: string, kind: Parameters<Mapper['map']>[1]) {
        maps++;
        return super.map(name, kind);
      }
    }
    const registry = new Registry();
    const recorder = new StatsdRecorder(registry, new CountingMapper(undefined, [1]), { enableDbMetrics: false, maxSeriesPerFamily: 100, maxFamilies: 100 });
    for (let t = 0; t < 50; t++) expect(recorder.handleLine(`jobs:1|c|#queue:a|T${1700000000 + t}`)).toBe('accepted');
    expect(maps).toBe(1);
    expect(renderText(registry, false)).toContain('jobs_total{queue="a"} 50\n');
  });
});

describe('hostile values', () => {
  it('should refuse a sample rate so small that value / rate overflows (the series would be +Inf for good)', () => {
    for (const line of ['x:2|c|@1e-308', 'y:1|ms|@5e-324', 'z:1e300|g|@1e-10']) expect(() => parseLine(line)).toThrow(StatsdParseError);
    expect(parseLine('x:2|c|@0.000001').rate).toBe(0.000001);
  });

  it("should give names like Object's members (constructor, __proto__) their own families, never Object's", () => {
    const registry = new Registry();
    const store = new StatsdRecorder(registry, new Mapper(parseMappingFile(''), [0.1, 1]), { enableDbMetrics: false, maxSeriesPerFamily: 100 });
    for (const line of ['constructor:1|g', '__proto__:1|c', 'hasOwnProperty:2|ms', 'valueOf:1|c', 'toString:1|g'])
      expect(store.handleLine(line)).toBe('accepted');
    expect(store.internalErrors).toBe(0);
    const names = [...registry.all()].map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(['constructor', '__proto___total', 'hasOwnProperty', 'valueOf_total', 'toString']));
    expect(names).not.toContain('Object');
  });
});
