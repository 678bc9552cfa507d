/**
 * Reading a rendered pod: its containers, their env and ports, and the environment a container
 * would see in the cluster, with the files its volumes mount laid out under a local root, so a
 * test can start the real sidecar from what the chart rendered.
 */
import fs from 'node:fs';
import path from 'node:path';
import { find, type Loose, type Manifest } from './helm';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, Record<string, string>>;
}
export interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  ports?: { name: string; containerPort: number; protocol?: string }[];
  /** The rest (probes, securityContext, lifecycle, volumeMounts), read with a cast where needed. */
  [key: string]: unknown;
}

export function podSpec(d: Manifest): Record<string, Loose> {
  return d.spec.template.spec as Record<string, Loose>;
}
export function containers(d: Manifest): Container[] {
  const spec = podSpec(d);
  return [...((spec.initContainers as Container[] | undefined) ?? []), ...(spec.containers as Container[])];
}
export function container(d: Manifest, name: string): Container {
  const c = containers(d).find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name} in ${d.metadata.name}`);
  return c;
}
export function envMap(c: Container): Map<string, EnvVar> {
  return new Map((c.env ?? []).map((e) => [e.name, e]));
}
export function envValue(c: Container, name: string): string | undefined {
  return envMap(c).get(name)?.value;
}
export function port(c: Container, name: string): number | undefined {
  return c.ports?.find((p) => p.name === name)?.containerPort;
}
export function secretData(docs: Manifest[], name: string, key: string): string | undefined {
  const s = find(docs, 'Secret', name);
  const b64 = (s?.data as Record<string, string> | undefined)?.[key];
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
}

/**
 * The environment the sidecar would see in the pod, with its mounted files laid out under a temp
 * root (content from the rendered Secrets/ConfigMaps, stand-ins for existing ones): *_FILE
 * variables must name a file that one of the container's volumes provides.
 */
export function podEnvironment(docs: Manifest[], d: Manifest, c: Container, root: string): Record<string, string> {
  const volumes = new Map<string, Record<string, Loose>>((podSpec(d).volumes as Record<string, Loose>[]).map((v) => [v.name as string, v]));
  const files = new Map<string, string>();
  for (const m of (c.volumeMounts as { name: string; mountPath: string }[] | undefined) ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    const src = (v.secret ?? v.configMap) as { secretName?: string; name?: string; items?: { key: string; path: string }[] } | undefined;
    if (!src) continue;
    const obj = v.secret ? find(docs, 'Secret', src.secretName!) : find(docs, 'ConfigMap', src.name!);
    for (const item of src.items ?? []) {
      let content: string | undefined;
      if (obj && v.secret) content = Buffer.from((obj.data as Record<string, string>)[item.key] ?? '', 'base64').toString('utf8');
      else if (obj) content = (obj.data as Record<string, string>)[item.key];
      else content = item.path === 'api-keys' ? 'prometheus plain:stand-in-key metrics\n' : 'stand-in';
      if (content === undefined) throw new Error(`${src.secretName ?? src.name} has no key ${item.key}`);
      files.set(path.posix.join(m.mountPath, item.path), content);
    }
  }
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      env[e.name] = secretData(docs, ref.name, ref.key) ?? 'stand-in';
    } else if (e.valueFrom) {
      env[e.name] = 'stand-in';
    } else {
      env[e.name] = e.value ?? '';
    }
    if (e.name.endsWith('_FILE')) {
      const content = files.get(env[e.name]);
      if (content === undefined) throw new Error(`${e.name}=${env[e.name]} is not a file any volume of ${c.name} provides`);
      const local = path.join(root, env[e.name]);
      fs.mkdirSync(path.dirname(local), { recursive: true });
      fs.writeFileSync(local, content);
      env[e.name] = local;
    }
  }
  return env;
}
