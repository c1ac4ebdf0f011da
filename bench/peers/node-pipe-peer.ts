/**
 * Plain `node:net` request/reply server on a Unix socket, with the pipe
 * framing of docs/pipes.md (4-byte big-endian length, then the payload; a
 * READY control frame on connect): the baseline peer of the pipe benchmark,
 * written the way a user would, with no tricks.
 *
 * Usage: node dist/bench/peers/node-pipe-peer.js --path <socket path>
 * Prints `listening <path>` once bound. Answers each request with the seeds'
 * `Default answer from server`, or echoes it with --echo.
 */
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:net';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const path = flag('--path');
if (path === undefined) {
  console.error('node-pipe-peer: --path <socket path> is required');
  process.exit(2);
}
const echo = process.argv.includes('--echo');
const ANSWER = Buffer.from('Default answer from server');
const READY = Buffer.from([0x80, 0, 0, 5, ...Buffer.from('READY')]);

function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}

const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.write(READY);
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      const request = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      socket.write(frame(echo ? request : ANSWER));
    }
  });
});
try {
  unlinkSync(path);
} catch {}
server.listen({ path, backlog: 4096 }, () => {
  process.stdout.write(`listening ${path}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
