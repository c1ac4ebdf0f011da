/**
 * The listen backlog a TcpListener asks for reaches the kernel, on every engine:
 * by default DEFAULT_BACKLOG (clamped by the kernel to net.core.somaxconn), so a
 * burst of thousands of connects waits in the kernel's queue instead of having
 * its final ACKs dropped. The kernel's figure is read back with `ss` (iproute2),
 * which reports a listening socket's backlog as its Send-Q.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { DEFAULT_BACKLOG, TcpListener } from '../../src/core/tcp-listener.js';
import { enginesUnderTest } from '../support/engines.js';

const ss = spawnSync('ss', ['-V'], { stdio: 'ignore' }).status === 0;
const somaxconn =
  process.platform === 'linux'
    ? Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim())
    : Number.NaN;
const noSs = !ss && 'ss (iproute2) is not installed, so the kernel backlog cannot be read back';

/** The backlog the kernel holds for the TCP listener on 127.0.0.1:`port`. */
function kernelBacklog(port: number): number {
  const out = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
  const fields = out.trim().split(/\s+/);
  return Number(fields[2]);
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`TcpListener backlog (${name} engine)`, { skip: skip ?? noSs }, () => {
    test('the default reaches the kernel, clamped to net.core.somaxconn', async () => {
      assert.ok(engine !== undefined);
      const listener = await TcpListener.listen({ engine, port: 0 });
      try {
        assert.equal(DEFAULT_BACKLOG, 4096);
        assert.equal(kernelBacklog(listener.address.port), Math.min(DEFAULT_BACKLOG, somaxconn));
      } finally {
        listener.close();
      }
    });

    test('an explicit backlog is what the kernel gets', async () => {
      assert.ok(engine !== undefined);
      const listener = await TcpListener.listen({ engine, port: 0, backlog: 37 });
      try {
        assert.equal(kernelBacklog(listener.address.port), 37);
      } finally {
        listener.close();
      }
    });
  });
}
