/**
 * The servers' logs: one pino logger per command, set up from the shared
 * flags, and the one start line every server prints.
 *
 * JSON lines (pino's own format) are for machines: log collectors, `jq`, the
 * tests. A person at a terminal gets one readable line per event through
 * pino-pretty, pino's own prettifier: the same records, so nothing differs
 * but the rendering. It runs in this thread as a synchronous stream (not as
 * a pino transport, which is a worker thread), so a line is written before
 * the call returns and none is lost when the process exits.
 */
import { Option } from 'commander';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { hostPort } from '../core/host-address.js';
import type { EngineChoice } from '../engines/select.js';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogFlags {
  logFormat?: LogFormat;
  logLevel: LogLevel;
  quiet?: boolean;
}

/** `--log-format` and `--log-level`, shared by every server command. */
export function logOptions(): Option[] {
  return [
    new Option(
      '--log-format <format>',
      'json: one JSON object per line (pino); pretty: one readable line per event (default: pretty on a terminal, else json)',
    ).choices(LOG_FORMATS),
    new Option('--log-level <level>', 'least severe level logged')
      .choices(LOG_LEVELS)
      .default('info'),
  ];
}

export interface ServerLoggers {
  /** Start, stop and warnings. */
  readonly logger: Logger;
  /** What the server logs per connection: `logger`, or warnings only under --quiet. */
  readonly connectionLogger: Logger;
}

/** The loggers `flags` ask for, writing to stdout. */
export async function createLoggers(flags: LogFlags): Promise<ServerLoggers> {
  const format = flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const options: LoggerOptions = { base: { pid: process.pid }, level: flags.logLevel };
  let logger: Logger;
  if (format === 'pretty') {
    // Loaded only when used: JSON logging (servers under supervisors) does not pay for it.
    const { default: pretty } = await import('pino-pretty');
    const stream: DestinationStream = pretty({
      sync: true,
      colorize: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
    });
    logger = pino(options, stream);
  } else {
    logger = pino(options);
  }
  // --quiet silences the per-connection lines only: the start line carries the address.
  const quietLevel = pino.levels.values.warn as number;
  const connectionLogger =
    flags.quiet && logger.levelVal < quietLevel ? logger.child({}, { level: 'warn' }) : logger;
  return { logger, connectionLogger };
}

/** `1 instance`, `2 instances`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/**
 * Logs a server's start line: `<what> listening on <where> (<details>;
 * engine <name>: <why>)`, with `fields` for machines. Every server says
 * which engine runs and why: npm hides an install script's output from the
 * projects that depend on this package, so this line is where a user learns
 * that the io_uring addon was not built, and why.
 */
export function logStart(
  logger: Logger,
  start: {
    what: string;
    /** A path, or an address and port (IPv6 in brackets, as in a URL). */
    where: string | { address: string; port: number };
    details: readonly string[];
    choice: EngineChoice;
    fields: Record<string, unknown>;
  },
): void {
  const where =
    typeof start.where === 'string' ? start.where : hostPort(start.where.address, start.where.port);
  const engine = `engine ${start.choice.engine.name}: ${start.choice.reason}`;
  logger.info(
    { ...start.fields, engine: start.choice.engine.name },
    `${start.what} listening on ${where} (${[...start.details, engine].join('; ')})`,
  );
}
