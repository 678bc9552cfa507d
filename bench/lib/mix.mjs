/**
 * The benchmarks' named loads. `hello`: one GET of a fixed path, answered `200 hello\n` (the
 * proxy's fixed cost per request, nothing else). `mix`: what a web app behind the sidecar sees:
 *
 *   share  request                                         answer
 *   60 %   GET /users/<id>/repos?page=<n>&per_page=30      4 KiB JSON
 *   15 %   GET /search?q=<word>&sort=stars&order=desc      16 KiB JSON
 *   10 %   GET /static/app.<hash>.css                      20 KiB CSS
 *   10 %   GET /api/items/<uuid>                           1 KiB JSON
 *    5 %   POST /api/orders with a 1.5 KiB JSON body       201, 64 B JSON
 *
 * every request with a browser's headers (about 800 bytes: user agent, client hints, accept
 * lists, a session cookie, a referer) and a W3C `traceparent` as a tracing ingress adds it, one
 * in eight sampled (so the exemplar path is exercised; added after ADR 0003's figures). 64 distinct requests, generated from a fixed seed, cycled
 * in order by wrk (a Lua script) and by the fixed-rate probe (a JSON file), so every
 * configuration sees the same sequence. The stand-in app is nginx serving files of those sizes
 * (nginx.mjs `upstreamMixConf`).
 */
import fs from 'node:fs';
import path from 'node:path';

export const LOADS = ['hello', 'mix'];

/** Response bodies of the stand-in app, by file name. */
export const MIX_FILES = { 'user.json': 4096, 'search.json': 16384, 'app.css': 20480, 'item.json': 1024 };

const BROWSER_HEADERS = [
  ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'],
  ['Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8'],
  ['Accept-Language', 'en-US,en;q=0.9,de;q=0.8'],
  ['Accept-Encoding', 'gzip, deflate, br, zstd'],
  ['sec-ch-ua', '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'],
  ['sec-ch-ua-mobile', '?0'],
  ['sec-ch-ua-platform', '"Linux"'],
  ['Sec-Fetch-Dest', 'empty'],
  ['Sec-Fetch-Mode', 'cors'],
  ['Sec-Fetch-Site', 'same-origin'],
  ['Referer', 'https://app.example.com/dashboard/projects?tab=activity'],
];

/** A small deterministic PRNG (mulberry32), so every run and configuration gets the same mix. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (rand, n) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
const WORDS = ['kubernetes', 'prometheus', 'sidecar', 'grafana', 'metrics', 'latency', 'flask', 'gunicorn'];

/** The 64 requests of the `mix` load: {method, path, headers: [[name, value]], body}. */
export function mixRequests() {
  const rand = prng(20261207);
  const cookie = `session=${hex(rand, 64)}; csrftoken=${hex(rand, 32)}; _ga=GA1.1.${Math.floor(rand() * 1e9)}.${Math.floor(rand() * 1e9)}; theme=dark; tz=Europe%2FBerlin`;
  const out = [];
  for (let i = 0; i < 64; i++) {
    const headers = [...BROWSER_HEADERS, ['Cookie', cookie], ['traceparent', `00-${hex(rand, 32)}-${hex(rand, 16)}-${i % 8 === 0 ? '01' : '00'}`]];
    const slot = i % 20; // 12 + 3 + 2 + 2 + 1 of every 20
    let method = 'GET';
    let p;
    let body = null;
    if (slot < 12) p = `/users/${1000 + Math.floor(rand() * 90000)}/repos?page=${1 + Math.floor(rand() * 9)}&per_page=30`;
    else if (slot < 15) p = `/search?q=${WORDS[Math.floor(rand() * WORDS.length)]}&sort=stars&order=desc`;
    else if (slot < 17) p = `/static/app.${hex(rand, 8)}.css`;
    else if (slot < 19) p = `/api/items/${hex(rand, 8)}-${hex(rand, 4)}-4${hex(rand, 3)}-a${hex(rand, 3)}-${hex(rand, 12)}`;
    else {
      method = 'POST';
      p = '/api/orders';
      const items = Array.from({ length: 24 }, (_, k) => ({ sku: `SKU-${hex(rand, 6)}`, qty: 1 + (k % 3), note: 'gift wrap' }));
      body = JSON.stringify({ customer: hex(rand, 12), items }).slice(0, 1536);
      headers.push(['Content-Type', 'application/json'], ['Origin', 'https://app.example.com']);
    }
    out.push({ method, path: p, headers, body });
  }
  return out;
}

/** Writes the stand-in app's files under `dir`. */
export function writeMixFiles(dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, size] of Object.entries(MIX_FILES)) {
    const unit = name.endsWith('.css') ? '.row{margin:0 auto;padding:4px}\n' : '{"id":12345,"name":"metrics-sidecar","stars":42},\n';
    fs.writeFileSync(path.join(dir, name), unit.repeat(Math.ceil(size / unit.length)).slice(0, size));
  }
}

/** A Lua string literal (the mix is ASCII only). */
function lua(s) {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`mix: non-ASCII text ${JSON.stringify(s)}`);
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A wrk script that sends the mix's requests in order, round and round. */
export function writeMixWrkScript(file) {
  const lines = ['local requests = {}', 'local i = 0', 'init = function(args)'];
  for (const r of mixRequests()) {
    const h = r.headers.map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ');
    lines.push(`  requests[#requests + 1] = wrk.format(${lua(r.method)}, ${lua(r.path)}, { ${h} }, ${r.body === null ? 'nil' : lua(r.body)})`);
  }
  lines.push('end', 'request = function()', '  i = i % #requests + 1', '  return requests[i]', 'end', '');
  fs.writeFileSync(file, lines.join('\n'));
  return file;
}

/** The mix as JSON for the fixed-rate probe (`--mix <file>`). */
export function writeMixJson(file) {
  fs.writeFileSync(file, JSON.stringify(mixRequests()));
  return file;
}

/** Bytes of one request head of the mix as sent (for the report). */
export function mixHeadBytes() {
  const sizes = mixRequests().map((r) => r.headers.reduce((a, [k, v]) => a + k.length + v.length + 4, `${r.method} ${r.path} HTTP/1.1\r\n`.length + 2));
  return Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length);
}
