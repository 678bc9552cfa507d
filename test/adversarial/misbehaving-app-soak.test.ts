/**
 * Soak: an app that gets framing wrong on 1 % of its answers, in every shape of
 * test/helpers/misbehaving-app.ts (each sent on a client connection of its own, kept open while
 * its late bytes are written), behind the built sidecar, while 8 keep-alive clients send 10,000
 * ordinary requests. Every ordinary answer must be the requester's own (issue 18, item 1): before
 * upstream connections belonged to client connections, about 6 % of them were another client's.
 */
import http from 'node:http';
import { killAll, spawnSidecar, type Child } from '../helpers/sidecar';
import { startMisbehavingApp, SHAPES, type MisbehavingApp, type Shape } from '../helpers/misbehaving-app';

const ORDINARY = 10_000;
const CLIENTS = 8;
const MISBEHAVING = ORDINARY / 100;
const BAD_SHAPES = SHAPES.filter((s) => s !== 'ok');

let app: MisbehavingApp;
const children: Child[] = [];

afterAll(async () => {
  await killAll(children);
  await app?.close();
});

function send(port: number, agent: http.Agent, id: string, shape: Shape, method = 'GET'): Promise<{ status: number; body: string } | Error> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: `/orders/${id}`, method, agent, headers: { 'x-req': id, 'x-shape': shape } }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve(err));
    });
    req.on('error', (err) => resolve(err));
    req.end();
  });
}

describe('a misbehaving app under load', () => {
  it(`should give each of ${ORDINARY} ordinary answers to its own requester, with 1 % of answers broken in every shape`, async () => {
    app = await startMisbehavingApp();
    const sc = await spawnSidecar({ UPSTREAM_URL: app.url, LOG_LEVEL: 'error' });
    children.push(sc);
    const port = sc.mainPort;

    let done = 0;
    const progress: (() => void)[] = [];
    const tally = { own: 0, foreign: [] as string[], errors: 0, statuses: new Map<number, number>() };

    const ordinary = async (c: number): Promise<void> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < ORDINARY / CLIENTS; i++) {
        const id = `o${c}-${i}`;
        const a = await send(port, agent, id, 'ok');
        if (a instanceof Error) tally.errors++;
        else {
          tally.statuses.set(a.status, (tally.statuses.get(a.status) ?? 0) + 1);
          if (a.body === `id:${id}`) tally.own++;
          else tally.foreign.push(`${id} got ${a.status} ${JSON.stringify(a.body.slice(0, 40))}`);
        }
        done++;
        for (const p of progress.splice(0)) p();
      }
      agent.destroy();
    };

    // One broken answer per 100 ordinary ones, each shape in turn, on a connection of its own; its
    // late bytes are written a few broken answers later, while ordinary traffic flows.
    const misbehaving = async (): Promise<number> => {
      const open: http.Agent[] = [];
      let written = 0;
      for (let i = 0; i < MISBEHAVING; i++) {
        while (done < (i * ORDINARY) / MISBEHAVING) await new Promise<void>((r) => progress.push(r));
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        open.push(agent);
        const shape = BAD_SHAPES[i % BAD_SHAPES.length];
        await send(port, agent, `m${i}`, shape, shape === 'head-body' ? 'HEAD' : 'GET');
        if (i % 3 === 2) written += await app.fireLate();
        if (open.length > 6) open.shift()!.destroy();
      }
      written += await app.fireLate();
      for (const a of open) a.destroy();
      return written;
    };

    const [written] = await Promise.all([misbehaving(), ...Array.from({ length: CLIENTS }, (_, c) => ordinary(c))]);

    expect(tally.foreign).toEqual([]);
    expect(tally.own).toBe(ORDINARY);
    expect(tally.errors).toBe(0);
    expect([...tally.statuses]).toEqual([[200, ORDINARY]]);
    // The late bytes were really written onto open connections to the sidecar.
    expect(written).toBeGreaterThan(10);
    expect(app.answered.size).toBe(ORDINARY + MISBEHAVING);
  });
});
