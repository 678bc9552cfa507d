/**
 * Summarises a V8 `.cpuprofile` (node --cpu-prof): self time by function, as a share of the
 * samples, so a benchmark can name its hot spots. Also usable from the command line:
 *   node bench/lib/cpuprofile.mjs <file.cpuprofile> [top]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Top `top` functions by self time. Each entry: {fn, where, self_pct, total_pct}; `where` is
 * `file:line` relative to `root` when inside it. `(idle)` samples are excluded from the shares
 * (they are time the process was waiting, not working); `busy_pct` is the share of samples that
 * were not idle.
 */
export function summariseProfile(file, { top = 15, root = process.cwd() } = {}) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfCount = new Map();
  for (const id of prof.samples) selfCount.set(id, (selfCount.get(id) ?? 0) + 1);

  // Parent links, to charge inclusive ("total") time to every distinct function on the stack.
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const keyOf = (n) => {
    const cf = n.callFrame;
    const url = cf.url ? (cf.url.startsWith('file://') ? fileURLToPath(cf.url) : cf.url) : '';
    const rel = url && url.startsWith(root) ? path.relative(root, url) : url;
    const fn = cf.functionName || (url ? '(anonymous)' : cf.functionName || '(program)');
    return {
      key: `${fn}\u0000${rel}:${cf.lineNumber + 1}`,
      fn: cf.url ? fn : n.callFrame.functionName || '(native)',
      where: rel ? `${rel}:${cf.lineNumber + 1}` : '',
    };
  };

  let idle = 0;
  let busy = 0;
  const self = new Map();
  /** key → Map(line → ticks), from the nodes' positionTicks (line-level self time). */
  const lineTicks = new Map();
  for (const n of prof.nodes) {
    if (!n.positionTicks?.length || !n.callFrame.url) continue;
    const k = keyOf(n).key;
    let m = lineTicks.get(k);
    if (!m) lineTicks.set(k, (m = new Map()));
    for (const { line, ticks } of n.positionTicks) m.set(line, (m.get(line) ?? 0) + ticks);
  }
  const total = new Map();
  const info = new Map();
  for (const [id, count] of selfCount) {
    const n = byId.get(id);
    const name = n.callFrame.functionName;
    if (name === '(idle)') {
      idle += count;
      continue;
    }
    busy += count;
    const k = keyOf(n);
    info.set(k.key, k);
    self.set(k.key, (self.get(k.key) ?? 0) + count);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = keyOf(byId.get(cur));
      if (seen.has(kk.key)) continue;
      seen.add(kk.key);
      info.set(kk.key, kk);
      total.set(kk.key, (total.get(kk.key) ?? 0) + count);
    }
  }
  const pct = (c) => Math.round((1000 * c) / Math.max(1, busy)) / 10;
  const sources = new Map();
  const sourceLine = (where, line) => {
    const file = where.slice(0, where.lastIndexOf(':'));
    const abs = path.isAbsolute(file) ? file : path.join(root, file);
    if (!sources.has(abs)) sources.set(abs, fs.existsSync(abs) ? fs.readFileSync(abs, 'utf8').split('\n') : null);
    return sources.get(abs)?.[line - 1]?.trim().slice(0, 90) ?? '';
  };
  /** The lines of a function holding most of its self time: {line, share_pct (of the function), code}. */
  const hotLines = (k) => {
    const m = lineTicks.get(k);
    if (!m) return [];
    const sum = [...m.values()].reduce((a, b) => a + b, 0);
    return [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .filter(([, t]) => t / sum >= 0.1)
      .map(([line, t]) => ({ line, share_pct: Math.round((1000 * t) / sum) / 10, code: sourceLine(info.get(k).where, line) }));
  };
  const topSelf = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, c]) => ({ fn: info.get(k).fn, where: info.get(k).where, self_pct: pct(c), total_pct: pct(total.get(k) ?? c), hot_lines: hotLines(k) }));
  const topTotal = [...total.entries()]
    .filter(([k]) => info.get(k).where)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, c]) => ({ fn: info.get(k).fn, where: info.get(k).where, total_pct: pct(c), self_pct: pct(self.get(k) ?? 0) }));
  return {
    samples: prof.samples.length,
    duration_ms: Math.round((prof.endTime - prof.startTime) / 1000),
    busy_pct: Math.round((1000 * busy) / Math.max(1, busy + idle)) / 10,
    top_self: topSelf,
    top_total: topTotal,
  };
}

/** Lines for a report: `self%  total%  function  file:line`. */
/** The report lines of a sidecar profiled over a whole bench run (BENCH_CPU_PROF=1). */
export function sidecarProfileLines(p) {
  return ['', `sidecar CPU profile over the whole run (--cpu-prof, ${p.busy_pct}% of samples busy; ${p.file}):`, formatProfile(p, 10)];
}

export function formatProfile(summary, n = 10) {
  const lines = [`${'self %'.padStart(7)}  ${'total %'.padStart(7)}  function (file:line)`];
  for (const e of summary.top_self.slice(0, n)) {
    lines.push(`${e.self_pct.toFixed(1).padStart(7)}  ${e.total_pct.toFixed(1).padStart(7)}  ${e.fn}${e.where ? ` (${e.where})` : ''}`);
    if (e.self_pct >= 5) {
      for (const h of e.hot_lines ?? []) lines.push(`${''.padStart(18)}line ${h.line}: ${h.share_pct.toFixed(0)}% of it  ${h.code}`);
    }
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/lib/cpuprofile.mjs <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const s = summariseProfile(file, { top: Number(process.argv[3] ?? 15) });
  process.stdout.write(
    `${s.samples} samples over ${s.duration_ms} ms, ${s.busy_pct}% busy\n${formatProfile(s, s.top_self.length)}\n\nby total (inclusive) time:\n`,
  );
  for (const e of s.top_total) process.stdout.write(`${e.total_pct.toFixed(1).padStart(7)}  ${e.fn} (${e.where})\n`);
}
