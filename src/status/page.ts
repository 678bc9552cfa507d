/**
 * The status page's three responses: the HTML document (server-rendered first paint, so it works
 * with scripts off), status.json, and status.js (the view plus the refresh loop). Self-contained:
 * no CDN, font or external script; the Content-Security-Policy allows only this origin's script,
 * the one stylesheet below (by hash) and fetches to this origin.
 */
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type { StatusDocument } from './schema';
import type { StatusService } from './service';
import { createView } from './view';
import { clientMain } from './client';

const CSS = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--muted:#5b6570;--line:#d9dde3;--ok:#176c2f;--okbg:#dcf3e2;--bad:#a4161a;--badbg:#fde2e1;--warn:#7a4b00;--warnbg:#fff0c7;--accent:#0b57d0}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--bg:#111418;--card:#1a1f25;--muted:#a0aab5;--line:#323a44;--ok:#7ddc95;--okbg:#173a22;--bad:#ff9b94;--badbg:#46191a;--warn:#ffd479;--warnbg:#3d3014;--accent:#8ab4f8}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header.top{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:baseline;padding:.75rem 1rem;border-bottom:1px solid var(--line);background:var(--card)}
header.top h1{font-size:1.1rem;margin:0}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem .75rem;list-style:none;margin:0;padding:0}
a{color:var(--accent)}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:var(--card);padding:.25rem .5rem;z-index:1}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr));gap:1rem;padding:1rem;max-width:110rem;margin:0 auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem;min-width:0}
.card.wide{grid-column:1/-1}
h2{font-size:1rem;margin:.1rem 0 .5rem}h3{font-size:.9rem;margin:.75rem 0 .35rem}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,9rem),1fr));gap:.5rem 1rem;margin:0}
.template-sources{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,16rem),1fr));gap:.5rem 1rem}.templates{margin:0;padding-left:1.2rem;overflow-wrap:anywhere}
@media (min-width:40rem){.kv .span2{grid-column:span 2}}.kv dt{color:var(--muted);font-size:.8rem}.kv dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .45rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle;white-space:nowrap}
tbody th{font-weight:normal}
td.n{text-align:right}
td.wrap{white-space:normal;min-width:12rem}
table.statsd,table.refusals{width:auto;min-width:min(100%,30rem)}
table code{white-space:nowrap;overflow-wrap:normal}
thead th{font-size:.8rem;color:var(--muted)}
thead button{font:inherit;color:inherit;background:none;border:0;padding:.15rem .2rem;cursor:pointer;border-radius:4px;white-space:nowrap}
thead th[aria-sort] button{color:var(--fg);font-weight:600}
button:focus-visible,a:focus-visible,summary:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere;white-space:normal}
.method{font-size:.75rem;color:var(--muted)}
.muted{color:var(--muted)}
.bad-text{color:var(--bad)}
.badge{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;font-weight:600}
.badge.ok{color:var(--ok);background:var(--okbg)}.badge.bad{color:var(--bad);background:var(--badbg)}.badge.warn{color:var(--warn);background:var(--warnbg)}
.spark{color:var(--accent);display:block}
meter{width:6rem}
.summary{margin:.25rem 0 .6rem}
.empty{color:var(--muted);font-style:italic}
.updated{color:var(--muted);font-size:.8rem;margin:0}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
ul.addresses{margin:.25rem 0;padding-left:1.2rem}
details summary{cursor:pointer}
@media (max-width:40rem){main{padding:.5rem;gap:.5rem}.card{padding:.5rem .6rem}header.top{padding:.5rem}}
`;

const STYLE_HASH = crypto.createHash('sha256').update(CSS).digest('base64');

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src 'sha256-${STYLE_HASH}'`,
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** status.js: the view's and the client's source, run once. Built at start-up, served as is. */
export const STATUS_JS = `'use strict';\n(${clientMain.toString()})(${createView.toString()});\n`;
const STATUS_JS_ETAG = `"${crypto.createHash('sha256').update(STATUS_JS).digest('base64url').slice(0, 16)}"`;

const view = createView();

/** The HTML document around the view's first paint. `base` is '' (metrics port) or '/debug'. */
export function renderPage(doc: StatusDocument, base: string, sortParam: string | undefined): string {
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const sections = [
    ['h-traffic', 'Traffic'],
    ['h-sources', 'Sources'],
    ['h-access', 'Access'],
    ['h-config', 'Configuration'],
    ['h-card', 'Cardinality'],
  ];
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,"><title>${esc(view.title(doc))}</title>` +
    `<style>${CSS}</style><script src="${base}/status.js" defer></script></head><body>` +
    `<a class="skip" href="#h-traffic">Skip to traffic</a>` +
    `<header class="top"><h1>${esc(doc.identity.app_name)} <span class="muted">· ${esc(doc.identity.role)} · metrics-sidecar</span></h1>` +
    `<nav aria-label="Sections"><ul>${sections.map(([id, label]) => `<li><a href="#${id}">${label}</a></li>`).join('')}</ul></nav>` +
    `<p id="updated" class="updated" role="status" aria-live="polite">Rendered ${esc(doc.generated_at.slice(11, 19))} UTC.</p></header>` +
    `<main id="status" data-json="${base}/status.json">${view.main(doc, view.parseSort(sortParam))}</main>` +
    `</body></html>\n`
  );
}

function securityHeaders(ctx: Context): void {
  ctx.set('cache-control', 'no-store');
  ctx.set('x-content-type-options', 'nosniff');
  ctx.set('referrer-policy', 'no-referrer');
  ctx.set('x-frame-options', 'DENY');
}

/** Koa handlers for `${base}/`, `${base}/status.json` and `${base}/status.js`. */
export function statusHandlers(status: StatusService, base: string) {
  return {
    page(ctx: Context): void {
      const text = status.json();
      const sort = typeof ctx.query.sort === 'string' ? ctx.query.sort : undefined;
      securityHeaders(ctx);
      ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = renderPage(JSON.parse(text) as StatusDocument, base, sort);
    },
    json(ctx: Context): void {
      securityHeaders(ctx);
      ctx.set('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = status.json();
    },
    script(ctx: Context): void {
      ctx.set('x-content-type-options', 'nosniff');
      ctx.set('cache-control', 'no-cache');
      ctx.set('etag', STATUS_JS_ETAG);
      if (ctx.get('if-none-match') === STATUS_JS_ETAG) {
        ctx.status = 304;
        return;
      }
      ctx.type = 'text/javascript; charset=utf-8';
      ctx.body = STATUS_JS;
    },
  };
}
