/**
 * The counters every completion passes (DESIGN.md, "Observability"): plain
 * numbers in typed arrays and fields, incremented where the work happens and
 * read by `src/metrics/` only when Prometheus scrapes. Counting costs an
 * index computation and an add: no allocation, no call into prom-client, on
 * any path an operation takes.
 *
 * One set per event loop (each worker thread loads its own copy of this
 * module), like the deadline structure.
 *
 * Indexes: `engine * OPERATIONS.length + operation` for the per-operation
 * arrays, times `RESULTS.length` plus the result for completions.
 */
import type { Engine } from '../engines/contract.js';
import { OverlappedError } from './errors.js';
import type { Operation, Overlapped } from './overlapped.js';

export const OPERATIONS = [
  'accept',
  'connect',
  'recv',
  'send',
  'shutdown',
  'read',
  'write',
  'poll',
] as const satisfies readonly Operation[];

/**
 * The index of `operation` in {@link OPERATIONS}. A switch, not an object
 * lookup: V8 compares interned strings by pointer here (about 1 ns), where a
 * keyed lookup with a key that varies at the call site costs 15 ns or more.
 */
function operationIndex(operation: Operation): number {
  switch (operation) {
    case 'recv':
      return 2;
    case 'send':
      return 3;
    case 'accept':
      return 0;
    case 'poll':
      return 7;
    case 'read':
      return 5;
    case 'write':
      return 6;
    case 'connect':
      return 1;
    default:
      return 4;
  }
}

/** Engine label values; an Engine object of another kind counts as `other`. */
export const ENGINE_LABELS = ['node', 'uring', 'other'] as const;

/** `ok`; `aborted` (cancel, close, a deadline or limit closing the handle); `error` (the OS's or a toolkit error). */
export const RESULTS = ['ok', 'aborted', 'error'] as const;

/** Upper bounds of the completion batch-size histogram's buckets (a power of two each). */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const;

/** Why a connection was refused or closed by a limit, for `overlapped_limit_closes_total`. */
export const LIMITS = ['max_connections', 'send_queue', 'proxy_source'] as const;
export type LimitName = (typeof LIMITS)[number];

/** Which deadline closed a connection, for `overlapped_deadline_closes_total`. */
export const DEADLINES = ['connection', 'proxy_header'] as const;

const ENGINES = ENGINE_LABELS.length;
const OPS = OPERATIONS.length;
const SLOTS = ENGINES * OPS;

/**
 * The hot counters, in one array, by slot (`engine * OPERATIONS.length +
 * operation`): operations posted, completions (by result), bytes moved, and
 * buffer bytes lent and given back. One array, and no cell that every
 * operation updates: separate arrays measured three times the cost, and one
 * lent-bytes cell per engine a third more (each update waits for the last).
 */
export const HOT = new Float64Array(SLOTS * (4 + RESULTS.length));
export const POSTED_AT = 0;
export const COMPLETED_AT = SLOTS;
export const BYTES_AT = SLOTS * (1 + RESULTS.length);
/**
 * Bytes of buffers handed to operations when posted (recv buffer lengths,
 * send totals) and when delivered: the difference is what pending
 * operations hold, lent to the engine and kernel. Pooled recvs lend nothing
 * until data arrives, so they add 0.
 */
export const LENT_AT = SLOTS * (2 + RESULTS.length);
export const RETURNED_AT = SLOTS * (3 + RESULTS.length);

