import { createInterface } from 'node:readline';
import { Command, Option } from 'commander';
import { OverlappedError } from '../core/errors.js';
import { MAX_MESSAGE_LIMIT, PIPE_MODES, type PipeMode } from '../core/pipe-connection.js';
import { chooseEngine, type EngineName } from '../engines/select.js';
import { PipeClient } from '../servers/pipe/pipe-client.js';
import { PIPE_DEFAULTS, PipeServer } from '../servers/pipe/pipe-server.js';
import { createLoggers, type LogFlags, logOptions, logStart, plural } from './logging.js';
import { serveMetrics } from './metrics-flag.js';
import {
  engineOption,
  type MetricsFlag,
  metricsOption,
  quietOption,
  timeoutOption,
} from './server-options.js';
import { stopOnSignal } from './stop-on-signal.js';
import { parseIntegerFlag, UserError } from './user-error.js';

interface PipeServerFlags extends LogFlags {
  metrics?: MetricsFlag;
  name: string;
  instances?: number;
  maxMessage: number;
  mode: PipeMode;
  fileMode: number;
  engine?: string;
  idleTimeout: number;
  readTimeout: number;
  writeTimeout: number;
}

interface PipeClientFlags {
  name: string;
  timeout: number;
  mode: PipeMode;
  maxMessage: number;
  engine?: EngineName;
}

/** Parses an octal permission mode such as 600 or 0660. */
export function parseFileMode(value: string): number {
  if (!/^\s*0?[0-7]{3}\s*$/.test(value)) {
    throw new UserError(`--file-mode must be an octal permission mode such as 600, got '${value}'`);
  }
  return Number.parseInt(value.trim(), 8);
}

const modeOption = () =>
  new Option(
    '--mode <mode>',
    'pipe type and read mode: message (each write is one framed message, docs/pipes.md) or byte (a plain stream)',
  )
    .choices(PIPE_MODES)
    .default('message');

const maxMessageOption = (what: string) =>
  new Option('--max-message <bytes>', what)
    .argParser((v: string) => parseIntegerFlag('--max-message', v, 1, MAX_MESSAGE_LIMIT))
    .default(PIPE_DEFAULTS.maxMessage);

/** What a pipe-client run was doing, for its error lines. */
interface ClientContext {
  mode: PipeMode;
  timeoutMs: number;
}

/**
 * Pipe errors the user can act on, as one line with exit code 1. For the
 * client (`context`), the lines name its flags rather than the API.
 */
function explainPipeError(err: unknown, context?: ClientContext): unknown {
  if (err instanceof OverlappedError) {
    if (context !== undefined) {
      if (err.code === 'OVL_ERR_PIPE_BUSY' && context.timeoutMs === 0) {
        return new UserError(
          "every instance of the pipe is busy: retry, wait for a free one with --timeout <ms>, or raise the server's --instances (OVL_ERR_PIPE_BUSY)",
          1,
        );
      }
      if (err.code === 'OVL_ERR_BROKEN_PIPE' && context.mode === 'byte') {
        return serverClosedByteMode();
      }
    }
    switch (err.code) {
      case 'OVL_ERR_PIPE_NAME_IN_USE':
      case 'OVL_ERR_PIPE_NOT_FOUND':
      case 'OVL_ERR_PIPE_BUSY':
      case 'OVL_ERR_BROKEN_PIPE':
      case 'OVL_ERR_MESSAGE_TOO_LARGE':
      case 'OVL_ERR_HANDLER_FAILED':
      case 'OVL_ERR_PIPE_PROTOCOL':
        return new UserError(`${err.message} (${err.code})`, 1);
      case 'OVL_ERR_INVALID_ARGUMENT':
      case 'OVL_ERR_ENGINE_UNAVAILABLE':
        return new UserError(err.message, 2);
      default:
        return err;
    }
  }
  const code = (err as { code?: string } | null)?.code;
  if (code === 'EACCES' || code === 'ENOENT' || code === 'ENOTDIR') {
    return new UserError(`${(err as Error).message} (${code}): check --name`, 1);
  }
  return err;
}

/**
 * A byte-mode server closed the pipe without a reply. A byte stream has no
 * way to say "busy", so that is what a busy byte-mode server does.
 */
function serverClosedByteMode(): UserError {
  return new UserError(
    'the server closed the pipe without replying: a byte-mode server does so when every instance is busy; retry later (OVL_ERR_BROKEN_PIPE)',
    1,
  );
}

