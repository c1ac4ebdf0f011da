/**
 * The engines' module graph (DESIGN.md: one folder per engine, a file per
 * concern): no import cycle anywhere in the compiled sources, and the uring
 * engine's streams and listeners depend on its ring and buffer pool, never
 * on the engine module itself. Read from the compiled ESM (dist/src).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every module under `dir` and the relative modules it imports or re-exports statically. */
function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.js')) {
        const text = readFileSync(path, 'utf8');
        const deps = [...text.matchAll(/^(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)];
        graph.set(
          path,
          deps.map((m) => resolve(dirname(path), m[1] as string)),
        );
      }
    }
  };
  walk(dir);
  return graph;
}

function cycles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const dep of graph.get(node) ?? []) {
      if (state.get(dep) === 'open') {
        found.push(
          [...stack.slice(stack.indexOf(dep)), dep].map((p) => relative(SRC, p)).join(' -> '),
        );
      } else if (!state.has(dep)) {
        visit(dep);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

test('no module imports itself through others', () => {
  const graph = importGraph(SRC);
  assert.ok(graph.size > 50, `only ${graph.size} modules found under ${SRC}`);
  assert.deepEqual(cycles(graph), []);
});

test('uring streams, listeners, polls, ring and pool do not depend on the engine module', () => {
  const uring = join(SRC, 'engines', 'uring');
  const graph = importGraph(uring);
  const engine = join(uring, 'uring-engine.js');
  for (const file of ['stream.js', 'listener.js', 'poll-list.js', 'ring.js', 'buffer-pool.js']) {
    const deps = graph.get(join(uring, file));
    assert.ok(deps !== undefined, `${file} is missing`);
    assert.ok(!deps.includes(engine), `${file} imports uring-engine.js`);
  }
});
