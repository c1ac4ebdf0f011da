/**
 * Echo server on Bun's own socket API (`Bun.listen`): the `bun` peer of the echo
 * benchmark. Plain JavaScript because it runs under bun, not from dist/.
 *
 * Usage: bun bench/peers/bun-echo.js [--host <addr>] [--port <n>]
 * Prints `listening <port>` on stdout once bound (port 0 picks a free port).
 *
 * `socket.write` returns how many bytes the kernel took. What it did not take is kept
 * per connection and written from the `drain` handler; meanwhile the socket is paused
 * (where this Bun has `pause`), so a client that does not read its echoes is held back
 * by TCP flow control instead of growing the queue.
 */
/* global Bun */

function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  return (i >= 0 ? process.argv[i + 1] : undefined) ?? fallback;
}

const host = flag('--host', '127.0.0.1');
const port = Number(flag('--port', '0'));
if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
  console.error('bun-echo: --port must be a whole number from 0 to 65535');
  process.exit(2);
}

/**
 * Writes `bytes` (or as much as the socket takes) and keeps the rest in
 * `socket.data.pending`. A negative count means the socket is closed.
 */
function send(socket, bytes) {
  const written = socket.write(bytes);
  if (written < 0) {
    socket.end();
  } else if (written < bytes.length) {
    // Copy: Bun may reuse the buffer it handed to `data` once the handler returns.
    socket.data.pending = Buffer.from(bytes.subarray(written));
    socket.pause?.();
  }
}

const server = Bun.listen({
  hostname: host,
  port,
  socket: {
    open(socket) {
      socket.setNoDelay?.(true);
      socket.data = { pending: undefined };
    },
    data(socket, data) {
      const { pending } = socket.data;
      if (pending === undefined) {
        send(socket, data);
      } else {
        // Data that arrived before the pause took effect queues behind the rest.
        socket.data.pending = Buffer.concat([pending, data]);
      }
    },
    drain(socket) {
      const { pending } = socket.data;
      if (pending === undefined) return;
      socket.data.pending = undefined;
      send(socket, pending);
      if (socket.data.pending === undefined) socket.resume?.();
    },
    // A peer resetting mid-echo is normal under load; Bun closes the socket.
    error() {},
  },
});

process.stdout.write(`listening ${server.port}\n`);
