/**
 * `overlapped echo --threads 1|2` against the single-loop completion-port
 * echo server (benchmark, not a test), all on the uring engine, under the
 * same `overlapped load`. Reports messages/s, server CPU per message, and
 * for the threaded servers each worker thread's share of the server's CPU
 * (from /proc/thread-self/stat in the thread, reported when it stops).
 *
 * Nothing is pinned: a threaded server is meant to use every core, and on a
 * 2-core machine the load generator needs one of them too, so this shows
 * whether both threads carry load, not how far throughput scales.
 *
 * Usage: node dist/bench/echo-threads-bench.js [--seconds 5] [--conns 50]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readProcessCpuUs } from '../src/load/server-cpu.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const SECONDS = flag('--seconds', 5);
const CONNS = flag('--conns', 50);
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const CONFIGS = [
  { id: 'echo (single loop)', args: ['echo', '--engine', 'uring', '--port', '0', '--quiet'] },
  { id: 'echo --threads 1', args: ['echo', '--engine', 'uring', '--port', '0', '--threads', '1'] },
  { id: 'echo --threads 2', args: ['echo', '--engine', 'uring', '--port', '0', '--threads', '2'] },
];

function collect(child: ReturnType<typeof spawn>): { text: () => string } {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  return { text: () => out };
}

async function run(config: (typeof CONFIGS)[number]) {
  const server = spawn(process.execPath, [MAIN, ...config.args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out = collect(server);
  while (!/"port":(\d+)/.test(out.text())) await new Promise((r) => setTimeout(r, 20));
  const port = Number((out.text().match(/"port":(\d+)/) as RegExpMatchArray)[1]);
  const pid = server.pid as number;
  const cpu0 = readProcessCpuUs(pid);
  const load = spawn(
    process.execPath,
    [
      MAIN,
      'load',
      '--port',
      String(port),
      '--conns',
      String(CONNS),
      '--size',
      '64',
      '--depth',
      '4',
      '--duration',
      String(SECONDS),
      '--warmup',
      '1',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const loadOut = collect(load);
  await new Promise((r) => load.once('exit', r));
  const cpu1 = readProcessCpuUs(pid);
  const result = JSON.parse(loadOut.text().trim().split('\n').pop() as string) as {
    messages: number;
    messagesPerSec: number;
    mismatches: number;
    errors: number;
  };
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await exited;
  const stopped = out
    .text()
    .split('\n')
    .find((l) => l.includes('threads stopped'));
  const threads = stopped
    ? (JSON.parse(stopped) as { threads: { cpuMs: number; sessions: number }[] }).threads
    : [];
  const serverCpuMs = cpu1 / 1000;
  return {
    id: config.id,
    msgs: result.messagesPerSec,
    mismatches: result.mismatches,
    errors: result.errors,
    cpuUsPerMsg: (cpu1 - cpu0) / result.messages,
    shares: threads.map(
      (t) => `${t.sessions} conns, ${((t.cpuMs / serverCpuMs) * 100).toFixed(0)}% of server CPU`,
    ),
  };
}

const rows = [];
for (const config of CONFIGS) rows.push(await run(config));
console.log(
  `echo on uring: ${CONNS} connections, 64 B messages, depth 4, ${SECONDS} s; unpinned on ${(
    await import('node:os')
  ).availableParallelism()} CPUs (the load generator shares them)\n`,
);
console.log(
  '| server | messages/s | mismatches | server CPU µs/msg | vs single loop | worker threads |',
);
console.log('| --- | ---: | ---: | ---: | ---: | --- |');
const base = rows[0]?.cpuUsPerMsg ?? 1;
for (const r of rows) {
  console.log(
    `| ${r.id} | ${r.msgs.toFixed(0)} | ${r.mismatches + r.errors} | ${r.cpuUsPerMsg.toFixed(2)} | ${(r.cpuUsPerMsg / base).toFixed(2)}x | ${r.shares.join('; ') || '-'} |`,
  );
}
