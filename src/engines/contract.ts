/**
 * The engine contract: what every I/O engine provides, written down once.
 *
 * An engine turns posted operations into completions on one event loop.
 * `core/` talks to engines only through these interfaces; an engine never
 * imports `core/` model classes (only the error registry), `models/` or
 * `servers/`.
 *
 * ## Requests
 * Every operation is posted with a request object (core's `Overlapped`
 * implements {@link EngineRequest}). When the operation finishes, the engine
 * writes `bytes`, `error` and, for accept/connect, `result`, and hands the
 * request to the sink in a batch.
 *
 * ## Rules: every engine keeps all seven (the README lists them for users too)
 * 1. Each posted request completes exactly once, and never synchronously
 *    inside the call that posted it.
 * 2. A completion carries bytes transferred and an error (or null). A send
 *    that moved only part of its bytes says so in `bytes`; that alone is not
 *    an error.
 * 3. A buffer handed to an operation belongs to the engine until that
 *    request has been delivered to the sink.
 * 4. A recv that completes with 0 bytes and no error means end of stream.
 * 5. `cancel` and `close` complete every pending request of the handle with
 *    an `OVL_ERR_ABORTED` error (a send whose bytes the OS already took in
 *    full completes normally: it is too late to cancel, as on Windows).
 *    Nothing is left pending; nothing completes twice.
 * 6. No unbounded buffering: a stream holds at most {@link MAX_UNREAD_BYTES}
 *    (plus one read's worth) of received data that no recv asked for; past
 *    that it stops reading from the kernel until a recv is posted.
 * 7. Completions of one handle reach the sink in the order the OS completed
 *    them.
 *
 * ## Buffered sends
 * A send completes once its bytes are out of the caller's hands: taken by
 * the kernel, or copied by the engine, as Winsock's AFD copies a `WSASend`
 * into its own buffer and completes it before the bytes leave. An engine may
 * copy a send (the `uring` engine does, at most {@link SEND_BUFFER_BYTES} per
 * stream, so that pieces a handler echoes one after another leave together in
 * one kernel send); its bytes are then the engine's, and:
 * - they leave in order: before anything posted later, after everything
 *   posted earlier;
 * - `close(false)` sends them before the FIN (they linger as a send in
 *   flight does); `close(true)` drops them: the peer sees a reset, never a
 *   FIN after missing bytes;
 * - `cancel` does not touch them (too late, rule 5), and a send still
 *   pending never waits behind a cancel of them;
 * - failing to send them (the peer reset) is the stream's error, reported by
 *   the operations that follow, as Winsock reports it on the next call.
 * So a completed send says the engine will deliver the bytes unless the
 * connection fails, not that the peer has them; a graceful close is how to
 * wait for that.
 *
 * ## Pooled receive mode
 * `recvPooled` posts a recv without a buffer: the engine lends one from its
 * pool only when data arrives, so an idle connection holds no receive
 * buffer. The completion carries a {@link BufferLease} in `req.lease` (null
 * on 0 bytes or an error; no pool buffer is held then). The lease's buffer
 * belongs to the caller until `release()`, which returns it to the pool;
 * a lease never released is a pool buffer lost to the pool. When the pool
 * is empty the recv stays pending until a lease is released (it is not an
 * error); cancel and close abort it like any other recv.
 *
 * Sending from a lease's view is the zero-copy echo: an engine may buffer
 * such a send without copying it (the `uring` engine does for 2 KiB and
 * more), by keeping the pool buffer out of the pool until its bytes have
 * left, however early `release()` is called. So the view is read-only once
 * sent from: writing into it after posting the send, even after the send
 * completes, may change what the peer receives.
 *
 * ## Readiness and non-blocking attempts (the older Winsock models)
 * `select`, `WSAAsyncSelect`, `WSAEventSelect` and non-blocking sockets learn
 * that a socket *can* do I/O, then do it themselves without waiting. Two
 * primitives serve them, on streams and listeners alike:
 * - `poll(req, events)` is a posted operation like any other (rules 1, 5, 7
 *   hold): it completes once, as `IORING_OP_POLL_ADD` does, when one of
 *   `events` holds, with `req.bytes` set to the {@link Readiness} bits that
 *   hold at that moment (a subset of `events`, plus `ERROR` whenever it
 *   holds). It never completes synchronously, even when the socket is ready
 *   already.
 * - `tryRecv`, `trySend`, `tryAccept` move what can be moved now and return
 *   at once: never a posted operation, never a completion, never a wait.
 *   `WOULD_BLOCK` (null for `tryAccept`) means nothing could be moved. They
 *   throw the connection's `OsError` (ECONNRESET, EPIPE, EMFILE, …).
 *
 * A readiness report is a fact about one moment: by the time the caller acts
 * on it, another call may have taken the bytes, so a try-call after a
 * `READABLE` report may still return `WOULD_BLOCK` (a spurious wake-up, which
 * select(2) and Winsock allow too). A report is never *missed*: if the
 * condition holds when `poll` is posted or becomes true later, the poll
 * completes. Try-calls keep rule 7's order: `trySend` returns `WOULD_BLOCK`
 * while posted sends are pending, and `tryRecv` while a recv is posted (the
 * posted recv gets the bytes first). Received bytes the engine holds (rule 6)
 * are served by `tryRecv` before anything is read from the kernel.
 */

