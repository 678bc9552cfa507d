/**
 * Entry point: validate the environment, run the sidecar, drain on SIGTERM/SIGINT, exit 0.
 *
 *   --help          every flag and variable with its default (from src/config/variables.ts)
 *   --version       the version
 *   --check-config  read and validate everything a start would (files included), print the
 *                   effective settings with secrets hidden; exit 0 valid, 2 invalid
 *
 * None of the three opens a port. A real start with an invalid configuration fails the same way
 * as --check-config: exit 2, one message naming each bad variable and file.
 */
import { ConfigError, readConfig, type Loaded } from './config';
import { effectiveSettings, helpText } from './config/variables';
import { createLogger, flushLogs, stripUrlCredentials } from './log/logger';
import { createSidecar } from './app';
import { ListenError } from './runtime/listen';
import { KubernetesSetupError } from './access/kubernetes';
import { VERSION } from './version';

const FLAGS = ['--help', '-h', '--version', '-v', '--check-config'];

async function main(argv: readonly string[]): Promise<number> {
  const unknownFlag = argv.find((a) => !FLAGS.includes(a));
  if (unknownFlag !== undefined) {
    process.stderr.write(`unknown argument ${JSON.stringify(unknownFlag)}; see --help\n`);
    return 2;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(VERSION));
    return 0;
  }
  if (argv.includes('--version') || argv.includes('-v')) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const check = argv.includes('--check-config');

  let loaded: Loaded;
  try {
    loaded = readConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (check) process.stderr.write(err.text);
    else createLogger('info').fatal(err.message, { code: err.code, problems: err.problems });
    return 2;
  }
  const { config, warnings } = loaded;

  if (check) {
    const lines = ['configuration is valid', ...warnings.map((w) => `warning: ${w}`), '', 'effective settings (secrets hidden):'];
    const settings = effectiveSettings(process.env, loaded.values, loaded.unused);
    for (const s of settings) {
      const note = s.source === 'unused' ? '  (not used: its feature is off)' : s.source === 'set' ? '' : `  (${s.source})`;
      lines.push(`  ${s.name}=${redactQuery(s.value)}${note}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }

  const logger = createLogger(config.logLevel);
  for (const w of warnings) logger.warn(w);
  for (const note of config.statsd.mapping?.notes ?? []) logger.info(`STATSD_MAPPING_FILE ${note}`);

  const sidecar = createSidecar(config, logger);
  try {
    await sidecar.start();
  } catch (err) {
    if (err instanceof KubernetesSetupError) {
      // An unreadable or invalid CA, a kubeconfig that cannot be read: the operator's to fix, exit 2.
      logger.fatal(err.message, { code: err.code });
      return 2;
    }
    if (!(err instanceof ListenError)) throw err;
    // A taken port is the operator's to fix, like a bad variable: one line naming it, exit 2.
    logger.fatal(err.message, { code: err.code, variable: err.variable, port: err.port, errno: err.errno });
    return 2;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn('second signal: exiting now', { signal });
        resolve(1);
        return;
      }
      stopping = true;
      logger.info('shutdown requested', { signal });
      sidecar.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error('shutdown failed', { err });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function redactQuery(v: string): string {
  return stripUrlCredentials(v).replace(/([?#])[^,\s]*/g, '$1[REDACTED]');
}

async function exit(code: number): Promise<void> {
  process.exitCode = code;
  await flushLogs();
  // Anything still holding the loop open (a stray timer) must not keep a drained pod alive.
  setTimeout(() => process.exit(code), 100).unref();
}

main(process.argv.slice(2)).then(
  (code) => exit(code),
  async (err: unknown) => {
    createLogger('info').fatal('failed to start', { err });
    await flushLogs();
    process.exit(1);
  },
);
