/**
 * Merges the application's own Prometheus endpoint(s) (MERGE_TARGETS) into the sidecar's
 * exposition at scrape time. Targets are fetched concurrently within the scrape's budget
 * (X-Prometheus-Scrape-Timeout-Seconds less a margin), bodies are capped (MERGE_MAX_BYTES) and
 * parsed in slices that let the event loop through, and each target is judged alone: one that is
 * down, slow, oversize or unparseable is reported with metrics_sidecar_merge_up{target} = 0 and
 * the scrape goes on without it.
 *
 * Families merge by name when their types agree. A family is dropped from its source, and counted
 * in metrics_sidecar_merge_families_dropped_total{target,reason}, when
 * - name_collision: its name, or any of its sample names and spellings (`_count`, `_sum`,
 *   `_bucket`, `_total`, `_created`, in both directions), is reserved by the sidecar or meets a
 *   stored family or another merged family;
 * - type_conflict: a maintained family with another type, or a same-named merged family of
 *   another type;
 * - series_budget: its samples do not fit in what the total series budget leaves this scrape;
 * - label_limit / family_limit: too many labels or too long a value / past the families a source may have;
 * - unsupported: gaugehistogram; and a target answering protobuf (counted once, the target marked down).
 * A duplicate series (inside one target or across targets) is dropped and counted as duplicate_series.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from '../../metrics/registry';
import { Contract, exposedNames, maintainedHelp } from '../../metrics/contract';
import { familyHeader, familyName } from '../../formats/exposition';
import { safeUrl as label, type Logger } from '../../log/logger';
import { parseExpositionAsync, type MergedType, type ParsedFamily, type ParseLimits, type ParseResult } from './parse';

/**
 * The `# HELP` of a merged family whose targets gave none (a maintained family gets the contract's).
 * Constant: the target's URL could carry credentials or a query.
 */
export const MERGED_HELP = "Metric merged from the application's own endpoint (MERGE_TARGETS), which gave no help text.";

interface MergedFamily {
  name: string;
  type: MergedType;
  help: string | undefined;
  /** Sample lines without their \n. */
  samples: string[];
  keys: string[];
  /** The keys as a set, made when a second target brings the same family (most never need it). */
  keySet: Set<string> | undefined;
}

/** One fetch of a merge target, as the status page reports it. */
export interface MergeFetch {
  target: string;
  ok: boolean;
  seconds: number;
  /** Body size (successful fetches). */
  bytes?: number;
  error?: string;
}

export type DropReason = 'type_conflict' | 'name_collision' | 'duplicate_series' | 'unsupported' | 'series_budget' | 'label_limit' | 'family_limit';

export interface MergeLimits {
  maxLabelsPerSeries: number;
  maxLabelValueBytes: number;
  maxFamiliesPerSource: number;
  contract?: Contract;
}

