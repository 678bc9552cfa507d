/**
 * 100 MB through the built sidecar in its own process, each way, with its peak resident memory
 * measured: bodies must stream, never sit in memory.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { spawnSidecar, peakRss, currentRss, type Child } from '../helpers/sidecar';

const SIZE = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
/**
 * Peak RSS growth allowed. Garbage not yet collected accounts for 40-50 MB whatever the body size
 * (measured with 50 and 300 MB bodies); buffering would add the whole 100 MB.
 */
const MAX_GROWTH = 64 * 1024 * 1024;

function sendChunks(w: NodeJS.WritableStream, total: number, hash: crypto.Hash, done: () => void): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      const c = CHUNK.subarray(0, Math.min(CHUNK.length, total - sent));
      c[0] = sent % 251;
      hash.update(c);
      sent += c.length;
      if (!w.write(Buffer.from(c))) {
        w.once('drain', pump);
        return;
      }
    }
    done();
  };
  pump();
}

describe('streaming 100 MB bodies', () => {
  let upstream: Upstream;
  let child: Child;
  let downloadSha = '';
  /** What happened, in order (the app and the clients run in this process). */
  const events: string[] = [];

  beforeAll(async () => {
    upstream = await startUpstream(
      (req, res) => {
        if (req.url === '/upload') {
          const h = crypto.createHash('sha256');
          let n = 0;
          req.on('data', (c: Buffer) => {
            if (n === 0) events.push('app: first upload byte');
            n += c.length;
            h.update(c);
          });
          req.on('end', () => res.end(JSON.stringify({ bytes: n, sha256: h.digest('hex') })));
          return;
        }
        const h = crypto.createHash('sha256');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE });
        sendChunks(res, SIZE, h, () => {
          events.push('app: last download byte written');
          res.end();
          downloadSha = h.digest('hex');
        });
      },
      { stream: true },
    );
    child = await spawnSidecar({ UPSTREAM_URL: upstream.url, LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    child.proc.kill('SIGKILL');
    await child.exited;
    await upstream.close();
  });

  it('should stream a 100 MB upload with bounded sidecar memory', async () => {
    const pid = child.proc.pid!;
    const before = currentRss(pid);
    const hash = crypto.createHash('sha256');
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: child.mainPort, path: '/upload', method: 'POST', agent: false, headers: { 'content-length': SIZE } },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      sendChunks(req, SIZE, hash, () => {
        events.push('client: last upload byte written');
        req.end();
      });
    });
    expect(JSON.parse(reply)).toEqual({ bytes: SIZE, sha256: hash.digest('hex') });
    // Streamed: the app saw the first bytes long before the client had sent the last.
    expect(events.filter((e) => e.includes('upload'))).toEqual(['app: first upload byte', 'client: last upload byte written']);
    expect(peakRss(pid) - before).toBeLessThan(MAX_GROWTH);
  }, 60000);

  it('should stream a 100 MB download with bounded sidecar memory', async () => {
    const pid = child.proc.pid!;
    const before = currentRss(pid);
    const hash = crypto.createHash('sha256');
    const received = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: child.mainPort, path: '/download', agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            if (n === 0) events.push('client: first download byte');
            n += c.length;
            hash.update(c);
          });
          res.on('end', () => resolve(n));
        })
        .on('error', reject);
    });
    expect(received).toBe(SIZE);
    expect(hash.digest('hex')).toBe(downloadSha);
    // Streamed: the client had its first bytes before the app had written its last.
    expect(events.filter((e) => e.includes('download'))).toEqual(['client: first download byte', 'app: last download byte written']);
    expect(peakRss(pid) - before).toBeLessThan(MAX_GROWTH);
  }, 60000);
});
