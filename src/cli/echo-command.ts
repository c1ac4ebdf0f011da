import { Command, Option } from 'commander';
import { chooseEngine } from '../engines/select.js';
import { ECHO_DEFAULTS, type EchoService } from '../servers/echo/echo-base.js';
import { ECHO_MODELS, type EchoModel, startEchoServer } from '../servers/echo/echo-models.js';
import { createLoggers, type LogFlags, logOptions, logStart } from './logging.js';
import { explainOsError } from './os-error-hints.js';
import { engineOption, hostOption, quietOption } from './server-options.js';
import { stopOnSignal } from './stop-on-signal.js';
import { parseIntegerFlag, parsePortFlag } from './user-error.js';

interface EchoFlags extends LogFlags {
  host: string;
  port: number;
  workers?: number;
  bufferSize: number;
  maxConnections: number;
  engine?: string;
  model: EchoModel;
  nagle?: boolean;
  pooled?: boolean;
}

/** `overlapped echo`: the echo server of the seeds, in one of its three models. */
export function createEchoCommand(): Command {
  const command = new Command('echo')
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
    .addOption(quietOption());
  for (const option of logOptions()) command.addOption(option);
  return command.action(async (flags: EchoFlags) => {
    await runEcho(flags);
  });
}

async function runEcho(flags: EchoFlags): Promise<void> {
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
  logStart(logger, {
    what: 'echo server',
    where: { address, port },
    details: [`${flags.model} model${flags.pooled ? ', pooled receives (--pooled)' : ''}`],
    choice,
    fields: {
      address,
      port,
      model: flags.model,
      bufferSize: flags.bufferSize,
      pooled: flags.pooled === true,
    },
  });
  await stopOnSignal(
    logger,
    () => server.stop(),
    () => ({ connections: server.connections }),
  );
}
