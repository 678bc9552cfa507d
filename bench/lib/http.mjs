/**
 * Small HTTP client helpers for the benchmarks: a timed GET (request sent → last body byte, as a
 * scraper sees it), a request with a body (pushes), and exposition parsing helpers.
 */
import http from 'node:http';

/**
 * GETs `url` and reads the whole body. Resolves {status, ms, bytes, body?}: `ms` runs from just
 * before the request is sent to the end of the body. The body is kept (as a string) only with
 * `keepBody`; otherwise it is counted and dropped, so a multi-megabyte scrape costs the client
 * little. Rejects on a socket error or after `timeoutMs`.
 */
export function timedGet(url, { headers = {}, agent = false, timeoutMs = 30000, keepBody = false } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const chunks = [];
    let bytes = 0;
    const req = http.get(url, { agent, headers, timeout: timeoutMs }, (res) => {
      res.on('data', (c) => {
        bytes += c.length;
        if (keepBody) chunks.push(c);
      });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        resolve({ status: res.statusCode, ms, bytes, headers: res.headers, ...(keepBody ? { body: Buffer.concat(chunks).toString('utf8') } : {}) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Sends `body` with `method`; resolves {status, body} (the answer as text). */
export function sendBody(method, url, body, { headers = {}, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request(url, { method, agent: false, timeout: timeoutMs, headers: { 'content-length': buf.length, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(buf);
  });
}

/** Number of sample lines (neither comments nor blank) in an exposition. */
export function countSamples(text) {
  let n = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start && text.charCodeAt(start) !== 35 /* # */) n++;
    start = end + 1;
  }
  return n;
}

/**
 * Sum of the samples of `name` whose label set contains every pair of `match` (e.g.
 * `{outcome: 'accepted'}`), from a text exposition; null when no sample matched.
 */
export function sampleValue(text, name, match = {}) {
  let sum = 0;
  let found = false;
  const want = Object.entries(match).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const close = rest[0] === '{' ? rest.lastIndexOf('}') : -1;
    const labels = close === -1 ? '' : rest.slice(1, close);
    if (!want.every((p) => labels.split(',').includes(p))) continue;
    sum += Number(
      rest
        .slice(close + 1)
        .trim()
        .split(/\s+/)[0],
    );
    found = true;
  }
  return found ? sum : null;
}