export class Merger {
  private readonly up: Gauge;
  private readonly duration: Gauge;
  private readonly dropped: Counter;
  private readonly parseLimits: ParseLimits;
  private readonly contract: Contract;
  /** The collection in flight per format (OpenMetrics or not), shared by concurrent scrapes. */
  /** The collection in flight per format (OpenMetrics or not), and when its budget ends. */
  private readonly inflight = new Map<boolean, { deadline: number; text: Promise<string> }>();
  /** Told about every fetch (the status page keeps the last one per target). */
  onFetch: ((fetch: MergeFetch) => void) | undefined;
  /**
   * The merger's own connection pools (keep-alive, as Node's global agents), so that close()
   * can end its connections: in the global agents they outlived the sidecar.
   */
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 5_000 }),
    https: new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 5_000 }),
  };
  private closed = false;

  constructor(
    private readonly targets: readonly URL[],
    private readonly registry: Registry,
    private readonly logger: Logger,
    private readonly maxBytes: number,
    limits: Partial<MergeLimits> = {},
  ) {
    this.parseLimits = {
      maxLabels: limits.maxLabelsPerSeries ?? Infinity,
      maxLabelValueBytes: limits.maxLabelValueBytes ?? Infinity,
      maxFamilies: limits.maxFamiliesPerSource ?? Infinity,
    };
    this.contract = limits.contract ?? new Contract();
    this.up = registry.register(
      new Gauge({ name: 'metrics_sidecar_merge_up', help: '1 when the last fetch of a merge target succeeded, else 0.', labelNames: ['target'] }),
    );
    this.duration = registry.register(
      new Gauge({ name: 'metrics_sidecar_merge_duration_seconds', help: 'Duration of the last fetch of a merge target, in seconds.', labelNames: ['target'] }),
    );
    this.dropped = registry.register(
      new Counter({
        name: 'metrics_sidecar_merge_families_dropped_total',
        help: 'Families (or duplicate series) from a merge target left out of the exposition, by reason.',
        labelNames: ['target', 'reason'],
      }),
    );
  }

  /**
   * Fetches every target (concurrently) and returns the merged families' exposition text.
   * Scrapes that arrive while a collection of the same format is in flight share it: each used to
   * hold its own copy of every target's body, parse and text (40 concurrent scrapes of a 4 MB
   * target peaked at ~650 MB RSS, and the app was asked 40 times). A scrape joins only a
   * collection that ends within its own budget: one with a shorter budget starts a new collection,
   * which later scrapes then share, so a client asking for a long timeout cannot make Prometheus's
   * scrapes wait past theirs on a hung target.
   */
  collect(budgetMs: number, openMetrics: boolean): Promise<string> {
    const deadline = performance.now() + budgetMs;
    const current = this.inflight.get(openMetrics);
    if (current !== undefined && current.deadline <= deadline) return current.text;
    const entry = {
      deadline,
      text: this.collectNow(budgetMs, openMetrics).finally(() => {
        if (this.inflight.get(openMetrics) === entry) this.inflight.delete(openMetrics);
      }),
    };
    this.inflight.set(openMetrics, entry);
    return entry.text;
  }

  private async collectNow(budgetMs: number, openMetrics: boolean): Promise<string> {
    const fetched = await Promise.all(this.targets.map((t) => this.fetchOne(t, budgetMs)));
    const merged = new Map<string, MergedFamily>();
    /** Every sample name and spelling of the merged families → the family's name. */
    const claims = new Map<string, string>();
    // Merged series take what the stored ones leave of the total budget, in target order.
    const budget = { left: this.registry.budget.remaining() };
    fetched.forEach((families, i) => {
      if (families === undefined) return;
      const target = label(this.targets[i]);
      for (const f of families) this.mergeFamily(merged, claims, budget, f, target);
    });
    return render([...merged.values()], openMetrics);
  }

  private mergeFamily(merged: Map<string, MergedFamily>, claims: Map<string, string>, budget: { left: number }, f: ParsedFamily, target: string): void {
    const refusal = this.contract.refuse(f.name, f.type);
    if (refusal !== undefined) {
      this.dropped.inc([target, refusal === 'reserved' ? 'name_collision' : 'type_conflict']);
      return;
    }
    if (this.registry.collision(f.name, f.type) !== undefined) {
      this.dropped.inc([target, 'name_collision']);
      return;
    }
    const have = merged.get(f.name);
    if (have === undefined) {
      const names = exposedNames(f.name, f.type);
      if (names.some((n) => claims.has(n))) {
        this.dropped.inc([target, 'name_collision']);
        return;
      }
      if (f.samples.length > budget.left) {
        this.dropped.inc([target, 'series_budget']);
        return;
      }
      budget.left -= f.samples.length;
      for (const n of names) claims.set(n, f.name);
      merged.set(f.name, { name: f.name, type: f.type, help: f.help, samples: f.samples, keys: f.keys, keySet: undefined });
      return;
    }
    if (have.type !== f.type) {
      this.dropped.inc([target, 'type_conflict']);
      return;
    }
    const keySet = (have.keySet ??= new Set(have.keys));
    const fresh = f.keys.filter((k) => !keySet.has(k)).length;
    if (fresh > budget.left) {
      this.dropped.inc([target, 'series_budget']);
      return;
    }
    budget.left -= fresh;
    // The first target's help wins; a family it gave none takes a later target's.
    have.help ??= f.help;
    let dup = 0;
    f.samples.forEach((s, j) => {
      if (keySet.has(f.keys[j])) dup++;
      else {
        keySet.add(f.keys[j]);
        have.samples.push(s);
      }
    });
    if (dup > 0) this.dropped.inc([target, 'duplicate_series'], dup);
  }

  /** Closes every connection to the targets, idle or in use (fetches in flight fail); no new ones are opened. */
  close(): void {
    this.closed = true;
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async fetchOne(url: URL, budgetMs: number): Promise<ParsedFamily[] | undefined> {
    const target = label(url);
    const started = performance.now();
    let result: Omit<MergeFetch, 'seconds'> = { target, ok: false };
    try {
      if (this.closed) throw new Error('the sidecar is stopping');
      const agent = url.protocol === 'https:' ? this.agents.https : this.agents.http;
      const { text: body, bytes } = await fetchText(url, budgetMs, this.maxBytes, agent);
      result = { target, ok: true, bytes };
      const parsed: ParseResult = await parseExpositionAsync(body, this.parseLimits);
      const { families, unsupported, dropped } = parsed;
      if (unsupported.length > 0) this.dropped.inc([target, 'unsupported'], unsupported.length);
      for (const reason of ['duplicate_series', 'label_limit', 'family_limit'] as const) {
        if (dropped[reason] > 0) this.dropped.inc([target, reason], dropped[reason]);
      }
      this.up.set([target], 1);
      return families;
    } catch (err) {
      this.up.set([target], 0);
      if (err instanceof ProtobufAnswer) this.dropped.inc([target, 'unsupported']);
      result = { target, ok: false, error: (err as Error).message };
      this.logger.warn('merge target failed', { target, reason: (err as Error).message });
      return undefined;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.duration.set([target], seconds);
      this.onFetch?.({ ...result, seconds });
    }
  }
}

