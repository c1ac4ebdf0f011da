/**
 * The engine's tuning variables (`OVERLAPPED_URING_*`, for measurements):
 * read once at start-up, and refused with a clear error when malformed.
 */
import { UsageError } from '../../core/errors.js';
import { POOL_BYTES } from './constants.js';

/** How the kernel runs task work, by the index the addon's `create` takes. */
export const TASK_RUN_MODES = ['defer', 'coop', 'plain'] as const;

function isPoolBufferCount(n: number): boolean {
  return Number.isInteger(n) && n >= 32 && n <= 32768 && (n & (n - 1)) === 0;
}

/**
 * Pool buffers at most, for buffers of `size` bytes: a power of two (buffer
 * ring entries), POOL_BYTES' worth (128 of 64 KiB, or 1024 of 8 KiB) unless
 * `OVERLAPPED_URING_POOL_BUFFERS` says otherwise (32 to 32768). A burst of
 * data on many connections at once can touch them all: a smaller pool
 * bounds that memory, and makes the surplus recvs wait for a release.
 */
export function poolBufferCount(size: number): number {
  const n = Number(process.env.OVERLAPPED_URING_POOL_BUFFERS);
  return isPoolBufferCount(n) ? n : POOL_BYTES / size;
}

/**
 * Refuses bad values of the engine's tuning variables, naming the allowed
 * ones (`chooseEngine` calls it before it starts the engine): a typo must
 * not silently run another configuration than the one asked for.
 */
export function checkUringSettings(env: NodeJS.ProcessEnv = process.env): void {
  const pool = env.OVERLAPPED_URING_POOL_BUFFERS;
  if (pool !== undefined && pool !== '' && !isPoolBufferCount(Number(pool))) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_POOL_BUFFERS="${pool}" is invalid: use a power of two from 32 to 32768 (default: 8 MiB of buffers, 128 of 64 KiB or 1024 of 8 KiB), or unset it`,
    );
  }
  const mode = env.OVERLAPPED_URING_TASKRUN;
  if (mode !== undefined && mode !== '' && !(TASK_RUN_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_TASKRUN="${mode}" is invalid: use ${TASK_RUN_MODES.join(', ')} (default coop), or unset it`,
    );
  }
  const multishot = env.OVERLAPPED_URING_RECV_MULTISHOT;
  if (multishot !== undefined && multishot !== '' && multishot !== '0' && multishot !== '1') {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_RECV_MULTISHOT="${multishot}" is invalid: use 0 (one pooled recv at a time) or 1 (default), or unset it`,
    );
  }
  const incremental = env.OVERLAPPED_URING_POOL_INCREMENTAL;
  if (
    incremental !== undefined &&
    incremental !== '' &&
    incremental !== '0' &&
    incremental !== '1'
  ) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_POOL_INCREMENTAL="${incremental}" is invalid: use 0 (a whole pool buffer per recv) or 1 (default), or unset it`,
    );
  }
}

/** `OVERLAPPED_URING_TASKRUN=defer|coop|plain` as the addon's mode index; coop unless told. */
export function taskRunMode(): number {
  const i = TASK_RUN_MODES.indexOf(
    (process.env.OVERLAPPED_URING_TASKRUN ?? 'coop') as (typeof TASK_RUN_MODES)[number],
  );
  return i < 0 ? 1 : i;
}

/** Pooled recvs share one multishot recv per stream unless `OVERLAPPED_URING_RECV_MULTISHOT=0`. */
export function multishotRecvWanted(): boolean {
  return process.env.OVERLAPPED_URING_RECV_MULTISHOT !== '0';
}

/**
 * Pool buffers are consumed incrementally where the kernel can (6.12+)
 * unless `OVERLAPPED_URING_POOL_INCREMENTAL=0`.
 */
export function incrementalPoolWanted(): boolean {
  return process.env.OVERLAPPED_URING_POOL_INCREMENTAL !== '0';
}
