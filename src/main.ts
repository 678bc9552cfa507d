/**
 * Entry point: validate the environment, run the sidecar, drain on SIGTERM/SIGINT, exit 0.
 * `--check-config` validates and exits (0 valid, 2 invalid) without opening a port.
 */
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger } from './log/logger';
import { createSidecar } from './app';

async function main(argv: readonly string[]): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    createLogger('info').fatal(err.message, { code: err.code, problems: err.problems });
    return 2;
  }
  const logger = createLogger(config.logLevel);
  if (argv.includes('--check-config')) {
    logger.info('configuration is valid', { role: config.role });
    return 0;
  }

  const sidecar = createSidecar(config, logger);
  await sidecar.start();

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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Anything still holding the loop open (a stray timer) must not keep a drained pod alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    createLogger('info').fatal('failed to start', { err });
    process.exit(1);
  },
);
