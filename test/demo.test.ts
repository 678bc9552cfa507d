/** `npm run demo` (after the build): the demo comes up, traffic flows, the printed lines hold. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort, request } from './helpers/net';
import { parseExposition, value } from './helpers/exposition';

describe('demo', () => {
  it('should start the app and both sidecars, show traffic in the metrics, and stop on SIGINT', async () => {
    const [appPort, webPort, workerPort] = [await freePort(), await freePort(), await freePort()];
    const proc = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'demo', 'main.js')], {
      env: { PATH: process.env.PATH ?? '', DEMO_APP_PORT: String(appPort), DEMO_WEB_PORT: String(webPort), DEMO_WORKER_PORT: String(workerPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => proc.on('close', r));
    try {
      for (let i = 0; i < 100 && !out.includes('Traffic is flowing'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain('Traffic is flowing');
      expect(out).toContain(`curl -s http://127.0.0.1:${webPort}/debug/metrics`);
      await new Promise((r) => setTimeout(r, 1000));

      const web = parseExposition((await request(webPort, '/debug/metrics')).text);
      expect(value(web, 'flask_http_request_total')).toBeGreaterThan(3);
      expect((await request(webPort, '/users/42')).status).toBe(200);
      expect((await request(webPort, '/debug/secret')).status).toBe(404);
      // The app itself does serve that page: the 404 above is the sidecar hiding it.
      expect((await request(appPort, '/debug/secret')).status).toBe(200);

      const worker = parseExposition((await request(workerPort, '/debug/metrics')).text);
      expect(worker.samples.find((s) => s.name === 'metrics_sidecar_info')?.labels).toMatchObject({ role: 'worker', app_name: 'demo-worker' });
    } finally {
      proc.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 30000);
});
