/**
 * Echo benchmark: runs each server under test and the plain `node:net` peer one
 * after the other under the same closed-loop load, and reports messages/s, p99
 * latency and server CPU time per message, with CPU/message as a ratio to the peer.
 * Absolute numbers drift between machines and runs; the ratios are what to compare.
 *
 * The server is pinned to CPU 0 and the load generator (a separate process) to CPU 1
 * with taskset, so the two never compete for a core. Run `--help` for the flags.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { LoadOptions, LoadReport } from '../src/load/load-generator.js';

/** Repository root: this file runs as dist/bench/echo-bench.js. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = '127.0.0.1';
const BASELINE = 'node-net';
/** Above this share of its core the generator, not the server, may be what limits msgs/s. */
const GENERATOR_SATURATED_PERCENT = 90;

interface ServerSpec {
  id: string;
  /** Arguments to `node` that start the server listening on HOST:port. */
  args(port: number): string[];
}

/** `overlapped echo`, with extra flags (e.g. `--model <name>`) for variants. */
function overlappedEcho(...extra: string[]): ServerSpec['args'] {
  return (port) => [
    join(ROOT, 'dist/src/cli/main.js'),
    'echo',
    '--host',
    HOST,
    '--port',
    String(port),
    '--quiet',
    '--max-connections',
    '20000',
    ...extra,
  ];
}

/** Servers in report order; a variant is one more line, e.g. overlappedEcho('--model', 'iocp'). */
const SERVERS: ServerSpec[] = [
  { id: 'overlapped', args: overlappedEcho() },
  { id: 'overlapped-nagle', args: overlappedEcho('--nagle') },
  {
    id: BASELINE,
    args: (port) => [
      join(ROOT, 'dist/bench/peers/node-echo.js'),
      '--host',
      HOST,
      '--port',
      `${port}`,
    ],
  },
];

interface Scenario {
  id: string;
  conns: number;
  size: number;
  depth: number;
}

const SCENARIOS: Scenario[] = [
  { id: '50x64-d1', conns: 50, size: 64, depth: 1 },
  { id: '50x64-d16', conns: 50, size: 64, depth: 16 },
  { id: '1000x64-d1', conns: 1000, size: 64, depth: 1 },
  { id: '50x16k-d2', conns: 50, size: 16 * 1024, depth: 2 },
];

const USAGE = `usage: npm run bench:echo -- [flags]
  --duration <s>      measured seconds per run (default 5)
  --warmup <s>        uncounted seconds before each measured window (default 1)
  --scenarios <ids>   comma-separated, from: ${SCENARIOS.map((s) => s.id).join(', ')}
  --servers <ids>     comma-separated, from: ${SERVERS.map((s) => s.id).join(', ')}
  --repeat <n>        runs per cell; the table shows the median of each column (default 1)
  --json <file>       also write every run and the medians to <file>
Exit code 1 if a server failed or any run counted errors or mismatches.`;

interface BenchConfig {
  durationSec: number;
  warmupSec: number;
  repeat: number;
  scenarios: Scenario[];
  servers: ServerSpec[];
  jsonFile: string | undefined;
}

function fail(message: string): never {
  console.error(`echo-bench: ${message}`);
  process.exit(2);
}

function parseConfig(): BenchConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '1' },
        scenarios: { type: 'string' },
        servers: { type: 'string' },
        repeat: { type: 'string', default: '1' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (flag: string, min: number, max: number): number => {
    const n = Number(values[flag]);
    if (!Number.isFinite(n) || n < min || n > max) {
      fail(`--${flag} must be a number from ${min} to ${max}, got '${values[flag]}'`);
    }
    return n;
  };
  const pick = <T extends { id: string }>(flag: string, all: T[]): T[] => {
    const list = values[flag];
    if (typeof list !== 'string') return all;
    const ids = list
      .split(',')
      .map((id) => id.trim())
      .filter((id) => id !== '');
    const unknown = ids.filter((id) => !all.some((item) => item.id === id));
    if (unknown.length > 0 || ids.length === 0) {
      fail(
        `--${flag}: unknown '${unknown.join(',')}'; choose from ${all.map((i) => i.id).join(', ')}`,
      );
    }
    return all.filter((item) => ids.includes(item.id));
  };
  const repeat = number('repeat', 1, 100);
  if (!Number.isInteger(repeat)) fail('--repeat must be a whole number');
  return {
    durationSec: number('duration', 0.1, 3600),
    warmupSec: number('warmup', 0, 600),
    repeat,
    scenarios: pick('scenarios', SCENARIOS),
    servers: pick('servers', SERVERS),
    jsonFile: typeof values.json === 'string' ? values.json : undefined,
  };
}

