import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Overlapped } from '../../src/core/overlapped.js';
import type { PipeConnection } from '../../src/core/pipe-connection.js';
import { PipeListener, type PipeListenOptions } from '../../src/core/pipe-listener.js';
import { getOverlappedResult } from '../../src/core/waits.js';
import { defaultEngine } from '../../src/engines/select.js';

export const unixOnly = process.platform === 'win32' ? 'Unix domain socket files only' : false;

/** A fresh private directory for socket files; `remove()` deletes it. */
export function tempPipeDir(): { dir: string; path: (name?: string) => string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-pipe-'));
  return {
    dir,
    path: (name = 'test.sock') => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const engine = () => defaultEngine().engine;

/** Frames `payload` as a data message (4-byte big-endian length, then the bytes). */
export function frame(payload: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

/** Rejects after `ms` so a broken completion fails the test instead of hanging it. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits for `ov` to complete; resolves with its bytes and error instead of throwing. */
export async function settle(ov: Overlapped<unknown>, ms = 5000) {
  try {
    const bytes = await within(getOverlappedResult(ov, { wait: true }), ms, 'completion');
    return { bytes, error: null as Error | null };
  } catch (err) {
    if (!(ov.error !== null && err === ov.error)) throw err;
    return { bytes: ov.bytes, error: ov.error };
  }
}

/** A pipe listener and one raw node:net client connected to it, with the server-side instance. */
export async function rawPair(options: Partial<PipeListenOptions> = {}) {
  const tmp = tempPipeDir();
  const listener = await PipeListener.listen({ engine: engine(), path: tmp.path(), ...options });
  const accept = new Overlapped();
  listener.accept(accept);
  const raw = net.connect({ path: listener.path, allowHalfOpen: true });
  raw.on('error', () => {});
  await settle(accept);
  const instance = accept.pipe as PipeConnection;
  return {
    listener,
    raw,
    instance,
    close() {
      raw.destroy();
      instance.close();
      listener.close();
      tmp.remove();
    },
  };
}
