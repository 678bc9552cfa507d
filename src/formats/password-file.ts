/**
 * A password file (METRICS_BASIC_AUTH_PASSWORD_FILE): read by the configuration at start and by
 * the access gate's SecretFile whenever the mounted file changes.
 */

/** A password file: its content without the trailing newline editors and `kubectl create secret` leave. */
export function parsePassword(text: string): string {
  const v = text.replace(/\r?\n$/, '');
  if (v === '') throw new Error('the file is empty');
  return v;
}
