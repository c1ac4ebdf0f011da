// Prints how binding.gyp links liburing: the static archive (liburing.a, from
// Debian's liburing-dev) when the compiler finds one, so the addon needs no
// liburing.so at run time (the prebuilt addon in the npm package relies on
// that); else -luring, the shared library, for systems that ship no archive.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';

let archive = '';
try {
  archive = execFileSync(process.env.CC || 'cc', ['-print-file-name=liburing.a'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
} catch {
  // no compiler to ask: the build itself will say so
}
// The compiler echoes the bare name back when it finds no such file.
console.log(isAbsolute(archive) && existsSync(archive) ? archive : '-luring');
