/**
 * What `npm publish` would ship (`npm pack --dry-run`, scripts off so the
 * build under test is not redone): the LICENSE, the typings, and for every
 * source map the TypeScript file it points at, so a user's stack traces and
 * debugger land on real source lines; no tests or benchmarks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('the package ships LICENSE, typings, and the source every map points at', () => {
  const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(packed.status, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout) as { files: { path: string }[] }[];
  assert.ok(info !== undefined);
  const files = new Set(info.files.map((f) => f.path));
  for (const required of [
    'LICENSE',
    'README.md',
    'package.json',
    'dist/src/index.js',
    'dist/src/index.d.ts',
  ]) {
    assert.ok(files.has(required), `${required} is not in the package`);
  }
  const maps = [...files].filter((f) => f.endsWith('.js.map'));
  assert.ok(maps.length > 10, `only ${maps.length} source maps`);
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const shipped = normalize(join(dirname(map), source));
      assert.ok(files.has(shipped), `${map} points at ${shipped}, which the package does not ship`);
    }
  }
  const stray = [...files].filter((f) => /^(dist\/)?(test|bench)\//.test(f));
  assert.deepEqual(stray, [], 'tests or benchmarks in the package');
});
