/**
 * The error registry: every error the toolkit throws or completes an
 * operation with is created here.
 *
 * Two families:
 * - {@link OverlappedError}: the toolkit's own conditions, each with a stable
 *   `code` (`OVL_ERR_*`), a message that says what happened and what to do,
 *   and the Win32 error it stands for.
 * - {@link OsError}: an error from the operating system, shaped like Node's
 *   own (`code: 'ECONNRESET'`, `errno`, `syscall`) whichever engine produced
 *   it, with the Winsock error it corresponds to where there is one.
 *
 * `docs/errors.md` lists every code; keep the two in step.
 */
import { getSystemErrorMap, getSystemErrorName } from 'node:util';

/** The Win32 error a toolkit error stands for. */
export interface Win32Error {
  readonly name: string;
  readonly code: number;
}

/** Every toolkit error code, with its Win32 counterpart and a one-line default message. */
export const ERROR_CODES = {
  OVL_ERR_ABORTED: {
    win32: { name: 'ERROR_OPERATION_ABORTED', code: 995 },
    message: 'the operation was aborted by cancel() or close() before it finished',
  },
  OVL_ERR_OVERLAPPED_IN_USE: {
    win32: { name: 'ERROR_INVALID_PARAMETER', code: 87 },
    message:
      'this Overlapped is still pending: wait for its completion before posting it again, or use another Overlapped',
  },
  OVL_ERR_PORT_CLOSED: {
    win32: { name: 'ERROR_ABANDONED_WAIT_0', code: 735 },
    message: 'the completion port was closed: no more completions will be dequeued from it',
  },
  OVL_ERR_HANDLE_CLOSED: {
    win32: { name: 'WSAENOTSOCK', code: 10038 },
    message: 'the handle is closed: open a new one',
  },
  OVL_ERR_ALREADY_ASSOCIATED: {
    win32: { name: 'ERROR_INVALID_PARAMETER', code: 87 },
    message:
      'the handle is already associated with a completion port; a handle has one port for life',
  },
  OVL_ERR_INVALID_ARGUMENT: {
    win32: { name: 'WSAEINVAL', code: 10022 },
    message: 'invalid argument',
  },
  OVL_ERR_SEND_QUEUE_FULL: {
    win32: { name: 'WSAENOBUFS', code: 10055 },
    message:
      'the send queue of this socket is full: wait for pending sends to complete (the peer reads too slowly) or raise maxPendingSendBytes',
  },
  OVL_ERR_TOO_MANY_EVENTS: {
    win32: { name: 'WSA_INVALID_PARAMETER', code: 87 },
    message:
      'one wait covers at most 64 events (WSA_MAXIMUM_WAIT_EVENTS): shard the events across several wait loops, e.g. one loop per 63 sockets',
  },
  OVL_ERR_IO_INCOMPLETE: {
    win32: { name: 'WSA_IO_INCOMPLETE', code: 996 },
    message:
      'the operation is still pending: call getOverlappedResult(ov, { wait: true }), or wait for its event, before reading its result',
  },
  OVL_ERR_ENGINE_UNAVAILABLE: {
    win32: { name: 'ERROR_NOT_SUPPORTED', code: 50 },
    message: 'the requested engine cannot run here',
  },
  OVL_ERR_MORE_DATA: {
    win32: { name: 'ERROR_MORE_DATA', code: 234 },
    message:
      'the message is larger than the read buffer: the read holds the bytes that fit, and the next read returns the rest',
  },
  OVL_ERR_BROKEN_PIPE: {
    win32: { name: 'ERROR_BROKEN_PIPE', code: 109 },
    message:
      'the other end of the pipe closed it (in message mode a zero-byte read is an empty message, so end of stream is this error)',
  },
  OVL_ERR_PIPE_BUSY: {
    win32: { name: 'ERROR_PIPE_BUSY', code: 231 },
    message:
      "all instances of the pipe are busy: retry later, wait with waitNamedPipe(name, timeoutMs), or raise the server's --instances",
  },
  OVL_ERR_PIPE_NAME_IN_USE: {
    win32: { name: 'ERROR_ACCESS_DENIED', code: 5 },
    message:
      'a live server already listens on this pipe name: stop it or choose another name (a stale socket file of a dead server would have been replaced)',
  },
  OVL_ERR_PIPE_NOT_FOUND: {
    win32: { name: 'ERROR_FILE_NOT_FOUND', code: 2 },
    message: 'no server listens on this pipe: start `overlapped pipe-server` first or check --name',
  },
  OVL_ERR_MESSAGE_TOO_LARGE: {
    win32: { name: 'WSAEMSGSIZE', code: 10040 },
    message:
      "the message is larger than the pipe's maximum message size: send smaller messages or raise --max-message",
  },
  OVL_ERR_PIPE_PROTOCOL: {
    win32: { name: 'ERROR_INVALID_DATA', code: 13 },
    message:
      'the peer broke the pipe framing (docs/pipes.md): a frame header was malformed or came from the wrong side',
  },
  OVL_ERR_HANDLER_FAILED: {
    win32: { name: 'ERROR_SERVICE_SPECIFIC_ERROR', code: 1066 },
    message: "the pipe server's request handler failed on this request; the connection stays open",
  },
  OVL_ERR_WOULD_BLOCK: {
    win32: { name: 'WSAEWOULDBLOCK', code: 10035 },
    message:
      'the non-blocking call could not proceed now (nothing to receive, no room to send, no connection waiting): retry when select or a network event says the socket is ready',
  },
  OVL_ERR_NOT_SUPPORTED: {
    win32: { name: 'WSAEOPNOTSUPP', code: 10045 },
    message: 'this engine does not support the operation',
  },
  OVL_ERR_TOO_MANY_SOCKETS: {
    win32: { name: 'WSAEINVAL', code: 10022 },
    message:
      'a select() set holds at most FD_SETSIZE (64) sockets: shard the sockets across several select loops, e.g. one loop per 63 clients plus the listener',
  },
  OVL_ERR_SESSION_QUEUE_FULL: {
    win32: { name: 'WSAENOBUFS', code: 10055 },
    message:
      "the session's send queue is at its cap (maxQueuedBytes): this send was dropped; the peer reads more slowly than it is sent to",
  },
  OVL_ERR_THREAD_FAILED: {
    win32: { name: 'ERROR_THREAD_NOT_IN_PROCESS', code: 566 },
    message:
      'a session worker thread failed with an uncaught exception: the server stops, the other threads drain their sessions',
  },
  OVL_ERR_TIMEOUT: {
    win32: { name: 'WSAETIMEDOUT', code: 10060 },
    message:
      'a deadline passed (idle, read progress or write progress): the server closed the connection; raise --idle-timeout, --read-timeout or --write-timeout if the client is legitimately slow',
  },
  OVL_ERR_PROXY_HEADER: {
    win32: { name: 'ERROR_INVALID_DATA', code: 13 },
    message:
      'the connection did not begin with a valid PROXY protocol header (--proxy-protocol): the server closed it; check that the load balancer sends the version the server expects (send-proxy for v1, send-proxy-v2 for v2)',
  },
  OVL_ERR_PROXY_TIMEOUT: {
    win32: { name: 'WSAETIMEDOUT', code: 10060 },
    message:
      'no complete PROXY protocol header arrived within --proxy-timeout: the server closed the connection; a client reached the port without the load balancer, or the balancer does not send the header',
  },
  OVL_ERR_PROXY_SOURCE: {
    win32: { name: 'WSAEACCES', code: 10013 },
    message:
      "a connection came from an address outside --proxy-from: only the listed load balancers may send a PROXY header, so the server closed it; add the balancer's network to --proxy-from",
  },
  OVL_ERR_INTERNAL: {
    win32: { name: 'ERROR_INTERNAL_ERROR', code: 1359 },
    message: 'internal error: an engine broke its contract (please report this)',
  },
} as const satisfies Record<string, { win32: Win32Error; message: string }>;

