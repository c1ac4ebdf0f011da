import { createLoggers, type LogFlags } from './logging.js';
import { describeThreads, refuseProxyWithThreads, startThreadsForCli } from './session-threads.js';
import { stopOnSignal } from './stop-on-signal.js';
import { UserError } from './user-error.js';

/** The handler module each worker thread imports: the echo on the session framework. */
const ECHO_HANDLERS = new URL('../servers/echo/session-echo-handlers.js', import.meta.url);

export interface ThreadedEchoFlags extends LogFlags {
  proxyProtocol?: string;
  metrics?: unknown;
  host: string;
  port: number;
  threads: number;
  model: string;
  engine?: string;
  maxConnections: number;
}

/**
 * `overlapped echo --threads N`: N workers, each with its own engine and
 * completion port, serving the echo on the session framework
 * (src/threads/): worker threads behind one acceptor on uring, a cluster of
 * worker processes sharing the listener on node.
 */
export async function runThreadedEcho(flags: ThreadedEchoFlags): Promise<void> {
  if (flags.model !== 'completion-port') {
    throw new UserError(
      `--threads runs the completion-port echo (on the session framework) in each thread; --model ${flags.model} has no threaded form`,
      2,
    );
  }
  refuseProxyWithThreads(flags.proxyProtocol, flags.metrics);
  const { logger } = await createLoggers(flags);
  const server = await startThreadsForCli(
    {
      threads: flags.threads,
      ...(flags.engine === undefined ? {} : { engine: flags.engine }),
      host: flags.host,
      port: flags.port,
      handlers: ECHO_HANDLERS,
      session: { maxSessions: flags.maxConnections },
      onError: (err) => logger.error({ err }, err.message),
    },
    flags.host,
    flags.port,
  );
  const { address, port } = server.address;
  logger.info(
    { address, port, model: flags.model, threads: flags.threads },
    `echo server listening on ${address}:${port} (completion-port echo on the session framework: ${describeThreads(server, flags.threads)}, each with its own engine and port)`,
  );
  const stopping = stopOnSignal(
    logger,
    async () => {
      const report = await server.stop({ deadlineMs: 5000 });
      logger.info(
        {
          threads: report.threads.map((t) => ({
            thread: t.thread,
            sessions: t.accepted,
            cpuMs: t.cpuMicros < 0 ? null : Math.round(t.cpuMicros / 1000),
          })),
          reset: report.reset,
        },
        'threads stopped',
      );
    },
    () => ({ workers: server.threads }),
    () => ({ pending: 0 }),
  );
  // A failed thread stops the server by itself; the process then ends with an error.
  const failed = new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (server.failure !== null) {
        clearInterval(poll);
        resolve();
      }
    }, 200);
    poll.unref();
  });
  await Promise.race([stopping, failed]);
  if (server.failure !== null) {
    await server.stop();
    throw new UserError(`a worker thread failed: ${server.failure.message}`, 1);
  }
}
