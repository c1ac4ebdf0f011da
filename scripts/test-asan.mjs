// `npm run test:asan`: builds the addon with AddressSanitizer (native/build-asan/) and runs the
// conformance suite against it, with libasan preloaded into node (node itself is not
// instrumented). LeakSanitizer runs at exit; native/lsan.supp silences leaks inside node and
// V8 only, never the addon's own frames.
import { spawnSync } from 'node:child_process';
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
const filters = process.argv.slice(2);
const result = spawnSync(
  process.execPath,
  [join(root, 'scripts', 'run-tests.mjs'), ...(filters.length > 0 ? filters : ['conformance'])],
  {
    cwd: root,
    stdio: 'inherit',
    env: {
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
    },
  },
);
console.log(
  `test:asan: ${result.status === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(result.status ?? 1);
