/**
 * overlapped: I/O completion ports and the Winsock I/O models for Node.js.
 *
 * Every entry point takes `engine?: 'node' | 'uring' | Engine`; omitted, it
 * is this thread's engine (chosen once: `OVERLAPPED_ENGINE`, else the fastest
 * that works here). src/engines/select.ts resolves it, in one place.
 */
import type { Overlapped } from './core/overlapped.js';
import { type ListenOptions, TcpListener } from './core/tcp-listener.js';
import { type ConnectOptions, TcpSocket } from './core/tcp-socket.js';

export { type CompletionRoutine, pendingApcs, queueUserApc } from './core/apc.js';
export {
  Completion,
  CompletionPort,
  type CompletionPortOptions,
  type DequeueManyOptions,
  type DequeueOptions,
  PortWorker,
} from './core/completion-port.js';
export {
  AbortedError,
  ERROR_CODES,
  OsError,
  OverlappedError,
  type OverlappedErrorCode,
  UsageError,
  type Win32Error,
} from './core/errors.js';
export { AutoResetEvent, ManualResetEvent, WaitableEvent } from './core/events.js';
export { Handle } from './core/handle.js';
export { type Operation, Overlapped } from './core/overlapped.js';
export {
  CONTROL_FLAG,
  DEFAULT_MAX_MESSAGE,
  FRAME_HEADER_BYTES,
  MAX_MESSAGE_LIMIT,
  PipeConnection,
  type PipeConnectionOptions,
  type PipeConnectOptions,
  type PipeMode,
  READY,
} from './core/pipe-connection.js';
export {
  DEFAULT_PIPE_BACKLOG,
  DEFAULT_PIPE_FILE_MODE,
  PipeListener,
  type PipeListenOptions,
} from './core/pipe-listener.js';
export { DEFAULT_PIPE_NAME, pipeDirectory, resolvePipeName } from './core/pipe-name.js';
export { DEFAULT_PROXY_TIMEOUT_MS, type ProxyErrorHandler } from './core/proxy/proxy-acceptor.js';
export {
  type ProxyHeader,
  ProxyHeaderParser,
  type ProxyParseState,
  type ProxyProtocol,
  V1_MAX_BYTES,
  V2_MAX_BYTES,
} from './core/proxy/proxy-header.js';
export { DEFAULT_BACKLOG, type ListenOptions, TcpListener } from './core/tcp-listener.js';
export {
  type ConnectOptions,
  DEFAULT_MAX_PENDING_SEND_BYTES,
  type SocketOptions,
  TcpSocket,
} from './core/tcp-socket.js';
export {
  getOverlappedResult,
  INFINITE,
  MAXIMUM_WAIT_EVENTS,
  sleepEx,
  WAIT_IO_COMPLETION,
  WAIT_TIMEOUT,
  type WaitMultipleOptions,
  type WaitOptions,
  type WaitResult,
  waitForMultipleEvents,
  waitForSingleObject,
} from './core/waits.js';
export {
  type BlockingDescriptorIo,
  type BufferLease,
  type Endpoint,
  type Engine,
  type EngineName,
  type EngineOption,
  MAX_POOLED_RECV_BYTES,
  Readiness,
} from './engines/contract.js';

export {
  chooseEngine,
  defaultEngine,
  ENGINE_NAMES,
  type EngineChoice,
  resolveEngine,
} from './engines/select.js';
export {
  asyncSelect,
  createWindow,
  MessageWindow,
  type WindowMessage,
  type WindowProc,
  WM_USER,
  WSAGETSELECTERROR,
  WSAGETSELECTEVENT,
  WSAMAKESELECTREPLY,
} from './models/async-select.js';
export {
  type BlockingMode,
  type BlockingSocket,
  DEFAULT_MAX_THREADS,
  type ThreadPerConnectionOptions,
  ThreadPerConnectionServer,
} from './models/blocking.js';
export {
  createEvent,
  enumNetworkEvents,
  eventSelect,
  type NetworkEvents,
} from './models/event-select.js';
export { EventWaitSet } from './models/event-wait-set.js';
export {
  describeNetworkEvents,
  FD_ACCEPT,
  FD_CLOSE,
  FD_CONNECT,
  FD_OOB,
  FD_READ,
  FD_WRITE,
} from './models/network-events.js';
export {
  FIONBIO,
  type NonBlockingHandle,
  NonBlockingListener,
  NonBlockingSocket,
  setNonBlocking,
  WOULD_BLOCK,
} from './models/nonblocking.js';
export { FD_SETSIZE, FdSet, type SelectSets, select } from './models/select.js';
export { AsyncSelectEchoServer } from './servers/echo/async-select-echo-server.js';
export { BlockingEchoServer } from './servers/echo/blocking-echo-server.js';
export type { EchoService } from './servers/echo/echo-base.js';
export {
  ECHO_MODELS,
  type EchoModel,
  type EchoModelOptions,
  startEchoServer,
} from './servers/echo/echo-models.js';
export {
  ECHO_DEFAULTS,
  type EchoIo,
  EchoServer,
  type EchoServerOptions,
} from './servers/echo/echo-server.js';
export { EventSelectEchoServer } from './servers/echo/event-select-echo-server.js';
export { EventsEchoServer } from './servers/echo/events-echo-server.js';
export { NonBlockingEchoServer } from './servers/echo/nonblocking-echo-server.js';
export { RoutinesEchoServer } from './servers/echo/routines-echo-server.js';
export { SelectEchoServer } from './servers/echo/select-echo-server.js';

export {
  PipeClient,
  type PipeClientOptions,
  waitNamedPipe,
} from './servers/pipe/pipe-client.js';
export {
  PIPE_DEFAULTS,
  type PipeClientInfo,
  type PipeHandler,
  type PipeReply,
  PipeServer,
  type PipeServerOptions,
} from './servers/pipe/pipe-server.js';
export { KeyRegistry } from './servers/session/session-keys.js';
export {
  type CloseCode,
  type CloseReason,
  type QueuePolicy,
  SESSION_DEFAULTS,
  Session,
  type SessionHandlers,
  SessionServer,
  type SessionServerOptions,
  type SessionStats,
  type StopOptions as SessionStopOptions,
  type StopReport as SessionStopReport,
} from './servers/session/session-server.js';
export { ClusteredSessionServer } from './threads/clustered-session-server.js';
export { startSessionThreads } from './threads/start-session-threads.js';
export type { ThreadContext, ThreadHandlersFactory } from './threads/thread-protocol.js';
export {
  ThreadedSessionServer,
  type ThreadedSessionServerOptions,
  type ThreadedStopReport,
  type ThreadReport,
} from './threads/threaded-session-server.js';

/** `TcpListener.listen(options)`: binds and listens (engine: see {@link ListenOptions}). */
export function listenTcp(options: ListenOptions): Promise<TcpListener> {
  return TcpListener.listen(options);
}

/** `TcpSocket.connect(options, ov)`: starts a connection (ConnectEx). */
export function connectTcp(options: ConnectOptions, ov: Overlapped<unknown>): TcpSocket {
  return TcpSocket.connect(options, ov);
}
