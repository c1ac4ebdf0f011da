import { Command, Option } from 'commander';
import type { ProxyListenOptions } from '../core/tcp-listener.js';
import { chooseEngine } from '../engines/select.js';
import { DEFAULT_MAX_THREADS } from '../models/blocking.js';
import { BlockingEchoServer } from '../servers/echo/blocking-echo-server.js';
import { ECHO_DEFAULTS, type EchoService } from '../servers/echo/echo-base.js';
import { ECHO_MODELS, type EchoModel, startEchoServer } from '../servers/echo/echo-models.js';
import {
  DEFAULT_SWEEP_INTERVAL_MS,
  NonBlockingEchoServer,
} from '../servers/echo/nonblocking-echo-server.js';
import { descriptorHeadroom } from '../servers/rate-limited-log.js';
import { createLoggers, type LogFlags, logOptions, logStart } from './logging.js';
import { serveMetrics } from './metrics-flag.js';
import { explainOsError } from './os-error-hints.js';
import {
  engineOption,
  hostOption,
  type MetricsFlag,
  metricsOption,
  type ProxyFlags,
  portOption,
  proxyListenOptions,
  proxyOptions,
  quietOption,
  timeoutOption,
} from './server-options.js';
import { stopOnSignal } from './stop-on-signal.js';
import { runThreadedEcho } from './threaded-echo.js';
import { parseIntegerFlag, UserError } from './user-error.js';

interface EchoFlags extends LogFlags, ProxyFlags {
  metrics?: MetricsFlag;
  host: string;
  port: number;
  workers?: number;
  bufferSize?: number;
  maxConnections: number;
  engine?: string;
  model: EchoModel;
  nagle?: boolean;
  pooled: boolean;
  maxThreads?: number;
  sweepInterval?: number;
  threads?: number;
  idleTimeout: number;
  writeTimeout: number;
}

/** `overlapped echo`: the echo server of the seeds, in any of its eight models. */
export function createEchoCommand(): Command {
  const command = new Command('echo')
    .description(
      'run the TCP echo server: every byte a client sends comes back; ' +
        'a client that closes its side is closed',
    )
    .addOption(hostOption('address to listen on (0.0.0.0 for every interface)', ECHO_DEFAULTS.host))
    .addOption(portOption(ECHO_DEFAULTS.port))
    .addOption(
      new Option(
        '--model <model>',
        'the I/O model: overlapped I/O with a completion port, event objects (63 clients per wait loop) ' +
          'or completion routines; blocking sockets with a thread per client; non-blocking sockets swept in a loop; ' +
          'select (63 clients per loop); WSAAsyncSelect (window messages); WSAEventSelect (63 clients per wait loop); ' +
          'or the session framework (sessions: KIocp/KSocket on a completion port)',
      )
        .choices(ECHO_MODELS)
        .default('completion-port'),
    )
    .option(
      '--workers <n>',
      'completion-port model: worker loops draining the port (default: 2 x CPUs)',
      (v: string) => parseIntegerFlag('--workers', v, 1, 1024),
    )
    .option(
      '--max-threads <n>',
      `blocking model: threads, and so clients served, at once; more wait in the listen backlog (default: ${DEFAULT_MAX_THREADS})`,
      (v: string) => parseIntegerFlag('--max-threads', v, 1, 10_000),
    )
    .option(
      '--sweep-interval <ms>',
      `nonblocking model: sleep after a sweep that found nothing: lower answers an idle server sooner, higher costs less CPU while idle (default: ${DEFAULT_SWEEP_INTERVAL_MS})`,
      (v: string) => parseIntegerFlag('--sweep-interval', v, 1, 1000),
    )
    .option(
      '--buffer-size <bytes>',
      `a receive buffer of this size per connection, instead of pooled receives (also the most a connection has in flight); the readiness and blocking models' read buffer (default: ${ECHO_DEFAULTS.bufferSize})`,
      (v: string) => parseIntegerFlag('--buffer-size', v, 1, 16 * 1024 * 1024),
    )
    .option(
      '--max-connections <n>',
      'connections served at once; clients past it are reset at once',
      (v: string) => parseIntegerFlag('--max-connections', v, 1, 1_000_000),
      ECHO_DEFAULTS.maxConnections,
    )
    .addOption(
      timeoutOption(
        '--idle-timeout',
        'close a connection that moved no byte either way for this long (0: off; e.g. 300000 on the open Internet)',
        0,
      ),
    )
    .addOption(
      timeoutOption(
        '--write-timeout',
        'reset a connection whose client takes no byte of an echo for this long (0: off; e.g. 30000)',
        0,
      ),
    )
    .addOption(engineOption())
    .option(
      '--nagle',
      "leave Nagle's algorithm on (no TCP_NODELAY): fewer segments, but pieces of large echoes wait for the client's delayed ACK",
    )
    .option(
      '--pooled',
      'pooled receive mode, the default of the overlapped models: no buffer per connection, each recv borrows (a slice of) a pool buffer when data arrives (the readiness models never hold one for an idle client)',
    )
    .option(
      '--no-pooled',
      `overlapped models: a ${ECHO_DEFAULTS.bufferSize}-byte receive buffer per connection (the seeds' design) instead of pooled receives`,
    )
    .addOption(quietOption())
    .option(
      '--threads <n>',
      'an acceptor thread and n worker threads, each with its own engine and completion port, serving the completion-port echo on the session framework (uring: threads; node: a cluster of processes)',
      (v: string) => parseIntegerFlag('--threads', v, 1, 64),
    );
  for (const option of [...proxyOptions(), metricsOption(), ...logOptions()]) {
    command.addOption(option);
  }
  return command.action(async (flags: EchoFlags, cmd: Command) => {
    // A buffer size asks for buffers per connection; with an explicit --pooled it is a contradiction.
    if (flags.bufferSize !== undefined) {
      if (flags.pooled && cmd.getOptionValueSource('pooled') === 'cli') {
        throw new UserError(
          '--pooled lends pool buffers, --buffer-size sets a buffer per connection: give one or the other',
          2,
        );
      }
      flags.pooled = false;
    }
    const proxy = proxyListenOptions(flags);
    if (flags.threads !== undefined) await runThreadedEcho({ ...flags, threads: flags.threads });
    else await runEcho(flags, proxy);
  });
}

