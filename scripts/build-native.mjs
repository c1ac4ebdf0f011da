// The io_uring addon (native/) for this machine, in one of three ways, each
// ending in one line that says which:
// - `--prefer-prebuilt` (npm's install script): the prebuilt addon the package
//   ships (native/prebuilds/<platform>-<arch>/, made by scripts/prebuild.mjs
//   with prebuildify and found by node-gyp-build), when one matches this
//   machine and loads; no compiler needed.
// - Otherwise built from source with node-gyp, when this machine can: Linux, a
//   C compiler, and liburing's header (liburing is linked statically where its
//   archive is installed, see native/liburing-link.mjs).
// - Otherwise skipped: the reason goes in native/build/skipped.txt (the engine
//   reports it) and the node engine is used. `npm install` never fails over
//   the addon.
//
// OVERLAPPED_ASAN=1 builds with AddressSanitizer into native/build-asan/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { copyNativeSources, findNodeGyp, localNodeDir, NATIVE, ROOT } from './native-toolchain.mjs';

const asan = process.env.OVERLAPPED_ASAN === '1';
const note = join(NATIVE, 'build', 'skipped.txt');

function skip(why) {
  if (asan) {
    console.error(`overlapped: cannot build the AddressSanitizer addon: ${why}`);
    process.exit(1);
  }
  console.log(`overlapped: not building the io_uring addon (${why}); the node engine will be used`);
  mkdirSync(dirname(note), { recursive: true });
  writeFileSync(note, `${why}\n`);
  process.exit(0);
}

/** The shipped prebuilt addon for this machine if it loads here: its path, or why not (a string). */
function prebuilt() {
  let path;
  try {
    process.env.PREBUILDS_ONLY = '1'; // node-gyp-build: look at prebuilds/ only, not at an old build/
    path = createRequire(import.meta.url)('node-gyp-build').path(NATIVE);
  } catch {
    return { why: `no prebuilt addon for this machine (${process.platform}-${process.arch})` };
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
  // In a clone, C edited since the last prebuild must not be hidden behind it (a packed
  // tarball gives every file one mtime, so an installed package never looks stale).
  const sources = [
    join(NATIVE, 'binding.gyp'),
    ...readdirSync(join(NATIVE, 'src')).map((f) => join(NATIVE, 'src', f)),
  ];
  if (sources.some((f) => statSync(f).mtimeMs > statSync(path).mtimeMs)) {
    return { why: 'the prebuilt addon is older than native/src' };
  }
  try {
    createRequire(import.meta.url)(path);
    return { path };
  } catch (err) {
    return { why: `the prebuilt addon does not load here (${err.message.split('\n')[0]})` };
  }
}

if (process.platform !== 'linux') skip(`io_uring is Linux only, this is ${process.platform}`);
if (process.env.OVERLAPPED_SKIP_NATIVE === '1') skip('OVERLAPPED_SKIP_NATIVE=1');
let fromSourceBecause = '';
if (!asan && process.argv.includes('--prefer-prebuilt')) {
  const found = prebuilt();
  if (found.path !== undefined) {
    // What install chose is what loads: node-gyp-build prefers native/build/ over prebuilds/.
    rmSync(join(NATIVE, 'build'), { recursive: true, force: true });
    console.log(`overlapped: using the prebuilt io_uring addon (${relative(ROOT, found.path)})`);
    process.exit(0);
  }
  fromSourceBecause = ` (${found.why})`;
}
const cc = process.env.CC || 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) {
  skip(`no C compiler (${cc}) found${fromSourceBecause}`);
}
const probe = spawnSync(cc, ['-E', '-x', 'c', '-'], {
  input: '#include <liburing.h>\n',
  stdio: ['pipe', 'ignore', 'ignore'],
});
if (probe.status !== 0) skip(`liburing.h not found: install liburing-dev${fromSourceBecause}`);

const gyp = findNodeGyp();
if (gyp === undefined) skip('node-gyp not found (it ships with npm)');
const args = [gyp, 'rebuild'];
const nodedir = localNodeDir();
if (nodedir !== undefined) args.push(`--nodedir=${nodedir}`);
// The ASan build runs on a copy of the sources, so it never replaces the normal build.
let cwd = NATIVE;
if (asan) {
  cwd = join(NATIVE, 'build-asan');
  copyNativeSources(cwd);
} else {
  rmSync(note, { force: true });
}
const started = Date.now();
const result = spawnSync(process.execPath, args, {
  cwd,
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, OVERLAPPED_ASAN: asan ? '1' : '0' },
});
if (result.status !== 0) {
  process.stderr.write(result.stdout);
  process.stderr.write(result.stderr);
  skip(`node-gyp failed (exit ${result.status}); see the output above`);
}
if (asan) {
  console.log(`overlapped: built the io_uring addon with AddressSanitizer in ${cwd}/build/Release`);
} else if (existsSync(join(NATIVE, 'build', 'Release', 'overlapped_uring.node'))) {
  console.log(
    `overlapped: built the io_uring addon from source in ${Date.now() - started} ms${fromSourceBecause}`,
  );
}
