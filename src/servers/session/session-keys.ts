/**
 * The key registry of the session framework: `GenNewCompletionKey` and
 * `DeleteCompletionKey` of the seeds' `KIocp`, with a generation count.
 *
 * A key is a number: `generation * SLOT_SPACE + slot`. Deleting a key frees
 * its slot for the next session and bumps the slot's generation, so a key
 * kept by the application after its session ended (in a timer, a message
 * from another thread, a game's party list) never finds the session that
 * reuses the slot: `get` answers undefined for it. Keys are plain numbers so
 * they cross threads (`postMessage`) and fit in a Map or a typed array.
 */
import { check } from '../../core/errors.js';

/** Slots a registry holds at most (2^21): the low bits of a key. */
export const SLOT_SPACE = 2 ** 21;

/**
 * Generations per slot before they wrap (2^25): keys stay below 2^46, so a
 * threaded server can add a thread index (times 64) and still hold a safe
 * integer. A stale key could only match again after its slot has been
 * reused 33 million times.
 */
const GENERATIONS = 2 ** 25;

/** Sessions (or anything) by generated key. */
export class KeyRegistry<V> implements Iterable<V> {
  #values: (V | undefined)[] = [];
  #generations: number[] = [];
  #free: number[] = [];
  #size = 0;

  /** Live entries. */
  get size(): number {
    return this.#size;
  }

  /** GenNewCompletionKey: stores `value` under a new key and returns the key. */
  add(value: V): number {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#values.length;
      check(
        slot < SLOT_SPACE,
        'OVL_ERR_INVALID_ARGUMENT',
        `a key registry holds at most ${SLOT_SPACE} entries`,
      );
      this.#values.push(undefined);
      this.#generations.push(0);
    }
    this.#values[slot] = value;
    this.#size++;
    return (this.#generations[slot] as number) * SLOT_SPACE + slot;
  }

  /** The value under `key`, or undefined when the key was deleted (or never made). */
  get(key: number): V | undefined {
    if (!Number.isSafeInteger(key) || key < 0) return undefined;
    const slot = key % SLOT_SPACE;
    if (this.#generations[slot] !== Math.floor(key / SLOT_SPACE)) return undefined;
    return this.#values[slot];
  }

  /** DeleteCompletionKey: false when `key` is stale already. The slot's generation moves on. */
  delete(key: number): boolean {
    if (this.get(key) === undefined) return false;
    const slot = key % SLOT_SPACE;
    this.#values[slot] = undefined;
    this.#generations[slot] = ((this.#generations[slot] as number) + 1) % GENERATIONS;
    this.#free.push(slot);
    this.#size--;
    return true;
  }

  /** Live values, in slot order. Deleting during the iteration is safe. */
  *[Symbol.iterator](): Iterator<V> {
    const values = this.#values;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (value !== undefined) yield value;
    }
  }
}
