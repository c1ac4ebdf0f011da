/**
 * A client that streams 4 KiB messages of a checkable pattern at an echo
 * server until told to stop, and checks every byte that comes back.
 */
import type { Socket } from 'node:net';
import { ECHO_MODELS, type EchoModel } from '../../src/servers/echo/echo-models.js';

/** The echo models whose stop drains connections (lossless stop): all but the session framework's, tested on its own. */
export const DRAINING_MODELS: readonly EchoModel[] = ECHO_MODELS.filter((m) => m !== 'sessions');

/** The byte a client sends at `offset`: each client's stream is distinct and checkable. */
const patternByte = (client: number, offset: number) =>
  (offset * 31 + client * 7 + (offset >>> 12)) & 0xff;

export interface StreamingClient {
  socket: Socket;
  written: number;
  received: number;
  ended: boolean;
  error: Error | null;
  wrong: string | null;
  stopSending(): void;
}

/** Starts streaming on a connected socket; `id` makes its pattern its own. */
export function stream(socket: Socket, id: number): StreamingClient {
  const c: StreamingClient = {
    socket,
    written: 0,
    received: 0,
    ended: false,
    error: null,
    wrong: null,
    stopSending: () => {
      sending = false;
    },
  };
  let sending = true;
  const pump = () => {
    while (sending && socket.writableLength < 256 * 1024) {
      const msg = Buffer.allocUnsafe(4096);
      for (let i = 0; i < msg.length; i++) msg[i] = patternByte(id, c.written + i);
      c.written += msg.length;
      socket.write(msg);
    }
  };
  socket.on('drain', pump);
  socket.on('data', (d: Buffer) => {
    for (let i = 0; i < d.length && c.wrong === null; i++) {
      if (d[i] !== patternByte(id, c.received + i)) {
        c.wrong = `client ${id}: byte ${c.received + i} is ${d[i]}, expected ${patternByte(id, c.received + i)}`;
      }
    }
    c.received += d.length;
  });
  socket.on('end', () => {
    c.ended = true;
  });
  socket.on('error', (err) => {
    c.error = err;
  });
  pump();
  return c;
}
