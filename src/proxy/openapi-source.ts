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
import { UpstreamClient, isTimeout, type Controller } from './upstream-client';
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
  lastOutcome: LoadOutcome | undefined;
  lastError: string | undefined;
}

export class OpenApiSource {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private controller = new AbortController();
  private readonly client: UpstreamClient | undefined;
  private readonly loads: Counter;
  private readonly templates: Gauge;
  private lastHash: string | undefined;
  private failures = 0;
  readonly state: OpenApiState;

  constructor(
    private readonly config: OpenApiSourceConfig,
    private readonly red: RedRecorder,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    if ('url' in config.source) {
      const u = config.source.url;
      this.client = new UpstreamClient({
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: Number(u.port || 80),
        timeoutMs: OPENAPI_FETCH_TIMEOUT_MS,
        maxConnections: 0,
        keepAlive: false,
      });
    }
    this.state = {
      source: 'file' in config.source ? config.source.file : config.source.url.pathname + config.source.url.search,
      loadedAt: undefined,
      version: undefined,
      operations: 0,
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

  /** Reads the document now (a file at once, a URL in the background), then on the interval. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.controller.signal.aborted) this.controller = new AbortController();
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort();
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
    let doc;
    try {
      doc = parseOpenApi(text);
    } catch (err) {
      this.lastHash = undefined;
      return this.failed('refused', (err as Error).message);
    }
    this.lastHash = hash;
    this.red.setOpenApi(doc.routes);
    this.templates.set([], doc.routes.length);
    Object.assign(this.state, { loadedAt: Date.now(), version: doc.version, operations: doc.operations });
    this.logger.info('OpenAPI document loaded', { source: this.state.source, version: doc.version, operations: doc.operations, templates: doc.routes.length });
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

  private tick(): void {
    const signal = this.controller.signal;
    void this.loadOnce().then((outcome) => {
      if (signal.aborted || this.stopped) return;
      const ok = outcome === 'loaded' || outcome === 'unchanged';
      let wait: number;
      if (ok || this.state.loadedAt !== undefined) {
        if (this.config.refreshMs === 0 && this.state.loadedAt !== undefined) return;
        wait = ok ? this.config.refreshMs : Math.min(this.config.refreshMs || MAX_RETRY_MS, backoff(this.failures));
      } else {
        wait = backoff(this.failures);
      }
      this.timer = setTimeout(() => this.tick(), wait);
      this.timer.unref();
    });
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

/** One GET of the document on a fresh connection, bounded in time and in bytes. */
function fetchDocument(client: UpstreamClient, url: URL, signal: AbortSignal): Promise<Fetched> {
  if (signal.aborted) return Promise.resolve({ error: 'stopped' });
  return new Promise((resolve) => {
    let done = false;
    let controller: Controller | undefined;
    let status: number | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (r: Fetched): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (controller !== undefined && !controller.aborted) controller.abort(new Error('OpenAPI fetch over'));
      resolve(r);
    };
    const onAbort = (): void => finish({ error: 'stopped' });
    const timer = setTimeout(() => finish({ error: `no answer within ${OPENAPI_FETCH_TIMEOUT_MS} ms` }), OPENAPI_FETCH_TIMEOUT_MS);
    signal.addEventListener('abort', onAbort, { once: true });
    client.dispatch(
      {
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers: ['host', url.host, 'user-agent', 'metrics-sidecar-openapi', 'accept', 'application/json, application/yaml, */*'],
        body: null,
      },
      {
        onRequestStart: (c) => {
          controller = c;
        },
        onResponseStart: (_c, code) => {
          status = code;
          if (code < 200 || code >= 300) finish({ status, error: `status ${code}` });
        },
        onResponseData: (_c, chunk) => {
          size += chunk.length;
          if (size > MAX_OPENAPI_BYTES) finish({ status, error: `document is larger than ${MAX_OPENAPI_BYTES} bytes`, tooLarge: true });
          else chunks.push(Buffer.from(chunk));
        },
        onResponseEnd: () => finish({ status, text: Buffer.concat(chunks).toString('utf8') }),
        onResponseError: (_c, err: Error & { code?: string }) =>
          finish({ status, error: isTimeout(err) ? `no answer within ${OPENAPI_FETCH_TIMEOUT_MS} ms` : (err.code ?? err.message) }),
      },
    );
  });
}
