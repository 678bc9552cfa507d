/** A RedRecorder as the path-label tests use it (prefix `h`, default buckets, no family cap), and the `path` values it holds. */
import { RedRecorder } from '../../src/proxy/red';
import { Registry } from '../../src/metrics/registry';
import { DEFAULT_HTTP_BUCKETS } from '../../src/config';

type RedHttp = ConstructorParameters<typeof RedRecorder>[1];

export function testRecorder(over: Partial<RedHttp> = {}): RedRecorder {
  return new RedRecorder(new Registry(), {
    prefix: 'h',
    buckets: DEFAULT_HTTP_BUCKETS,
    routePatterns: [],
    excludePaths: [],
    maxSeriesPerFamily: 100_000,
    ...over,
  });
}

/** The `path` label of every duration series, in store order (repeats kept). */
export function pathLabels(red: RedRecorder): string[] {
  return [...red.duration.allSeries()].map((s) => /path="([^"]*)"/.exec(s.labels)![1]);
}
