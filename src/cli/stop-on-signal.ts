import type { Logger } from 'pino';

/**
 * Runs a server until SIGINT or SIGTERM: the first signal logs `stopping`
 * (with `stoppingFields()`), awaits `stop()` and then logs `stopped` (with
 * `stoppedFields()`); a second signal while stopping exits at once with
 * code 130 (SIGINT) or 143 (SIGTERM). Resolves once stopped, with the handlers removed.
 */
export function stopOnSignal(
  logger: Logger,
  stop: () => Promise<void>,
  stoppingFields: () => object,
  stoppedFields: () => object = () => ({}),
): Promise<void> {
  return new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        // 128 + the signal's number, as a shell reports a process the signal ended.
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      logger.info({ signal, ...stoppingFields() }, 'stopping');
      stop().then(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        logger.info(stoppedFields(), 'stopped');
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
