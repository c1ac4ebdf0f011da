import { Command, Option } from 'commander';
import { pino } from 'pino';
import { chooseEngine } from '../engines/select.js';
import { ECHO_DEFAULTS, type EchoService } from '../servers/echo/echo-base.js';
import { ECHO_MODELS, type EchoModel, startEchoServer } from '../servers/echo/echo-models.js';
import { explainOsError } from './os-error-hints.js';
import { engineOption, hostOption, quietOption } from './server-options.js';
import { stopOnSignal } from './stop-on-signal.js';
import { parseIntegerFlag, parsePortFlag } from './user-error.js';

interface EchoFlags {
  host: string;
  port: number;
  workers?: number;
  bufferSize: number;
  maxConnections: number;
  engine?: string;
  model: EchoModel;
  nagle?: boolean;
  quiet?: boolean;
  pooled?: boolean;
}

/** `overlapped echo`: the echo server of the seeds, in one of its three models. */
export function createEchoCommand(): Command {
  return new Command('echo')
    .description(
      'run the TCP echo server: every byte a client sends comes back; ' +
        'a client that closes its side is closed',
    )
    .addOption(hostOption('address to listen on (0.0.0.0 for every interface)', ECHO_DEFAULTS.host))
    .option(
      '--port <port>',
      'TCP port (0 picks a free one)',
      (v: string) => parsePortFlag(v),
      ECHO_DEFAULTS.port,
    )
    .addOption(
      new Option(
        '--model <model>',
        'how completions reach the server: a completion port and worker loops, ' +
          'event objects and wait loops (63 clients each), or completion routines in an alertable wait',
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
      '--buffer-size <bytes>',
      'receive buffer per connection (also the most a connection has in flight)',
      (v: string) => parseIntegerFlag('--buffer-size', v, 1, 16 * 1024 * 1024),
      ECHO_DEFAULTS.bufferSize,
    )
    .option(
      '--max-connections <n>',
      'connections served at once; clients past it are reset at once',
      (v: string) => parseIntegerFlag('--max-connections', v, 1, 1_000_000),
      ECHO_DEFAULTS.maxConnections,
    )
    .addOption(engineOption())
    .option(
      '--nagle',
      "leave Nagle's algorithm on (no TCP_NODELAY): fewer segments, but pieces of large echoes wait for the client's delayed ACK",
    )
    .option(
      '--pooled',
      'pooled receive mode: no buffer per connection, each recv borrows an 8 KiB pool buffer when data arrives',
    )
    .addOption(quietOption())
    .action(async (flags: EchoFlags) => {
      await runEcho(flags);
    });
}

async function runEcho(flags: EchoFlags): Promise<void> {
  const logger = pino({ base: { pid: process.pid } });
  // --quiet silences the per-connection lines only: the listening line carries the port.
  const connectionLogger = flags.quiet ? logger.child({}, { level: 'warn' }) : logger;
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
      bufferSize: flags.bufferSize,
      maxConnections: flags.maxConnections,
      noDelay: flags.nagle !== true,
      pooled: flags.pooled === true,
      logger: connectionLogger,
    });
  } catch (err) {
    throw explainOsError(err, flags.host, flags.port);
  }
  const { address, port } = server.address;
  logger.info(
    { address, port, model: flags.model, engine: choice.engine.name, bufferSize: flags.bufferSize },
    `echo server listening on ${address}:${port} (${flags.model} model; engine ${choice.engine.name}: ${choice.reason})`,
  );
  await stopOnSignal(
    logger,
    () => server.stop(),
    () => ({ connections: server.connections }),
  );
}
