// The prebuilt addon the npm package ships: prebuildify --napi (one binary
// for every Node.js with Node-API 8) for this machine's platform and arch,
// stripped and tagged with its libc, into native/prebuilds/<platform>-<arch>/,
// where node-gyp-build finds it at install and at load. `npm pack` and
// `npm publish` run it (prepack), so a tarball always carries a fresh one.
// The build runs on a copy of the sources (native/build-prebuild/), so
// native/build/ is left alone; liburing is linked statically
// (native/liburing-link.mjs), so the binary needs no liburing.so.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { copyNativeSources, findNodeGyp, localNodeDir, NATIVE } from './native-toolchain.mjs';

const prebuildify = createRequire(import.meta.url)('prebuildify');
const cwd = join(NATIVE, 'build-prebuild');
copyNativeSources(cwd);
const nodeGyp = findNodeGyp();
const nodedir = localNodeDir();
// node-gyp takes its options from npm_config_*: the local headers, not a download.
if (nodedir !== undefined) process.env.npm_config_nodedir = nodedir;
const started = Date.now();
prebuildify(
  {
    cwd,
    out: NATIVE,
    napi: true,
    strip: true,
    tagLibc: true,
    // node-gyp-build's tags: runtime node, Node-API (any ABI), then the libc.
    name: 'node.napi',
    targets: [{ runtime: 'node', target: process.versions.node }],
    quiet: true,
    ...(nodeGyp === undefined ? {} : { nodeGyp: `${process.execPath} ${nodeGyp}`, shell: true }),
  },
  (err) => {
    if (err) {
      console.error(`overlapped: prebuild failed: ${err.message}`);
      process.exit(1);
    }
    console.log(
      `overlapped: prebuilt the io_uring addon into native/prebuilds/${process.platform}-${process.arch}/ in ${Date.now() - started} ms`,
    );
  },
);
