/**
 * A worker process of {@link ClusteredSessionServer} (the node engine's
 * "every core"): its own engine and port, a `SessionServer` listening on the
 * port the cluster shares (the primary owns the listening socket and hands
 * connections to workers in turn: cluster's round-robin scheduling).
 *
 * Messages between processes travel over the cluster's IPC channel, each
 * message copied into the receiving process (processes share no memory):
 * a broadcast costs one copy per process, not one per session.
 */
import { readFileSync } from 'node:fs';
import { chooseEngine } from '../engines/select.js';
import { SessionServer, type SessionServerOptions } from '../servers/session/session-server.js';
import {
  globalKey,
  localKeyOf,
  type ThreadContext,
  type ThreadHandlersFactory,
  threadOf,
  workerHandlers,
} from './thread-protocol.js';

export interface ClusterWorkerSetup {
  thread: number;
  threads: number;
  host: string;
  port: number;
  handlers: string;
  handlerOptions: unknown;
  session: Omit<SessionServerOptions, 'engine' | 'handlers' | 'onError'>;
}

/** Primary ↔ worker messages (IPC, JSON: bytes as base64). */
export type ClusterMessage =
  | { kind: 'listening'; port: number }
  | { kind: 'broadcast'; bytes: string; except: number }
  | { kind: 'send'; key: number; bytes: string }
  | { kind: 'stop'; deadlineMs: number }
  | { kind: 'failed'; message: string; stack: string }
  | { kind: 'stopped'; drained: number; reset: number; accepted: number; cpuMicros: number };

const setup = JSON.parse(process.env.OVERLAPPED_CLUSTER_SETUP ?? 'null') as ClusterWorkerSetup;
if (setup === null || process.send === undefined) {
  throw new Error('cluster-worker.js runs only as a worker of ClusteredSessionServer');
}
const toPrimary = (message: ClusterMessage) => process.send?.(message);
const engine = chooseEngine('node').engine;
const FROM_PRIMARY = Symbol('from-primary');

const factory = ((await import(setup.handlers)) as { default: ThreadHandlersFactory }).default;
let server: SessionServer | undefined;
const context: ThreadContext = {
  thread: setup.thread,
  threads: setup.threads,
  get server() {
    return server as SessionServer;
  },
  options: setup.handlerOptions,
  globalKey: (session) => globalKey(session.key, setup.thread),
  broadcast(bytes, except = -1) {
    const shared = Buffer.from(bytes);
    localBroadcast(shared, except);
    if (setup.threads > 1)
      toPrimary({ kind: 'broadcast', bytes: shared.toString('base64'), except });
  },
  sendTo(key, bytes) {
    if (threadOf(key) === setup.thread) server?.get(localKeyOf(key))?.send(bytes);
    else toPrimary({ kind: 'send', key, bytes: Buffer.from(bytes).toString('base64') });
  },
};
const handlers = factory(context);

function localBroadcast(bytes: Uint8Array, except: number): void {
  const skip = threadOf(except) === setup.thread ? localKeyOf(except) : -1;
  server?.broadcast(bytes, skip < 0 ? undefined : (s) => s.key !== skip);
}

server = await SessionServer.start({
  ...setup.session,
  engine,
  // Shared: the cluster primary holds the one listening socket for every worker.
  sharedListener: true,
  host: setup.host,
  port: setup.port,
  handlers: workerHandlers(handlers, FROM_PRIMARY, (value) => {
    const message = value as ClusterMessage;
    if (message.kind === 'broadcast') {
      localBroadcast(Buffer.from(message.bytes, 'base64'), message.except);
    } else if (message.kind === 'send') {
      server?.get(message.key)?.send(Buffer.from(message.bytes, 'base64'));
    } else if (message.kind === 'stop') {
      server?.stop({ deadlineMs: message.deadlineMs }).then(reportStopped);
    }
  }),
});
toPrimary({ kind: 'listening', port: server.address.port });

let reported = false;
function reportStopped(report: { drained: number; reset: number }): void {
  if (reported) return;
  reported = true;
  toPrimary({
    kind: 'stopped',
    ...report,
    accepted: server?.stats.accepted ?? 0,
    cpuMicros: processCpuMicros(),
  });
  process.disconnect?.();
}

function processCpuMicros(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    const cpu = process.cpuUsage();
    return cpu.user + cpu.system;
  }
}

/** As in a worker thread: say so, reset every session, report, end. */
process.on('uncaughtException', (error) => {
  if (reported) return;
  toPrimary({ kind: 'failed', message: error.message, stack: error.stack ?? error.message });
  server?.destroy().then(reportStopped);
});

process.on('message', (message: ClusterMessage) => {
  if (server !== undefined && (!server.stopping || message.kind === 'stop')) {
    server.post(FROM_PRIMARY, message);
  }
});
