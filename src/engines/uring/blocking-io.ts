/**
 * Blocking calls on a raw descriptor (the contract's BlockingDescriptorIo),
 * for the thread-per-connection model: a stream's descriptor is handed over
 * with `detach()`, and a `worker_threads` worker makes plain blocking
 * recv/send calls on it, which block that worker's thread only.
 *
 * They are functions of the native addon that use no ring: a worker loads
 * the addon (each thread gets its own instance of it) and calls them without
 * opening a UringEngine. Each returns its result or -errno, as the contract
 * says; none throws for an OS condition.
 */
import type { BlockingDescriptorIo } from '../contract.js';
import { loadAddon, type UringAddon } from './native.js';

let io: BlockingDescriptorIo | undefined;

/**
 * This thread's blocking descriptor calls. Throws an Error saying why when
 * the native addon cannot be loaded here (not Linux, not built, …).
 */
export function uringBlockingIo(): BlockingDescriptorIo {
  if (io !== undefined) return io;
  let addon: UringAddon;
  try {
    addon = loadAddon();
  } catch (err) {
    throw new Error(`blocking descriptor calls are not available: ${(err as Error).message}`);
  }
  io = {
    setBlocking: (fd, blocking) => addon.fdSetBlocking(fd, blocking),
    recv: (fd, buffer) => addon.fdRecv(fd, buffer),
    send: (fd, buffer) => addon.fdSend(fd, buffer),
    shutdown: (fd, how) => addon.fdShutdown(fd, how),
    close: (fd, abortive) => addon.fdClose(fd, abortive),
  };
  return io;
}
