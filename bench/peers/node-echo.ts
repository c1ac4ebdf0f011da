/**
 * Plain `node:net` echo server: the baseline peer the benchmarks compare against.
 *
 * Usage: node dist/bench/peers/node-echo.js [--port <n>] [--host <addr>]
 * Prints `listening <port>` on stdout once bound (port 0 picks a free port).
 */
import { createServer } from 'node:net';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? process.argv[i + 1] : undefined;
  return value ?? fallback;
}

const host = flag('--host', '127.0.0.1');
const port = Number(flag('--port', '0'));
if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
  console.error(`node-echo: --port must be a whole number from 0 to 65535`);
  process.exit(2);
}

const server = createServer((socket) => {
  // A peer resetting mid-echo is normal under load; just drop that connection.
  socket.on('error', () => socket.destroy());
  socket.on('data', (data) => socket.write(data));
});
server.on('error', (err) => {
  console.error(`node-echo: ${err.message}`);
  process.exit(1);
});
server.listen({ host, port, backlog: 4096 }, () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(`listening ${bound}\n`);
});
