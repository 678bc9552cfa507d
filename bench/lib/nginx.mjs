/**
 * nginx instances for the benchmarks: each one gets its own prefix under a temp dir (config,
 * pid, error log, temp paths) and runs in the foreground (`daemon off;`) with one worker.
 */
import fs from 'node:fs';
import path from 'node:path';
import { run, start, childPids, waitForHttp } from './procs.mjs';

export const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';

function common(prefix) {
  // As root nginx would switch its worker to the compiled-in user (www-data), which may not be
  // able to use the temp dir; `user` is only valid (and only needed) when running as root.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events {
  worker_connections 4096;
  multi_accept on;
}
`;
}

function httpCommon(prefix) {
  return `  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
`;
}

/** The application stand-in: answers every request with 200 "hello\n". */
export function upstreamConf(prefix, port) {
  return `${common(prefix)}http {
${httpCommon(prefix)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "hello\\n";
    }
  }
}
`;
}

/**
 * The application stand-in for the `mix` load (mix.mjs): files of the mix's sizes from `root`,
 * and 201 for the POSTs (their bodies read and discarded).
 */
export function upstreamMixConf(prefix, port, root) {
  return `${common(prefix)}http {
${httpCommon(prefix)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};
    default_type application/json;
    etag off;
    location /users/ { try_files /user.json =404; }
    location = /search { try_files /search.json =404; }
    location /static/ { default_type text/css; try_files /app.css =404; }
    location /api/items/ { try_files /item.json =404; }
    location = /api/orders { return 201 '{"id":"ord_0001","status":"accepted","total":"129.00"}'; }
    location = /bench/path { default_type text/plain; return 200 "hello\n"; }
  }
}
`;
}

/** The reference reverse proxy: keep-alive pool of 64 to the upstream, no access log. */
export function proxyConf(prefix, port, upstreamPort) {
  return `${common(prefix)}http {
${httpCommon(prefix)}  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/**
 * Writes `conf` under `<baseDir>/<name>/`, checks it with `nginx -t`, starts nginx pinned to
 * `cpus` and waits until `readyUrl` answers 200. Returns the managed process plus its pids
 * (master and worker).
 */
export async function startNginx(name, baseDir, confFn, { cpus, readyUrl }) {
  const prefix = path.join(baseDir, name);
  fs.mkdirSync(prefix, { recursive: true });
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
  const confPath = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(confPath, confFn(prefix));
  const args = ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', confPath, '-g', 'daemon off;'];
  const check = await run(`${name}-check`, NGINX, [...args, '-t', '-q'], { timeoutMs: 10000 });
  if (check.code !== 0) throw new Error(`nginx -t failed for ${name} (${confPath}):\n${check.stderr}${check.stdout}`);

  const m = start(name, NGINX, args, { cpus });
  await waitForHttp(readyUrl, m, 10000);
  const workers = childPids(m.pid);
  if (workers.length !== 1) throw new Error(`${name}: expected 1 nginx worker under master ${m.pid}, found [${workers}]`);
  return { proc: m, pids: [m.pid, ...workers], prefix };
}

export async function nginxVersion() {
  const res = await run('nginx-version', NGINX, ['-v'], { timeoutMs: 5000 });
  const text = (res.stderr + res.stdout).trim();
  return /nginx\/(\S+)/.exec(text)?.[1] ?? text;
}
