/**
 * A KubernetesAuthorizer (the built dist/access/kubernetes.js) in a process of its own
 * (test/fixtures/k8s-authorizer.js), on a clock only the test moves: a TTL or a rate budget is
 * crossed by `advance`, never by waiting. Used against the fake API server (test/access) and the
 * real one (test/k8s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { KubernetesAuthConfig } from '../../src/config';

export interface AuthorizerAnswer {
  decision: string;
  cache: string[];
  logs: { msg: string; code?: string }[];
}

export interface Authorizer {
  ask(token: string, path?: string): Promise<AuthorizerAnswer>;
  advance(ms: number): Promise<void>;
  close(): Promise<string[]>;
  /** What keeps the process alive now (process.getActiveResourcesInfo()). */
  resources(): Promise<string[]>;
  end(): Promise<void>;
}

export async function startAuthorizer(cfg: KubernetesAuthConfig): Promise<Authorizer> {
  const proc: ChildProcess = spawn(process.execPath, [path.join(__dirname, '..', 'fixtures', 'k8s-authorizer.js'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = new Map<number, (answer: Record<string, unknown>) => void>();
  let ready!: () => void;
  const first = new Promise<void>((r) => (ready = r));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    const answer = JSON.parse(line) as Record<string, unknown>;
    if (answer.fail !== undefined) throw new Error(`authorizer: ${String(answer.fail)}`);
    if (answer.id === undefined) ready();
    else waiting.get(answer.id as number)?.(answer);
  });
  let ids = 0;
  const send = (cmd: object) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++ids;
      waiting.set(id, resolve);
      proc.stdin!.write(`${JSON.stringify({ id, ...cmd })}\n`);
    });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await first;
  return {
    ask: async (token, p = '/debug/metrics') => (await send({ authorize: { token, path: p } })) as unknown as AuthorizerAnswer,
    advance: async (ms) => void (await send({ advance: ms })),
    close: async () => (await send({ close: true })).resources as string[],
    resources: async () => (await send({ resources: true })).resources as string[],
    end: async () => {
      proc.stdin!.end();
      await exited;
    },
  };
}
