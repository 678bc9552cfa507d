/**
 * The status page's view: status.json → HTML. The server renders the first paint with it; the
 * browser re-renders with the very same code after each refresh, because /status.js ships this
 * function's source (`createView.toString()`). Hence the rules for everything inside
 * `createView`: no reference to anything outside it (no imports, no module constants), no DOM,
 * plain ES2022 that TypeScript emits unchanged once types are stripped.
 *
 * Output holds no inline style or script (the page's CSP forbids them): colours and layout come
 * from classes, bars are <meter>, charts are inline SVG with presentation attributes.
 */
import type { StatusDocument } from './schema';

export interface SortSpec {
  key: string;
  dir: 'asc' | 'desc';
}

export interface View {
  /** The inside of <main>. */
  main(doc: StatusDocument, sort: SortSpec): string;
  title(doc: StatusDocument): string;
  /** A valid sort spec from a `key:dir` string (query parameter or button value). */
  parseSort(text: string | null | undefined): SortSpec;
}

export function createView(): View {
  const SORT_KEYS: Record<string, { label: string; get: (r: StatusDocument['traffic']['routes'][number]) => number | string | null }> = {
    route: { label: 'Route', get: (r) => `${r.route} ${r.method}` },
    rps1: { label: 'req/s 1m', get: (r) => r.m1.rps },
    err1: { label: 'errors 1m', get: (r) => r.m1.error_ratio },
    p50: { label: 'p50 1m', get: (r) => r.m1.p50 },
    p90: { label: 'p90 1m', get: (r) => r.m1.p90 },
    p99: { label: 'p99 1m', get: (r) => r.m1.p99 },
    rps15: { label: 'req/s 15m', get: (r) => r.m15.rps },
    err15: { label: 'errors 15m', get: (r) => r.m15.error_ratio },
    p99_15: { label: 'p99 15m', get: (r) => r.m15.p99 },
  };
  const DEFAULT_SORT: SortSpec = { key: 'rps15', dir: 'desc' };

  const esc = (v: unknown): string =>
    String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

  const num = (v: number | null | undefined, digits = 2): string => {
    if (v === null || v === undefined) return '–';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
    if (a >= 100) return v.toFixed(0);
    return v.toFixed(a < 0.01 ? 3 : digits).replace(/\.?0+$/, '') || '0';
  };
  // Not toLocaleString: Intl formatting was most of the page's render time.
  const int = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ','));
  const secs = (v: number | null | undefined): string => {
    if (v === null || v === undefined) return '–';
    if (v < 0.001) return `${num(v * 1e6, 0)} µs`;
    if (v < 1) return `${num(v * 1000, 1)} ms`;
    return `${num(v, 2)} s`;
  };
  const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : `${num(v * 100, 2)} %`);
  const bytes = (v: number | null | undefined): string => {
    if (v === null || v === undefined) return '–';
    if (v >= 1048576) return `${num(v / 1048576, 1)} MiB`;
    if (v >= 1024) return `${num(v / 1024, 1)} KiB`;
    return `${v} B`;
  };
  const span = (s: number): string => {
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  };
  /** "1 min", or what the window really covers while the sampler warms up. */
  const windowLabel = (covered: number, nominal: number): string =>
    covered >= nominal - 1 && covered <= nominal + 15 ? span(nominal) : covered > nominal ? `since start, ${span(covered)}` : `${span(covered)} so far`;
  const badge = (ok: boolean | null, yes: string, no: string, unknown = 'unknown'): string =>
    ok === null
      ? `<span class="badge warn">${esc(unknown)}</span>`
      : ok
        ? `<span class="badge ok">${esc(yes)}</span>`
        : `<span class="badge bad">${esc(no)}</span>`;

  const spark = (values: (number | null)[], label: string, fmt: (v: number) => string): string => {
    const w = 64;
    const h = 18;
    const vals = values.filter((v): v is number => v !== null);
    if (vals.length === 0) return `<span class="muted" aria-label="${esc(label)}: no data">–</span>`;
    const max = Math.max(...vals) || 1;
    const step = values.length > 1 ? (w - 2) / (values.length - 1) : 0;
    let d = '';
    let pen = false;
    values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      const x = (values.length > 1 ? 1 + i * step : w / 2).toFixed(1);
      const y = (h - 2 - (v / max) * (h - 4)).toFixed(1);
      d += `${pen ? 'L' : 'M'}${x} ${y}`;
      pen = true;
    });
    const last = vals[vals.length - 1];
    const dot = values.length === 1 ? `<circle cx="${w / 2}" cy="${(h - 2 - (last / max) * (h - 4)).toFixed(1)}" r="1.5" fill="currentColor"/>` : '';
    return (
      `<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${esc(`${label}: last ${fmt(last)}, max ${fmt(max)}`)}">` +
      `<title>${esc(`${label}: last ${fmt(last)}, max ${fmt(max)}`)}</title><path d="${d}" fill="none" stroke="currentColor" stroke-width="1.5"/>${dot}</svg>`
    );
  };

  const parseSort = (text: string | null | undefined): SortSpec => {
    const [key, dir] = String(text ?? '').split(':');
    if (!Object.prototype.hasOwnProperty.call(SORT_KEYS, key)) return DEFAULT_SORT;
    return { key, dir: dir === 'asc' ? 'asc' : 'desc' };
  };

  const sortedRoutes = (routes: StatusDocument['traffic']['routes'], sort: SortSpec) => {
    const get = SORT_KEYS[sort.key].get;
    const sign = sort.dir === 'asc' ? 1 : -1;
    return [...routes].sort((a, b) => {
      const x = get(a);
      const y = get(b);
      if (x === y) return 0;
      if (x === null) return 1; // unknown values last, whatever the direction
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sign;
    });
  };

  const header = (doc: StatusDocument): string => {
    const id = doc.identity;
    const up = id.upstream;
    const upstream = up
      ? `<div class="span2"><dt>Upstream</dt><dd><code>${esc(up.url)}</code> ${up.health ? badge(up.health.healthy, 'healthy', 'unhealthy') + (up.health.detail ? ` <span class="muted">${esc(up.health.detail)}</span>` : '') : '<span class="muted">no health check configured</span>'}</dd></div>`
      : '';
    return (
      `<section aria-labelledby="h-identity" class="card wide identity"><h2 id="h-identity">Identity</h2><dl class="kv">` +
      `<div><dt>App</dt><dd>${esc(id.app_name)}</dd></div>` +
      `<div><dt>Role</dt><dd>${esc(id.role)}</dd></div>` +
      `<div><dt>Version</dt><dd>${esc(id.version)} <span class="muted">(Node ${esc(id.node_version)})</span></dd></div>` +
      `<div><dt>Uptime</dt><dd>${esc(span(id.uptime_s))}</dd></div>` +
      `<div><dt>State</dt><dd>${id.draining ? badge(false, '', 'draining') : badge(id.ready, 'ready', 'not ready')}</dd></div>` +
      upstream +
      `</dl></section>`
    );
  };

  const traffic = (doc: StatusDocument, sort: SortSpec): string => {
    const t = doc.traffic;
    const w1 = windowLabel(doc.sampling.covered_1m_s, 60);
    const w15 = windowLabel(doc.sampling.covered_15m_s, 900);
    const th = (key: string): string => {
      const active = sort.key === key;
      const next = active && sort.dir === 'desc' ? 'asc' : 'desc';
      const arrow = active ? (sort.dir === 'desc' ? ' ▼' : ' ▲') : '';
      return (
        `<th scope="col"${active ? ` aria-sort="${sort.dir === 'desc' ? 'descending' : 'ascending'}"` : ''}>` +
        `<button type="submit" name="sort" value="${esc(`${key}:${next}`)}" data-sort="${esc(key)}">${esc(SORT_KEYS[key].label)}${arrow}</button></th>`
      );
    };
    const rows = sortedRoutes(t.routes, sort)
      .map(
        (r) =>
          `<tr><th scope="row"><span class="method">${esc(r.method)}</span> <code>${esc(r.route)}</code>${r.operation === null ? '' : ` <span class="operation muted">${esc(r.operation)}</span>`}</th>` +
          `<td class="n">${num(r.m1.rps)}</td><td class="n${(r.m1.error_ratio ?? 0) > 0 ? ' bad-text' : ''}">${pct(r.m1.error_ratio)}</td>` +
          `<td class="n">${secs(r.m1.p50)}</td><td class="n">${secs(r.m1.p90)}</td><td class="n">${secs(r.m1.p99)}</td>` +
          `<td class="n">${num(r.m15.rps)}</td><td class="n${(r.m15.error_ratio ?? 0) > 0 ? ' bad-text' : ''}">${pct(r.m15.error_ratio)}</td><td class="n">${secs(r.m15.p99)}</td>` +
          `<td class="spark-cell">${spark(r.spark.rps, 'req/s per minute', (v) => `${num(v)}/s`)}</td>` +
          `<td class="spark-cell">${spark(r.spark.p99, 'p99 per minute', secs)}</td></tr>`,
      )
      .join('');
    const tot = t.totals;
    const more = t.routes_total > t.routes.length ? `<p class="muted">${int(t.routes_total - t.routes.length)} quieter routes not shown.</p>` : '';
    return (
      `<section aria-labelledby="h-traffic" class="card wide"><h2 id="h-traffic">Traffic by route</h2>` +
      `<p class="summary">All routes: <strong>${num(tot.m1.rps)}</strong> req/s, errors <strong>${pct(tot.m1.error_ratio)}</strong>, p99 <strong>${secs(tot.m1.p99)}</strong> <span class="muted">(${esc(w1)})</span>; ` +
      `<strong>${num(tot.m15.rps)}</strong> req/s, p99 <strong>${secs(tot.m15.p99)}</strong> <span class="muted">(${esc(w15)})</span>. ` +
      `<span class="muted">From <code>${esc(t.family)}</code>; errors are 5xx answers.</span></p>` +
      (t.routes.length === 0
        ? `<p class="empty">${doc.identity.upstream ? 'No request has been forwarded yet.' : 'No UPSTREAM_URL: this sidecar forwards nothing (worker pods serve metrics only).'}</p>`
        : `<form method="get" class="scroll"><table class="routes"><caption class="sr-only">Routes; the column buttons sort the table</caption><thead><tr>` +
          `${th('route')}${th('rps1')}${th('err1')}${th('p50')}${th('p90')}${th('p99')}${th('rps15')}${th('err15')}${th('p99_15')}` +
          `<th scope="col">req/s 15 min</th><th scope="col">p99 15 min</th></tr></thead><tbody>${rows}</tbody></table></form>`) +
      more +
      `</section>`
    );
  };

  const templates = (doc: StatusDocument): string => {
    const t = doc.traffic.templates;
    if (t === null || t === undefined) return '';
    const list = (l: { templates: string[]; total: number }, none: string): string =>
      l.total === 0
        ? `<p class="muted">${esc(none)}</p>`
        : `<ul class="templates">${l.templates.map((x) => `<li><code>${esc(x)}</code></li>`).join('')}</ul>` +
          (l.total > l.templates.length ? `<p class="muted">${int(l.total - l.templates.length)} more not shown.</p>` : '');
    const o = t.openapi;
    const openapi =
      o === null
        ? `<p class="muted">None (ROUTE_OPENAPI_FILE and ROUTE_OPENAPI_URL unset).</p>`
        : `<p>From <code>${esc(o.source)}</code>: ${o.version === null ? 'not loaded yet' : `OpenAPI ${esc(o.version)}, ${int(o.operations)} operations${o.templates_cut > 0 ? `, ${int(o.templates_cut)} templates cut at the template bounds` : ''}`}` +
          `${o.loaded_at ? ` <span class="muted">(loaded ${esc(o.loaded_at)})</span>` : ''}` +
          `${o.last_error ? `; last read <span class="bad-text">${esc(o.last_outcome)}: ${esc(o.last_error)}</span>` : ''}.</p>` +
          list(o, 'No template.');
    const learned =
      t.learned.max_values === 0
        ? '<p class="muted">Off (ROUTE_SEGMENT_MAX_VALUES=0).</p>'
        : list(t.learned, 'No position has more than ' + t.learned.max_values + ' values yet.');
    return (
      `<section aria-labelledby="h-templates" class="card wide"><h2 id="h-templates">Route templates</h2>` +
      `<p class="summary"><strong>${int(t.admitted)}</strong> templates admitted as <code>path</code> values, of at most ${int(t.max)}. A path is matched in this order:</p>` +
      `<div class="template-sources">` +
      `<div class="source-configured"><h3>Configured</h3>${list(t.configured, 'None (ROUTE_PATTERNS unset).')}</div>` +
      `<div class="source-openapi"><h3>OpenAPI</h3>${openapi}</div>` +
      `<div class="source-learned"><h3>Learned</h3>${learned}</div>` +
      `<div class="source-heuristic"><h3>Heuristic</h3>${list(t.heuristic, 'None yet.')}</div>` +
      `</div></section>`
    );
  };

  const sources = (doc: StatusDocument): string => {
    const s = doc.sources.statsd;
    let statsd = `<h3>StatsD</h3><p class="muted">Off (STATSD_PORT=0).</p>`;
    if (s) {
      const outcomes = ['accepted', 'malformed', 'dropped', 'type_conflict'] as const;
      const rows = outcomes
        .map(
          (o) =>
            `<tr class="outcome-${o}"><th scope="row">${esc(o.replace('_', ' '))}</th><td class="n">${num(s.m1[o])}</td><td class="n">${num(s.m15[o])}</td><td class="n">${int(s.total[o])}</td></tr>`,
        )
        .join('');
      const drops = s.udp.receive_drops_total;
      statsd =
        `<h3>StatsD lines</h3><div class="scroll"><table class="statsd"><thead><tr><th scope="col">outcome</th><th scope="col">lines/s 1m</th><th scope="col">lines/s 15m</th><th scope="col">total</th></tr></thead><tbody>${rows}</tbody></table></div>` +
        `<p class="udp">UDP receive drops (kernel): <strong class="${drops ? 'bad-text' : ''}">${drops === null ? 'unknown' : int(drops)}</strong>` +
        `${s.udp.receive_drops_15m !== null ? ` <span class="muted">(${int(s.udp.receive_drops_15m)} in 15 min)</span>` : ''}; ` +
        `queued now: ${bytes(s.udp.rx_queue_bytes)}${s.udp.receive_buffer_bytes !== null ? ` of a ${bytes(s.udp.receive_buffer_bytes)} receive buffer` : ''}.</p>`;
    }
    const m = doc.sources.merge;
    const merge =
      m.length === 0
        ? `<h3>Merge targets</h3><p class="muted">None (MERGE_TARGETS unset).</p>`
        : `<h3>Merge targets</h3><div class="scroll"><table class="merge"><thead><tr><th scope="col">target</th><th scope="col">state</th><th scope="col">last fetch</th><th scope="col">size</th><th scope="col" title="families dropped">dropped</th><th scope="col">last error</th></tr></thead><tbody>` +
          m
            .map(
              (t) =>
                `<tr class="${t.up === false ? 'down' : t.up ? 'up' : 'unknown'}"><th scope="row"><code>${esc(t.target)}</code></th><td>${badge(t.up, 'up', 'down', 'not fetched yet')}</td>` +
                `<td>${t.last_duration_s === null ? '–' : secs(t.last_duration_s)}</td><td class="n">${bytes(t.last_size_bytes)}</td><td class="n">${int(t.families_dropped_total)}</td>` +
                `<td class="wrap">${t.last_error ? `<span class="bad-text">${esc(t.last_error)}</span>` : '–'}</td></tr>`,
            )
            .join('') +
          `</tbody></table></div><p class="muted">Targets are fetched when the metrics are scraped.</p>`;
    return `<section aria-labelledby="h-sources" class="card wide"><h2 id="h-sources">Sources</h2>${statsd}${merge}</section>`;
  };

  const cardinality = (doc: StatusDocument): string => {
    const c = doc.cardinality;
    const budget = c.budget === null ? 'no total budget' : `budget ${int(c.budget)}`;
    const rows = c.families
      .map((f) => {
        const full = f.cap !== null && f.series >= f.cap;
        const meter =
          f.cap !== null
            ? `<meter min="0" max="${f.cap}" value="${Math.min(f.series, f.cap)}" low="${Math.round(f.cap * 0.7)}" high="${Math.round(f.cap * 0.9)}" optimum="0">${int(f.series)} of ${int(f.cap)}</meter>`
            : '';
        return (
          `<tr class="${full ? 'full' : ''}"><th scope="row"><code>${esc(f.name)}</code> <span class="muted">${esc(f.type)}</span></th>` +
          `<td class="n">${int(f.series)}</td><td class="n">${f.cap === null ? '–' : int(f.cap)}</td><td>${meter}</td>` +
          `<td class="n${f.dropped_total > 0 ? ' bad-text' : ''}">${int(f.dropped_total)}</td><td class="n">${int(f.dropped_15m)}</td><td class="n">${f.overflow === null ? '–' : num(f.overflow)}</td></tr>`
        );
      })
      .join('');
    return (
      `<section aria-labelledby="h-card" class="card wide"><h2 id="h-card">Cardinality</h2>` +
      `<p class="summary"><strong>${int(c.total_series)}</strong> series in ${int(c.families_total)} families (${esc(budget)}); ` +
      `<strong class="${c.dropped_total > 0 ? 'bad-text' : ''}">${int(c.dropped_total)}</strong> new series refused at a cap since start, ${int(c.dropped_15m)} in 15 min.</p>` +
      `<div class="scroll"><table class="families"><thead><tr><th scope="col">family</th><th scope="col">series</th><th scope="col">cap</th><th scope="col">fill</th><th scope="col">dropped</th><th scope="col">dropped 15m</th><th scope="col">overflow</th></tr></thead><tbody>${rows}</tbody></table></div>` +
      `<p class="muted">A metric missing from the exposition? A family at its cap refuses new label sets (counted as dropped; with an overflow series, their values go there).</p></section>`
    );
  };

  const access = (doc: StatusDocument): string => {
    const a = doc.access;
    const methods = a.open ? `<span class="badge warn">open: no allow-list or credentials configured</span>` : esc(a.methods.join(', '));
    const refusals =
      a.refusals.length === 0
        ? `<p class="empty">No request refused since start.</p>`
        : `<div class="scroll"><table class="refusals"><thead><tr><th scope="col">listener</th><th scope="col">reason</th><th scope="col">last 15 min</th><th scope="col">since start</th></tr></thead><tbody>` +
          a.refusals
            .map(
              (r) =>
                `<tr><td>${esc(r.listener)}</td><th scope="row">${esc(r.reason)}</th><td class="n">${int(r.last_15m)}</td><td class="n">${int(r.total)}</td></tr>`,
            )
            .join('') +
          `</tbody></table></div>`;
    const cidr =
      a.cidr_refused.length === 0
        ? ''
        : `<h3>Refused by the CIDR allow-list (15 min)</h3><ul class="addresses">` +
          a.cidr_refused
            .map((r) => `<li><code>${esc(r.address)}</code> on ${esc(r.listener)}: ${int(r.count)}×, last ${esc(r.last_at.slice(11, 19))} UTC</li>`)
            .join('') +
          `</ul>`;
    return `<section aria-labelledby="h-access" class="card"><h2 id="h-access">Access</h2><p>Methods: ${methods}</p>${refusals}${cidr}</section>`;
  };

  const config = (doc: StatusDocument): string => {
    const rows = Object.keys(doc.config)
      .sort()
      .map((k) => {
        const v = doc.config[k];
        return `<tr><th scope="row"><code>${esc(k)}</code></th><td><code>${v === null || v === '' ? '<span class="muted">unset</span>' : esc(v)}</code></td></tr>`;
      })
      .join('');
    return (
      `<section aria-labelledby="h-config" class="card"><h2 id="h-config">Configuration</h2>` +
      `<details><summary>Effective settings (secrets redacted)</summary><div class="scroll"><table class="config"><tbody>${rows}</tbody></table></div></details></section>`
    );
  };

  return {
    main: (doc, sort) => `${header(doc)}${traffic(doc, sort)}${templates(doc)}${sources(doc)}${access(doc)}${config(doc)}${cardinality(doc)}`,
    title: (doc) => `${doc.identity.app_name} (${doc.identity.role}): metrics-sidecar status`,
    parseSort,
  };
}
