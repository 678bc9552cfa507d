/**
 * Issue 9, finding 7: client-made errors counted as the app's.
 *
 * `OPTIONS * HTTP/1.1`, `GET *` or two `Host` headers used to give 502, add to
 * `flask_http_request_exceptions_total` and log a warning each, so any client could fire the
 * chart's 5xx alert. Upstream: Flask under gunicorn. Required (DESIGN.md): what the sidecar cannot
 * forward gets a 4xx from the sidecar, is never forwarded, never counts as an exception or a 5xx,
 * and is logged at debug at most.
 */
import { rawRequest, statusOf } from '../helpers/net';
import { spawnSidecar, type Child } from '../helpers/sidecar';
import { startFlask, type Flask } from '../helpers/gunicorn';
import { parseExposition, find, value } from '../helpers/exposition';
import { alive, mainPortStatus, promtool, scrape, warnings } from '../helpers/attack';

jest.setTimeout(120_000);

let app: Flask;
let sc: Child;

beforeAll(async () => {
  app = await startFlask();
  sc = await spawnSidecar({ UPSTREAM_URL: app.url, LOG_LEVEL: 'info' });
});

afterAll(async () => {
  sc?.proc.kill('SIGKILL');
  await sc?.exited;
  await app?.stop();
});

const ATTACKS: [string, (id: string) => string][] = [
  ['OPTIONS *', (id) => `OPTIONS * HTTP/1.1\r\nHost: app\r\nX-Attack-Id: ${id}\r\nConnection: close\r\n\r\n`],
  ['GET *', (id) => `GET * HTTP/1.1\r\nHost: app\r\nX-Attack-Id: ${id}\r\nConnection: close\r\n\r\n`],
  ['HEAD *', (id) => `HEAD * HTTP/1.1\r\nHost: app\r\nX-Attack-Id: ${id}\r\nConnection: close\r\n\r\n`],
  ['two Host headers', (id) => `GET /hello HTTP/1.1\r\nHost: app\r\nHost: other\r\nX-Attack-Id: ${id}\r\nConnection: close\r\n\r\n`],
  ['two identical Host headers', (id) => `GET /hello HTTP/1.1\r\nHost: app\r\nHost: app\r\nX-Attack-Id: ${id}\r\nConnection: close\r\n\r\n`],
  ['POST * with a body', (id) => `POST * HTTP/1.1\r\nHost: app\r\nX-Attack-Id: ${id}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`],
];

describe("finding 7: errors the client made are the client's", () => {
  it('control: an ordinary request through the sidecar reaches the app', async () => {
    expect(await mainPortStatus(sc.mainPort)).toBe(200);
  });

  it(`should answer ${ATTACKS.length} kinds of unforwardable request with a 4xx, 5 times each, without an exception, a 5xx or a warning`, async () => {
    const warningsBefore = warnings(sc.logs).length;
    const answers: { attack: string; status: number }[] = [];
    for (const [name, bytes] of ATTACKS) {
      for (let i = 0; i < 5; i++) answers.push({ attack: name, status: statusOf(await rawRequest(sc.mainPort, bytes(`${name}#${i}`))) });
    }
    expect(alive(sc)).toBe(true);
    const s = await scrape(sc.metricsPort);
    expect(s.status).toBe(200);
    const p = parseExposition(s.text);
    const newWarnings = warnings(sc.logs).slice(warningsBefore);

    // One comparison, so a failure shows every way the sidecar got it wrong at once.
    expect({
      notA4xx: [...new Set(answers.filter((a) => a.status < 400 || a.status > 499).map((a) => `${a.attack} → ${a.status}`))],
      forwarded: app
        .saw()
        .filter((x) => x.attack_id !== null)
        .map((x) => x.attack_id),
      exceptions: value(p, 'flask_http_request_exceptions_total'),
      recorded5xx: find(p, 'flask_http_request_total')
        .filter((x) => Number(x.labels.status) >= 500)
        .map((x) => `${x.labels.method} ${x.labels.status}: ${x.value}`),
      warnings: [...new Set(newWarnings.map((l) => l.msg))],
    }).toEqual({ notA4xx: [], forwarded: [], exceptions: 0, recorded5xx: [], warnings: [] });
    expect(promtool(s.text)).toEqual({ ok: true, output: '' });
    expect(await mainPortStatus(sc.mainPort)).toBe(200);
  });
});
