/** WebSocket passthrough with the `ws` package on both ends and the sidecar in between. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { startSidecar, type Running } from '../helpers/sidecar';
import { request } from '../helpers/net';
import { parseExposition, value } from '../helpers/exposition';

describe('WebSocket passthrough', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let sc: Running;
  const upgradePaths: string[] = [];

  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      upgradePaths.push(req.url ?? '');
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo: ${data.toString()}`, { binary: isBinary }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    sc = await startSidecar({ UPSTREAM_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });
  afterAll(async () => {
    await sc.stop();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('should echo text and binary messages through the sidecar', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${sc.mainPort}/socket/1?room=a`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: (string | Buffer)[] = [];
    const got = new Promise<void>((resolve) =>
      ws.on('message', (data, isBinary) => {
        replies.push(isBinary ? (data as Buffer) : data.toString());
        if (replies.length === 2) resolve();
      }),
    );
    ws.send('hello');
    ws.send(Buffer.from([1, 2, 3, 255]));
    await got;
    expect(replies[0]).toBe('echo: hello');
    expect(Buffer.from(replies[1] as Buffer)).toEqual(Buffer.from([1, 2, 3, 255]));
    expect(upgradePaths).toContain('/socket/1?room=a');
    ws.close();
    await new Promise((r) => ws.once('close', r));
    const p = parseExposition((await request(sc.metricsPort, '/debug/metrics')).text);
    expect(value(p, 'flask_http_request_total', { method: 'GET', status: '101' })).toBe(1);
  });

  it('should refuse a WebSocket to the reserved tree with 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${sc.mainPort}/debug/socket`);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    expect(status).toBe(404);
  });
});