export type OverlappedErrorCode = keyof typeof ERROR_CODES;

/** A toolkit error: stable `code`, actionable message, and the Win32 error it stands for. */
export class OverlappedError extends Error {
  override name = 'OverlappedError';
  readonly code: OverlappedErrorCode;
  readonly win32: Win32Error;

  constructor(code: OverlappedErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code].message, options);
    this.code = code;
    this.win32 = ERROR_CODES[code].win32;
  }
}

/** An operation was aborted by `cancel()` or `close()` (ERROR_OPERATION_ABORTED). */
export class AbortedError extends OverlappedError {
  override name = 'AbortedError';
  constructor(message?: string) {
    super('OVL_ERR_ABORTED', message);
  }
}

/** Misuse the caller can fix: a pending Overlapped, a closed handle, a bad argument. */
export class UsageError extends OverlappedError {
  override name = 'UsageError';
}

/** Winsock names of the OS errors a socket server meets most, by Node/libuv code. */
const WINSOCK_EQUIVALENTS: Readonly<Record<string, Win32Error>> = {
  ECONNRESET: { name: 'WSAECONNRESET', code: 10054 },
  ECONNREFUSED: { name: 'WSAECONNREFUSED', code: 10061 },
  ECONNABORTED: { name: 'WSAECONNABORTED', code: 10053 },
  EADDRINUSE: { name: 'WSAEADDRINUSE', code: 10048 },
  EADDRNOTAVAIL: { name: 'WSAEADDRNOTAVAIL', code: 10049 },
  EACCES: { name: 'WSAEACCES', code: 10013 },
  ETIMEDOUT: { name: 'WSAETIMEDOUT', code: 10060 },
  ENETUNREACH: { name: 'WSAENETUNREACH', code: 10051 },
  EHOSTUNREACH: { name: 'WSAEHOSTUNREACH', code: 10065 },
  ENOTCONN: { name: 'WSAENOTCONN', code: 10057 },
  EPIPE: { name: 'WSAESHUTDOWN', code: 10058 },
  ENOBUFS: { name: 'WSAENOBUFS', code: 10055 },
  EMFILE: { name: 'WSAEMFILE', code: 10024 },
  ENOTFOUND: { name: 'WSAHOST_NOT_FOUND', code: 11001 },
};

