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
