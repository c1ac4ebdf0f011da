/**
 * Resident memory and open descriptors of another process, read from Linux procfs.
 *
 * The load generator samples these for the server under test so that a benchmark
 * can report how much memory each open connection costs the server.
 */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Resident set size of process `pid` in bytes (the `VmRSS:` line of
 * `/proc/<pid>/status`, which the kernel gives in KiB). Throws if the process does
 * not exist, procfs is unavailable, or the line is missing (a zombie has none).
 */
export function readProcessRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS line in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/**
 * Number of file descriptors process `pid` has open (entries of `/proc/<pid>/fd`).
 * Throws if the directory cannot be read.
 */
export function countProcessFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Threads of process `pid` (the `Threads:` line of `/proc/<pid>/status`). Throws
 * like {@link readProcessRssBytes} when the process or the line is gone.
 */
export function readProcessThreads(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const match = /^Threads:\s+(\d+)$/m.exec(status);
  if (match === null) throw new Error(`no Threads line in /proc/${pid}/status`);
  return Number(match[1]);
}
