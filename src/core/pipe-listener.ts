import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import type { Engine, EngineListener, EngineOption } from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import { add, counters } from './counters.js';
import { attachEngine, InternalRequest } from './delivery.js';
import { resolveEngine } from './engine-option.js';
import { check, OsError, OverlappedError } from './errors.js';
import { Handle } from './handle.js';
import type { Overlapped } from './overlapped.js';
import { PipeConnection, type PipeConnectionOptions, pipeSettings } from './pipe-connection.js';
import { MAX_SOCKET_PATH_BYTES } from './pipe-name.js';

/** Default socket file permissions: owner only. */
export const DEFAULT_PIPE_FILE_MODE = 0o600;
/** Default listen backlog of a pipe listener. */
export const DEFAULT_PIPE_BACKLOG = 511;

export interface PipeListenOptions extends PipeConnectionOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  /** A resolved pipe path (see `resolvePipeName`). */
  path: string;
  /** Socket file permissions (Unix); default 0o600. */
  fileMode?: number;
  backlog?: number;
}

/** A connect attempt of the probe that tells a stale socket file from a live server. */
class Probe extends InternalRequest {
  readonly settled: Promise<void>;
  #resolve: () => void = () => {};
  constructor() {
    super();
    this.settled = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }
  done(): void {
    this.#resolve();
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

/**
 * True when something answers on `path`; false when the file is stale
 * (ECONNREFUSED: nobody listens) or gone (ENOENT). Other errors throw.
 */
async function isLive(engine: Engine, path: string): Promise<boolean> {
  const probe = new Probe();
  const stream = engine.connectPipe(probe, path);
  await probe.settled;
  stream.close(true);
  const c = errnoCode(probe.error);
  if (probe.error === null) return true;
  if (c === 'ECONNREFUSED' || c === 'ENOENT') return false;
  throw probe.error;
}

/**
 * The server end of a named pipe: CreateNamedPipe + ConnectNamedPipe, as a
 * listener on a Unix domain socket (or a Windows named pipe path) whose
 * overlapped accepts complete with `ov.pipe`: a new {@link PipeConnection}
 * (an instance), not associated with any port yet.
 *
 * The socket file is created with `fileMode` (owner-only by default). A
 * socket file a dead server left behind is replaced; a live server on the
 * path is never displaced: listen fails with `OVL_ERR_PIPE_NAME_IN_USE`, as
 * does a path that exists and is not a socket. `close()` removes the socket
 * file if it is still the one this listener made.
 */
export class PipeListener extends Handle {
  readonly path: string;
  readonly #listener: EngineListener;
  readonly #options: PipeConnectionOptions;
  readonly #identity: { dev: number; ino: number } | null;

  private constructor(
    engine: Engine,
    listener: EngineListener,
    path: string,
    options: PipeConnectionOptions,
    identity: { dev: number; ino: number } | null,
  ) {
    super(engine);
    this.#listener = listener;
    this.path = path;
    this.#options = options;
    this.#identity = identity;
  }

  /**
   * Listens on `path`. Rejects with `OVL_ERR_PIPE_NAME_IN_USE` (a live
   * server, or a file that is not a socket), or an OsError (EACCES, …).
   */
  static async listen(options: PipeListenOptions): Promise<PipeListener> {
    const { path } = options;
    const settings = pipeSettings(options);
    const fileMode = options.fileMode ?? DEFAULT_PIPE_FILE_MODE;
    const backlog = options.backlog ?? DEFAULT_PIPE_BACKLOG;
    check(
      typeof path === 'string' && path.length > 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'listen needs a pipe path (resolvePipeName(name))',
    );
    check(
      Number.isInteger(fileMode) && fileMode >= 0 && fileMode <= 0o777,
      'OVL_ERR_INVALID_ARGUMENT',
      `fileMode must be a permission mode from 0 to 0o777, got ${String(fileMode)}`,
    );
    check(
      Number.isInteger(backlog) && backlog >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `backlog must be a whole number >= 1, got ${String(backlog)}`,
    );
    const engine = resolveEngine(options.engine);
    attachEngine(engine);
    if (process.platform === 'win32') {
      // A named pipe leaves no file behind: EADDRINUSE always means a live server.
      try {
        const listener = await engine.listenPipe({ path, backlog, mode: fileMode });
        return new PipeListener(engine, listener, path, settings, null);
      } catch (err) {
        if (errnoCode(err) !== 'EADDRINUSE') throw err;
        throw inUse(path, err);
      }
    }
    refuseNonSocket(path);
    const listener =
      (await listenLinked(engine, path, backlog, fileMode)) ??
      (await listenInPlace(engine, path, backlog, fileMode));
    const st = lstatSync(path);
    const identity = { dev: st.dev, ino: st.ino };
    return new PipeListener(engine, listener, path, settings, identity);
  }

  /**
   * Posts a connect wait (ConnectNamedPipe): completes with `ov.pipe` set to
   * the connected instance. With `routine`, the completion goes to it, run in
   * this thread's next alertable wait.
   */
  accept<T>(ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    this.beginOperation(ov, 'accept', 0, routine);
    this.#listener.accept(ov);
  }

  protected cancelPending(ov: Overlapped<unknown> | null): boolean {
    return this.#listener.cancel(ov);
  }

  /**
   * Told of each failed attempt to take a connection (EMFILE, …) and the ms
   * until the engine retries; see `TcpListener.onAcceptError`.
   */
  set onAcceptError(callback: ((error: Error, retryMs: number) => void) | null) {
    this.#listener.onAcceptError = callback;
  }

  /**
   * Stops listening and removes the socket file if it is still ours;
   * pending accepts complete with `OVL_ERR_ABORTED`. Idempotent.
   */
  close(): void {
    if (!this.markClosed()) return;
    const identity = this.#identity;
    if (identity !== null) {
      try {
        const st = lstatSync(this.path);
        if (st.dev === identity.dev && st.ino === identity.ino) unlinkSync(this.path);
      } catch {
        // Already gone: nothing to remove.
      }
    }
    this.#listener.close();
  }

  /** @internal */
  override operationDone(ov: Overlapped<unknown>): void {
    super.operationDone(ov);
    const stream = ov.result;
    if (stream !== null) {
      ov.result = null;
      add(counters.accepted, this.engineIndex);
      ov.pipe = PipeConnection.fromStream(this.engine, stream, this.path, this.#options);
    }
  }
}

const inUse = (path: string, cause: unknown) =>
  new OverlappedError(
    'OVL_ERR_PIPE_NAME_IN_USE',
    `a live server already listens on ${path}: stop it or choose another pipe name`,
    { cause },
  );

/** Removes a stale socket file (refusing anything that is not a socket). */
function removeStale(path: string): void {
  refuseNonSocket(path);
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** link() errors of filesystems that cannot hard-link a socket: bind in place instead. */
const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS']);

/**
 * Binds a private name in the same directory, chmods it, then hard-links it
 * into place. link() fails if the path exists, so a live server is never
 * displaced, and the socket appears under its name with its final
 * permissions (no umask window). It also keeps the file's removal ours:
 * libuv unlinks the name it bound when the listener closes, whoever owns
 * that name by then. Null when this cannot work here (the private name
 * would not fit a socket address, or the filesystem cannot link).
 */
async function listenLinked(
  engine: Engine,
  path: string,
  backlog: number,
  fileMode: number,
): Promise<EngineListener | null> {
  const temp = join(dirname(path), `.ovl-${randomBytes(6).toString('hex')}`);
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH_BYTES) return null;
  let listener: EngineListener;
  try {
    listener = await engine.listenPipe({ path: temp, backlog, mode: fileMode });
  } catch (err) {
    throw directoryError(err, path);
  }
  try {
    try {
      linkSync(temp, path);
    } catch (err) {
      if (NO_LINK.has(errnoCode(err) ?? '')) {
        listener.close();
        return null;
      }
      if (errnoCode(err) !== 'EEXIST') throw err;
      refuseNonSocket(path);
      if (await isLive(engine, path)) throw inUse(path, err);
      // A dead server's socket file: nobody answers on it, so it is safe to replace.
      removeStale(path);
      try {
        linkSync(temp, path);
      } catch (again) {
        if (errnoCode(again) !== 'EEXIST') throw again;
        throw new OverlappedError(
          'OVL_ERR_PIPE_NAME_IN_USE',
          `another server took ${path} while its stale socket file was being replaced`,
          { cause: again },
        );
      }
    }
  } catch (err) {
    listener.close();
    throw err;
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // listener.close() may have removed it already.
    }
  }
  return listener;
}

/**
 * The fallback: binds `path` itself. EADDRINUSE means a socket file is
 * there: live (something answers) is an error, stale is replaced once.
 * Between bind and chmod the file has the umask's permissions.
 */
async function listenInPlace(
  engine: Engine,
  path: string,
  backlog: number,
  fileMode: number,
): Promise<EngineListener> {
  const listenOnce = () =>
    engine.listenPipe({ path, backlog, mode: fileMode }).catch((err: unknown) => {
      throw directoryError(err, path);
    });
  try {
    return await listenOnce();
  } catch (err) {
    if (errnoCode(err) !== 'EADDRINUSE') throw err;
    if (await isLive(engine, path)) throw inUse(path, err);
    removeStale(path);
    return await listenOnce();
  }
}

/**
 * A bind that failed because of the directory (missing, not a directory, not
 * writable) is reported against the pipe path and its directory: the error of
 * the private name bound first would name a file the user never asked for.
 * Other errors pass through.
 */
function directoryError(err: unknown, path: string): unknown {
  let code = errnoCode(err);
  if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EACCES') return err;
  const dir = dirname(path);
  // The directory itself says which it is: libuv reports a missing directory as
  // EACCES (as Windows would), the io_uring engine as ENOENT.
  try {
    if (!statSync(dir).isDirectory()) code = 'ENOTDIR';
  } catch (statError) {
    code = errnoCode(statError) === 'ENOTDIR' ? 'ENOTDIR' : 'ENOENT';
  }
  const why =
    code === 'ENOENT'
      ? `the directory ${dir} does not exist`
      : code === 'ENOTDIR'
        ? `${dir} is not a directory`
        : `no permission to create a socket in ${dir}`;
  const errno = -(osConstants.errno[code as keyof typeof osConstants.errno] ?? 0);
  return new OsError(code, errno, 'listen', `cannot listen on ${path}: ${why}`, {
    address: path,
    cause: err,
  });
}

function refuseNonSocket(path: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new OverlappedError(
      'OVL_ERR_PIPE_NAME_IN_USE',
      `${path} exists and is not a socket: refusing to replace it; remove it or choose another pipe name`,
    );
  }
}
