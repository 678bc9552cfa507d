/**
 * PromQL checks with Prometheus's own grammar (@prometheus-io/lezer-promql, the parser of the
 * Prometheus UI): syntax errors, and the metric names an expression selects.
 */
import { parser } from '@prometheus-io/lezer-promql';

export interface ParsedPromQL {
  /** One entry per error node, with the text around it. */
  errors: string[];
  /** Metric names of the vector selectors (`name{...}`), sorted. */
  metrics: string[];
}

export function parsePromQL(expr: string): ParsedPromQL {
  const errors: string[] = [];
  const metrics = new Set<string>();
  parser.parse(expr).iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(`at ${n.from}: ${JSON.stringify(expr.slice(Math.max(0, n.from - 20), n.to + 20))}`);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') metrics.add(expr.slice(n.from, n.to));
    },
  });
  if (expr.trim() === '') errors.push('empty expression');
  return { errors, metrics: [...metrics].sort() };
}

/**
 * Grafana's interval variables in range selectors (`[$__rate_interval]`) are not PromQL; they are
 * replaced by a duration before parsing. Other `$variables` may appear only inside label matcher
 * strings, where they are plain text; anywhere else they stay and fail the parse.
 */
export function expandGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

/**
 * The selector inside a Grafana `label_values(<selector>, <label>)` variable query, which is not
 * PromQL itself; undefined for other queries.
 */
export function labelValuesSelector(query: string): string | undefined {
  const m = /^\s*label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/s.exec(query);
  return m ? m[1] : undefined;
}

/**
 * Series names in a Prometheus text exposition: every sample's name, plus, for families announced
 * by `# TYPE` that have no sample yet, the names their samples will have (a histogram's
 * `_bucket`, `_sum`, `_count`; a summary's quantile series, `_sum`, `_count`).
 */
export function exposedSeriesNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      for (const n of seriesOf(type[1], type[2])) names.add(n);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}

/** The series names of a family of the given type. */
export function seriesOf(family: string, type: string): string[] {
  switch (type) {
    case 'histogram':
      return [`${family}_bucket`, `${family}_sum`, `${family}_count`];
    case 'summary':
      return [family, `${family}_sum`, `${family}_count`];
    default:
      return [family];
  }
}
