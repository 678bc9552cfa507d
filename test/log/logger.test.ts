/**
 * The logger: pino's JSON lines behind the small Logger interface, secrets redacted whatever field
 * they hide in, errors with their cause chain, nothing lost at exit, repeated warnings limited.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { createLogger, REDACTED, SECRET_KEY, SECRET_KEYS, type Logger } from '../../src/log/logger';
import { rateLimited } from '../../src/log/rate-limit';
import { trackResources, turnLoop } from '../helpers/handles';

function capture(level: 'debug' | 'info' | 'warn' | 'error' = 'debug'): { logger: Logger; lines: string[]; entries: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = createLogger(level, (l) => lines.push(l));
  return { logger, lines, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('should write one JSON line per event with the level name, ISO time, msg and fields', () => {
    const { logger, lines, entries } = capture('info');
    logger.debug('hidden');
    logger.info('hello', { port: 8080 });
    logger.warn('careful');
    logger.error('broken');
    logger.fatal('dead');
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(entries().map((e) => e.level)).toEqual(['info', 'warn', 'error', 'fatal']);
    expect(entries()[0]).toMatchObject({ msg: 'hello', port: 8080 });
    expect(new Date(entries()[0].time as string).toISOString()).toBe(entries()[0].time);
    expect(logger.isDebug()).toBe(false);
    expect(capture('debug').logger.isDebug()).toBe(true);
  });

  it("should scan for every field name pino redacts (nested ones are the scan's job)", () => {
    expect(SECRET_KEYS.filter((k) => !SECRET_KEY.test(k))).toEqual([]);
  });

  it.each(SECRET_KEYS)('should redact a %s field at any depth up to three levels', (key) => {
    const { logger, lines } = capture();
    const secret = `s3cret-${key}-value`;
    logger.warn('request', { [key]: secret, headers: { [key]: secret }, req: { headers: { [key]: secret } }, a: { b: { c: { [key]: secret } } } });
    expect(lines.join('')).not.toContain(secret);
    expect(lines.join('').split(REDACTED).length - 1).toBe(4);
  });

  it.each(['METRICS_BASIC_AUTH_PASSWORD', 'upstreamToken', 'X-Api-Key', 'client_secret', 'Set-Cookie', 'proxyAuthorization'])(
    'should redact a field named %s at any depth',
    (key) => {
      const { logger, lines } = capture();
      logger.warn('x', { [key]: 'v4lue-1', a: { b: { c: { d: { e: { [key]: 'v4lue-2' } } } } } });
      expect(lines.join('')).not.toMatch(/v4lue/);
    },
  );

  it('should leave ordinary fields alone', () => {
    const { logger, entries } = capture();
    logger.info('x', { tokens: 3, route: '/users/:id', cached: true, target: 'http://127.0.0.1:9000/metrics' });
    expect(entries()[0]).toMatchObject({ tokens: 3, route: '/users/:id', cached: true, target: 'http://127.0.0.1:9000/metrics' });
  });

  it('should strip URL credentials from the message, string fields, URL objects and error messages', () => {
    const { logger, lines } = capture();
    logger.warn('fetch https://alice:pw-in-msg@example.com/x failed', {
      target: 'http://bob:pw-in-field@127.0.0.1:9000/metrics',
      url: new URL('https://carol:pw-in-url@example.com/'),
      list: ['ftp://dave:pw-in-list@host/'],
      err: new Error('connect to http://erin:pw-in-error@host failed'),
    });
    const text = lines.join('');
    for (const s of ['pw-in-msg', 'pw-in-field', 'pw-in-url', 'pw-in-list', 'pw-in-error', 'alice', 'bob', 'carol', 'dave', 'erin'])
      expect(text).not.toContain(s);
    expect(text).toContain('https://[REDACTED]@example.com/x');
  });

  it('should serialise errors with their code and cause chain', () => {
    const { logger, entries } = capture();
    const socket = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' });
    const err = new TypeError('fetch failed', { cause: socket });
    logger.error('upstream failed', { err });
    const e = entries()[0].err as Record<string, unknown>;
    expect(e).toMatchObject({
      type: 'TypeError',
      message: 'fetch failed',
      cause: { type: 'Error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:8000' },
    });
    expect(typeof e.stack).toBe('string');
  });

  it('should bound a cyclic cause chain', () => {
    const { logger, entries } = capture();
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    logger.error('loop', { err: a });
    let depth = 0;
    for (let e = entries()[0].err as Record<string, unknown> | undefined; e; e = e.cause as Record<string, unknown> | undefined) depth++;
    expect(depth).toBeLessThanOrEqual(6);
  });

  const LOGGER_JS = path.join(__dirname, '..', '..', 'dist', 'log', 'logger.js');

  it('should write to stdout asynchronously: nothing is written before the event loop turns', () => {
    const script = `const fs = require('fs');
      const { createLogger } = require(${JSON.stringify(LOGGER_JS)});
      const log = createLogger('info');
      const writeSync = fs.writeSync, write = fs.write;
      let syncWrites = 0, asyncWrites = 0;
      fs.writeSync = (...a) => (syncWrites++, writeSync(...a));
      fs.write = (...a) => (asyncWrites++, write(...a));
      for (let i = 0; i < 1000; i++) log.info('line', { i });
      const during = syncWrites + asyncWrites;
      process.once('beforeExit', () => { process.stderr.write(JSON.stringify({ during, syncWrites, asyncWrites })); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(r.status).toBe(0);
    const counts = JSON.parse(r.stderr) as { during: number; syncWrites: number; asyncWrites: number };
    expect(counts.during).toBe(0); // the 1000 calls returned without writing
    expect(counts.syncWrites).toBe(0);
    expect(counts.asyncWrites).toBeGreaterThanOrEqual(1);
    expect(counts.asyncWrites).toBeLessThan(1000); // batched, not one write per line
    expect(r.stdout.trim().split('\n')).toHaveLength(1000);
  });

  it('should lose no line at process.exit', () => {
    const script = `const { createLogger } = require(${JSON.stringify(LOGGER_JS)});
      const log = createLogger('info');
      for (let i = 0; i < 5000; i++) log.info('line', { i, pad: 'x'.repeat(100) });
      process.exit(3);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(r.status).toBe(3);
    const got = r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { i: number }).i);
    expect(got).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it('should still exit when nobody reads stdout any more (no retry loop on EPIPE)', async () => {
    const script = `const { createLogger, flushLogs } = require(${JSON.stringify(LOGGER_JS)});
      const log = createLogger('info');
      log.info('first');
      process.stdin.once('data', async () => {
        for (let i = 0; i < 100; i++) log.info('after the reader left', { i });
        await flushLogs();
        log.info('last');
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    // The reader goes away: its end of the pipe is closed once 'close' has been emitted.
    const gone = new Promise((resolve) => child.stdout.once('close', resolve));
    child.stdout.destroy();
    await gone;
    child.stdin.end('go\n');
    expect(await exited).toBe(0);
  });
});

describe('rateLimited', () => {
  it('should let a burst per kind through, hold back the rest, and report how many', () => {
    const { logger, entries } = capture();
    let t = 0;
    const limited = rateLimited(logger, { burst: 2, windowMs: 1000, now: () => t });
    for (let i = 0; i < 100; i++) limited.warn('upstream failed', { code: 'ECONNREFUSED' });
    limited.warn('merge target failed', { target: 'a' });
    expect(entries().map((e) => e.msg)).toEqual(['upstream failed', 'upstream failed', 'merge target failed']);
    t = 1000;
    limited.warn('upstream failed', { code: 'ECONNREFUSED' });
    expect(entries()[3]).toMatchObject({ msg: 'upstream failed', suppressed: 98 });
    limited.info('info passes', {});
    limited.info('info passes', {});
    limited.info('info passes', {});
    expect(entries().filter((e) => e.msg === 'info passes')).toHaveLength(3);
    limited.close();
  });

  it('should separate kinds given as fields.kind and bound how many kinds it tracks', () => {
    const { logger, entries } = capture();
    const limited = rateLimited(logger, { burst: 1, windowMs: 60_000, maxKinds: 10 });
    for (let i = 0; i < 50; i++) limited.warn('target failed', { kind: `target ${i % 3}` });
    expect(entries()).toHaveLength(3);
    for (let i = 0; i < 1000; i++) limited.warn('many', { kind: `k${i}` });
    expect(entries()).toHaveLength(1003);
    limited.close();
  });

  it('should write a summary line when the window ends with lines held back', async () => {
    const lines: string[] = [];
    let summarized!: () => void;
    const summary = new Promise<void>((r) => (summarized = r));
    const logger = createLogger('debug', (l) => {
      lines.push(l);
      if (l.includes('(repeated)')) summarized();
    });
    const limited = rateLimited(logger, { burst: 1, windowMs: 50 });
    for (let i = 0; i < 10; i++) limited.warn('dead target');
    expect(lines).toHaveLength(1);
    // Written by the window's timer: nothing else writes after the loop above.
    await summary;
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>).map((e) => [e.msg, e.suppressed])).toEqual([
      ['dead target', undefined],
      ['dead target (repeated)', 9],
    ]);
  });

  it('should write what it holds back at close(), leave no timer behind, and hold nothing back after', async () => {
    const { logger, entries } = capture();
    const tracker = trackResources();
    const limited = rateLimited(logger, { burst: 1, windowMs: 60_000 });
    for (let i = 0; i < 4; i++) limited.warn('dead target');
    limited.error('broken', { kind: 'x' });
    limited.error('broken', { kind: 'x' });
    limited.close();
    await turnLoop(() => tracker.alive().length === 0);
    const left = tracker.alive();
    tracker.stop();
    expect(left).toEqual([]);
    expect(entries().map((e) => [e.msg, e.suppressed])).toEqual([
      ['dead target', undefined],
      ['broken', undefined],
      ['dead target (repeated)', 3],
      ['broken (repeated)', 1],
    ]);
    for (let i = 0; i < 3; i++) limited.warn('dead target');
    expect(entries()).toHaveLength(7);
  });
});
