/**
 * An OpenAPI 3 document of `count` operations for bench:proxy's `sidecar-openapi` (ROUTE_OPENAPI_FILE):
 * the routes the `mix` load requests (so its paths match document templates, not heuristics), then
 * invented ones of the shapes real APIs have (literal and parameter segments, 1-4 deep) up to
 * `count`. Written as JSON under `dir`; returns the file.
 */
import fs from 'node:fs';
import path from 'node:path';

const MIX_ROUTES = ['/users/{userId}/repos', '/search', '/static/{file}', '/api/items/{itemId}', '/api/orders'];
const NOUNS = ['accounts', 'projects', 'teams', 'invoices', 'reports', 'hooks', 'tokens', 'builds', 'tags', 'labels'];

export function writeOpenApiDoc(dir, count = 200) {
  const paths = {};
  const op = (id) => ({ get: { operationId: id, responses: { 200: { description: 'ok' } } } });
  for (const p of MIX_ROUTES) paths[p] = op(`mix${Object.keys(paths).length}`);
  for (let i = 0; Object.keys(paths).length < count; i++) {
    const a = NOUNS[i % NOUNS.length];
    const b = NOUNS[(i * 7 + 3) % NOUNS.length];
    const shape = i % 4;
    const p =
      shape === 0
        ? `/v${1 + (i % 3)}/${a}-${i}`
        : shape === 1
          ? `/v${1 + (i % 3)}/${a}-${i}/{id}`
          : shape === 2
            ? `/v${1 + (i % 3)}/${a}-${i}/{id}/${b}`
            : `/v${1 + (i % 3)}/${a}-${i}/{id}/${b}/{${b}Id}`;
    paths[p] = op(`op${i}`);
  }
  const doc = { openapi: '3.0.3', info: { title: 'bench', version: '1' }, paths };
  const file = path.join(dir, 'openapi.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}
