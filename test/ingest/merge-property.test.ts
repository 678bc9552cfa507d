/**
 * Generated merge targets, served over real HTTP: expositions built from right and wrong pieces
 * (every type, suffixes that collide with the sidecar's families, with maintained ones and with
 * each other across targets, duplicate series, bad escapes, timestamps, exemplars, garbage lines).
 * A scrape never fails, each target is either merged (up 1) or left out (up 0), and the sidecar's
 * exposition with everything merged passes promtool.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Counter, Histogram, Registry } from '../../src/metrics/registry';
import { Merger } from '../../src/ingest/merge/merger';
import { ExpositionWriter } from '../../src/exposition/render';
import { createLogger } from '../../src/log/logger';
import { parseExposition, find } from '../helpers/exposition';
import { promtoolErrors } from './promtool';
import { exposedNames, type MetricType } from '../../src/metrics/contract';

const names = fc.constantFrom(
  'app_jobs',
  'app_jobs_total',
  'app_jobs_count',
  'app_jobs_bucket',
  'app_jobs_sum',
  'app_jobs_created',
  'app_jobs_info',
  'up',
  'metrics_sidecar_info',
  'flask_http_request',
  'flask_http_request_total',
  'flask_http_request_duration_seconds',
  'flask_http_request_duration_seconds_count',
  'github_api_call_latency',
  'github_api_call_latency_count',
  'graphql_requests_total',
  'graphql_requests',
  'other',
);
const type = fc.oneof(
  { weight: 40, arbitrary: fc.constantFrom('counter', 'gauge', 'histogram', 'summary', 'untyped', 'unknown', 'info', 'stateset', 'gaugehistogram') },
  { weight: 1, arbitrary: fc.constantFrom('teapot', 'constructor', '__proto__', 'toString') },
);
const suffix = fc.constantFrom('', '', '_total', '_count', '_sum', '_bucket', '_created', '_info', '_gcount');
const labelValue = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('1', '2', 'a\\"b', 'x\\\\y', 'new\\nline', 'ü', '', 'a-long-value') },
  { weight: 1, arbitrary: fc.constantFrom('bad\\t', 'a"b') },
);
const labelName = fc.oneof({ weight: 30, arbitrary: fc.constantFrom('a', 'b', 'le', 'quantile') }, { weight: 1, arbitrary: fc.constant('1bad') });
const labels = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.constantFrom('{}', '{a="1",}') },
  {
    weight: 6,
    arbitrary: fc
      .uniqueArray(fc.tuple(labelName, labelValue), { maxLength: 3, selector: (x) => x[0] })
      .map((ls) => `{${ls.map(([k, v]) => `${k}="${v}"`).join(',')}}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('{a="1"', '{a=1}', '{a="1",a="2"}') },
);
const value = fc.oneof(
  { weight: 40, arbitrary: fc.constantFrom('1', '0', '-1', '2.5', '+Inf', '-Inf', 'NaN', 'nan', 'inf', '1e3') },
  { weight: 1, arbitrary: fc.constantFrom('one', '') },
);
const tail = fc.constantFrom('', '', '', ' 1700000000000', ' 1700000000.5', ' # {trace="a"} 1');
/** Sample suffixes that fit each type, so most generated families are well formed. */
const FITTING: Record<string, string[]> = {
  counter: ['_total', '_created'],
  gauge: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
  untyped: [''],
  unknown: [''],
  info: ['_info'],
  stateset: [''],
  gaugehistogram: ['_bucket', '_gcount', '_gsum'],
  teapot: [''],
};
/** The suffixes that fit type `t` (own keys only: `constructor` is a generated type too). */
const fitting = (t: string): string[] => (Object.hasOwn(FITTING, t) ? FITTING[t] : ['']);
const sampleLine = (n: string, t: string) =>
  fc
    .tuple(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...fitting(t)) }, { weight: 1, arbitrary: suffix }), labels, value, tail)
    .map(([sfx, l, v, tl]) => `${n}${sfx}${l} ${v}${tl}`);
const family = fc
  .tuple(names, type)
  .chain(([n, t]) =>
    fc
      .tuple(fc.boolean(), fc.array(sampleLine(n, t), { minLength: 1, maxLength: 4 }))
      .map(([help, samples]) => [...(help ? [`# HELP ${n} Some help.`] : []), `# TYPE ${n} ${t}`, ...samples].join('\n')),
  );
