/**
 * The node engine's event-loop turn: when completions reach the sink, and
 * when staged sends are written out. See the notes in ./node-engine.ts.
 */
import type { CompletionSink, EngineRequest } from '../contract.js';
import { BufferPool } from './buffer-pool.js';

/**
 * Work due "right after the current call" is queued as a reaction to this
 * settled promise: a native microtask, where `process.nextTick` and
 * `queueMicrotask` allocate a tick object or an AsyncResource per call.
 */
const RESOLVED = Promise.resolve();

/** A stream with staged bytes to write out. */
export interface StagedWriter {
  writeStaged(): void;
}

/** Bytes of small sends a stream copies and completes at once, per turn (see notes). */
export const STAGED_SEND_LIMIT = 64 * 1024;

/**
 * Size of each buffer staged sends are copied into; arenas are reused while
 * the OS takes every write whole. Below glibc's mmap threshold, so a new one
 * costs no page faults.
 */
const ARENA_SIZE = 64 * 1024;

/** Free arenas kept for reuse (1 MiB); a turn that staged more frees the rest to the GC. */
const MAX_FREE_ARENAS = 16;

/**
 * Completions that may wait for the check phase before a batch is handed
 * over early (right after the current callback): small enough that the
 * connections it touches are still in cache when their sends are written.
 * Measured at 1000 connections: 8 spent 0.96-1.09x the CPU per message of a
 * plain node:net echo, 32 1.18x, one batch per turn 1.59x.
 */
const EARLY_FLUSH_AT = 8;

/**
 * The engine's event-loop turn: batches completions for the sink and writes
 * staged sends out once the completions they lead to have been handled.
 */
export class Turn {
  /** Buffers for pooled receives, shared by every stream of the engine. */
  readonly pool = new BufferPool();
  #sink: CompletionSink | null = null;
  #pending: EngineRequest[] = [];
  #spare: EngineRequest[] = [];
  #immediate = false;
  #soon = false;
  #flushes = 0;
  #writeScheduled = false;
  #writeSeenFlushes = 0;
  #staged: StagedWriter[] = [];
  #arena: Buffer | null = null;
  #arenaUsed = 0;
  /** Arenas filled earlier in this turn, and arenas free for reuse. */
  #fullArenas: Buffer[] = [];
  #freeArenas: Buffer[] = [];
  /** False once a write of arena bytes left some with Node: this turn's arenas must not be reused. */
  #arenasFree = true;

  setSink(sink: CompletionSink): void {
    this.#sink = sink;
  }

  /**
   * A completion raised by the OS (a libuv callback): delivered in one batch
   * with every other socket's, in this turn's check phase, or right after
   * the current callback once {@link EARLY_FLUSH_AT} are waiting.
   */
  push(req: EngineRequest): void {
    if (this.#pending.push(req) >= EARLY_FLUSH_AT) {
      this.#scheduleSoon();
    } else if (!this.#immediate) {
      this.#immediate = true;
      setImmediate(this.#flushImmediate);
    }
  }

  /**
   * A completion a post produced by itself (data already stashed, a staged
   * send): delivered right after the posting call returns, so a chain of
   * such operations runs on within the turn.
   */
  pushNow(req: EngineRequest): void {
    this.#pending.push(req);
    this.#scheduleSoon();
  }

  /** `stream` has staged bytes to write out once its chain of completions has run. */
  stage(stream: StagedWriter): void {
    this.#staged.push(stream);
    if (!this.#writeScheduled) {
      this.#writeScheduled = true;
      this.#writeSeenFlushes = this.#flushes;
      RESOLVED.then(this.#writeStaged);
    }
  }

  /**
   * Room for `size` staged bytes. Staged sends are copied into one arena
   * rather than a buffer each: no allocation per send, and while the OS takes
   * every write whole (the common case) the arena is reused turn after turn.
   */
  stageBuffer(size: number): Buffer {
    let arena = this.#arena;
    if (arena === null || arena.length - this.#arenaUsed < size) {
      if (arena !== null) this.#fullArenas.push(arena);
      arena =
        (size <= ARENA_SIZE ? this.#freeArenas.pop() : undefined) ??
        Buffer.allocUnsafeSlow(Math.max(ARENA_SIZE, size));
      this.#arena = arena;
      this.#arenaUsed = 0;
    }
    const start = this.#arenaUsed;
    this.#arenaUsed = start + size;
    return arena.subarray(start, start + size);
  }

  /** A write of staged bytes left some with Node (the OS did not take them all). */
  pinArena(): void {
    this.#arenasFree = false;
  }

  #scheduleSoon(): void {
    if (!this.#soon) {
      this.#soon = true;
      RESOLVED.then(this.#flushSoon);
    }
  }

  readonly #flushImmediate = (): void => {
    this.#immediate = false;
    this.#flush();
  };

  readonly #flushSoon = (): void => {
    this.#soon = false;
    this.#flush();
  };

  #flush(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#flushes++;
    this.#pending = this.#spare;
    const sink = this.#sink;
    if (sink === null) throw new Error('node engine: completions arrived before setSink()');
    try {
      sink(batch);
    } finally {
      batch.length = 0;
      this.#spare = batch;
    }
  }

  /**
   * Writes staged bytes out, but only once it comes round in the microtask
   * queue with no delivery pending or made since its last look: until then,
   * handlers may still be answering (recv from the stash, send the next
   * piece), and what they stage should leave in the same write.
   */
  readonly #writeStaged = (): void => {
    if (this.#soon || this.#flushes !== this.#writeSeenFlushes) {
      this.#writeSeenFlushes = this.#flushes;
      RESOLVED.then(this.#writeStaged);
      return;
    }
    this.#writeScheduled = false;
    const streams = this.#staged;
    this.#staged = [];
    for (const stream of streams) stream.writeStaged();
    // Every staged byte has left; the arenas are free again unless Node kept some.
    if (this.#arenasFree) {
      for (const full of this.#fullArenas) {
        if (full.length === ARENA_SIZE && this.#freeArenas.length < MAX_FREE_ARENAS) {
          this.#freeArenas.push(full);
        }
      }
      this.#arenaUsed = 0;
    } else {
      this.#arena = null;
      this.#arenasFree = true;
    }
    if (this.#fullArenas.length > 0) this.#fullArenas = [];
  };
}
