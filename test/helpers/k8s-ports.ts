/**
 * The API server's rules for the ports of a Service and of a pod's containers, for manifests that
 * have not been through an API server: Kubernetes' pkg/apis/core/validation (ValidateService,
 * validateServicePort, validateContainerPorts) with apimachinery's IsDNS1123Label,
 * IsValidPortName (IANA_SVC_NAME) and IsValidPortNum, after the API's defaults (protocol TCP,
 * targetPort = port). Each function returns the problems as `<field>: <message>`, none when valid.
 * The JSON schemas (kubernetes-models) check none of this.
 */

/** A Service port as written in a manifest. */
export interface ServicePortSpec {
  name?: string;
  port?: unknown;
  targetPort?: unknown;
  protocol?: string;
  nodePort?: number;
}

export interface ContainerPortSpec {
  name?: string;
  containerPort?: unknown;
  protocol?: string;
}

const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);

/** IsDNS1123Label: at most 63 characters, lowercase alphanumerics and '-', alphanumeric at both ends. */
export function dns1123LabelProblems(value: string): string[] {
  const problems: string[] = [];
  if (value.length > 63) problems.push('must be no more than 63 characters');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value)) problems.push("must consist of lower case alphanumeric characters or '-', and start and end with one");
  return problems;
}

/** IsValidPortName (IANA_SVC_NAME, RFC 6335): container port names and Service targetPort names. */
export function ianaSvcNameProblems(value: string): string[] {
  const problems: string[] = [];
  if (value.length > 15) problems.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(value)) problems.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (!/[a-z]/.test(value)) problems.push('must contain at least one letter (a-z)');
  if (value.includes('--')) problems.push('must not contain consecutive hyphens (-)');
  if (value.startsWith('-') || value.endsWith('-')) problems.push('must not begin or end with a hyphen (-)');
  return problems;
}

/** IsValidPortNum: an integer from 1 to 65535. */
export function portNumProblems(value: unknown): string[] {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? [] : ['must be an integer between 1 and 65535, inclusive'];
}

/** A port number or name (a Service's targetPort, a probe's port): a YAML string is a name, even "8080". */
function portNumOrNameProblems(value: unknown): string[] {
  return typeof value === 'string' ? ianaSvcNameProblems(value) : portNumProblems(value);
}

/** The port rules of ValidateService for one Service object. */
export function serviceProblems(service: { metadata?: { name?: string }; spec?: { type?: string; clusterIP?: string; ports?: ServicePortSpec[] } }): string[] {
  const problems: string[] = [];
  const spec = service.spec ?? {};
  const ports = spec.ports ?? [];
  const headless = spec.clusterIP === 'None';
  if (ports.length === 0 && !headless && spec.type !== 'ExternalName') problems.push('spec.ports: Required value');
  const names = new Set<string>();
  const numbers = new Set<string>();
  ports.forEach((p, i) => {
    const at = `spec.ports[${i}]`;
    const name = p.name ?? '';
    if (ports.length > 1 && name === '') problems.push(`${at}.name: Required value (a Service of more than one port names them all)`);
    else if (name !== '') {
      for (const m of dns1123LabelProblems(name)) problems.push(`${at}.name: Invalid value ${JSON.stringify(name)}: ${m}`);
      if (names.has(name)) problems.push(`${at}.name: Duplicate value ${JSON.stringify(name)}`);
      names.add(name);
    }
    for (const m of portNumProblems(p.port)) problems.push(`${at}.port: Invalid value ${JSON.stringify(p.port)}: ${m}`);
    const protocol = p.protocol ?? 'TCP';
    if (!PROTOCOLS.has(protocol)) problems.push(`${at}.protocol: Unsupported value ${JSON.stringify(protocol)}`);
    const targetPort = p.targetPort ?? p.port;
    for (const m of portNumOrNameProblems(targetPort)) problems.push(`${at}.targetPort: Invalid value ${JSON.stringify(targetPort)}: ${m}`);
    if (p.nodePort !== undefined && (spec.type ?? 'ClusterIP') === 'ClusterIP')
      problems.push(`${at}.nodePort: Forbidden: may not be used when type is 'ClusterIP'`);
    const key = `${protocol}/${String(p.port)}`;
    if (numbers.has(key)) problems.push(`${at}: Duplicate value ${key} (port numbers are unique per protocol)`);
    numbers.add(key);
  });
  return problems;
}

/** The port rules of validateContainerPorts for every container and init container of a pod spec. */
export function containerPortProblems(podSpec: {
  containers?: { name: string; ports?: ContainerPortSpec[] }[];
  initContainers?: { name: string; ports?: ContainerPortSpec[] }[];
}): string[] {
  const problems: string[] = [];
  for (const [field, containers] of [
    ['containers', podSpec.containers ?? []],
    ['initContainers', podSpec.initContainers ?? []],
  ] as const) {
    containers.forEach((c, ci) => {
      const names = new Set<string>();
      (c.ports ?? []).forEach((p, pi) => {
        const at = `spec.${field}[${ci}].ports[${pi}]`;
        if (p.name !== undefined && p.name !== '') {
          const found = ianaSvcNameProblems(p.name);
          for (const m of found) problems.push(`${at}.name: Invalid value ${JSON.stringify(p.name)}: ${m}`);
          if (found.length === 0 && names.has(p.name)) problems.push(`${at}.name: Duplicate value ${JSON.stringify(p.name)}`);
          names.add(p.name);
        }
        for (const m of portNumProblems(p.containerPort)) problems.push(`${at}.containerPort: Invalid value ${JSON.stringify(p.containerPort)}: ${m}`);
        const protocol = p.protocol ?? 'TCP';
        if (!PROTOCOLS.has(protocol)) problems.push(`${at}.protocol: Unsupported value ${JSON.stringify(protocol)}`);
      });
    });
  }
  return problems;
}