async function runEcho(flags: EchoFlags, proxy: ProxyListenOptions): Promise<void> {
  const { logger, connectionLogger } = await createLoggers(flags);
  let choice: ReturnType<typeof chooseEngine>;
  let server: EchoService;
  try {
    choice = chooseEngine(flags.engine);
    server = await startEchoServer({
      model: flags.model,
      engine: choice.engine,
      host: flags.host,
      port: flags.port,
      ...(flags.workers === undefined ? {} : { workers: flags.workers }),
      ...(flags.bufferSize === undefined ? {} : { bufferSize: flags.bufferSize }),
      maxConnections: flags.maxConnections,
      noDelay: flags.nagle !== true,
      pooled: flags.pooled,
      idleTimeoutMs: flags.idleTimeout,
      writeTimeoutMs: flags.writeTimeout,
      logger: connectionLogger,
      ...proxy,
      ...(flags.maxThreads === undefined ? {} : { maxThreads: flags.maxThreads }),
      ...(flags.sweepInterval === undefined ? {} : { sweepIntervalMs: flags.sweepInterval }),
    });
  } catch (err) {
    throw explainOsError(err, flags.host, flags.port);
  }
  const { address, port } = server.address;
  logStart(logger, {
    what: 'echo server',
    where: { address, port },
    details: [
      `${describeModel(flags.model, server)}${describeReceives(server, flags.bufferSize)}`,
      ...(flags.proxyProtocol === undefined
        ? []
        : [`PROXY protocol ${flags.proxyProtocol} required`]),
    ],
    choice,
    fields: {
      address,
      port,
      model: flags.model,
      bufferSize: flags.bufferSize ?? ECHO_DEFAULTS.bufferSize,
      ...(server.pooled === undefined ? {} : { pooled: server.pooled }),
      ...(flags.proxyProtocol === undefined ? {} : { proxyProtocol: flags.proxyProtocol }),
    },
  });
  const metrics = await serveMetrics(flags.metrics, logger);
  const headroom = descriptorHeadroom(flags.maxConnections);
  if (headroom !== null) logger.warn(headroom.fields, headroom.message);
  await stopOnSignal(
    logger,
    metrics.stopping(() => server.stop()),
    () => ({ connections: server.connections }),
    () => ({
      // What the process let go of: all 0 after a clean drain.
      open: server.connections,
      pending: (server.bytesReceived ?? 0) - (server.bytesEchoed ?? 0),
      reset: server.resetAtStop ?? 0,
    }),
  );
}

/** How an overlapped model receives, for the start line; nothing for the others. */
function describeReceives(server: EchoService, bufferSize: number | undefined): string {
  if (server.pooled === undefined) return '';
  if (server.pooled) return ', pooled receives';
  return `, a ${bufferSize ?? ECHO_DEFAULTS.bufferSize}-byte buffer per connection`;
}

/** The model part of the start-up line, saying what the model really is on this engine. */
function describeModel(model: EchoModel, server: EchoService): string {
  if (server instanceof BlockingEchoServer) {
    return server.mode === 'descriptor'
      ? 'blocking model: a thread per client, blocking recv/send on its descriptor'
      : 'blocking model, proxied: a thread per client blocks in Atomics.wait while the main thread does its I/O (the node engine cannot hand a socket to a thread)';
  }
  if (server instanceof NonBlockingEchoServer) {
    return `nonblocking model: sweeps every socket, sleeping ${server.sweepIntervalMs} ms after an idle sweep`;
  }
  return `${model} model`;
}