/**
 * An operating-system error, shaped like Node's own errors: `code` is the
 * POSIX/libuv name (`ECONNRESET`), `errno` the (negative, as in libuv) number,
 * `syscall` the call that failed. `win32` names the Winsock equivalent.
 */
export class OsError extends Error {
  override name = 'OsError';
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly win32: Win32Error | undefined;
  /** Set for address errors (bind, connect). */
  readonly address: string | undefined;
  readonly port: number | undefined;

  constructor(
    code: string,
    errno: number,
    syscall: string,
    message: string,
    extra?: { address?: string; port?: number; cause?: unknown },
  ) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.win32 = WINSOCK_EQUIVALENTS[code];
    this.address = extra?.address;
    this.port = extra?.port;
  }
}

let errnoNames: Map<number, [string, string]> | undefined;
let errnoNumbers: Map<string, number> | undefined;

/**
 * This platform's (negative, libuv-numbered) errno for `code`, from Node's own
 * table, so an engine never writes an errno number by hand.
 */
export function errnoOf(code: string): number {
  if (errnoNumbers === undefined) {
    errnoNames ??= getSystemErrorMap();
    errnoNumbers = new Map();
    for (const [errno, [name]] of errnoNames) errnoNumbers.set(name, errno);
  }
  return errnoNumbers.get(code) ?? 0;
}

/**
 * The {@link OsError} for a negative errno from a system call or a native
 * engine's completion: `code` from Node's table, message `<syscall> <code>`
 * followed by the address when one is given.
 */
export function osErrorFromErrno(
  errno: number,
  syscall: string,
  extra?: { address?: string; port?: number },
): OsError {
  errnoNames ??= getSystemErrorMap();
  const code = errnoNames.get(errno)?.[0] ?? getSystemErrorName(errno);
  let message = `${syscall} ${code}`;
  if (extra?.address !== undefined) {
    message += ` ${extra.address}${extra.port === undefined ? '' : `:${extra.port}`}`;
  }
  return new OsError(code, errno, syscall, message, extra);
}

/** A send or shutdown on a connection this side closed, or whose send the close cut short (EPIPE). */
export function connectionClosedError(): OsError {
  return new OsError(
    'EPIPE',
    errnoOf('EPIPE'),
    'write',
    'the connection closed before the send completed',
  );
}

/**
 * What a connection's later operations fail with once it was reset because
 * a cancel hit an operation the OS had half done (ECONNABORTED).
 */
export function resetToCancelError(): OsError {
  return new OsError(
    'ECONNABORTED',
    errnoOf('ECONNABORTED'),
    'cancel',
    'the connection was reset to cancel an operation the OS had not finished',
  );
}

interface NodeSystemErrorLike {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  address?: unknown;
  port?: unknown;
  message?: unknown;
}

/**
 * Converts an error raised by Node (or by a native engine in Node's shape)
 * into an {@link OsError}. Errors that are already toolkit errors pass through.
 */
export function toOsError(err: unknown, fallbackSyscall = 'unknown'): OsError | OverlappedError {
  if (err instanceof OsError || err instanceof OverlappedError) return err;
  const e = (err ?? {}) as NodeSystemErrorLike;
  const code = typeof e.code === 'string' ? e.code : 'EIO';
  const errno = typeof e.errno === 'number' ? e.errno : 0;
  const syscall = typeof e.syscall === 'string' ? e.syscall : fallbackSyscall;
  const message = typeof e.message === 'string' ? e.message : `${syscall} ${code}`;
  const extra: { address?: string; port?: number; cause: unknown } = { cause: err };
  if (typeof e.address === 'string') extra.address = e.address;
  if (typeof e.port === 'number') extra.port = e.port;
  return new OsError(code, errno, syscall, message, extra);
}

/** The error every operation aborted by `cancel()`/`close()` completes with. */
export function abortedError(): AbortedError {
  return new AbortedError();
}

/** Throws a {@link UsageError} with `code` unless `condition` holds. */
export function check(
  condition: unknown,
  code: OverlappedErrorCode,
  message?: string,
): asserts condition {
  if (!condition) throw new UsageError(code, message);
}
