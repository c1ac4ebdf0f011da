/**
 * What one thread of the blocking model costs: the echo server's RSS growth per
 * connection thread, the time from connect to the first echo when a new thread
 * must start, and the same when a thread is reused. Runs the server in this
 * process (RSS read from /proc/self/status), on each engine that runs here.
 *
 * Usage: npm run bench:threads -- [--threads <n>] (default 32)
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { chooseEngine, ENGINE_NAMES } from '../src/engines/select.js';
import { BlockingEchoServer } from '../src/servers/echo/blocking-echo-server.js';

function rssBytes(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) * 1024;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Connects, sends one byte and waits for its echo: the milliseconds that took. */
async function firstEcho(port: number): Promise<{ socket: Socket; ms: number }> {
  const started = performance.now();
  const socket = await open(port);
  await new Promise<void>((resolve) => {
    socket.once('data', () => resolve());
    socket.write('x');
  });
  return { socket, ms: performance.now() - started };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const { values } = parseArgs({ options: { threads: { type: 'string' } } });
const threads = Number(values.threads ?? 32);
if (!Number.isSafeInteger(threads) || threads < 1 || threads > 1000) {
  console.error('thread-cost: --threads must be a whole number from 1 to 1000');
  process.exit(2);
}

for (const name of ENGINE_NAMES) {
  let engine: ReturnType<typeof chooseEngine>['engine'];
  try {
    engine = chooseEngine(name).engine;
  } catch (err) {
    console.log(`${name}: skipped (${(err as Error).message})`);
    continue;
  }
  const server = await BlockingEchoServer.start({
    engine,
    port: 0,
    maxThreads: threads,
  });
  const port = server.address.port;
  // Settle the heap first, so the growth measured is the threads'.
  await firstEcho(port).then(({ socket }) => socket.destroy());
  await new Promise((r) => setTimeout(r, 300));
  const before = rssBytes();
  const fresh: number[] = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < threads - 1; i++) {
    const { socket, ms } = await firstEcho(port);
    fresh.push(ms);
    sockets.push(socket);
  }
  await new Promise((r) => setTimeout(r, 300));
  const grown = (rssBytes() - before) / (threads - 1);
  for (const socket of sockets) socket.end();
  while (server.connections > 0) await new Promise((r) => setTimeout(r, 10));
  const reused: number[] = [];
  for (let i = 0; i < threads - 1; i++) {
    const { socket, ms } = await firstEcho(port);
    reused.push(ms);
    socket.end();
    while (server.connections > 0) await new Promise((r) => setTimeout(r, 2));
  }
  console.log(
    `${name} (${server.mode}): ${threads - 1} threads, RSS +${(grown / 1024 / 1024).toFixed(1)} MiB per thread; ` +
      `connect to first echo: ${median(fresh).toFixed(1)} ms with a new thread (median), ` +
      `${median(reused).toFixed(2)} ms with a reused one`,
  );
  await server.stop();
}