/** `overlapped pipe-server`: the seeds' named-pipe server. */
export function createPipeServerCommand(): Command {
  const command = new Command('pipe-server')
    .description(
      'run the named-pipe request/reply server (completion routines in an alertable wait): ' +
        "each request gets the reply 'Default answer from server'",
    )
    .option(
      '--name <name>',
      'pipe name (a Unix socket under $XDG_RUNTIME_DIR/overlapped/ or <tmp>/overlapped-<uid>/; \\\\.\\pipe\\<name> on Windows) or a full path',
      PIPE_DEFAULTS.name,
    )
    .option(
      '--instances <n>',
      'instances served at once (default unlimited); clients past it are refused with OVL_ERR_PIPE_BUSY',
      (v: string) => parseIntegerFlag('--instances', v, 1, 1_000_000),
    )
    .addOption(
      maxMessageOption(
        'largest request; a client sending more gets OVL_ERR_MESSAGE_TOO_LARGE and is disconnected',
      ),
    )
    .addOption(modeOption())
    .addOption(
      new Option(
        '--file-mode <octal>',
        'permissions of the socket file (Unix), e.g. 660 to let your group connect (with a full --name path in a directory they can reach: the per-user directory is 0700)',
      )
        // Shown as octal, as it is typed: the number itself would print as 384.
        .default(PIPE_DEFAULTS.fileMode, PIPE_DEFAULTS.fileMode.toString(8))
        .argParser(parseFileMode),
    )
    .addOption(
      timeoutOption(
        '--idle-timeout',
        'close an instance that received nothing for this long while waiting for a request (0: off)',
        PIPE_DEFAULTS.idleTimeoutMs,
      ),
    )
    .addOption(
      timeoutOption(
        '--read-timeout',
        'close an instance whose request stops arriving: less than one read buffer (16 KiB) in one to two of these periods (0: off)',
        PIPE_DEFAULTS.readTimeoutMs,
      ),
    )
    .addOption(
      timeoutOption(
        '--write-timeout',
        'reset an instance whose client has not taken a reply after this long (0: off)',
        PIPE_DEFAULTS.writeTimeoutMs,
      ),
    )
    .addOption(engineOption())
    .addOption(quietOption())
    .addOption(metricsOption());
  for (const option of logOptions()) command.addOption(option);
  return command.action(async (flags: PipeServerFlags) => {
    await runPipeServer(flags);
  });
}

async function runPipeServer(flags: PipeServerFlags): Promise<void> {
  const { logger, connectionLogger: instanceLogger } = await createLoggers(flags);
  let server: PipeServer;
  let choice: ReturnType<typeof chooseEngine>;
  try {
    choice = chooseEngine(flags.engine);
    server = await PipeServer.start({
      engine: choice.engine,
      name: flags.name,
      mode: flags.mode,
      maxMessage: flags.maxMessage,
      fileMode: flags.fileMode,
      idleTimeoutMs: flags.idleTimeout,
      readTimeoutMs: flags.readTimeout,
      writeTimeoutMs: flags.writeTimeout,
      ...(flags.instances === undefined ? {} : { instances: flags.instances }),
      logger: instanceLogger,
    });
  } catch (err) {
    throw explainPipeError(err);
  }
  const instances = flags.instances ?? 'unlimited';
  logStart(logger, {
    what: 'pipe server',
    where: server.path,
    details: [
      `${flags.mode} mode, ${flags.instances === undefined ? 'unlimited instances' : plural(flags.instances, 'instance')}`,
    ],
    choice,
    fields: { path: server.path, mode: flags.mode, instances, maxMessage: flags.maxMessage },
  });
  const metrics = await serveMetrics(flags.metrics, logger);
  await stopOnSignal(
    logger,
    metrics.stopping(() => server.stop()),
    () => ({ instances: server.instances }),
    () => ({
      transactions: server.transactions,
      refused: server.refused,
      // What the process let go of: 0 after a clean drain.
      open: server.instances,
      reset: server.resetAtStop,
    }),
  );
}

/** `overlapped pipe-client`: sends requests to a pipe server and prints the replies. */
export function createPipeClientCommand(): Command {
  return new Command('pipe-client')
    .description(
      'connect to a pipe server: send each message as a request and print its reply, ' +
        'or with no messages send each stdin line as a request',
    )
    .argument('[message...]', 'requests to send, one after another')
    .option('--name <name>', 'pipe name or full path', PIPE_DEFAULTS.name)
    .option(
      '--timeout <ms>',
      'how long to wait while every instance is busy (WaitNamedPipe; message mode: a byte-mode server cannot say it is busy)',
      (v: string) => parseIntegerFlag('--timeout', v, 0, 3_600_000),
      0,
    )
    .addOption(modeOption())
    .addOption(maxMessageOption('largest reply accepted'))
    .addOption(engineOption())
    .action(async (messages: string[], flags: PipeClientFlags) => {
      const context: ClientContext = { mode: flags.mode, timeoutMs: flags.timeout };
      let client: PipeClient;
      try {
        client = await PipeClient.connect(flags.name, {
          engine: flags.engine,
          timeoutMs: flags.timeout,
          mode: flags.mode,
          maxMessage: flags.maxMessage,
        });
      } catch (err) {
        throw explainPipeError(err, context);
      }
      try {
        const send = async (message: string) => {
          const reply = await client.transact(message);
          // Byte mode: an empty read is end of stream, not a reply.
          if (flags.mode === 'byte' && reply.length === 0) throw serverClosedByteMode();
          process.stdout.write(`${reply.toString()}\n`);
        };
        if (messages.length > 0) {
          for (const message of messages) await send(message);
        } else {
          for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
            await send(line);
          }
        }
      } catch (err) {
        throw explainPipeError(err, context);
      } finally {
        client.close();
      }
    });
}
