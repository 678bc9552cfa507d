/**
 * Keeps the RED recorder's OpenAPI templates in step with the app's document (ROUTE_OPENAPI_FILE,
 * ROUTE_OPENAPI_URL), in the background, never on a request's path: read at start, retried with
 * backoff (1 s, 2 s, 4 s, ... up to a minute) until one loads, then read again every refresh
 * interval. A URL is fetched from the app through the same strict upstream client the forwarder
 * uses (a connection per fetch), bounded in time and in bytes. A document that cannot be read or
 * is refused by parseOpenApi (malformed, over 4 MiB or 2,000 operations) leaves the previous set
 * in use, with one log line and a count in `metrics_sidecar_route_openapi_loads_total{outcome}`;
 * an unchanged document is not applied again (the route cache stays warm).
 */
import crypto from 'node:crypto';
import type { UpstreamClient } from './upstream-client';
import { appClient, getFromApp } from './app-get';
import { BackgroundLoop } from '../runtime/background-loop';
import type { RedRecorder } from './red';
import { readBoundedFile } from '../config/parse';
import type { OpenApiSourceConfig } from '../config';
import type { Logger } from '../log/logger';
import { Counter, Gauge, type Registry } from '../metrics/registry';
import { MAX_OPENAPI_BYTES, parseOpenApi } from '../formats/openapi';

/** A fetch of the document fails after this long. */
export const OPENAPI_FETCH_TIMEOUT_MS = 10_000;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

export type LoadOutcome = 'loaded' | 'unchanged' | 'unreachable' | 'bad_status' | 'refused';

export interface OpenApiState {
  source: string;
  /** When the document in use was loaded (ms since the epoch), if one was. */
  loadedAt: number | undefined;
  version: string | undefined;
  operations: number;
  /** Templates of the document in use cut at ROUTE_TEMPLATE_MAX_SEGMENTS/LENGTH (they end in `/:rest`). */
  templatesCut: number;
  lastOutcome: LoadOutcome | undefined;
  lastError: string | undefined;
}

export class OpenApiSource extends BackgroundLoop {
  private readonly client: UpstreamClient | undefined;
  private readonly loads: Counter;
  private readonly templates: Gauge;
  private lastHash: string | undefined;
  /** The last document refused, by its hash, and why. */
  private refused: { hash: string; reason: string } | undefined;
  private failures = 0;
  readonly state: OpenApiState;

  constructor(
    private readonly config: OpenApiSourceConfig,
    private readonly red: RedRecorder,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    super();
    if ('url' in config.source) {
      const u = config.source.url;
      this.client = appClient(u, OPENAPI_FETCH_TIMEOUT_MS);
    }
    this.state = {
      // A query may carry a token: the logs and the status page show that there is one, not what it is.
      source: 'file' in config.source ? config.source.file : config.source.url.pathname + (config.source.url.search ? '?…' : ''),
      loadedAt: undefined,
      version: undefined,
      operations: 0,
      templatesCut: 0,
      lastOutcome: undefined,
      lastError: undefined,
    };
    this.loads = registry.register(
      new Counter({
        name: 'metrics_sidecar_route_openapi_loads_total',
        help: "Reads of the app's OpenAPI document by outcome: loaded, unchanged, unreachable, bad_status, refused (malformed or over its bounds; the previous templates stay in use).",
        labelNames: ['outcome'],
      }),
    );
    this.templates = registry.register(
      new Gauge({ name: 'metrics_sidecar_route_openapi_templates', help: "Route templates taken from the app's OpenAPI document, in use now." }),
    );
    this.templates.set([], 0);
  }

