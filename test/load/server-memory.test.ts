import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { describe, it } from 'node:test';
import { countProcessFds, readProcessRssBytes } from '../../src/load/server-memory.js';

/** Above Linux's largest possible pid_max, so no process has it. */
const NO_SUCH_PID = 4_194_305;

describe('server memory from /proc', () => {
  it("reads a process's RSS in bytes, close to what Node reports for itself", () => {
    const bytes = readProcessRssBytes(process.pid);
    assert.ok(bytes > 0 && bytes % 1024 === 0, `${bytes}`);
    const own = process.memoryUsage().rss;
    assert.ok(bytes > own / 2 && bytes < own * 2, `${bytes} vs ${own}`);
  });

  it('counts open file descriptors', () => {
    const before = countProcessFds(process.pid);
    const fd = openSync(process.execPath, 'r');
    try {
      assert.equal(countProcessFds(process.pid), before + 1);
    } finally {
      closeSync(fd);
    }
  });

  it('throws for a process that does not exist', () => {
    assert.throws(() => readProcessRssBytes(NO_SUCH_PID), { code: 'ENOENT' });
    assert.throws(() => countProcessFds(NO_SUCH_PID), { code: 'ENOENT' });
  });
});
