import { Command } from 'commander';
import { pino } from 'pino';
import { chooseEngine } from '../engines/select.js';
import { CHAT_DEFAULTS, ChatServer } from '../servers/chat/chat-server.js';
import { explainOsError } from './os-error-hints.js';
import { engineOption, quietOption } from './server-options.js';
import { stopOnSignal } from './stop-on-signal.js';
import { parseIntegerFlag, parsePortFlag } from './user-error.js';

interface ChatFlags {
  host: string;
  port: number;
  maxQueue: number;
  maxLine: number;
  engine?: string;
  quiet?: boolean;
}

/** `overlapped chat`: the line-based chat relay on the session framework (docs/chat.md). */
export function createChatCommand(): Command {
  return new Command('chat')
    .description(
      'run the chat relay: every line a client sends goes to every other client as "name: line"; ' +
        '/nick <name> renames, /quit leaves (docs/chat.md)',
    )
    .option(
      '--host <host>',
      'address to listen on (0.0.0.0 for every interface)',
      CHAT_DEFAULTS.host,
    )
    .option(
      '--port <port>',
      'TCP port (0 picks a free one)',
      (v: string) => parsePortFlag(v),
      CHAT_DEFAULTS.port,
    )
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
    .addOption(engineOption())
    .addOption(quietOption())
    .action(async (flags: ChatFlags) => {
      const logger = pino({ base: { pid: process.pid } });
      const clientLogger = flags.quiet ? logger.child({}, { level: 'warn' }) : logger;
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
          logger: clientLogger,
        });
      } catch (err) {
        throw explainOsError(err, flags.host, flags.port);
      }
      const { address, port } = server.address;
      logger.info(
        { address, port, engine: choice.engine.name, maxQueue: flags.maxQueue },
        `chat relay listening on ${address}:${port} (engine ${choice.engine.name}: ${choice.reason})`,
      );
      await stopOnSignal(
        logger,
        () => server.stop(),
        () => ({ clients: server.clients }),
        () => ({ pending: server.clients }),
      );
    });
}
