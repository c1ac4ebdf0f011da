// What building the io_uring addon needs, shared by scripts/build-native.mjs
// (the addon from source, at install or by hand) and scripts/prebuild.mjs (the
// prebuilt addon the npm package ships): node-gyp, the headers, and a scratch
// copy of the sources for builds that must not replace native/build/.
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE = join(ROOT, 'native');

/** node-gyp: the one npm ships (no download), else a local install; undefined when none. */
export function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) {
    candidates.push(
      join(
        dirname(process.env.npm_execpath),
        '..',
        'node_modules',
        'node-gyp',
        'bin',
        'node-gyp.js',
      ),
    );
  }
  candidates.push(
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  );
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  return candidates.find((c) => existsSync(c));
}

/** The headers installed beside node, when there are some: builds then work offline. */
export function localNodeDir() {
  const headers = join(dirname(process.execPath), '..');
  return existsSync(join(headers, 'include', 'node', 'node_api.h')) ? headers : undefined;
}

/**
 * A fresh copy of binding.gyp and the C sources in `dir` (node-gyp always
 * builds into ./build beside binding.gyp), so a build there leaves
 * native/build/ alone.
 */
export function copyNativeSources(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const file of ['binding.gyp', 'liburing-link.mjs']) {
    cpSync(join(NATIVE, file), join(dir, file));
  }
  cpSync(join(NATIVE, 'src'), join(dir, 'src'), { recursive: true });
}