/** Spawns `node args` pinned to `cpu`; taskset execs node, so the child's pid is node's. */
function spawnNode(cpu: number | undefined, args: string[]): ChildProcess {
  const options = { stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[] };
  return cpu === undefined
    ? spawn(process.execPath, args, options)
    : spawn('taskset', ['-c', String(cpu), process.execPath, ...args], options);
}

/** Keeps the last `limit` characters a stream produced, for error messages. */
function tail(stream: NodeJS.ReadableStream | null, limit = 4000): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text.trim();
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A port that was free a moment ago (bound to 0, read, released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForListening(
  port: number,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr() || '(no stderr)'}`,
      );
    }
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`not listening on ${HOST}:${port} after 15 s: ${stderr() || '(no stderr)'}`);
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited(child);
  clearTimeout(killer);
}

async function runLoadProcess(cpu: number | undefined, options: LoadOptions): Promise<LoadReport> {
  const child = spawnNode(cpu, [join(ROOT, 'dist/bench/run-load.js'), JSON.stringify(options)]);
  const stdout = tail(child.stdout, 1_000_000);
  const stderr = tail(child.stderr);
  const limitMs = ((options.warmupSec ?? 0) + options.durationSec) * 1000 + 60_000;
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  await exited(child);
  clearTimeout(killer);
  if (child.exitCode !== 0) {
    throw new Error(`load generator failed (${child.exitCode ?? child.signalCode}): ${stderr()}`);
  }
  return JSON.parse(stdout()) as LoadReport;
}

interface Pinning {
  server: number | undefined;
  load: number | undefined;
}

/** One run of one server under one scenario. */
async function runCell(
  server: ServerSpec,
  scenario: Scenario,
  config: BenchConfig,
  pinning: Pinning,
): Promise<LoadReport> {
  const port = await freePort();
  const child = spawnNode(pinning.server, server.args(port));
  tail(child.stdout);
  const stderr = tail(child.stderr);
  try {
    await waitForListening(port, child, stderr);
    if (child.pid === undefined) throw new Error('has no pid');
    return await runLoadProcess(pinning.load, {
      host: HOST,
      port,
      conns: scenario.conns,
      size: scenario.size,
      depth: scenario.depth,
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      serverPid: child.pid,
    });
  } finally {
    await stopServer(child);
  }
}

interface CellSummary {
  server: string;
  runs: LoadReport[];
  failures: string[];
  median?: {
    messagesPerSec: number;
    p99Us: number;
    serverCpuUsPerMessage: number | undefined;
    generatorCpuPercent: number | undefined;
  };
  errors: number;
  mismatches: number;
  cpuPerMessageVsBaseline?: number;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function summarize(server: string, runs: LoadReport[], failures: string[]): CellSummary {
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const summary: CellSummary = {
    server,
    runs,
    failures,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    mismatches: runs.reduce((sum, r) => sum + r.mismatches, 0),
  };
  if (runs.length > 0) {
    summary.median = {
      messagesPerSec: median(runs.map((r) => r.messagesPerSec)) as number,
      p99Us: median(runs.map((r) => r.latencyUs.p99)) as number,
      serverCpuUsPerMessage: median(defined(runs.map((r) => r.serverCpuUsPerMessage))),
      generatorCpuPercent: median(
        defined(
          runs.map((r) =>
            r.generatorCpuUs === undefined || r.durationSec === 0
              ? undefined
              : r.generatorCpuUs / (r.durationSec * 1e4),
          ),
        ),
      ),
    };
  }
  return summary;
}

/** Plain fixed-width table: first column left-aligned, the others right-aligned. */
function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((row) => (row[c] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].map((l) => `  ${l}`).join('\n');
}

const integer = (n: number) => Math.round(n).toLocaleString('en-US');

function describeScenario(s: Scenario): string {
  const size = s.size >= 1024 && s.size % 1024 === 0 ? `${s.size / 1024} KiB` : `${s.size} B`;
  return `${s.conns} conns × ${size}, depth ${s.depth}`;
}

function scenarioTable(cells: CellSummary[]): string {
  const header = [
    'server',
    'msgs/s',
    'p99 µs',
    'CPU µs/msg',
    `vs ${BASELINE}`,
    'load gen CPU',
    'errors',
    'mismatches',
  ];
  const rows = cells.map((cell) => {
    if (cell.median === undefined) {
      return [cell.server, `FAILED: ${cell.failures[0] ?? 'no run completed'}`];
    }
    const m = cell.median;
    const flagged = cell.errors > 0 || cell.mismatches > 0 || cell.failures.length > 0;
    return [
      cell.server,
      integer(m.messagesPerSec),
      integer(m.p99Us),
      m.serverCpuUsPerMessage === undefined ? '-' : m.serverCpuUsPerMessage.toFixed(2),
      cell.cpuPerMessageVsBaseline === undefined
        ? '-'
        : `${cell.cpuPerMessageVsBaseline.toFixed(2)}x`,
      m.generatorCpuPercent === undefined ? '-' : `${m.generatorCpuPercent.toFixed(0)}%`,
      String(cell.errors),
      String(cell.mismatches) + (flagged ? '  << INVALID' : ''),
    ];
  });
  return formatTable(header, rows);
}

async function main(): Promise<void> {
  const config = parseConfig();
  const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const pinned = hasTaskset && availableParallelism() >= 2;
  const pinning: Pinning = pinned ? { server: 0, load: 1 } : { server: undefined, load: undefined };
  if (!pinned) {
    console.warn(
      `echo-bench: WARNING: running unpinned (${hasTaskset ? 'fewer than 2 CPUs' : 'taskset not found'}): ` +
        'server and load generator share cores, so results are noisier',
    );
  }
  console.log(
    `echo-bench: ${config.durationSec} s measured after ${config.warmupSec} s warm-up, ` +
      `${config.repeat} run(s) per cell${config.repeat > 1 ? ' (medians shown)' : ''}; ` +
      `${pinned ? 'server on CPU 0, load generator on CPU 1' : 'unpinned'}; ` +
      `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
  );

  let invalid = false;
  const results: { scenario: Scenario; cells: CellSummary[] }[] = [];
  for (const scenario of config.scenarios) {
    const runs = new Map(config.servers.map((s) => [s.id, [] as LoadReport[]]));
    const failures = new Map(config.servers.map((s) => [s.id, [] as string[]]));
    for (let r = 0; r < config.repeat; r++) {
      // Alternate the order between repeats so that drift does not favour one server.
      const order = r % 2 === 0 ? config.servers : [...config.servers].reverse();
      for (const server of order) {
        process.stderr.write(`  ${scenario.id}: ${server.id} run ${r + 1}/${config.repeat}...\n`);
        try {
          runs.get(server.id)?.push(await runCell(server, scenario, config, pinning));
        } catch (err) {
          failures.get(server.id)?.push((err as Error).message);
          process.stderr.write(
            `  ${scenario.id}: ${server.id} failed: ${(err as Error).message}\n`,
          );
        }
      }
    }
    const cells = config.servers.map((s) =>
      summarize(s.id, runs.get(s.id) ?? [], failures.get(s.id) ?? []),
    );
    const baseline = cells.find((c) => c.server === BASELINE)?.median?.serverCpuUsPerMessage;
    for (const cell of cells) {
      const own = cell.median?.serverCpuUsPerMessage;
      if (own !== undefined && baseline !== undefined && baseline > 0) {
        cell.cpuPerMessageVsBaseline = own / baseline;
      }
      if (cell.errors > 0 || cell.mismatches > 0 || cell.failures.length > 0) invalid = true;
    }
    results.push({ scenario, cells });
    console.log(`\n${scenario.id}: ${describeScenario(scenario)}\n${scenarioTable(cells)}`);
  }

  if (config.jsonFile !== undefined) {
    mkdirSync(dirname(config.jsonFile), { recursive: true });
    const document = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model,
      cpuCount: availableParallelism(),
      pinned,
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      repeat: config.repeat,
      baseline: BASELINE,
      scenarios: results.map(({ scenario, cells }) => ({ ...scenario, results: cells })),
    };
    writeFileSync(config.jsonFile, `${JSON.stringify(document, null, 2)}\n`);
    console.log(`\nwrote ${config.jsonFile}`);
  }
  console.log(
    '\nCPU µs/msg: server user+system CPU (from /proc, 10 ms ticks) over the measured window ' +
      `per message; vs ${BASELINE}: that figure as a ratio to the plain node:net peer.`,
  );
  const saturated = results.some(({ cells }) =>
    cells.some((c) => (c.median?.generatorCpuPercent ?? 0) > GENERATOR_SATURATED_PERCENT),
  );
  if (saturated) {
    console.log(
      `Note: the load generator used over ${GENERATOR_SATURATED_PERCENT}% of its core in some cells, ` +
        'so msgs/s there may be capped by the generator; CPU µs/msg stays comparable.',
    );
  }
  if (invalid) {
    console.log(
      'RESULTS MARKED INVALID: a server failed to run, or a run counted errors or mismatches.',
    );
    process.exitCode = 1;
  }
}

await main();
