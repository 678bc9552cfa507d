/**
 * No byte the app writes reaches another client connection (issue 18, item 1), as a model-based
 * test: fast-check generates sequences of commands — a client connection sends a request whose
 * answer the app will get wrong in one of the ways real apps do (test/helpers/misbehaving-app.ts),
 * the app writes its armed late bytes, a client connection closes — over several keep-alive client
 * connections to a real sidecar in front of a real (misbehaving) app on real sockets. After every
 * answer the property is checked: a client connection receives only answers to its own requests
 * (`id:<one of its ids>` or `late:<one of its ids>`) or an error (502/504, or its connection cut).
 */
import http from 'node:http';
import fc from 'fast-check';
import { startSidecar, type Running } from '../helpers/sidecar';
import { startMisbehavingApp, SHAPES, type MisbehavingApp, type Shape } from '../helpers/misbehaving-app';

const CLIENTS = 4;

interface Real {
  agents: http.Agent[];
  /** Ids each client connection (agent) sent. */
  sent: Set<string>[];
  next: number;
}

interface Answer {
  status: number;
  body: string;
}

let app: MisbehavingApp;
let sc: Running;
const seen = { answers: 0, errors: 0, late: 0, lateWritten: 0 };

beforeAll(async () => {
  app = await startMisbehavingApp();
  sc = await startSidecar({ UPSTREAM_URL: app.url, UPSTREAM_TIMEOUT_MS: '5000' });
});

afterAll(async () => {
  await sc.stop();
  await app.close();
});

function newAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1 });
}

function send(agent: http.Agent, method: string, id: string, shape: Shape): Promise<Answer | Error> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: sc.mainPort, path: `/r/${id}`, method, agent, headers: { 'x-req': id, 'x-shape': shape } }, (res) => {
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

class Send implements fc.AsyncCommand<object, Real> {
  constructor(
    readonly client: number,
    readonly shape: Shape,
    readonly head: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(_m: object, r: Real): Promise<void> {
    const id = `c${this.client}-${r.next++}`;
    r.sent[this.client].add(id);
    const a = await send(r.agents[this.client], this.head ? 'HEAD' : 'GET', id, this.shape);
    if (a instanceof Error || a.status >= 500) {
      seen.errors++;
      return;
    }
    seen.answers++;
    if (this.head || a.status === 204 || a.status === 304) {
      // Bodyless by rule: the status line is all there is to check (the app's ids are in bodies only).
      expect(a.body).toBe('');
      return;
    }
    const m = /^(id|late):(c\d+-\d+)$/.exec(a.body);
    if (m?.[1] === 'late') seen.late++;
    // The property: whatever this client connection got is about one of its own requests.
    expect({ client: this.client, body: a.body, own: m !== null && r.sent[this.client].has(m[2]) }).toEqual({ client: this.client, body: a.body, own: true });
  }
  toString(): string {
    return `Send(${this.client}, ${this.head ? 'HEAD ' : ''}${this.shape})`;
  }
}

class FireLate implements fc.AsyncCommand<object, Real> {
  check(): boolean {
    return true;
  }
  async run(): Promise<void> {
    seen.lateWritten += await app.fireLate();
  }
  toString(): string {
    return 'FireLate';
  }
}

class CloseClient implements fc.AsyncCommand<object, Real> {
  constructor(readonly client: number) {}
  check(): boolean {
    return true;
  }
  async run(_m: object, r: Real): Promise<void> {
    r.agents[this.client].destroy();
    r.agents[this.client] = newAgent();
  }
  toString(): string {
    return `CloseClient(${this.client})`;
  }
}

const client = fc.integer({ min: 0, max: CLIENTS - 1 });
const commands = fc.commands(
  [
    fc.tuple(client, fc.constantFrom(...SHAPES), fc.boolean()).map(([c, s, head]) => new Send(c, s, head && s === 'head-body')),
    // Ordinary requests are the common case: a misbehaving answer then meets other clients' traffic.
    client.map((c) => new Send(c, 'ok', false)),
    client.map((c) => new Send(c, 'ok', false)),
    fc.constant(new FireLate()),
    client.map((c) => new CloseClient(c)),
  ],
  { maxCommands: 24 },
);

describe('the upstream pool as a model (fc.commands)', () => {
  it('should give every client connection only answers to its own requests, or an error', async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const real: Real = { agents: Array.from({ length: CLIENTS }, newAgent), sent: Array.from({ length: CLIENTS }, () => new Set<string>()), next: 0 };
        try {
          await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
        } finally {
          for (const a of real.agents) a.destroy();
        }
      }),
      { numRuns: 1000 },
    );
    // The runs exercised what they are about: many answers, and late bytes written on open
    // connections (some reach the proxy while their own client's next request is on it: `late`).
    expect(seen.answers).toBeGreaterThan(1000);
    expect(seen.lateWritten).toBeGreaterThan(100);
  });
});
