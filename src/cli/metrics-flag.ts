/**
 * `--metrics` on a server command: starts the metrics endpoint (loading
 * prom-client only then), says where in one log line, turns `/readyz` to
 * 503 when the stop begins and closes the endpoint once the server stopped.
 */
import type { Logger } from 'pino';
import type { MetricsServer } from '../metrics/metrics-server.js';
import type { MetricsFlag } from './server-options.js';
import { UserError } from './user-error.js';

export interface ServedMetrics {
  /** Wraps a server's stop: not ready first, the endpoint closed last. */
  stopping(stop: () => Promise<void>): () => Promise<void>;
}

const NONE: ServedMetrics = { stopping: (stop) => stop };

/** Starts the endpoint when `flag` is set; otherwise changes nothing. */
export async function serveMetrics(
  flag: MetricsFlag | undefined,
  logger: Logger,
): Promise<ServedMetrics> {
  if (flag === undefined) return NONE;
  const { MetricsServer } = await import('../metrics/metrics-server.js');
  let server: MetricsServer;
  try {
    server = await MetricsServer.start(flag);
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new UserError(
      code === 'EADDRINUSE'
        ? `--metrics ${flag.host}:${flag.port} is already in use (EADDRINUSE): choose another port`
        : `--metrics ${flag.host}:${flag.port}: ${(err as Error).message}`,
      1,
    );
  }
  const { address, port } = server.address;
  const where = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  logger.info(
    { metrics: `http://${where}/metrics` },
    `metrics on http://${where}/metrics (health: /healthz, /readyz)`,
  );
  return {
    stopping: (stop) => async () => {
      server.setDraining();
      await stop();
      await server.close();
    },
  };
}
