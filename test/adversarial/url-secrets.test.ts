/**
 * Issue 9, finding 8: secrets in URLs become labels.
 *
 * `/reset-password/<token>` used to end up as a `path` label value (visible to anyone who reads
 * the metrics) and in the warn log's `route` field. Upstream: Flask under gunicorn, which routes
 * `/reset-password/<token>`; for the warn log, a second sidecar whose app is down. Tokens are made
 * the way Python apps make them: `secrets.token_urlsafe(16)` (22 base64url characters) and
 * itsdangerous-style signed tokens (base64 payload, timestamp, signature, dot-separated).
 * Required (DESIGN.md): id- and token-like segments collapse, so no token appears in the
 * exposition or in any log line.
 */
import crypto from 'node:crypto';
import { freePort, request } from '../helpers/net';
import { spawnSidecar, type Child, killAll } from '../helpers/sidecar';
import { startFlask, type Flask } from '../helpers/gunicorn';
import { alive, promtool, scrape } from '../helpers/attack';

jest.setTimeout(120_000);

let app: Flask;
const children: Child[] = [];

beforeAll(async () => {
  app = await startFlask();
});

afterAll(async () => {
  await killAll(children);
  await app?.stop();
});

/** `secrets.token_urlsafe(16)`: 16 random bytes, base64url without padding. */
const urlsafe = (): string => crypto.randomBytes(16).toString('base64url');
/** An itsdangerous URLSafeTimedSerializer token: payload.timestamp.signature. */
const signed = (): string =>
  `${Buffer.from(JSON.stringify({ user: crypto.randomInt(1e6) })).toString('base64url')}.${crypto.randomBytes(4).toString('base64url')}.${crypto.randomBytes(20).toString('base64url')}`;

const TOKENS = [...Array.from({ length: 20 }, urlsafe), ...Array.from({ length: 10 }, signed)];

function leaks(where: string): string[] {
  return TOKENS.filter((t) => where.includes(t) || where.includes(encodeURIComponent(t)));
}

describe('finding 8: tokens in URLs never become labels or log fields', () => {
  it('should keep every reset token out of the exposition and the logs (the app answers 200)', async () => {
    const sc = await spawnSidecar({ UPSTREAM_URL: app.url, LOG_LEVEL: 'debug' });
    children.push(sc);
    for (const t of TOKENS) expect((await request(sc.mainPort, `/reset-password/${t}`)).status).toBe(200);
    // Control: the app saw the tokens, so the sidecar had them in hand.
    expect(app.saw().filter((s) => s.path_info?.startsWith('/reset-password/')).length).toBe(TOKENS.length);
    const s = await scrape(sc.metricsPort);
    expect(s.status).toBe(200);
    const logs = sc.logs.map((l) => JSON.stringify(l)).join('\n');
    expect({ exposition: leaks(s.text).length, logs: leaks(logs).length }).toEqual({ exposition: 0, logs: 0 });
    expect(promtool(s.text)).toEqual({ ok: true, output: '' });
  });

  it('should keep every reset token out of the "upstream failed" warnings (the app is down)', async () => {
    const sc = await spawnSidecar({ UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`, LOG_LEVEL: 'debug' });
    children.push(sc);
    for (const t of TOKENS) expect((await request(sc.mainPort, `/reset-password/${t}`)).status).toBe(502);
    expect(alive(sc)).toBe(true);
    const s = await scrape(sc.metricsPort);
    const logs = sc.logs.map((l) => JSON.stringify(l)).join('\n');
    expect({ exposition: leaks(s.text).length, logs: leaks(logs).length }).toEqual({ exposition: 0, logs: 0 });
  });
});
