/**
 * Pipe benchmark: the overlapped PipeServer and a plain `node:net` Unix-socket
 * request/reply peer (same framing), one after the other under the same
 * closed-loop load (one request in flight per client; both servers echo the
 * request). Reports round trips/s, p99 and server CPU µs per round trip,
 * with the CPU figure as a ratio to the peer. Server on CPU 0, load on CPU 1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { PipeLoadReport } from './pipe-load.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BASELINE = 'node-net';

const SERVERS: { id: string; args: (path: string) => string[] }[] = [
  {
    id: 'overlapped',
    args: (path) => [join(ROOT, 'dist/bench/peers/overlapped-pipe-echo.js'), '--path', path],
  },
  {
    id: BASELINE,
    args: (path) => [join(ROOT, 'dist/bench/peers/node-pipe-peer.js'), '--path', path, '--echo'],
  },
];

const SCENARIOS = [1, 16, 128].flatMap((clients) =>
  [64, 4096].map((size) => ({
    id: `${clients}x${size === 64 ? '64' : '4k'}`,
    clients,
    size,
  })),
);

const USAGE = `usage: npm run bench:pipe -- [--duration s] [--warmup s] [--repeat n] [--scenarios ids]
  scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}`;

function spawnNode(cpu: number | undefined, args: string[]): ChildProcess {
  const options = { stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[] };
  return cpu === undefined
    ? spawn(process.execPath, args, options)
    : spawn('taskset', ['-c', String(cpu), process.execPath, ...args], options);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function collect(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (s: string) => {
    text += s;
  });
  return () => text;
}

async function runCell(
  server: (typeof SERVERS)[number],
  scenario: (typeof SCENARIOS)[number],
  config: { durationSec: number; warmupSec: number },
  pin: { server?: number; load?: number },
): Promise<PipeLoadReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-bench-'));
  const path = join(dir, 'bench.sock');
  const child = spawnNode(pin.server, server.args(path));
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  try {
    const deadline = Date.now() + 15_000;
    while (!out().includes('listening')) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`${server.id} did not start: ${err()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const load = spawnNode(pin.load, [
      join(ROOT, 'dist/bench/pipe-load.js'),
      JSON.stringify({ path, ...scenario, ...config, serverPid: child.pid }),
    ]);
    const loadOut = collect(load.stdout);
    const loadErr = collect(load.stderr);
    await exited(load);
    if (load.exitCode !== 0) throw new Error(`load failed: ${loadErr()}`);
    return JSON.parse(loadOut()) as PipeLoadReport;
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited(child);
    clearTimeout(killer);
    if (server.id === 'overlapped' && existsSync(path)) {
      console.error('pipe-bench: the overlapped server left its socket file behind');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '4' },
      warmup: { type: 'string', default: '1' },
      repeat: { type: 'string', default: '1' },
      scenarios: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const config = { durationSec: Number(values.duration), warmupSec: Number(values.warmup) };
  const repeat = Number(values.repeat);
  if (
    !(config.durationSec > 0 && config.warmupSec >= 0 && Number.isInteger(repeat) && repeat >= 1)
  ) {
    console.error(`pipe-bench: bad --duration, --warmup or --repeat\n${USAGE}`);
    process.exit(2);
  }
  const wanted = values.scenarios?.split(',').map((s) => s.trim());
  const scenarios = wanted ? SCENARIOS.filter((s) => wanted.includes(s.id)) : SCENARIOS;
  const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const pinned = hasTaskset && availableParallelism() >= 2;
  const pin = pinned ? { server: 0, load: 1 } : {};
  console.log(
    `pipe-bench: ${config.durationSec} s measured after ${config.warmupSec} s warm-up, ${repeat} run(s) per cell` +
      `${repeat > 1 ? ' (medians)' : ''}; ${pinned ? 'server on CPU 0, load on CPU 1' : 'UNPINNED'}; ` +
      `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
  );
  const rows: string[][] = [];
  let invalid = false;
  for (const scenario of scenarios) {
    const runs = new Map(SERVERS.map((s) => [s.id, [] as PipeLoadReport[]]));
    for (let r = 0; r < repeat; r++) {
      const order = r % 2 === 0 ? SERVERS : [...SERVERS].reverse();
      for (const server of order) {
        process.stderr.write(`  ${scenario.id}: ${server.id} run ${r + 1}/${repeat}...\n`);
        runs.get(server.id)?.push(await runCell(server, scenario, config, pin));
      }
    }
    const summary = (id: string) => {
      const list = runs.get(id) ?? [];
      const errors = list.reduce((n, x) => n + x.errors, 0);
      if (errors > 0) invalid = true;
      return {
        rps: median(list.map((x) => x.roundTripsPerSec)),
        p99: median(list.map((x) => x.p99Us)),
        cpu: median(list.map((x) => x.serverCpuUsPerRoundTrip)),
        errors,
      };
    };
    const ours = summary('overlapped');
    const peer = summary(BASELINE);
    const ratio = ours.cpu / peer.cpu;
    rows.push([
      `${scenario.clients} × ${scenario.size === 64 ? '64 B' : '4 KiB'}`,
      Math.round(ours.rps).toLocaleString('en-US'),
      Math.round(peer.rps).toLocaleString('en-US'),
      `${(ours.p99 / 1000).toFixed(2)} ms`,
      `${(peer.p99 / 1000).toFixed(2)} ms`,
      `${ours.cpu.toFixed(2)} vs ${peer.cpu.toFixed(2)} (${ratio.toFixed(2)}x)${ratio > 1.3 ? ' OVER' : ''}`,
      String(ours.errors + peer.errors),
    ]);
    console.log(`  ${rows[rows.length - 1]?.join(' | ')}`);
  }
  const header = [
    'clients × size',
    'overlapped rt/s',
    'node:net rt/s',
    'overlapped p99',
    'node:net p99',
    'server CPU µs/rt, overlapped vs node:net',
    'errors',
  ];
  console.log(`\n| ${header.join(' | ')} |\n| ${header.map(() => '---').join(' | ')} |`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  console.log(
    '\nserver CPU µs/rt: user+system CPU of the server process (/proc, 10 ms ticks) over the measured window, per round trip; bar: at most 1.3x the node:net peer.',
  );
  if (invalid) {
    console.log('RESULTS MARKED INVALID: a run counted errors.');
    process.exitCode = 1;
  }
}

await main();
