/**
 * The application stand-in behind the sidecar: nginx answering `200 hello\n` (bench/lib/nginx.mjs)
 * when nginx is installed, otherwise a tiny Node HTTP server doing the same.
 */
import fs from 'node:fs';
import { start, waitForHttp, stop } from './procs.mjs';
import { NGINX, startNginx, upstreamConf, nginxVersion } from './nginx.mjs';

const NODE_UPSTREAM = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 });
    res.end('hello\\n');
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[1]), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

function nginxAvailable() {
  try {
    fs.accessSync(NGINX, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Starts the upstream on 127.0.0.1:`port` pinned to `cpus`; resolves {kind, version, proc, stop()}. */
export async function startUpstream(tmp, port, { cpus, readyPath = '/' } = {}) {
  const readyUrl = `http://127.0.0.1:${port}${readyPath}`;
  if (nginxAvailable()) {
    const u = await startNginx('upstream', tmp, (p) => upstreamConf(p, port), { cpus, readyUrl });
    return { kind: 'nginx', version: await nginxVersion(), proc: u.proc, stop: () => stop(u.proc, { signal: 'SIGQUIT', graceMs: 5000 }) };
  }
  const proc = start('upstream', process.execPath, ['-e', NODE_UPSTREAM, String(port)], { cpus });
  await waitForHttp(readyUrl, proc, 10000);
  return { kind: 'node', version: process.version, proc, stop: () => stop(proc, { signal: 'SIGTERM', graceMs: 3000 }) };
}
