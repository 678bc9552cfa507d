/**
 * Issue 9, finding 2: the app's own `/debug/` tree reached through dot segments.
 *
 * Upstream: a Flask app under gunicorn with `@app.route('/debug/<path:p>')` (test/adversarial/
 * app.py). Each spelling goes over a raw socket to the built sidecar's main port, tagged with an
 * X-Attack-Id header. Required (DESIGN.md, "Hostile input and limits"): every one is answered by
 * the sidecar with a 4xx (400 for targets servers could read differently, 404 for its own
 * reserved tree) and the app never receives any of them; a WebSocket upgrade to `/debug/..` is not
 * switched. Controls prove the harness would see a leak: the app answers its `/debug/` tree when
 * asked directly, and an ordinary request through the sidecar reaches it with its tag.
 */
import { rawRequest, statusOf } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { DEBUG_MARKER, startFlask, type Flask } from '../helpers/gunicorn';
import { alive } from '../helpers/attack';
import spellings from '../fixtures/debug-spellings.json';

jest.setTimeout(120_000);

/** Spellings that some server or framework reads as a path under `/debug/` (one list with bench:attack). */
const SPELLINGS: string[] = [...spellings.from_issue, ...spellings.more];

let app: Flask;
let sc: Child;

beforeAll(async () => {
  app = await startFlask();
  sc = await spawnSidecar({ UPSTREAM_URL: app.url, PROMETHEUS_PORT: '0' });
});

afterAll(async () => {
  sc?.proc.kill('SIGKILL');
  await sc?.exited;
  await app?.stop();
});

function get(target: string, id: string, extra = ''): string {
  return `GET ${target} HTTP/1.1\r\nHost: app.example\r\nX-Attack-Id: ${id}\r\n${extra}Connection: close\r\n\r\n`;
}

describe('finding 2: the app never sees a request for its /debug/ tree', () => {
  it('controls: the app serves its /debug/ tree when asked directly, and an ordinary request reaches it through the sidecar', async () => {
    const direct = await rawRequest(app.port, get('/debug/%2e%2e', 'control-direct'));
    expect(direct).toContain(DEBUG_MARKER);
    const through = await rawRequest(sc.mainPort, get('/hello', 'control-through'));
    expect(statusOf(through)).toBe(200);
    expect(app.saw().map((s) => s.attack_id)).toContain('control-through');
  });

  it(`should answer each of ${SPELLINGS.length} spellings with a 4xx and forward none of them`, async () => {
    const answers: { target: string; status: number; leaked: boolean }[] = [];
    for (const [i, target] of SPELLINGS.entries()) {
      const raw = await rawRequest(sc.mainPort, get(target, `dot-${i}`));
      answers.push({ target, status: statusOf(raw), leaked: raw.includes(DEBUG_MARKER) });
    }
    const forwarded = app
      .saw()
      .filter((s) => s.attack_id?.startsWith('dot-'))
      .map((s) => ({ target: SPELLINGS[Number(s.attack_id!.slice(4))], raw_uri: s.raw_uri, endpoint: s.endpoint }));
    expect(alive(sc)).toBe(true);
    // What reached the app, and which of those the app routed to its own /debug/ tree.
    expect(forwarded).toEqual([]);
    expect(answers.filter((a) => a.leaked)).toEqual([]);
    expect(answers.filter((a) => a.status < 400 || a.status > 499)).toEqual([]);
  });

  it('should not switch protocols for a WebSocket upgrade to /debug/..', async () => {
    const ws = 'Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
    const targets = ['/debug/..', '/debug/%2e%2e', '/debug/metrics/../..', 'http://other/debug/..'];
    const answers: { target: string; status: number }[] = [];
    for (const [i, target] of targets.entries()) {
      const raw = await rawRequest(sc.mainPort, get(target, `ws-${i}`, ws).replace('Connection: close', 'Connection: Upgrade'), 3000);
      answers.push({ target, status: statusOf(raw) });
    }
    expect(app.saw().filter((s) => s.attack_id?.startsWith('ws-'))).toEqual([]);
    expect(answers.filter((a) => a.status < 400 || a.status > 499)).toEqual([]);
  });
});
