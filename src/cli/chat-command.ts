import { Command } from 'commander';
import { chooseEngine } from '../engines/select.js';
import { CHAT_DEFAULTS, ChatServer } from '../servers/chat/chat-server.js';
import { createLoggers, type LogFlags, logOptions } from './logging.js';
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
import { describeThreads, refuseProxyWithThreads, startThreadsForCli } from './session-threads.js';
import { stopOnSignal } from './stop-on-signal.js';
import { parseIntegerFlag } from './user-error.js';

interface ChatFlags extends LogFlags, ProxyFlags {
  metrics?: MetricsFlag;
  host: string;
  port: number;
  maxQueue: number;
  maxLine: number;
  idleTimeout: number;
  writeTimeout: number;
  engine?: string;
  threads?: number;
}

/** `overlapped chat`: the line-based chat relay on the session framework (docs/chat.md). */
export function createChatCommand(): Command {
  const command = new Command('chat')
    .description(
      'run the chat relay: every line a client sends goes to every other client as "name: line"; ' +
        '/nick <name> renames, /quit leaves (docs/chat.md)',
    )
    .addOption(hostOption('address to listen on (0.0.0.0 for every interface)', CHAT_DEFAULTS.host))
    .addOption(portOption(CHAT_DEFAULTS.port))
    .option(
      '--max-queue <bytes>',
      'bytes queued for one client before it is cut off (a client that stops reading)',
      (v: string) => parseIntegerFlag('--max-queue', v, 1024, 1024 * 1024 * 1024),
      CHAT_DEFAULTS.maxQueuedBytes,
    )
    .option(
      '--max-line <bytes>',
      'longest line relayed; longer lines are cut there and the sender is told',
      (v: string) => parseIntegerFlag('--max-line', v, 16, 1024 * 1024),
      CHAT_DEFAULTS.maxLineBytes,
    )
    .addOption(
      timeoutOption(
        '--idle-timeout',
        'close a client that sent nothing and was sent nothing for this long (0: off)',
        CHAT_DEFAULTS.idleTimeoutMs,
      ),
    )
    .addOption(
      timeoutOption(
        '--write-timeout',
        'reset a client that takes no byte of what it is sent for this long (0: off)',
        CHAT_DEFAULTS.writeTimeoutMs,
      ),
    )
    .addOption(engineOption())
    .addOption(quietOption())
    .option(
      '--threads <n>',
      'an acceptor thread and n worker threads, each with its own engine and port; lines reach the clients of every worker (uring: threads; node: a cluster of processes)',
      (v: string) => parseIntegerFlag('--threads', v, 1, 64),
    );
  for (const option of [...proxyOptions(), metricsOption(), ...logOptions()]) {
    command.addOption(option);
  }
  return command.action(async (flags: ChatFlags) => {
    const proxy = proxyListenOptions(flags);
    if (flags.threads !== undefined) {
      refuseProxyWithThreads(flags.proxyProtocol, flags.metrics);
      await runThreadedChat({ ...flags, threads: flags.threads });
      return;
    }
    const { logger, connectionLogger: clientLogger } = await createLoggers(flags);
    let choice: ReturnType<typeof chooseEngine>;
    let server: ChatServer;
    try {
      choice = chooseEngine(flags.engine);
      server = await ChatServer.start({
        engine: choice.engine,
        host: flags.host,
        port: flags.port,
        maxQueuedBytes: flags.maxQueue,
        maxLineBytes: flags.maxLine,
        idleTimeoutMs: flags.idleTimeout,
        writeTimeoutMs: flags.writeTimeout,
        logger: clientLogger,
        ...proxy,
      });
    } catch (err) {
      throw explainOsError(err, flags.host, flags.port);
    }
    const { address, port } = server.address;
    logger.info(
      { address, port, engine: choice.engine.name, maxQueue: flags.maxQueue },
      `chat relay listening on ${address}:${port} (engine ${choice.engine.name}: ${choice.reason})`,
    );
    const metrics = await serveMetrics(flags.metrics, logger);
    await stopOnSignal(
      logger,
      metrics.stopping(() => server.stop()),
      () => ({ clients: server.clients }),
      () => ({ pending: server.clients }),
    );
  });
}

const CHAT_HANDLERS = new URL('../servers/chat/chat-thread-handlers.js', import.meta.url);

/** `overlapped chat --threads N` (src/threads/): sessions spread over N worker threads. */
async function runThreadedChat(flags: ChatFlags & { threads: number }): Promise<void> {
  const { logger } = await createLoggers(flags);
  const server = await startThreadsForCli(
    {
      threads: flags.threads,
      ...(flags.engine === undefined ? {} : { engine: flags.engine }),
      host: flags.host,
      port: flags.port,
      handlers: CHAT_HANDLERS,
      handlerOptions: { maxLineBytes: flags.maxLine },
      session: {
        maxQueuedBytes: flags.maxQueue,
        queuePolicy: 'disconnect',
        idleTimeoutMs: flags.idleTimeout,
        writeTimeoutMs: flags.writeTimeout,
      },
      onError: (err) => logger.error({ err }, err.message),
    },
    flags.host,
    flags.port,
  );
  const { address, port } = server.address;
  logger.info(
    { address, port, threads: flags.threads, maxQueue: flags.maxQueue },
    `chat relay listening on ${address}:${port} (${describeThreads(server, flags.threads)})`,
  );
  await stopOnSignal(
    logger,
    async () => {
      await server.stop({ deadlineMs: 5000 });
    },
    () => ({ workers: server.threads }),
  );
}
