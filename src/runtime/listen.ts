import type { EventEmitter } from 'node:events';

/**
 * Starts a listener (`server.listen`, `socket.bind`) and resolves once it is ready, or rejects
 * with its first error (EADDRINUSE, EACCES) instead of leaving that error unhandled.
 */
export function listening(target: EventEmitter, start: (ready: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    target.once('error', reject);
    start(() => {
      target.off('error', reject);
      resolve();
    });
  });
}

/**
 * A listener that could not open, told as the operator can fix it: the port, the variable that
 * sets it and its value, and why (in use, not permitted, no such address), in one line without a
 * stack. `main` prints it and exits 2, like a configuration error.
 */
export class ListenError extends Error {
  readonly code = 'ERR_SIDECAR_LISTEN';
  constructor(
    readonly variable: 'LISTEN_PORT' | 'PROMETHEUS_PORT' | 'STATSD_PORT',
    readonly port: number,
    readonly hostVariable: 'LISTEN_HOST' | 'STATSD_HOST',
    readonly host: string | undefined,
    cause: unknown,
    /** StatsD listens on both; an HTTP listener is TCP. */
    transport?: 'UDP' | 'TCP',
  ) {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    const on = host === undefined ? 'on all interfaces' : `on ${host}`;
    const which = transport ? `${transport} port` : 'port';
    let why: string;
    if (errno === 'EADDRINUSE') why = `${which} ${port} is already in use ${on}: stop what holds it, or set ${variable} to a free port`;
    else if (errno === 'EACCES') why = `binding ${which} ${port} ${on} is not permitted (ports below 1024 need privileges): set ${variable} to 1024 or above`;
    else if (errno === 'EADDRNOTAVAIL' || errno === 'EINVAL' || errno === 'ENOTFOUND')
      why = `${hostVariable}=${host ?? ''} is not an address this machine can bind (${errno}): fix ${hostVariable}`;
    else why = `${which} ${port} ${on} cannot be opened (${errno ?? (cause as Error | undefined)?.message ?? 'unknown error'})`;
    super(`${variable}=${port}: ${why}`, { cause });
    this.name = 'ListenError';
  }

  /** The errno that made the listener fail (EADDRINUSE, EACCES, ...). */
  get errno(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}
