/**
 * The connection handler of the blocking echo server, run in a thread of its
 * own: recv blocks until bytes arrive, send blocks until they are all
 * written back, and end of stream (recv returning 0) ends the connection.
 */
import type { BlockingSocket } from '../../models/blocking.js';

export interface BlockingEchoOptions {
  bufferSize: number;
}

export default function echo(socket: BlockingSocket, options: BlockingEchoOptions): void {
  const buffer = Buffer.allocUnsafe(options.bufferSize);
  for (;;) {
    const n = socket.recv(buffer);
    if (n === 0) return;
    socket.send(n === buffer.length ? buffer : buffer.subarray(0, n));
  }
}
