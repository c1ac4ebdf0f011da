/**
 * Loads the io_uring addon with node-gyp-build: native/build/Release (built
 * from source by `npm install` or `npm run build:native`, through
 * scripts/build-native.mjs) if there is one, else the prebuilt addon the
 * package ships for this platform (native/prebuilds/, scripts/prebuild.mjs).
 * `OVERLAPPED_NATIVE_ADDON` names another build (the AddressSanitizer one of
 * `npm run test:asan`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A ring handle: its index among the rings of this thread. */
export type Ring = { readonly __ring: unique symbol };

/**
 * The addon's functions. Operations return 0 (or a descriptor) or -errno;
 * ids are the JS side's operation ids, reported back in completion records.
 */
export interface UringAddon {
  create(
    records: ArrayBuffer,
    onRecords: (count: number) => void,
    entries: number,
    mode: number,
  ): Ring;
  setupMode(ring: Ring): number;
  submit(ring: Ring): number;
  /** `pollFirst`: arm the poll before trying (IORING_RECVSEND_POLL_FIRST). */
  recv(ring: Ring, id: number, fd: number, buffer: Uint8Array, pollFirst: boolean): number;
  /** One recvmsg into `first`, then `second` once `first` is full (read-ahead). */
  recvv(ring: Ring, id: number, fd: number, first: Uint8Array, second: Uint8Array): number;
  /** `limit` > 0: multishot, ending once it received `limit` bytes; 0: single-shot. */
  recvPooled(ring: Ring, id: number, fd: number, limit: number): number;
  send(ring: Ring, id: number, fd: number, buffer: Uint8Array): number;
  sendv(ring: Ring, id: number, fd: number, parts: readonly Uint8Array[], count: number): number;
  connectTcp(ring: Ring, id: number, ip: string, port: number): number;
  connectUnix(ring: Ring, id: number, path: string): number;
  accept(ring: Ring, id: number, fd: number): number;
  shutdown(ring: Ring, id: number, fd: number): number;
  cancel(ring: Ring, id: number): number;
  cancelFd(ring: Ring, fd: number): number;
  /** Buffers published, or -errno (-EINVAL for `incremental` on a kernel before 6.12). */
  registerPool(
    ring: Ring,
    pool: ArrayBuffer,
    size: number,
    count: number,
    initial: number,
    incremental: number,
  ): number;
  poolGrow(ring: Ring, n: number): number;
  poolRelease(ring: Ring, bid: number): void;
  listenTcp(ring: Ring, ip: string, port: number, backlog: number): number;
  listenUnix(ring: Ring, path: string, backlog: number): number;
  close(ring: Ring, fd: number, abortive: boolean): number;
  setNoDelay(fd: number, on: boolean): number;
  sockName(fd: number, peer: boolean): [string, number, 'IPv4' | 'IPv6'] | null;
  /** Single-shot IORING_OP_POLL_ADD for poll(2) events `mask`; the CQE's res is the revents. */
  poll(ring: Ring, id: number, fd: number, mask: number): number;
  /** recv(MSG_DONTWAIT) now, no SQE: bytes, 0 at end of stream, or -errno (-EAGAIN). */
  tryRecv(fd: number, buffer: Uint8Array): number;
  /** send(MSG_DONTWAIT | MSG_NOSIGNAL) now, no SQE: bytes taken (maybe fewer), or -errno. */
  trySend(fd: number, buffer: Uint8Array): number;
  /**
   * accept4 on the non-blocking listening socket now: a descriptor the ring
   * owns, or -errno. `pollFirst`: the listening socket is blocking, so only
   * after a zero-timeout poll(2) says a connection waits.
   */
  tryAccept(ring: Ring, fd: number, pollFirst: boolean): number;
  /** The ring lets go of `fd` (it will not close it at teardown): a detached stream's. */
  disown(ring: Ring, fd: number): void;

  // Blocking calls on a raw descriptor; no ring needed (a worker_threads worker calls them).
  /** Clears (`blocking`) or sets O_NONBLOCK: 0 or -errno. */
  fdSetBlocking(fd: number, blocking: boolean): number;
  /** Blocking recv (EINTR retried): bytes, 0 at end of stream, or -errno. */
  fdRecv(fd: number, buffer: Uint8Array): number;
  /** Blocking send of every byte (MSG_NOSIGNAL): `buffer.byteLength`, or -errno. */
  fdSend(fd: number, buffer: Uint8Array): number;
  /** shutdown(2): 0 or -errno. */
  fdShutdown(fd: number, how: number): number;
  /** close(2), SO_LINGER {1, 0} first when `abortive`: 0 or -errno. */
  fdClose(fd: number, abortive: boolean): number;
}

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const NATIVE_DIR = `${ROOT}native`;
/** Where a build from source puts the addon, and the note it leaves when it skips the build. */
export const ADDON_PATH = `${ROOT}native/build/Release/overlapped_uring.node`;
const SKIP_NOTE = `${ROOT}native/build/skipped.txt`;

const require = createRequire(import.meta.url);

/** node-gyp-build's resolver: the addon for this platform, or throws saying none matches. */
type FindAddon = { path(dir: string): string };

let loaded: { addon: UringAddon } | { error: string } | undefined;

/** The addon, or throws an Error whose message says why it is not available. */
export function loadAddon(): UringAddon {
  loaded ??= tryLoad();
  if ('error' in loaded) throw new Error(loaded.error);
  return loaded.addon;
}

function tryLoad(): { addon: UringAddon } | { error: string } {
  if (process.platform !== 'linux') return { error: 'io_uring is Linux only' };
  const override = process.env.OVERLAPPED_NATIVE_ADDON;
  let path: string;
  if (override) {
    if (!existsSync(override)) return { error: `native addon not built: ${override} is missing` };
    path = override;
  } else {
    try {
      path = (require('node-gyp-build') as FindAddon).path(NATIVE_DIR);
    } catch {
      const why = existsSync(SKIP_NOTE)
        ? readFileSync(SKIP_NOTE, 'utf8').trim()
        : `no prebuilt addon matches this platform (${process.platform}-${process.arch}) and none was built (run npm install, or node scripts/build-native.mjs)`;
      return { error: `native addon not built: ${why}` };
    }
  }
  try {
    return { addon: require(path) as UringAddon };
  } catch (err) {
    return { error: `native addon failed to load: ${(err as Error).message}` };
  }
}
