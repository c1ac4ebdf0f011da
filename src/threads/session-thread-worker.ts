/**
 * A session worker thread: its own engine, its own completion port (a
 * `SessionServer` without a listener), fed descriptors by the acceptor.
 *
 * Every message from the acceptor is posted to this thread's port
 * (PostQueuedCompletionStatus) and handled by the worker loop in order with
 * the I/O completions, so handlers never run concurrently with message
 * handling.
 */
import { readFileSync } from 'node:fs';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { TcpSocket } from '../core/tcp-socket.js';
import { chooseEngine } from '../engines/select.js';
import { SessionServer, type SessionServerOptions } from '../servers/session/session-server.js';
import {
  type FromWorker,
  globalKey,
  localKeyOf,
  shareBytes,
  type ThreadContext,
  type ThreadHandlersFactory,
  type ToWorker,
  threadOf,
  workerHandlers,
} from './thread-protocol.js';

interface WorkerSetup {
  thread: number;
  threads: number;
  engine: string;
  handlers: string;
  handlerOptions: unknown;
  session: Omit<SessionServerOptions, 'engine' | 'handlers' | 'onError'>;
}

if (parentPort === null) throw new Error('session-thread-worker.js runs only as a worker thread');
const port: MessagePort = parentPort;
const setup = workerData as WorkerSetup;
const engine = chooseEngine(setup.engine).engine;
/** Marks the acceptor's messages among the packets of this thread's port. */
const FROM_ACCEPTOR = Symbol('from-acceptor');
const send = (message: FromWorker) => port.postMessage(message);

const factory = ((await import(setup.handlers)) as { default: ThreadHandlersFactory }).default;
let server: SessionServer;
const context: ThreadContext = {
  thread: setup.thread,
  threads: setup.threads,
  get server() {
    return server;
  },
  options: setup.handlerOptions,
  globalKey: (session) => globalKey(session.key, setup.thread),
  broadcast(bytes, except = -1) {
    const shared = shareBytes(bytes);
    localBroadcast(shared, except);
    if (setup.threads > 1) send({ kind: 'broadcast', bytes: shared, except });
  },
  sendTo(key, bytes) {
    if (threadOf(key) === setup.thread) server.get(localKeyOf(key))?.send(bytes);
    else send({ kind: 'send', key, bytes: shareBytes(bytes) });
  },
};
const handlers = factory(context);

function localBroadcast(bytes: Uint8Array, except: number): void {
  const skip = threadOf(except) === setup.thread ? localKeyOf(except) : -1;
  server.broadcast(bytes, skip < 0 ? undefined : (s) => s.key !== skip);
}

server = SessionServer.withoutListener({
  ...setup.session,
  engine,
  handlers: workerHandlers(handlers, FROM_ACCEPTOR, (value) => {
    const message = value as ToWorker;
    switch (message.kind) {
      case 'adopt': {
        const socket = TcpSocket.adopt(engine, message.fd, {
          maxPendingSendBytes: server.maxQueuedBytes,
          noDelay: setup.session.noDelay ?? true,
        });
        server.adopt(socket);
        break;
      }
      case 'broadcast':
        localBroadcast(message.bytes, message.except);
        break;
      case 'send':
        server.get(message.key)?.send(message.bytes);
        break;
      case 'post':
        handlers.onPost?.call(handlers, message.key, message.value);
        break;
      case 'stop':
        server.stop({ deadlineMs: message.deadlineMs }).then(reportStopped);
        break;
    }
  }),
  onError(error, session) {
    // Reported on the acceptor's side through the thread's error event only when uncaught;
    // a hook's error is this session's alone (it is reset), so stderr says it.
    process.stderr.write(
      `overlapped sessions thread ${setup.thread}: ${session === null ? '' : `session ${session.key}: `}${error.stack ?? error.message}\n`,
    );
  },
});

/**
 * This thread's CPU time (user + system), from /proc/thread-self/stat
 * (Linux; the thread reading it is the one measured); -1 elsewhere.
 * Node 20 has no per-thread cpuUsage.
 */
function threadCpuMicros(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name; clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return -1;
  }
}

let reported = false;
function reportStopped(report: { drained: number; reset: number }): void {
  if (reported) return;
  reported = true;
  send({
    kind: 'stopped',
    ...report,
    accepted: server.stats.accepted,
    cpuMicros: threadCpuMicros(),
  });
  // The thread ends by itself once its engine has nothing in the kernel: descriptors of
  // sessions that just ended may still be closing (a multishot recv to retire first), and
  // terminating the thread now would leave them open, their clients waiting.
  port.unref();
}

/**
 * An uncaught exception would end the thread with its descriptors still
 * open (they belong to the process), and its clients would hang. So the
 * thread says it failed, resets every session (closing the descriptors),
 * reports, and the acceptor stops the server and ends the thread.
 */
process.on('uncaughtException', (error) => {
  if (server.stopping && reported) return;
  send({ kind: 'failed', message: error.message, stack: error.stack ?? error.message });
  server.destroy().then(reportStopped);
});

port.on('message', (message: ToWorker) => {
  if (!server.stopping || message.kind === 'stop') {
    server.post(FROM_ACCEPTOR, message);
  } else if (message.kind === 'adopt') {
    // Handed over while this thread stops: nobody will serve it.
    engine.blocking?.close(message.fd, true);
  }
});
