/**
 * The uring engine has no global state: each worker_threads worker opens
 * its own ring, and a worker that ends with operations in flight (pending
 * accepts and recvs) tears its ring down without disturbing anyone else.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { enginesUnderTest, readExactly } from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');
const WORKER = new URL('../support/uring-echo-worker.js', import.meta.url);

function startWorker(hold: boolean): Promise<{ worker: Worker; port: number }> {
  const worker = new Worker(WORKER, { workerData: { hold } });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (m: { port: number; engine: string }) => {
      assert.equal(m.engine, 'uring');
      resolve({ worker, port: m.port });
    });
  });
}

async function echo(port: number, size: number): Promise<void> {
  const client = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const data = randomBytes(size);
  const back = readExactly(client, size);
  client.write(data);
  assert.ok((await back).equals(data));
  client.destroy();
}

describe('uring engine in worker_threads', { skip: uring?.skip ?? false }, () => {
  test('two workers each run an echo server on their own ring', async () => {
    const [a, b] = await Promise.all([startWorker(false), startWorker(false)]);
    await Promise.all([echo(a.port, 100_000), echo(b.port, 100_000)]);
    for (const { worker } of [a, b]) {
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      worker.postMessage('stop');
      assert.equal(await exited, 0);
    }
  });

  test('a worker terminated with operations in flight tears its ring down cleanly', async () => {
    const { worker, port } = await startWorker(true);
    // An idle client: the worker's server has a recv pending on it, and accepts pending.
    const idle = net.connect(port, '127.0.0.1');
    idle.on('error', () => {});
    await new Promise((resolve) => idle.once('connect', resolve));
    await echo(port, 10_000);
    const closed = new Promise((resolve) => idle.once('close', resolve));
    await worker.terminate();
    // The ring's descriptors were closed with it: the idle client sees its connection end.
    idle.resume();
    await closed;
    // And another worker still works.
    const other = await startWorker(false);
    await echo(other.port, 1000);
    await other.worker.terminate();
  });
});