/**
 * Readiness bits of `poll` (the values of poll(2)'s POLLIN, POLLOUT, POLLERR,
 * POLLRDHUP, so the uring engine passes them through).
 */
export const Readiness = {
  /**
   * `tryRecv` would not return `WOULD_BLOCK`: bytes are there, or the peer's
   * end of stream, or an error. On a listener: a connection is waiting for
   * `tryAccept` (or accepting would fail at once, EMFILE).
   */
  READABLE: 0x1,
  /** `trySend` would take at least one byte, or fail at once. */
  WRITABLE: 0x4,
  /**
   * The connection failed (reset) or is closed in both directions: try-calls
   * throw its error or return end of stream. Reported whether asked for or not.
   */
  ERROR: 0x8,
  /**
   * The peer has ended its sending side (FIN seen; bytes before it may still
   * be unread). Reported only when asked for, as POLLRDHUP.
   */
  HANGUP: 0x2000,
} as const;

/** Returned by `tryRecv`/`trySend` when nothing could be moved now (EWOULDBLOCK / WSAEWOULDBLOCK). */
export const WOULD_BLOCK = -1;

/** The engines by name: `node` (portable, over node:net) and `uring` (Linux io_uring). */
export type EngineName = 'node' | 'uring';

/**
 * What every `engine:` option takes: a name (this thread's engine of that
 * kind, probed once, failing with `OVL_ERR_ENGINE_UNAVAILABLE` where it
 * cannot run), or an {@link Engine} itself. Omitted, it is this thread's
 * default engine. `src/engines/select.ts` resolves it.
 */
export type EngineOption = EngineName | Engine;

/** Upper bound on received bytes an engine holds that no recv has asked for (rule 6). */
export const MAX_UNREAD_BYTES = 64 * 1024;

/**
 * Upper bound on the bytes of completed sends an engine holds that the
 * kernel has not taken (see "Buffered sends"): past it, a send completes only
 * once the kernel has its bytes, so a peer that stops reading holds at most
 * this much of the engine's memory per connection.
 */
export const SEND_BUFFER_BYTES = 64 * 1024;

/**
 * Upper bound on the bytes one pooled recv completes with: no engine's pool
 * buffer is larger. `uring` lends 64 KiB buffers where the kernel shares one
 * between arrivals (6.12+) and 8 KiB ones elsewhere; `node` lends 8 KiB.
 */
export const MAX_POOLED_RECV_BYTES = 64 * 1024;

/** A pool buffer lent to a completed pooled recv (see "Pooled receive mode"). */
export interface BufferLease {
  /**
   * The received bytes: a view of the pool buffer, valid until `release()`;
   * read-only once a send from it is posted ("Pooled receive mode").
   */
  readonly view: Buffer;
  /**
   * Returns the buffer to the pool. Idempotent: a second call does nothing.
   * Reading `view` after this is a bug (the pool reuses the memory).
   */
  release(): void;
}

