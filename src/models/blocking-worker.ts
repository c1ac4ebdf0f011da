/**
 * A connection thread of the blocking model (./blocking.ts): loads the
 * handler module once, then serves the connections the acceptor hands it,
 * one at a time, each with a {@link BlockingSocket} that blocks this thread.
 * The acceptor closes the connection once told the handler is done.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { blockingDescriptorIo } from '../engines/select.js';
import { type BlockingSocket, DescriptorSocket, ProxiedSocket } from './blocking-socket.js';

type Handler = (socket: BlockingSocket, options: unknown) => void;

type Handoff =
  | { kind: 'descriptor'; fd: number; peer: string; progress: SharedArrayBuffer }
  | {
      kind: 'proxied';
      shared: SharedArrayBuffer;
      port: import('node:worker_threads').MessagePort;
      peer: string;
    };

const port = parentPort;
if (port === null)
  throw new Error('blocking-worker.js runs as a worker thread of the blocking model');
const { handler: handlerUrl, options } = workerData as { handler: string; options: unknown };
const handler = ((await import(handlerUrl)) as { default: Handler }).default;
if (typeof handler !== 'function') {
  throw new Error(`${handlerUrl} has no default export function (socket, options) => void`);
}

port.on('message', (handoff: Handoff) => {
  let proxyPort: import('node:worker_threads').MessagePort | null = null;
  try {
    let socket: BlockingSocket;
    if (handoff.kind === 'descriptor') {
      socket = new DescriptorSocket(
        handoff.fd,
        handoff.peer,
        blockingDescriptorIo(),
        handoff.progress,
      );
    } else {
      proxyPort = handoff.port;
      socket = new ProxiedSocket(handoff.shared, handoff.port, handoff.peer);
    }
    handler(socket, options);
  } catch (err) {
    port.postMessage({ kind: 'error', error: (err as Error).message });
  } finally {
    proxyPort?.close();
    port.postMessage({ kind: 'done' });
  }
});
