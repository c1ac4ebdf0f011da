/**
 * `overlapped report`: every I/O model on every engine, and the bench's peers,
 * under the same closed-loop load; writes results.json and a page of charts.
 *
 * The machinery (src/report/) is imported only when the command runs: it brings
 * in Vega and the echo bench's runner, which nothing else in the CLI needs. It
 * also needs the clone's bench/ (the C load generator and peers, built with cc),
 * which the published package does not ship, so the command says so in one line
 * there (docs/report.md: why the report is a development command).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ENGINE_NAMES } from '../engines/select.js';
import { DEFAULT_MAX_THREADS } from '../models/blocking.js';
import { ECHO_MODELS } from '../servers/echo/echo-models.js';
import { parseIntegerFlag, UserError } from './user-error.js';

/** The eight models of the seeds' table; `sessions` runs when named. */
const REPORT_MODELS = ECHO_MODELS.filter((m) => m !== 'sessions');

interface ReportFlags {
  quick?: boolean;
  out: string;
  engines: string[];
  models: string[];
  duration?: number;
  warmup?: number;
  maxThreads: number;
  peers?: string;
  from?: string;
}

/** `--from`: index.html again from a saved results.json, nothing run. */
async function redraw(from: string, outDir: string): Promise<void> {
  const { readResults } = await import('../report/results.js');
  let doc: Awaited<ReturnType<typeof readResults>>;
  try {
    doc = readResults(from);
  } catch (err) {
    throw new UserError(`--from ${from}: ${(err as Error).message}`, 1);
  }
  const { writePage } = await import('../report/report.js');
  process.stdout.write(`wrote ${await outputErrors(outDir, () => writePage(doc, outDir))}\n`);
}

/** `work`, with a directory or file that cannot be written turned into a one-line error. */
async function outputErrors<T>(outDir: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const { code, syscall } = err as NodeJS.ErrnoException;
    if (
      typeof code === 'string' &&
      typeof syscall === 'string' &&
      ['mkdir', 'access', 'open'].includes(syscall)
    ) {
      throw new UserError(`--out ${outDir}: cannot write there (${code}): choose another --out`, 1);
    }
    throw err;
  }
}

/** A comma-separated list of names from `known` (`all`: every one), or a one-line error. */
function nameList(flag: string, known: readonly string[]) {
  return (value: string): string[] => {
    const names = value
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '');
    if (names.length === 1 && names[0] === 'all') return [...known];
    const unknown = names.filter((n) => !known.includes(n));
    if (names.length === 0 || unknown.length > 0) {
      throw new UserError(
        `${flag}: unknown ${unknown.length > 0 ? `'${unknown.join(',')}'` : 'empty list'}; choose from ${known.join(', ')} (comma-separated) or all`,
      );
    }
    return [...new Set(names)];
  };
}

function seconds(flag: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new UserError(
        `${flag} must be a number of seconds from ${min} to ${max}, got '${value}'`,
      );
    }
    return n;
  };
}

export function createReportCommand(): Command {
  return new Command('report')
    .description(
      'run every I/O model on every engine, and the peers, under the same load; write results.json and index.html (charts). From a clone: npm run report',
    )
    .option(
      '--quick',
      'reduced grid (10 and 1,000 connections, 64 B and 64 KiB, 1 s windows): under 3 minutes',
    )
    .option('--out <dir>', 'directory for results.json and index.html', 'report')
    .option(
      '--from <results.json>',
      'run nothing: draw index.html in --out again from a saved results.json',
    )
    .addOption(
      new Option('--engines <list>', `engines, comma-separated: ${ENGINE_NAMES.join(', ')} or all`)
        .argParser(nameList('--engines', ENGINE_NAMES))
        .default([...ENGINE_NAMES], 'all'),
    )
    .addOption(
      new Option('--models <list>', `I/O models, comma-separated: ${ECHO_MODELS.join(', ')} or all`)
        .argParser(nameList('--models', ECHO_MODELS))
        .default(REPORT_MODELS, 'the eight of the seeds’ table'),
    )
    .option(
      '--duration <seconds>',
      'measured seconds per cell (default 3, --quick 1; fractions allowed)',
      seconds('--duration', 0.1, 600),
    )
    .option(
      '--warmup <seconds>',
      'uncounted load before each window (default 1, --quick 0.3)',
      seconds('--warmup', 0, 60),
    )
    .option(
      '--peers <list>',
      'peer servers to run beside the models, comma-separated ids (node-net, c-epoll, bun, …), all, or none (default all)',
    )
    .option(
      '--max-threads <n>',
      'the blocking model’s thread cap; larger connection counts are shown as not run',
      (v: string) => parseIntegerFlag('--max-threads', v, 1, 10_000),
      DEFAULT_MAX_THREADS,
    )
    .addHelpText(
      'after',
      '\nRuns from a clone of the repository (it builds bench/peers/*.c with cc and pins the server\n' +
        'and load to CPUs 0 and 1 with taskset). A full run states its expected length first\n' +
        '(about 21 minutes on 2 cores); see docs/report.md for what each chart shows.',
    )
    .action(async (flags: ReportFlags) => {
      if (flags.from !== undefined) {
        await redraw(flags.from, flags.out);
        return;
      }
      const runner = new URL('../../bench/echo-run.js', import.meta.url);
      if (!existsSync(fileURLToPath(runner))) {
        throw new UserError(
          'report runs from a clone of the repository: it needs bench/ (the C load generator and the peer servers), which the package does not ship; git clone the project, then npm install && npm run report',
          1,
        );
      }
      const { FULL_GRID, QUICK_GRID } = await import('../report/grid.js');
      const { runReport } = await import('../report/report.js');
      const { peerIds } = await import('../report/servers.js');
      // Peers are the bench catalogue's, known only once it is loaded.
      const peers =
        flags.peers === undefined
          ? undefined
          : flags.peers.trim() === 'none'
            ? []
            : nameList('--peers', peerIds())(flags.peers);
      const base = flags.quick ? QUICK_GRID : FULL_GRID;
      const grid = {
        ...base,
        ...(flags.duration === undefined ? {} : { durationSec: flags.duration }),
        ...(flags.warmup === undefined ? {} : { warmupSec: flags.warmup }),
      };
      const written = await outputErrors(flags.out, () =>
        runReport({
          quick: flags.quick === true,
          grid,
          engines: flags.engines as ('node' | 'uring')[],
          models: flags.models as (typeof ECHO_MODELS)[number][],
          maxThreads: flags.maxThreads,
          ...(peers === undefined ? {} : { peers }),
          outDir: flags.out,
          say: (line) => process.stderr.write(`${line}\n`),
        }),
      );
      process.stdout.write(`wrote ${written.json}\nwrote ${written.html}\n`);
    });
}