/** An operation record as the engine sees it. Written by the engine, read by core. */
export interface EngineRequest {
  /** Bytes transferred. Set by the engine before delivery. */
  bytes: number;
  /** The operation's error, or null. Set by the engine before delivery. */
  error: Error | null;
  /** accept/connect only: the connected stream. Set by the engine before delivery. */
  result: EngineStream | null;
  /** Pooled recv only: the lent buffer, or null. Set by the engine before delivery. */
  lease?: BufferLease | null;
}

/**
 * Receives completed requests, in batches, in completion order.
 * The array is only valid during the call: the engine reuses it afterwards.
 */
export type CompletionSink = (batch: readonly EngineRequest[]) => void;

/** A local or remote endpoint: an IP address and port, or a pipe path (port -1). */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6' | 'pipe';
}

/** A connected byte stream (TCP socket or pipe connection). */
export interface EngineStream {
  /** Receives at least 1 byte into `buffer` (non-empty), completing as soon as any are there. */
  recv(req: EngineRequest, buffer: Uint8Array): void;
  /**
   * Receives at least 1 byte (at most {@link MAX_POOLED_RECV_BYTES}) into a pool
   * buffer the engine picks when data arrives; `req.lease` holds it.
   */
  recvPooled(req: EngineRequest): void;
  /**
   * Sends `data` (one buffer, or several gathered into one operation);
   * `byteLength` is their total, which the caller has already summed.
   */
  send(req: EngineRequest, data: Uint8Array | readonly Uint8Array[], byteLength: number): void;
  /** Half-closes: sends FIN after all earlier sends; the peer's recv then sees end of stream. */
  shutdown(req: EngineRequest): void;
  /**
   * Cancels `req`, or every pending request of this stream when `req` is null.
   * Returns false when `req` is not pending here (as CancelIoEx's ERROR_NOT_FOUND).
   */
  cancel(req: EngineRequest | null): boolean;
  /**
   * Closes the stream; every pending request completes with OVL_ERR_ABORTED.
   * Graceful (`abortive` false): data the OS already took is still delivered, then FIN;
   * a send the OS is still taking may linger (at most 10 s) and completes, aborted with
   * the bytes it moved, once it is done. Abortive: the connection is reset (RST).
   *
   * Both are idempotent, and abortive wins (undici's close/destroy): `close(true)` after
   * `close(false)` cuts a lingering graceful close short: the lingering sends complete
   * at once (aborted, with the bytes they moved), the peer sees a reset instead of the
   * rest of the data, and the descriptor is released. It does nothing when nothing
   * lingers (the FIN has gone). A graceful stop needs this to end within its deadline,
   * lingering sends included; `close(false)` after either does nothing.
   */
  close(abortive: boolean): void;
  /** TCP_NODELAY: send small segments at once instead of coalescing them (Nagle). No-op on pipes. */
  setNoDelay(enabled: boolean): void;
  readonly localEndpoint: Endpoint | null;
  readonly remoteEndpoint: Endpoint | null;
  /** Received bytes held that no recv has asked for (rule 6), for tests and metrics. */
  readonly unreadBytes: number;
  /**
   * Readiness: completes once, with `req.bytes` = the {@link Readiness} bits
   * of `events` that hold (plus `ERROR`), as soon as any does. `events` is
   * a non-empty mask of READABLE, WRITABLE, HANGUP. Cancel and close abort it.
   */
  poll(req: EngineRequest, events: number): void;
  /**
   * Non-blocking receive into `buffer` (non-empty): bytes copied (> 0), 0 at
   * end of stream, or {@link WOULD_BLOCK}. Throws the connection's OsError.
   */
  tryRecv(buffer: Uint8Array): number;
  /**
   * Non-blocking send of `data`: the bytes the OS took now (1 to all of
   * them: a partial send is not an error), or {@link WOULD_BLOCK}. The
   * caller's buffer is free again when this returns. Throws the
   * connection's OsError (EPIPE after a shutdown or a close by the peer).
   */
  trySend(data: Uint8Array): number;
  /**
   * Hands the connection's descriptor to the caller, for another thread to
   * do blocking I/O on (descriptors belong to the process): the stream lets
   * go of it without closing it and is closed. Only with nothing pending and
   * nothing held unread. Engines whose connections cannot leave their event
   * loop (`node`) do not have it.
   */
  detach?(): number;
}

