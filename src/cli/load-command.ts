/**
 * `overlapped load`: drives an echo server with the closed-loop load generator and
 * prints what it measured.
 */
import { SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import {
  LoadConnectError,
  type LoadOptions,
  type LoadProgress,
  type LoadReport,
  runLoad,
} from '../load/load-generator.js';
import { hostOption } from './server-options.js';
import { parseIntegerFlag, parsePortFlag, UserError } from './user-error.js';

interface LoadFlags {
  host: string;
  port: number;
  conns: number;
  size: number;
  depth: number;
  duration: number;
  warmup: number;
  serverPid?: number;
  json?: boolean;
}

const MAX_SIZE = 16 * 1024 * 1024;
/** Linux's largest possible pid_max. */
const MAX_PID = 4_194_304;

const integer = (flag: string, min: number, max: number) => (value: string) =>
  parseIntegerFlag(flag, value, min, max);

export function createLoadCommand(): Command {
  return new Command('load')
    .description(
      'drive an echo server with a closed-loop load and report messages/s, MB/s, latency and errors',
    )
    .addOption(hostOption('server address', '127.0.0.1'))
    .addOption(
      new Option('--port <port>', 'server port')
        .default(5150)
        .argParser((value: string) => parsePortFlag(value, false)),
    )
    .addOption(
      new Option(
        '--conns <n>',
        'concurrent connections, all opened before the load starts (1-100000)',
      )
        .default(50)
        .argParser(integer('--conns', 1, 100_000)),
    )
    .addOption(
      new Option('--size <bytes>', 'bytes per message (1-16777216)')
        .default(64)
        .argParser(integer('--size', 1, MAX_SIZE)),
    )
    .addOption(
      new Option('--depth <n>', 'messages kept in flight on each connection (1-1024)')
        .default(1)
        .argParser(integer('--depth', 1, 1024)),
    )
    .addOption(
      new Option('--duration <seconds>', 'length of the measured window')
        .default(10)
        .argParser(integer('--duration', 1, 86_400)),
    )
    .addOption(
      new Option('--warmup <seconds>', 'load before the measured window, not counted')
        .default(0)
        .argParser(integer('--warmup', 0, 3600)),
    )
    .addOption(
      new Option(
        '--server-pid <pid>',
        "also report the server process's CPU time (user+system, from /proc) per message",
      ).argParser(integer('--server-pid', 1, MAX_PID)),
    )
    .addOption(new Option('--json', 'print the report as one JSON document on stdout'))
    .addHelpText(
      'after',
      `
Each connection keeps --depth messages of --size bytes in flight. A message counts
when all of its bytes have come back identical to what was sent; the next message
is sent only then. Data that differs is a mismatch and closes that connection; a
socket error or an unexpected close is an error. Latency runs from the write of a
message to the arrival of its last byte.

Server CPU time has a resolution of 10 ms: use windows of several seconds.
Ctrl-C stops the load early and still prints the report.
Exit code: 0 if the run was clean, 1 if any error or mismatch was counted or no
connection could be opened, 2 for a bad flag.`,
    )
    .action(async (_options: unknown, command: Command) => {
      await runLoadCommand(command.opts<LoadFlags>());
    });
}

async function runLoadCommand(flags: LoadFlags): Promise<void> {
  const options: LoadOptions = {
    host: flags.host,
    port: flags.port,
    conns: flags.conns,
    size: flags.size,
    depth: flags.depth,
    durationSec: flags.duration,
    warmupSec: flags.warmup,
    serverPid: flags.serverPid,
  };
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = !flags.json && process.stderr.isTTY ? progressLine(flags) : undefined;
  let report: LoadReport;
  try {
    report = await runLoad(options, {
      signal: controller.signal,
      onProgress: progress?.update,
    });
  } catch (err) {
    throw toUserError(err);
  } finally {
    progress?.stop();
    process.off('SIGINT', onSigint);
  }

  if (flags.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    process.stdout.write(formatReport(report, flags.warmup, interrupted));
  }
  if (report.errors > 0 || report.mismatches > 0) {
    throw new UserError(
      `the load counted ${report.errors} connection error(s) and ${report.mismatches} mismatch(es)`,
      1,
    );
  }
}

function toUserError(err: unknown): unknown {
  if (err instanceof LoadConnectError) {
    if (err.code === 'ECONNREFUSED') {
      return new UserError(
        `nothing is listening on ${err.host}:${err.port} (ECONNREFUSED): ` +
          'start `overlapped echo` first or check --host/--port',
        1,
      );
    }
    return new UserError(err.message, 1);
  }
  if (err instanceof RangeError) return new UserError(err.message, 2);
  return err;
}

/** A one-line progress bar on stderr, advancing with elapsed seconds. */
function progressLine(flags: LoadFlags): { update(p: LoadProgress): void; stop(): void } {
  const bar = new SingleBar({
    stream: process.stderr,
    format: 'load {phase} [{bar}] {value}/{total} s | {rate} msg/s | {messages} counted',
    barsize: 24,
    fps: 2,
    hideCursor: true,
    clearOnComplete: true,
  });
  const total = flags.warmup + flags.duration;
  bar.start(total, 0, { phase: 'connecting', rate: '-', messages: '0' });
  return {
    update: (p) =>
      bar.update(Math.min(total, Math.floor(p.elapsedSec)), {
        phase: p.phase.padEnd(10),
        rate: formatInteger(p.messagesPerSec),
        messages: formatInteger(p.messages),
      }),
    stop: () => bar.stop(),
  };
}

function formatInteger(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function formatReport(report: LoadReport, warmupSec: number, interrupted: boolean): string {
  const { latencyUs } = report;
  const rows: [string, string][] = [
    ['messages/s', formatInteger(report.messagesPerSec)],
    ['MB/s', report.mbPerSec.toFixed(2)],
    ['latency p50', `${formatInteger(latencyUs.p50)} µs`],
    ['latency p90', `${formatInteger(latencyUs.p90)} µs`],
    ['latency p99', `${formatInteger(latencyUs.p99)} µs`],
    ['latency max', `${formatInteger(latencyUs.max)} µs`],
    ['messages', formatInteger(report.messages)],
    ['errors', String(report.errors)],
    ['mismatches', String(report.mismatches)],
  ];
  if (report.serverCpuUs !== undefined) {
    const perMessage =
      report.serverCpuUsPerMessage === undefined
        ? ''
        : ` (${report.serverCpuUsPerMessage.toFixed(2)} µs/message)`;
    rows.push(['server CPU', `${(report.serverCpuUs / 1e6).toFixed(2)} s${perMessage}`]);
  }
  const header =
    `${report.conns} connection(s) × ${report.size} B, depth ${report.depth}, ` +
    `${report.host}:${report.port}: ${report.durationSec.toFixed(2)} s measured` +
    (warmupSec > 0 ? ` after ${warmupSec} s warm-up` : '') +
    (interrupted ? ' (stopped early by Ctrl-C)' : '');
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${header}\n${rows.map(([label, value]) => `  ${label.padEnd(width)}${value}`).join('\n')}\n`;
}
