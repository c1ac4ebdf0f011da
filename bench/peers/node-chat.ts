/**
 * Plain `node:net` chat relay: the peer `overlapped chat` is compared with
 * in bench/chat-bench.ts. The same protocol core as docs/chat.md (welcome
 * and join lines, `name: line` to every other client, 1024-byte lines), the
 * way a Node programmer writes it: a Set of sockets, a buffer per client,
 * one `write` per receiver. A client whose socket buffers more than 256 KiB
 * is destroyed, as the relay's queue cap does.
 *
 * Usage: node dist/bench/peers/node-chat.js [--port <n>] [--host <addr>]
 * Prints `listening <port>` on stdout once bound.
 */
import { createServer, type Socket } from 'node:net';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return (i >= 0 ? process.argv[i + 1] : undefined) ?? fallback;
}

const host = flag('--host', '127.0.0.1');
const port = Number(flag('--port', '0'));
const MAX_LINE = 1024;
const MAX_QUEUE = 256 * 1024;
const clients = new Set<Socket>();
let guests = 0;

function relay(from: Socket | null, line: Buffer): void {
  for (const c of clients) {
    if (c === from) continue;
    c.write(line);
    if (c.writableLength > MAX_QUEUE) c.destroy();
  }
}

const server = createServer((socket) => {
  socket.setNoDelay(true);
  const name = `guest${++guests}`;
  let pending = '';
  clients.add(socket);
  socket.write(`* welcome, you are ${name}\n`);
  relay(socket, Buffer.from(`* ${name} joined\n`));
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    let data = pending + text;
    let nl = data.indexOf('\n');
    while (nl !== -1) {
      const line = data.slice(0, Math.min(nl, MAX_LINE)).replace(/\r$/, '');
      if (line.length > 0) relay(socket, Buffer.from(`${name}: ${line}\n`));
      data = data.slice(nl + 1);
      nl = data.indexOf('\n');
    }
    pending = data.slice(0, MAX_LINE);
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    clients.delete(socket);
    relay(null, Buffer.from(`* ${name} left\n`));
  });
});
server.on('error', (err) => {
  console.error(`node-chat: ${err.message}`);
  process.exit(1);
});
server.listen({ host, port, backlog: 4096 }, () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(`listening ${bound}\n`);
});
process.on('SIGTERM', () => process.exit(0));