/** A listening socket. */
export interface EngineListener {
  /** Completes with `result` set to the accepted stream. */
  accept(req: EngineRequest): void;
  /** Readiness (see {@link EngineStream.poll}): READABLE when a connection waits for `tryAccept`. */
  poll(req: EngineRequest, events: number): void;
  /**
   * Non-blocking accept: a waiting connection, or null when none is (it
   * never waits, and never takes one a posted accept is waiting for: posted
   * accepts are served first). Throws an OsError (EMFILE, ENFILE, …).
   */
  tryAccept(): EngineStream | null;
  cancel(req: EngineRequest | null): boolean;
  /** Stops listening; pending accepts complete with OVL_ERR_ABORTED. Idempotent. */
  close(): void;
  readonly endpoint: Endpoint;
  /**
   * Told of each failed attempt to take a connection from the kernel
   * (EMFILE, ENFILE, ENOBUFS, …), which the engine retries on its own
   * (posted accepts stay pending): the error, and the ms until the next
   * attempt (0: the OS's own handling goes on at once). Called on the
   * engine's loop, outside any completion batch; set by core, never null
   * while a server wants to say so.
   */
  onAcceptError?: ((error: Error, retryMs: number) => void) | null;
}

export interface TcpListenOptions {
  host: string;
  port: number;
  backlog: number;
  /**
   * `node` only: in a `cluster` worker, listen through the primary's one
   * shared socket (node:net's `exclusive: false`), so that every worker
   * process serves the same port. Other engines ignore it.
   */
  shared?: boolean;
}

export interface PipeListenOptions {
  path: string;
  backlog: number;
  /** File mode of the socket file (Unix); 0o600 (owner only) unless told otherwise. */
  mode: number;
}

export interface Engine {
  /** `node` or `uring`. */
  readonly name: string;
  /** Installs the one sink this engine delivers every batch to. Called once, by core. */
  setSink(sink: CompletionSink): void;
  /** Binds and listens. Rejects with an OsError (EADDRINUSE, EACCES, …). */
  listenTcp(options: TcpListenOptions): Promise<EngineListener>;
  /** Listens on a Unix domain socket path (or a Windows named pipe path). */
  listenPipe(options: PipeListenOptions): Promise<EngineListener>;
  /** Starts a connect; `req` completes with `result` set, or with the error. */
  connectTcp(req: EngineRequest, host: string, port: number): EngineStream;
  connectPipe(req: EngineRequest, path: string): EngineStream;
  /**
   * Blocking calls on a descriptor from {@link EngineStream.detach}, for the
   * thread-per-connection model: made from the worker thread that owns the
   * descriptor, they block that thread only. Engines without `detach` do
   * not have it.
   */
  readonly blocking?: BlockingDescriptorIo;
  /**
   * Wraps a connected stream socket's descriptor in a stream of this engine:
   * the other half of {@link EngineStream.detach}, for an acceptor thread
   * that hands connections to worker threads, each with its own engine. The
   * stream owns the descriptor from here (its `close` closes it); it has
   * nothing pending and nothing received, and keeps every rule above. The
   * descriptor must be a connected socket no other stream or thread still
   * uses. Engines whose connections cannot leave their event loop (`node`)
   * do not have it.
   */
  adopt?(fd: number): EngineStream;
}

/**
 * Plain blocking socket calls on a raw descriptor (a real blocking socket:
 * the descriptor is switched to blocking mode). Each returns its result, or
 * -errno; none throws for an OS error. Safe to call from any thread.
 */
export interface BlockingDescriptorIo {
  /** Clears (or sets) O_NONBLOCK. */
  setBlocking(fd: number, blocking: boolean): number;
  /** recv(2): waits until at least one byte is there; 0 is end of stream. */
  recv(fd: number, buffer: Uint8Array): number;
  /** send(2) in a loop until every byte is written (MSG_NOSIGNAL): `buffer.byteLength`, or -errno. */
  send(fd: number, buffer: Uint8Array): number;
  /** shutdown(2): 0 = SHUT_RD, 1 = SHUT_WR, 2 = SHUT_RDWR. Unblocks a recv blocked on `fd` in another thread. */
  shutdown(fd: number, how: number): number;
  /** close(2); `abortive` sets SO_LINGER 0 first, so the peer sees a reset. */
  close(fd: number, abortive: boolean): number;
}
