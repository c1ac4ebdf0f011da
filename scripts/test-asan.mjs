// `npm run test:asan`: builds the addon with AddressSanitizer (native/build-asan/) and runs the
// conformance suite and the worker test against it, with libasan preloaded into node (node
// itself is not instrumented). Each test file runs as its own node process (not under the
// `node --test` runner, whose own process leaves V8 heap pages behind at exit), so
// LeakSanitizer's report at each exit covers one suite and the addon; a leak fails the file
// with exit code 86. native/lsan.supp is for node/V8-internal leaks only (none today).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
  stdio: 'inherit',
  env: { ...process.env, OVERLAPPED_ASAN: '1' },
});
if (build.status !== 0) process.exit(build.status ?? 1);
const libasan = spawnSync(process.env.CC || 'gcc', ['-print-file-name=libasan.so'], {
  encoding: 'utf8',
}).stdout.trim();

function collect(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...collect(path));
    else if (entry.name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
// The echo server tests too (they run on uring); not the socat one: socat itself would inherit libasan.
const wanted = filters.length > 0 ? filters : ['conformance', 'engines/', 'servers/echo-server'];
const files = collect(join(root, 'dist', 'test'))
  .filter((f) => wanted.some((part) => f.includes(part)))
  .sort();
const env = {
  ...process.env,
  OVERLAPPED_NATIVE_ADDON: join(
    root,
    'native',
    'build-asan',
    'build',
    'Release',
    'overlapped_uring.node',
  ),
  LD_PRELOAD: libasan,
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=86',
  LSAN_OPTIONS: `suppressions=${join(root, 'native', 'lsan.supp')}:print_suppressions=0`,
};
const failed = [];
for (const file of files) {
  const result = spawnSync(
    process.execPath,
    ['--enable-source-maps', '--test-reporter=dot', file],
    {
      cwd: root,
      encoding: 'utf8',
      env,
    },
  );
  const ok = result.status === 0;
  const name = file.slice(root.length + 1);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ` (exit ${result.status})`}`);
  if (!ok) {
    failed.push(name);
    process.stdout.write(result.stdout);
    process.stdout.write(result.stderr);
  }
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `test:asan: ${files.length - failed.length} of ${files.length} files passed under AddressSanitizer in ${seconds} s`,
);
process.exit(failed.length === 0 && files.length > 0 ? 0 : 1);
