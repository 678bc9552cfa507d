/**
 * What the test:k8s suites share: the API server test/k8s/run.mjs started (K8S_CLUSTER), its admin
 * over plain HTTPS (client-node is ESM, which Jest cannot load), kubectl against it, and the
 * objects the suites make there (namespaces, ServiceAccounts, tokens from the TokenRequest API).
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

const { ensureKubectl } = require('../helpers/helm-binary.cjs') as { ensureKubectl(): string };

export interface Cluster {
  server: string;
  caFile: string;
  adminToken: string;
  /** The directory holding the CA, the ServiceAccount signing key (sa.key) and the admin token file. */
  pki: string;
  etcdUrl: string;
  /** The kube-apiserver binary. */
  apiserver: string;
  /** The run's state directory (removed by the runner at the end). */
  dir: string;
}

/** The audit log of the API server the runner started (metadata of the review calls: who made them). */
export function auditLogOf(c: Cluster): string {
  const { auditLog } = require('./cluster.cjs') as { auditLog(creds: { dir: string }, port: number): string };
  return auditLog({ dir: c.pki }, Number(new URL(c.server).port));
}

export function cluster(): Cluster {
  const file = process.env.K8S_CLUSTER;
  if (!file) throw new Error('K8S_CLUSTER is not set: run these suites with `npm run test:k8s`');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Cluster;
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

/** One call to the API server as `token` (the admin's by default); `server` for another API server on the same CA. */
export function api<T = Record<string, unknown>>(
  method: string,
  urlPath: string,
  body?: unknown,
  opts: { token?: string; server?: string } = {},
): Promise<Answer<T>> {
  const c = cluster();
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${opts.server ?? c.server}${urlPath}`,
      {
        method,
        ca: fs.readFileSync(c.caFile),
        headers: { authorization: `Bearer ${opts.token ?? c.adminToken}`, 'content-type': 'application/json', accept: 'application/json' },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (e.g. /readyz)
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** `api` that rejects unless the status is 2xx. */
export async function ok<T = Record<string, unknown>>(method: string, urlPath: string, body?: unknown): Promise<T> {
  const a = await api<T>(method, urlPath, body);
  if (a.status < 200 || a.status > 299) throw new Error(`${method} ${urlPath}: ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

/** A short random suffix for names, so that suites never meet each other's objects. */
export const suffix = (): string => crypto.randomBytes(3).toString('hex');

/** Creates a namespace; returns its name. */
export async function namespace(prefix: string): Promise<string> {
  const name = `${prefix}-${suffix()}`;
  await ok('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

export async function serviceAccount(ns: string, name: string): Promise<void> {
  await ok('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
}

/**
 * A token for a ServiceAccount from the TokenRequest API. 1.20 refuses expirationSeconds below
 * 600 (10 minutes).
 */
export async function token(ns: string, sa: string, opts: { audiences?: string[]; expirationSeconds?: number } = {}): Promise<string> {
  const spec: Record<string, unknown> = { expirationSeconds: opts.expirationSeconds ?? 600 };
  if (opts.audiences) spec.audiences = opts.audiences;
  const r = await ok<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec,
  });
  return r.status.token;
}

/** A ClusterRole allowing `verbs` on `nonResourceURLs`, bound to a ServiceAccount. */
export async function grantNonResource(name: string, ns: string, sa: string, urls: string[], verbs: string[] = ['get']): Promise<void> {
  await ok('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name },
    rules: [{ nonResourceURLs: urls, verbs }],
  });
  await bindClusterRole(name, name, ns, sa);
}

export async function bindClusterRole(binding: string, role: string, ns: string, sa: string): Promise<void> {
  await ok('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: binding },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }],
  });
}

/** What the API server's authorizer says about `user` doing `verb` on a non-resource path. */
export async function canNonResource(user: string, groups: string[], verb: string, urlPath: string): Promise<boolean> {
  const r = await ok<{ status: { allowed: boolean } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: { user, groups, nonResourceAttributes: { path: urlPath, verb } },
  });
  return r.status.allowed;
}

/** The groups the API server gives a ServiceAccount of `ns`. */
export const saGroups = (ns: string): string[] => ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
export const saUser = (ns: string, sa: string): string => `system:serviceaccount:${ns}:${sa}`;

/** A kubeconfig for the API server: the CA by file, and either a token or a token file. */
export function kubeconfig(
  dir: string,
  name: string,
  user: { token: string } | { tokenFile: string },
  opts: { server?: string; caFile?: string } = {},
): string {
  const c = cluster();
  const file = path.join(dir, `kubeconfig-${name}`);
  const u = 'token' in user ? { token: user.token } : { 'auth-provider': { name: 'tokenFile', config: { tokenFile: user.tokenFile } } };
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: opts.server ?? c.server, 'certificate-authority': opts.caFile ?? c.caFile } }],
      users: [{ name: 'user', user: u }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'user' } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );
  return file;
}

/** The admin's kubeconfig (written once per process), for kubectl. */
let adminKubeconfig: string | undefined;
function adminConfig(): string {
  if (adminKubeconfig) return adminKubeconfig;
  // In the run's state directory, which the runner removes: it holds the admin token.
  adminKubeconfig = kubeconfig(cluster().dir, `admin-${process.pid}`, { token: cluster().adminToken });
  return adminKubeconfig;
}

/** kubectl against the API server as the admin; resolves {code, stdout, stderr}, never rejects. */
export function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(ensureKubectl(), ['--kubeconfig', adminConfig(), ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code as number) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}
