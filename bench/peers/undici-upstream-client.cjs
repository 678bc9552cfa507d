/**
 * The A/B stand-in for src/proxy/upstream-client.ts (ADR 0003): the same exports, on undici's Pool.
 * bench:proxy's `sidecar-undici` configuration runs a copy of dist/ whose
 * proxy/upstream-client.js is this module, so the forwarder, the RED recorder, the listener and
 * everything else are the sidecar's own; only the client to the app differs. Settings as the
 * sidecar gives its own client: no pipelining, keep-alive 4 s (or the app's shorter hint),
 * UPSTREAM_TIMEOUT_MS for the head and between body bytes, UPSTREAM_MAX_CONNECTIONS.
 *
 * The forwarder's handler takes response headers as a flat array with lower-case names (what the
 * own client gives); undici gives an object, converted here, which is part of its cost.
 *
 * Ownership (an upstream connection carries one client connection's requests only, ADR 0003) is
 * undici's way too: one undici Client per owner, destroyed by dropOwner; requests without an owner
 * share a Pool. UPSTREAM_MAX_CONNECTIONS then bounds nothing across owners (the bench sets none).
 */
'use strict';
const { Client, Pool } = require('undici');

const UPSTREAM_HEADERS_TIMEOUT = 'UPSTREAM_HEADERS_TIMEOUT';
const UPSTREAM_BODY_TIMEOUT = 'UPSTREAM_BODY_TIMEOUT';

function isTimeout(err) {
  const code = err && err.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === UPSTREAM_HEADERS_TIMEOUT || code === UPSTREAM_BODY_TIMEOUT;
}

class UpstreamClient {
  constructor(opts) {
    this.origin = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    this.settings = { pipelining: 1, keepAliveTimeout: opts.keepAliveMs ?? 4000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs };
    this.pool = new Pool(this.origin, { ...this.settings, connections: opts.maxConnections > 0 ? opts.maxConnections : null });
    this.owned = new Map();
  }

  clientFor(owner) {
    if (owner === undefined) return this.pool;
    let c = this.owned.get(owner);
    if (c === undefined) {
      c = new Client(this.origin, this.settings);
      this.owned.set(owner, c);
    }
    return c;
  }

  dropOwner(owner) {
    const c = this.owned.get(owner);
    if (c === undefined) return;
    this.owned.delete(owner);
    void c.destroy();
  }

  dispatch(req, handler) {
    this.clientFor(req.owner).dispatch(
      { path: req.path, method: req.method, headers: req.headers, body: req.body },
      {
        onRequestStart: (c) => handler.onRequestStart && handler.onRequestStart(c),
        onResponseStart: (c, code, h, msg) => {
          const flat = [];
          for (const k in h) {
            const v = h[k];
            if (Array.isArray(v)) for (const x of v) flat.push(k, x);
            else flat.push(k, v);
          }
          handler.onResponseStart(c, code, flat, msg);
        },
        onResponseData: (c, chunk) => handler.onResponseData(c, chunk),
        onResponseEnd: (c) => handler.onResponseEnd(c),
        onResponseError: (c, err) => handler.onResponseError(c, err),
      },
    );
  }

  close() {
    void this.pool.destroy();
  }
}

module.exports = {
  UpstreamClient,
  isTimeout,
  UPSTREAM_HEADERS_TIMEOUT,
  UPSTREAM_BODY_TIMEOUT,
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_BAD_RESPONSE',
  UPSTREAM_CLOSED: 'UPSTREAM_CLOSED',
};
