/**
 * The typings a user of the package gets (dist/src/*.d.ts, built with
 * stripInternal): a scratch project that imports 'overlapped' by its package
 * name must type-check the documented calls, and must not see the internal
 * methods (`Overlapped.begin`, `CompletionPort.enqueue`, …) or a way to
 * construct a socket. Compiled with TypeScript against the built package
 * here; test/package/packed-tarball.test.ts does the same against the
 * packed tarball, installed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { typeCheckConsumer } from '../support/published-consumer.js';

/** The package root, from dist/test/package/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('the published typings: documented calls compile, internals are hidden', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-types-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'overlapped'), 'dir');
    const text = typeCheckConsumer(dir, join(ROOT, 'node_modules', '@types'));
    assert.deepEqual(text, [], text.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