const line = fc.oneof(
  { weight: 30, arbitrary: family },
  { weight: 4, arbitrary: fc.tuple(names, suffix, labels, value, tail).map(([n, s, l, v, t]) => `${n}${s}${l} ${v}${t}`) },
  { weight: 3, arbitrary: fc.constantFrom('# a comment', '', '# EOF') },
  { weight: 1, arbitrary: fc.constantFrom('garbage {{{', '<html>', 'x 1 soon') },
);
/** Mostly-wrong bodies: any piece anywhere, so most of them are refused whole (up 0). */
const dirtyBody = fc.array(line, { maxLength: 8 }).map((ls) => `${ls.join('\n')}\n`);
/** Well-formed bodies whose families collide with the sidecar's, the maintained ones and each other's. */
const cleanLabels = fc
  .uniqueArray(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom('1', '2', 'a\\"b', 'x\\\\y', 'ü', 'a-long-value')), { maxLength: 2, selector: (x) => x[0] })
  .map((ls) => (ls.length === 0 ? '' : `{${ls.map(([k, v]) => `${k}="${v}"`).join(',')}}`));
const cleanFamily = fc.tuple(names, fc.constantFrom('counter', 'gauge', 'histogram', 'summary', 'untyped', 'info')).chain(([n, t]) =>
  fc
    .array(
      fc.tuple(fc.constantFrom(...FITTING[t]), cleanLabels, fc.constantFrom('1', '2.5', 'NaN', '+Inf')).map(([sfx, l, v]) => `${n}${sfx}${l} ${v}`),
      { minLength: 1, maxLength: 3 },
    )
    .map((samples) => ({ name: n, text: [`# TYPE ${n} ${t}`, ...samples].join('\n') })),
);
const cleanBody = fc.uniqueArray(cleanFamily, { maxLength: 6, selector: (f) => f.name }).map((fs) => `${fs.map((f) => f.text).join('\n')}\n`);
const body = fc.oneof({ weight: 3, arbitrary: cleanBody }, { weight: 1, arbitrary: dirtyBody });

describe('merging generated targets', () => {
  let server: http.Server;
  let port: number;
  const bodies: string[] = ['', ''];
  beforeAll(async () => {
    server = http.createServer((req, res) => res.end(bodies[Number(req.url?.slice(1))] ?? ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('should never fail a scrape, and what it merges passes promtool', async () => {
    await fc.assert(
      fc.asyncProperty(body, body, async (a, b) => {
        bodies[0] = a;
        bodies[1] = b;
        const registry = new Registry({ maxSeriesTotal: 40 });
        registry.register(new Histogram({ name: 'flask_http_request_duration_seconds', help: 'd', labelNames: ['path'], buckets: [1] })).observe(['/'], 0.5);
        registry.register(new Counter({ name: 'flask_http_request_total', help: 't' })).inc();
        const targets = [new URL(`http://127.0.0.1:${port}/0`), new URL(`http://127.0.0.1:${port}/1`)];
        const merger = new Merger(
          targets,
          registry,
          createLogger('error', () => undefined),
          64 * 1024,
          {
            maxLabelsPerSeries: 2,
            maxLabelValueBytes: 8,
            maxFamiliesPerSource: 6,
          },
        );
        try {
          for (const om of [false, true]) {
            const merged = await merger.collect(2000, om);
            // As the exposition handler serves it: collectors, our families, then the merged text.
            registry.collect();
            const text = new ExpositionWriter(registry.all(), om, (await registry.renderExternals(om)) + merged).all().toString('utf8');
            if (!om) {
              const p = parseExposition(text);
              expect(find(p, 'metrics_sidecar_merge_up').map((s) => s.value === 0 || s.value === 1)).toEqual([true, true]);
              expect(promtoolErrors(text)).toBe('');
              // promtool sees some collisions only in one order; the model: no two families share a sample name or spelling.
              const owner = new Map<string, string>();
              for (const [name, t] of p.types) {
                for (const n of exposedNames(name, t as MetricType)) {
                  expect([n, owner.get(n)]).toEqual([n, undefined]);
                  owner.set(n, name);
                }
              }
            } else {
              const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
              expect(new Set(families).size).toBe(families.length);
              expect(text.endsWith('# EOF\n')).toBe(true);
              expect(text.match(/# EOF/g)).toHaveLength(1);
            }
          }
        } finally {
          // Its connections to the targets go with it.
          merger.close();
        }
      }),
      { numRuns: 120 },
    );
  });
});
