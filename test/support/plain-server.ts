/**
 * A plain node:net server on 127.0.0.1 port 0 for load-generator tests: its
 * connections are served by `handle` (which also sees every open connection,
 * for servers that misbehave across them), and `close()` destroys them all.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';

export interface PlainServer {
  port: number;
  close(): Promise<void>;
}

export async function startPlainServer(
  handle: (socket: Socket, all: readonly Socket[]) => void,
): Promise<PlainServer> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      const i = sockets.indexOf(socket);
      if (i >= 0) sockets.splice(i, 1);
    });
    handle(socket, sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets.splice(0)) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