  /** One read: resolves with its outcome (tests call it directly). */
  async loadOnce(): Promise<LoadOutcome> {
    let text: string;
    if ('file' in this.config.source) {
      try {
        text = readBoundedFile(this.config.source.file, MAX_OPENAPI_BYTES);
      } catch (err) {
        return this.failed('unreachable', (err as Error).message);
      }
    } else {
      const r = await fetchDocument(this.client!, this.config.source.url, this.controller.signal);
      if (r.error !== undefined) return this.failed(r.tooLarge ? 'refused' : r.status === undefined ? 'unreachable' : 'bad_status', r.error);
      text = r.text!;
    }
    const hash = crypto.createHash('sha256').update(text).digest('hex');
    if (hash === this.lastHash) return this.succeeded('unchanged');
    // The same refused document is refused again without parsing it: a 4 MiB YAML document takes
    // seconds of the event loop, and the retries come every minute.
    if (hash === this.refused?.hash) return this.failed('refused', this.refused.reason);
    let doc;
    try {
      doc = parseOpenApi(text);
    } catch (err) {
      // The good document, when it comes back, is applied and logged again: the operator sees it recover.
      this.lastHash = undefined;
      this.refused = { hash, reason: (err as Error).message };
      return this.failed('refused', this.refused.reason);
    }
    this.lastHash = hash;
    const { cut } = this.red.setOpenApi(doc.routes);
    const templates = this.red.openApiTemplates.length;
    this.templates.set([], templates);
    Object.assign(this.state, { loadedAt: Date.now(), version: doc.version, operations: doc.operations, templatesCut: cut });
    // A cut template is named by its first segments and `/:rest` (ROUTE_TEMPLATE_MAX_SEGMENTS/LENGTH).
    this.logger.info('OpenAPI document loaded', {
      source: this.state.source,
      version: doc.version,
      operations: doc.operations,
      templates,
      ...(cut > 0 ? { templates_cut: cut } : {}),
    });
    return this.succeeded('loaded');
  }

  private succeeded(outcome: LoadOutcome): LoadOutcome {
    this.loads.inc([outcome]);
    this.failures = 0;
    this.state.lastOutcome = outcome;
    this.state.lastError = undefined;
    return outcome;
  }

  private failed(outcome: LoadOutcome, reason: string): LoadOutcome {
    this.loads.inc([outcome]);
    this.failures++;
    this.state.lastOutcome = outcome;
    this.state.lastError = reason;
    // One line per refused document; an unreachable app (still starting) is logged once per streak.
    if (outcome === 'refused' || this.failures === 1) {
      this.logger.warn('OpenAPI document not loaded; the previous templates stay in use', {
        source: this.state.source,
        outcome,
        reason,
        templates: this.red.openApiTemplates.length,
      });
    }
    return outcome;
  }

  /**
   * One read (BackgroundLoop: start() reads now, a file at once, a URL in the background; then on
   * the interval): after a failure, retried with a backoff; after a load, every refresh interval.
   */
  protected async step(signal: AbortSignal): Promise<number | undefined> {
    const outcome = await this.loadOnce();
    if (signal.aborted) return undefined;
    const ok = outcome === 'loaded' || outcome === 'unchanged';
    if (ok || this.state.loadedAt !== undefined) {
      if (this.config.refreshMs === 0 && this.state.loadedAt !== undefined) return undefined;
      return ok ? this.config.refreshMs : Math.min(this.config.refreshMs || MAX_RETRY_MS, backoff(this.failures));
    }
    return backoff(this.failures);
  }
}

function backoff(failures: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(16, Math.max(0, failures - 1)));
}

interface Fetched {
  text?: string;
  status?: number;
  error?: string;
  tooLarge?: boolean;
}

/** One GET of the document (getFromApp: a fresh connection, bounded in time and in bytes); only a 2xx body is a document. */
async function fetchDocument(client: UpstreamClient, url: URL, signal: AbortSignal): Promise<Fetched> {
  const r = await getFromApp(client, url, {
    timeoutMs: OPENAPI_FETCH_TIMEOUT_MS,
    signal,
    userAgent: 'metrics-sidecar-openapi',
    accept: 'application/json, application/yaml, */*',
    maxBytes: MAX_OPENAPI_BYTES,
    partial: 'refuse',
    wantBody: (code) => code >= 200 && code < 300,
  });
  if (r.failure === 'too_large') return { status: r.status, error: `document is larger than ${MAX_OPENAPI_BYTES} bytes`, tooLarge: true };
  if (r.failure !== undefined) return { status: r.status, error: r.reason };
  if (r.status === undefined || r.status < 200 || r.status >= 300) return { status: r.status, error: `status ${r.status}` };
  return { status: r.status, text: (r.body ?? Buffer.alloc(0)).toString('utf8') };
}
