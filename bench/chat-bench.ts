/**
 * Chat fan-out benchmark (not a test): N clients in one room, each line to
 * N - 1 receivers. Runs `overlapped chat` on each engine and the plain
 * node:net peer (bench/peers/node-chat.ts) one after the other under the
 * same offered load, and reports delivered lines per second and server CPU
 * time per delivered line (user + system from /proc/<pid>/stat over the
 * measured window).
 *
 * The server is pinned to CPU 0 and this process (the clients) to CPU 1
 * with taskset, so they never compete for a core.
 *
 * Usage: node dist/bench/chat-bench.js [--clients 100] [--rate 10] [--seconds 5]
 *   --rate: lines per second each client sends (offered load = clients × rate lines/s in,
 *   × (clients - 1) deliveries out).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { readProcessCpuUs } from '../src/load/server-cpu.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const CLIENTS = flag('--clients', 100);
const RATE = flag('--rate', 10);
const SECONDS = flag('--seconds', 5);
const WARMUP_MS = 1000;
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PEER = fileURLToPath(new URL('./peers/node-chat.js', import.meta.url));

if (process.env.CHAT_BENCH_PINNED !== '1' && spawnSync('taskset', ['--version']).status === 0) {
  const r = spawnSync('taskset', ['-c', '1', process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, CHAT_BENCH_PINNED: '1' },
  });
  process.exit(r.status ?? 1);
}

interface Server {
  id: string;
  args: string[];
}

const SERVERS: Server[] = [
  { id: 'node-net peer', args: [PEER, '--port', '0'] },
  {
    id: 'overlapped chat (node)',
    args: [MAIN, 'chat', '--port', '0', '--quiet', '--engine', 'node'],
  },
  {
    id: 'overlapped chat (uring)',
    args: [MAIN, 'chat', '--port', '0', '--quiet', '--engine', 'uring'],
  },
];

function start(server: Server): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', '0', process.execPath, ...server.args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = out.match(/listening (\d+)\n/) ?? out.match(/"port":(\d+)/);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${server.id} exited (${code}): ${out}`)));
  });
}

async function run(server: Server) {
  const { child, port } = await start(server);
  const sockets: Socket[] = [];
  let delivered = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const s = connect({ host: '127.0.0.1', port });
    s.setNoDelay(true);
    s.on('data', (b: Buffer) => {
      let at = b.indexOf(10);
      while (at !== -1) {
        delivered++;
        at = b.indexOf(10, at + 1);
      }
    });
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('connect', () => r()));
    sockets.push(s);
  }
  await new Promise((r) => setTimeout(r, 300));
  const line = `${'x'.repeat(64)}\n`;
  // Every tick, a slice of the clients sends one line each: CLIENTS × RATE lines/s in all.
  const tickMs = 10;
  const perTick = (CLIENTS * RATE * tickMs) / 1000;
  let carry = 0;
  let next = 0;
  let sent = 0;
  const timer = setInterval(() => {
    carry += perTick;
    while (carry >= 1) {
      (sockets[next] as Socket).write(line);
      next = (next + 1) % CLIENTS;
      carry--;
      sent++;
    }
  }, tickMs);
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const pid = child.pid as number;
  const cpu0 = readProcessCpuUs(pid);
  const d0 = delivered;
  const s0 = sent;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cpu1 = readProcessCpuUs(pid);
  const d1 = delivered;
  const s1 = sent;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  for (const s of sockets) s.destroy();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  const lines = d1 - d0;
  const expected = (s1 - s0) * (CLIENTS - 1);
  return {
    id: server.id,
    linesIn: (s1 - s0) / elapsed,
    delivered: lines / elapsed,
    deliveredShare: lines / expected,
    cpuPct: ((cpu1 - cpu0) / 1e6 / elapsed) * 100,
    cpuUsPerLine: (cpu1 - cpu0) / lines,
  };
}

const results = [];
for (const server of SERVERS) results.push(await run(server));
const base = results[0]?.cpuUsPerLine ?? 1;
console.log(
  `chat fan-out: ${CLIENTS} clients, ${RATE} lines/s each (${CLIENTS * RATE} lines/s in, x${CLIENTS - 1} out), ${SECONDS} s window; server on CPU 0, clients on CPU 1\n`,
);
console.log(
  '| server | lines in/s | lines delivered/s | delivered / offered | server CPU % | CPU µs per delivered line | vs node-net |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  console.log(
    `| ${r.id} | ${r.linesIn.toFixed(0)} | ${r.delivered.toFixed(0)} | ${(r.deliveredShare * 100).toFixed(1)}% | ${r.cpuPct.toFixed(1)} | ${r.cpuUsPerLine.toFixed(3)} | ${(r.cpuUsPerLine / base).toFixed(2)}x |`,
  );
}
