/**
 * Compiles the C programs under bench/peers (the epoll and io_uring echo peers, the
 * load generator) into bench/.cache, shared by the benchmarks and the tests that run
 * them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file runs as dist/bench/c-build.js. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Gitignored: the compiled C programs and the Bun installed on demand live here. */
export const CACHE_DIR = join(ROOT, 'bench/.cache');

export type CBuild = { binary: string } | { skip: string };

/**
 * Builds bench/peers/`name`.c into bench/.cache/`name` with `cc -O2 -Wall -Wextra`
 * (linked with `libs`, e.g. `-luring`) when the binary is missing or older than the
 * source. Resolves to the binary, or to
 * a reason it cannot be built here (no cc, or cc failed). The binary is written under
 * a temporary name and renamed, so concurrent builds (parallel test files) never run
 * a half-written one.
 */
export function buildCPeer(name: string, libs: readonly string[] = []): CBuild {
  const source = join(ROOT, 'bench/peers', `${name}.c`);
  const binary = join(CACHE_DIR, name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) {
    return { binary };
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const temporary = `${binary}.${process.pid}.tmp`;
  const args = ['-O2', '-Wall', '-Wextra', '-o', temporary, source, ...libs];
  process.stderr.write(`  building ${name}: cc ${args.join(' ')}\n`);
  const result = spawnSync('cc', args, { encoding: 'utf8', timeout: 60_000 });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code;
    return {
      skip: code === 'ENOENT' ? 'no C compiler (cc not found)' : `cc: ${result.error.message}`,
    };
  }
  if (result.status !== 0) {
    rmSync(temporary, { force: true });
    return { skip: `cc failed (${result.status ?? result.signal}): ${lastLine(result.stderr)}` };
  }
  renameSync(temporary, binary);
  return { binary };
}

export function lastLine(text: string | null | undefined): string {
  const lines = (text ?? '').trim().split('\n');
  return lines[lines.length - 1]?.trim() || '(no output)';
}
