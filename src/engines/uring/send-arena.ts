/**
 * The send arena: where the engine keeps its copies of sends it completed
 * before the kernel took their bytes (see "Buffered sends" in
 * uring-engine.ts). One per ring, shared by its streams.
 *
 * Copies are bump-allocated in chunks, so a 64-byte send costs 64 bytes of
 * a chunk rather than a buffer of its own, and an echo chain of 8 KiB pieces
 * allocates nothing. A chunk is reused once every copy in it is released
 * (its kernel send completed, or the stream dropped it); at most
 * ARENA_SPARES empty chunks are kept, the rest left to the GC.
 *
 * Contract: a copy's view stays valid, and its memory untouched, until it
 * is released to the chunk it was made in (`lastChunk` right after `copy`);
 * the caller keeps the view referenced while the kernel reads it. A copy
 * costs no object beyond its view (this is on every streamed send).
 */
import { ARENA_CHUNK, ARENA_SPARES } from './constants.js';

export class ArenaChunk {
  readonly buffer: Buffer;
  /** Bytes handed out from the start. */
  used = 0;
  /** Bytes handed out and not released yet. */
  live = 0;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafeSlow(size);
  }
}

export class SendArena {
  #current: ArenaChunk | null = null;
  readonly #spares: ArenaChunk[] = [];
  /** Bytes of copies not released yet, over every chunk (for tests). */
  #live = 0;

  get liveBytes(): number {
    return this.#live;
  }

  /** The chunk the last copy was made in: what to release it to. */
  get lastChunk(): ArenaChunk {
    return this.#current as ArenaChunk;
  }

  /** Copies `size` (at most ARENA_CHUNK) bytes of `data` (one buffer, or parts in order). */
  copy(data: Uint8Array | readonly Uint8Array[], size: number): Buffer {
    let chunk = this.#current;
    if (chunk === null || chunk.buffer.length - chunk.used < size) {
      if (chunk !== null && chunk.live === 0) chunk.used = 0;
      else chunk = this.#spares.pop() ?? new ArenaChunk(ARENA_CHUNK);
      this.#current = chunk;
    }
    const start = chunk.used;
    const view = chunk.buffer.subarray(start, start + size);
    if (ArrayBuffer.isView(data)) {
      view.set(data as Uint8Array);
    } else {
      let at = 0;
      for (const part of data as readonly Uint8Array[]) {
        view.set(part, at);
        at += part.byteLength;
      }
    }
    chunk.used = start + size;
    chunk.live += size;
    this.#live += size;
    return view;
  }

  /** Gives back `size` bytes copied into `chunk`; their view must not be read after this. */
  release(chunk: ArenaChunk, size: number): void {
    chunk.live -= size;
    this.#live -= size;
    if (chunk.live > 0) return;
    if (chunk === this.#current) {
      chunk.used = 0;
    } else if (this.#spares.length < ARENA_SPARES) {
      chunk.used = 0;
      this.#spares.push(chunk);
    }
  }
}
