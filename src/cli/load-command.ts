/**
 * `overlapped load`: drives an echo server with the closed-loop load generator and
 * prints what it measured.
 */
import { SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import { hostPort } from '../core/host-address.js';
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

The generator runs on plain node:net sockets, never on overlapped's own engines, so
the toolkit is never measured with itself (it has no --engine: choose the server's
with \`overlapped echo --engine\`).
Server CPU time has a resolution of 10 ms: use windows of several seconds.
Ctrl-C stops the load early and still prints the report of what was measured;
before the measured window it prints no report, only that nothing was measured
(--json: "stoppedEarly": true, with "stoppedIn" the phase).
Exit code: 0 if the run was clean, 1 if any error or mismatch was counted (the
first wrong byte is named), no message came back whole, nothing was measured,
or no connection could be opened; 2 for a bad flag.`,
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
  const onSigint = () => controller.abort();
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

  const measured = !(report.stoppedEarly && report.stoppedIn !== 'measuring');
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else if (measured && report.messages > 0) {
    // A run that measured nothing has no figures: a report of zeros would read as a result.
    // The verdict line below says what happened.
    process.stdout.write(formatReport(report, flags.warmup));
  }
  const failure = verdict(report);
  if (failure !== undefined) throw new UserError(failure, 1);
}

/** Why the run is a failure (exit 1), or undefined for a clean run. */
export function verdict(report: LoadReport): string | undefined {
  const where = hostPort(report.host, report.port);
  if (report.stoppedEarly && report.stoppedIn !== 'measuring') {
    const when = report.stoppedIn === 'warmup' ? 'during the warm-up' : 'while connecting';
    return `stopped by Ctrl-C ${when}: nothing was measured`;
  }
  const m = report.firstMismatch;
  if (report.mismatches > 0 && m !== undefined) {
    const got = `0x${m.actual.toString(16).padStart(2, '0')}`;
    const what =
      m.expected === undefined
        ? `an extra byte (${got}) beyond what was sent`
        : `0x${m.expected.toString(16).padStart(2, '0')} sent, ${got} came back`;
    return (
      `the echoes differed from what was sent on ${report.mismatches} connection(s): ` +
      `the first wrong byte is at offset ${m.offset} of message ${m.message} on connection ${m.connection} (${what})` +
      (report.errors > 0 ? `; also ${report.errors} connection error(s)` : '')
    );
  }
  if (report.errors > 0) {
    return `the load counted ${report.errors} connection error(s) (the server closed or reset them)`;
  }
  if (report.messages === 0) {
    const back =
      report.bytesReceived === 0
        ? 'no byte came back'
        : `only ${report.bytesReceived} byte(s) came back, never a whole message`;
    return `no message was echoed in ${report.durationSec.toFixed(2)} s measured (${back}): is ${where} an echo server?`;
  }
  return undefined;
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

function formatReport(report: LoadReport, warmupSec: number): string {
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
    (report.stoppedEarly ? ' (stopped early by Ctrl-C)' : '');
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${header}\n${rows.map(([label, value]) => `  ${label.padEnd(width)}${value}`).join('\n')}\n`;
}
