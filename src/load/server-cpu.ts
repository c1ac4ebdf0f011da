/**
 * CPU time of another process, read from Linux procfs.
 *
 * Resolution is one clock tick (10 ms at the usual 100 ticks per second), so a
 * CPU figure is only meaningful over a window of several seconds.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/**
 * Clock ticks per second used by `/proc/<pid>/stat` (`getconf CLK_TCK`), read once.
 * Falls back to 100 when getconf is missing: that is the value on every mainstream
 * Linux architecture, and the kernel ABI fixes USER_HZ independently of CONFIG_HZ.
 */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
      const n = Number.parseInt(out.trim(), 10);
      ticksPerSecond = Number.isSafeInteger(n) && n > 0 ? n : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * User + system CPU time of process `pid` in microseconds (fields 14 and 15 of
 * `/proc/<pid>/stat`). Throws if the process does not exist or procfs is unavailable.
 */
export function readProcessCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Field 2 (comm) is parenthesised and may itself contain spaces and parentheses,
  // so fields are counted from the last ')'; the token after it is field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`unexpected format of /proc/${pid}/stat`);
  }
  return ((utime + stime) * 1e6) / clockTicksPerSecond();
}
