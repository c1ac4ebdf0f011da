// Builds the io_uring addon (native/) with node-gyp when this machine can:
// Linux, a C compiler, and liburing's header. Otherwise it prints one line
// saying why it skipped, leaves the reason in native/build/skipped.txt (the
// engine reports it), and exits 0: `npm install` never fails over the addon.
//
// OVERLAPPED_ASAN=1 builds with AddressSanitizer into native/build-asan/.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const asan = process.env.OVERLAPPED_ASAN === '1';
const note = join(native, 'build', 'skipped.txt');

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

if (process.platform !== 'linux') skip(`io_uring is Linux only, this is ${process.platform}`);
if (process.env.OVERLAPPED_SKIP_NATIVE === '1') skip('OVERLAPPED_SKIP_NATIVE=1');
const cc = process.env.CC || 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) {
  skip(`no C compiler (${cc}) found`);
}
const probe = spawnSync(cc, ['-E', '-x', 'c', '-'], {
  input: '#include <liburing.h>\n',
  stdio: ['pipe', 'ignore', 'ignore'],
});
if (probe.status !== 0) skip('liburing.h not found: install liburing-dev');

function nodeGyp() {
  // npm ships node-gyp; use it rather than downloading one.
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

const gyp = nodeGyp();
if (gyp === undefined) skip('node-gyp not found (it ships with npm)');
const args = [gyp, 'rebuild'];
// Use the headers installed beside node when there are some (no download, works offline).
const headers = join(dirname(process.execPath), '..');
if (existsSync(join(headers, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${headers}`);
// node-gyp always builds into ./build beside binding.gyp: the ASan build runs on a copy of
// the sources in native/build-asan/, so it never replaces the normal build.
let cwd = native;
if (asan) {
  cwd = join(native, 'build-asan');
  rmSync(cwd, { recursive: true, force: true });
  mkdirSync(cwd);
  cpSync(join(native, 'binding.gyp'), join(cwd, 'binding.gyp'));
  cpSync(join(native, 'src'), join(cwd, 'src'), { recursive: true });
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
} else {
  console.log(`overlapped: built the io_uring addon in ${Date.now() - started} ms`);
}
