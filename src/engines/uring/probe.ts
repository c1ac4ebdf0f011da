/**
 * Whether io_uring runs here: opening the engine's ring is the probe. The
 * addon's `create` sets up a ring and asks the kernel for what the engine
 * needs (multishot accept, cancel by descriptor: Linux 5.19), and refuses
 * with an errno when it cannot; this turns that into the one-line reason
 * `chooseEngine` logs at start-up.
 */
import { getSystemErrorName } from 'node:util';
import type { Ring, UringAddon } from './native.js';

/** Opens a ring, or throws an Error whose message says why io_uring cannot run here. */
export function openRing(
  addon: UringAddon,
  records: ArrayBuffer,
  onRecords: (count: number) => void,
  entries: number,
  mode: number,
): Ring {
  try {
    return addon.create(records, onRecords, entries, mode);
  } catch (err) {
    const errno = (err as { errno?: unknown }).errno;
    const code = typeof errno === 'number' ? getSystemErrorName(errno) : 'unknown';
    // Refused outright is policy (sysctl, seccomp); ENOTSUP is a kernel too old for the engine.
    const hint =
      code === 'EPERM' || code === 'ENOSYS' || code === 'EACCES'
        ? '; check kernel.io_uring_disabled and the seccomp profile'
        : code === 'ENOTSUP'
          ? '; the uring engine needs Linux 5.19 or later'
          : '';
    throw new Error(`io_uring is not available (${code}: ${(err as Error).message}${hint})`);
  }
}