/** A target answered protobuf though asked for text: refused, and counted as `unsupported`. */
class ProtobufAnswer extends Error {
  constructor() {
    super('answered protobuf (application/vnd.google.protobuf), which is not merged: only text and OpenMetrics are');
  }
}

/**
 * What the merger asks a target for, whatever the scraper asked the sidecar: the scraper's Accept
 * is never passed on.
 */
export const MERGE_ACCEPT = 'text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5';

/** The body (UTF-8 text) and its size in bytes, counted as it arrived. */
function fetchText(url: URL, budgetMs: number, maxBytes: number, agent: http.Agent): Promise<{ text: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(url, { agent, headers: { accept: MERGE_ACCEPT, 'accept-encoding': 'identity' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`answered ${res.statusCode}`));
        return;
      }
      // Only text and OpenMetrics are asked for; a protobuf body (an app that ignores Accept)
      // is refused whole, never parsed or glued as text (Istio's 2026 outage, istio#60322).
      if (/^\s*application\/vnd\.google\.protobuf/i.test(res.headers['content-type'] ?? '')) {
        res.resume();
        reject(new ProtobufAnswer());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          req.destroy(new Error(`body larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), bytes: size }));
      res.on('error', reject);
    });
    // One deadline for the whole fetch (connect, headers and body), not an idle timeout.
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${Math.round(budgetMs)} ms`)), budgetMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('error', reject);
  });
}

function render(families: MergedFamily[], openMetrics: boolean): string {
  const out: string[] = [];
  for (const f of families) {
    const name = familyName(f.name, f.type, openMetrics);
    let type: string = f.type;
    // OpenMetrics has no untyped, and a counter whose samples lack `_total` cannot be one there.
    if (openMetrics && (type === 'untyped' || (type === 'counter' && name === f.name))) type = 'unknown';
    // Every family gets a HELP line: one without fails `promtool check metrics` ("no help text").
    out.push(familyHeader(name, type, f.help ?? maintainedHelp(f.name) ?? MERGED_HELP, openMetrics));
    // Joined in slices: one family of a large target must not become one huge string.
    if (f.samples.length > 0) out.push(f.samples.join('\n'), '\n');
  }
  // One join: the exposition writer copies it into the response in chunks, whatever its length.
  return out.join('');
}
