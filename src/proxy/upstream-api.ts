/**
 * The upstream client's public shapes (what the forwarder gives it and gets back) and its error
 * codes. The handler has the shape of undici's dispatch handler (onRequestStart, onResponseStart,
 * ...), so the forwarder's code around it is the same whichever client runs (ADR 0003); response
 * headers come as a flat array with lower-case names.
 */
import type { Readable } from 'node:stream';

export interface UpstreamRequest {
  method: string;
  /** Origin-form target, already canonical. */
  path: string;
  /** Flat [name, value, ...] array; must not contain framing or hop-by-hop headers except Content-Length. */
  headers: string[];
  /**
   * The request body, or null. A stream is sent as is with a Content-Length header, chunked
   * otherwise; a Buffer (a body read whole first) goes out with the head in one write, with its
   * Content-Length.
   */
  body: Readable | Buffer | null;
  /**
   * Who may share connections with this request: the client connection it came on. A connection
   * carries requests of one owner only; `dropOwner` closes an owner's connections. Undefined =
   * the client's own shared owner (callers with no client connection).
   */
  owner?: object;
}

export interface Controller {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
  readonly aborted: boolean;
  readonly paused: boolean;
}

export interface UpstreamHandler {
  onRequestStart?(controller: Controller): void;
  /** Final (non-1xx) status only; `headers` is a flat array with lower-case names. */
  onResponseStart(controller: Controller, statusCode: number, headers: string[], statusMessage: string): void;
  onResponseData(controller: Controller, chunk: Buffer): void;
  onResponseEnd(controller: Controller): void;
  onResponseError(controller: Controller, err: Error): void;
}

/** Error codes this client gives its failures (socket errors keep Node's own, e.g. ECONNREFUSED). */
export const UPSTREAM_HEADERS_TIMEOUT = 'UPSTREAM_HEADERS_TIMEOUT';
export const UPSTREAM_BODY_TIMEOUT = 'UPSTREAM_BODY_TIMEOUT';
export const UPSTREAM_BAD_RESPONSE = 'UPSTREAM_BAD_RESPONSE';
export const UPSTREAM_CLOSED = 'UPSTREAM_CLOSED';
/** The client stopped sending its request body while the app waited for it: the client's fault, not the app's. */
export const CLIENT_BODY_STALLED = 'CLIENT_BODY_STALLED';

export type UpstreamError = Error & { code: string };

export function upstreamError(code: string, message: string): UpstreamError {
  return Object.assign(new Error(message), { code });
}

export function isTimeout(err: Error & { code?: string }): boolean {
  return err.code === UPSTREAM_HEADERS_TIMEOUT || err.code === UPSTREAM_BODY_TIMEOUT;
}