export const counters = {
  /** Completion batches handed to the sink, by engine: bucket counts (cumulative at read time), sum, count. */
  batchBuckets: new Float64Array(ENGINES * BATCH_BUCKETS.length),
  batchSum: new Float64Array(ENGINES),
  batchCount: new Float64Array(ENGINES),
  /** Completed operations' errors and PROXY refusals, by code (`OVL_ERR_*`, `ECONNRESET`, …). */
  errors: new Map<string, number>(),
  /** Connections (TCP sockets and pipe connections) open now, by engine. */
  connectionsOpen: new Float64Array(ENGINES),
  /** Connections accepted, by engine. */
  accepted: new Float64Array(ENGINES),
  /** Connections a limit refused or cut off, by {@link LIMITS}. */
  limitCloses: new Float64Array(LIMITS.length),
  /** Connections a deadline closed, by {@link DEADLINES}. */
  deadlineCloses: new Float64Array(DEADLINES.length),
  /**
   * Pool buffer leases held now, by engine: each completed pooled recv holds
   * one until it is released (counted by the engines' pools); on uring with
   * incremental buffers several leases may share one buffer.
   */
  poolLent: new Float64Array(ENGINES),
};

/** Index of the uring and node engines in the by-engine counters. */
export const NODE_ENGINE = 0;
export const URING_ENGINE = 1;

/** What the metrics read of a completion port. */
export interface PortGauges {
  readonly size: number;
  readonly waiting: number;
  readonly active: number;
  readonly closed: boolean;
}

/** Every completion port of this loop, weakly held: the metrics sum their queues at scrape time. */
export const livePorts = new Set<WeakRef<PortGauges>>();

/** `a[i] += v` (a helper V8 inlines; the index is always in range). */
export function add(a: Float64Array, i: number, v = 1): void {
  a[i] = (a[i] as number) + v;
}

/** The engine label index of `engine` (computed once per handle). */
export function engineIndex(engine: Engine): number {
  return engine.name === 'node' ? NODE_ENGINE : engine.name === 'uring' ? URING_ENGINE : 2;
}

/** An operation was posted on a handle of engine `e`, lending `requested` bytes of buffer. */
export function countPosted(e: number, operation: Operation, requested: number): void {
  const hot = HOT;
  const slot = e * OPS + operationIndex(operation);
  hot[POSTED_AT + slot] = (hot[POSTED_AT + slot] as number) + 1;
  hot[LENT_AT + slot] = (hot[LENT_AT + slot] as number) + requested;
}

/** A posted operation's completion is being delivered. */
export function countCompleted(e: number, ov: Overlapped<unknown>): void {
  const hot = HOT;
  const slot = e * OPS + operationIndex(ov.operation as Operation);
  const error = ov.error;
  const result = error === null ? 0 : completionResult(error);
  const at = COMPLETED_AT + slot * RESULTS.length + result;
  hot[at] = (hot[at] as number) + 1;
  hot[BYTES_AT + slot] = (hot[BYTES_AT + slot] as number) + ov.bytes;
  hot[RETURNED_AT + slot] = (hot[RETURNED_AT + slot] as number) + ov.requested;
}

/** 1 (aborted) or 2 (error, counted by code): the rare path, kept out of countCompleted. */
function completionResult(error: Error): number {
  const code = (error as { code?: unknown }).code;
  if (error instanceof OverlappedError && code === 'OVL_ERR_ABORTED') return 1;
  countError(typeof code === 'string' ? code : 'unknown');
  return 2;
}

/** An error by its code (a Map update; errors are the rare path). */
export function countError(code: string): void {
  counters.errors.set(code, (counters.errors.get(code) ?? 0) + 1);
}

/** One batch of `size` completions reached the sink from engine `e`. */
export function countBatch(e: number, size: number): void {
  const bucket = size <= 1 ? 0 : Math.min(32 - Math.clz32(size - 1), BATCH_BUCKETS.length - 1);
  // Past the last bound a batch goes only to +Inf (count), so the top bucket stays a true bound.
  if (size <= (BATCH_BUCKETS[BATCH_BUCKETS.length - 1] as number)) {
    add(counters.batchBuckets, e * BATCH_BUCKETS.length + bucket);
  }
  add(counters.batchSum, e, size);
  add(counters.batchCount, e);
}

export function countLimitClose(limit: LimitName): void {
  add(counters.limitCloses, LIMITS.indexOf(limit));
}
