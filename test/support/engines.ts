import net from 'node:net';
import { CompletionPort } from '../../src/core/completion-port.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import type { TcpSocket } from '../../src/core/tcp-socket.js';
import type { Engine } from '../../src/engines/contract.js';
import { chooseEngine, ENGINE_NAMES } from '../../src/engines/select.js';

export interface EngineUnderTest {
  readonly name: string;
  /** Set when the engine runs here. */
  readonly engine?: Engine;
  /** Why it cannot run here; the suite skips it with this reason. */
  readonly skip?: string;
}

/** Every engine the toolkit knows, each either loadable here or with the reason it is not. */
export function enginesUnderTest(): EngineUnderTest[] {
  return ENGINE_NAMES.map((name) => {
    try {
      return { name, engine: chooseEngine(name).engine };
    } catch (err) {
      return { name, skip: `engine '${name}' cannot run here: ${(err as Error).message}` };
    }
  });
}

/** A server-side socket under test, its port, and a plain node:net peer connected to it. */
export interface Pair {
  readonly port: CompletionPort<string, unknown>;
  readonly listener: TcpListener;
  readonly socket: TcpSocket;
  readonly peer: net.Socket;
  close(): void;
}

/** Waits for the next completion, failing the test instead of hanging. */
export async function next(port: CompletionPort<string, unknown>, timeoutMs = 5000) {
  const c = await port.dequeue({ timeoutMs });
  if (c === null) throw new Error(`no completion within ${timeoutMs} ms`);
  return c;
}

export async function openPair(engine: Engine, options: { maxPendingSendBytes?: number } = {}) {
  const port = new CompletionPort<string, unknown>({ concurrency: 1 });
  const listener = await TcpListener.listen({ engine, host: '127.0.0.1', port: 0, ...options });
  port.associate(listener, 'listener');
  const accept = new Overlapped();
  listener.accept(accept);
  const peer = net.connect({ host: '127.0.0.1', port: listener.address.port });
  peer.on('error', () => {});
  const c = await next(port);
  if (c.error !== null || accept.socket === null)
    throw c.error ?? new Error('accept gave no socket');
  const socket = accept.socket;
  port.associate(socket, 'socket');
  await new Promise<void>((resolve) => {
    if (peer.readyState === 'open') resolve();
    else peer.once('connect', () => resolve());
  });
  return {
    port,
    listener,
    socket,
    peer,
    close() {
      peer.destroy();
      socket.close();
      listener.close();
      port.close();
    },
  } satisfies Pair;
}

/** Reads from a node:net socket until `n` bytes arrived. */
export function readExactly(socket: net.Socket, n: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`only ${got} of ${n} bytes arrived within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) {
        cleanup();
        const all = Buffer.concat(chunks);
        if (all.length > n) socket.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
    };
    socket.on('data', onData);
    socket.resume();
  });
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
