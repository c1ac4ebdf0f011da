/**
 * Pipe names: `mynamedpipe` → `\\.\pipe\mynamedpipe` on Windows (Node's
 * `net` makes real named pipes there), a Unix domain socket path elsewhere.
 *
 * Elsewhere a bare name lives in `$XDG_RUNTIME_DIR/overlapped/` when that is
 * set and a directory (per-user, mode 0700 by the spec), else in
 * `<tmpdir>/overlapped-<uid>/`. Either directory is created owner-only; one
 * that exists but is not ours, or that others may write to, is refused: a
 * socket there could be swapped or watched by another user.
 */
import { lstatSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';

/** Longest Unix socket path (sun_path is 108 bytes on Linux with its NUL, 104 on macOS). */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;
/** Longest bare pipe name (Windows allows 256 characters after `\\.\pipe\`). */
export const MAX_PIPE_NAME_LENGTH = 256;
/** The seeds' pipe name. */
export const DEFAULT_PIPE_NAME = 'mynamedpipe';

export interface PipeNameOptions {
  /** Defaults to `process.platform`. */
  platform?: NodeJS.Platform;
  /** Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Create the per-user directory when missing (default true). */
  create?: boolean;
}

function invalid(message: string): UsageError {
  return new UsageError('OVL_ERR_INVALID_ARGUMENT', message);
}

/** True when `name` is already a path: it has a `/`, or starts with `\\`. */
export function isPipePath(name: string): boolean {
  return name.includes('/') || name.startsWith('\\\\');
}

/**
 * Resolves a pipe name to the path listeners bind and clients connect to.
 * A path (see {@link isPipePath}) is returned as is, after validation.
 * Throws `OVL_ERR_INVALID_ARGUMENT` for an empty name, a NUL, a path
 * separator in a bare Windows name, a socket path past sun_path, or an
 * unsafe per-user directory.
 */
export function resolvePipeName(name: string, options: PipeNameOptions = {}): string {
  const platform = options.platform ?? process.platform;
  const env = options.env ?? process.env;
  if (typeof name !== 'string' || name.length === 0) {
    throw invalid('a pipe name must be a non-empty string, such as mynamedpipe');
  }
  if (name.includes('\0')) throw invalid('a pipe name cannot contain a NUL character');
  if (isPipePath(name)) {
    if (platform !== 'win32') checkSocketPathLength(name);
    return name;
  }
  if (name.length > MAX_PIPE_NAME_LENGTH) {
    throw invalid(`pipe name is ${name.length} characters; at most ${MAX_PIPE_NAME_LENGTH}`);
  }
  if (name === '.' || name === '..' || name.includes('\\')) {
    throw invalid(`'${name}' is not a valid pipe name: use letters, digits, '-', '_' and '.'`);
  }
  if (platform === 'win32') return `\\\\.\\pipe\\${name}`;
  const path = join(pipeDirectory(env, options.create ?? true), name);
  checkSocketPathLength(path);
  return path;
}

function checkSocketPathLength(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalid(
      `socket path ${path} is ${bytes} bytes, past the ${MAX_SOCKET_PATH_BYTES} a Unix socket address holds: use a shorter name or directory`,
    );
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The per-user directory bare names live in, made (0700) if missing and checked either way. */
export function pipeDirectory(env: NodeJS.ProcessEnv = process.env, create = true): string {
  const runtime = env.XDG_RUNTIME_DIR;
  const dir =
    runtime !== undefined && runtime !== '' && isDirectory(runtime)
      ? join(runtime, 'overlapped')
      : join(tmpdir(), `overlapped-${process.getuid?.() ?? 'user'}`);
  if (create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw invalid(`cannot create the pipe directory ${dir}: ${(err as Error).message}`);
      }
    }
  }
  checkOwnDirectory(dir, create);
  return dir;
}

function checkOwnDirectory(dir: string, mustExist: boolean): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if (!mustExist && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw invalid(`cannot inspect the pipe directory ${dir}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) {
    throw invalid(`${dir} exists and is not a directory: remove it or give a full pipe path`);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw invalid(
      `the pipe directory ${dir} belongs to uid ${st.uid}, not to you (uid ${uid}): refusing to put a socket there; give a full pipe path`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw invalid(
      `the pipe directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}): refusing to put a socket there; chmod 700 it or give a full pipe path`,
    );
  }
}
