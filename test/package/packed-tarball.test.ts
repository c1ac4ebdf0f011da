/**
 * `npm install overlapped` on a machine with no compiler gets the io_uring
 * engine: the packed tarball carries the prebuilt addon (prebuildify --napi,
 * liburing linked statically), the install script picks it (one line says
 * so), and node-gyp-build loads it. Checked end to end: the prebuild is made
 * (scripts/prebuild.mjs: a fresh clone has none), the package is packed
 * (`npm pack`, scripts off so the build under test is not redone), installed
 * into a scratch project with a PATH holding only node, npm and sh, and an
 * echo round trip runs on the `uring` engine from it. The same install is
 * type-checked as a TypeScript consumer would compile against it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { enginesUnderTest } from '../support/engines.js';
import { typeCheckConsumer } from '../support/published-consumer.js';

/** The package root, from dist/test/package/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PREBUILD_DIR = join(ROOT, 'native', 'prebuilds', `${process.platform}-${process.arch}`);
/** The highest glibc symbol version the prebuilt addon may need (README: Node 20's own floor). */
const GLIBC_FLOOR = [2, 28] as const;

/** Where `command` resolves on `path`, or null. */
function which(command: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, command))) return join(dir, command);
  }
  return null;
}

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const r = spawnSync(command, args, { ...options, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** Why this test cannot run here, or null: it builds the prebuild, so it needs what that needs. */
function cannotRun(): string | null {
  if (process.platform !== 'linux')
    return `the io_uring addon is Linux only (this is ${process.platform})`;
  if (which('cc') === null) return 'no C compiler (cc) to make the prebuilt addon with';
  const header = spawnSync('cc', ['-E', '-x', 'c', '-'], { input: '#include <liburing.h>\n' });
  if (header.status !== 0) return 'liburing.h not found (apt-get install -y liburing-dev)';
  return null;
}

const skip = cannotRun();
if (skip !== null) console.log(`# packed-tarball: skipped: ${skip}`);
const uring = enginesUnderTest().find((e) => e.name === 'uring');

describe('the packed tarball', { skip: skip ?? false }, () => {
  let scratch = '';
  let project = '';
  /** PATH for the consumer: node, npm and sh only (no cc, gcc, make, python3). */
  let bareEnv: NodeJS.ProcessEnv = {};
  let installOutput = '';

  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'ovl-packed-'));
    const prebuild = run(process.execPath, [join(ROOT, 'scripts', 'prebuild.mjs')], { cwd: ROOT });
    assert.equal(prebuild.status, 0, prebuild.out);

    const packed = run(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch],
      { cwd: ROOT },
    );
    assert.equal(packed.status, 0, packed.out);
    const [info] = JSON.parse(packed.out.slice(packed.out.indexOf('['))) as { filename: string }[];
    assert.ok(info !== undefined);
    const tarball = join(scratch, info.filename);

    const bin = join(scratch, 'bin');
    mkdirSync(bin);
    for (const command of ['node', 'npm', 'sh']) {
      const found = which(command);
      assert.ok(found !== null, `${command} is not on PATH`);
      symlinkSync(found, join(bin, command));
    }
    const env: NodeJS.ProcessEnv = { PATH: bin, HOME: process.env.HOME ?? scratch };
    if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;
    bareEnv = env;
    for (const compiler of ['cc', 'gcc', 'make', 'python3', 'c++']) {
      assert.equal(which(compiler, bin), null, `${compiler} must not be on the consumer's PATH`);
    }

    project = join(scratch, 'consumer');
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { overlapped: `file:${tarball}` } }, null, 2)}\n`,
    );
    const installed = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--foreground-scripts', '--prefer-offline'],
      { cwd: project, env },
    );
    installOutput = installed.out;
    assert.equal(installed.status, 0, installed.out);
  });

  /** `<engine>: <reason>` as chooseEngine() says it in the scratch project. */
  function chosenEngine(): string {
    const script =
      "import { chooseEngine } from 'overlapped'; const c = chooseEngine(); console.log(c.engine.name + ': ' + c.reason);";
    const r = run('node', ['--input-type=module', '-e', script], { cwd: project, env: bareEnv });
    assert.equal(r.status, 0, r.out);
    return r.out.trim();
  }

  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  test('the install picks the prebuilt addon and says so in one line, compiling nothing', () => {
    const lines = installOutput.split('\n').filter((l) => l.startsWith('overlapped:'));
    assert.deepEqual(lines, [
      `overlapped: using the prebuilt io_uring addon (native/prebuilds/${process.platform}-${process.arch}/node.napi.glibc.node)`,
    ]);
    const installedNative = join(project, 'node_modules', 'overlapped', 'native');
    assert.equal(existsSync(join(installedNative, 'build')), false, 'nothing was built');
  });

  test('the uring engine runs from the installed package: a byte-exact echo round trip', {
    skip: uring?.skip ?? false,
  }, () => {
    const script = `
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { chooseEngine, startEchoServer } from 'overlapped';
const { engine } = chooseEngine('uring');
const server = await startEchoServer({ port: 0, engine: 'uring' });
const data = randomBytes(256 * 1024);
const echoed = await new Promise((resolve, reject) => {
  const chunks = [];
  let got = 0;
  const client = net.connect(server.address.port, '127.0.0.1', () => client.write(data));
  client.on('data', (chunk) => {
    chunks.push(chunk);
    got += chunk.length;
    if (got >= data.length) { client.end(); resolve(Buffer.concat(chunks)); }
  });
  client.on('error', reject);
});
await server.stop();
console.log(JSON.stringify({ engine: engine.name, bytes: echoed.length, exact: echoed.equals(data) }));
`;
    writeFileSync(join(project, 'echo.mjs'), script);
    const r = run('node', ['echo.mjs'], { cwd: project, env: bareEnv });
    assert.equal(r.status, 0, r.out);
    const result = JSON.parse(r.out.trim().split('\n').pop() ?? '{}');
    assert.deepEqual(result, { engine: 'uring', bytes: 256 * 1024, exact: true });
  });

  test('a TypeScript consumer type-checks against the installed package', () => {
    const typesProject = join(scratch, 'types');
    mkdirSync(typesProject);
    symlinkSync(join(project, 'node_modules'), join(typesProject, 'node_modules'), 'dir');
    const text = typeCheckConsumer(typesProject, join(ROOT, 'node_modules', '@types'));
    assert.deepEqual(text, [], text.join('\n'));
  });

  test(`the prebuilt addon needs no liburing.so and at most GLIBC_${GLIBC_FLOOR.join('.')}`, (t) => {
    const files = readdirSync(PREBUILD_DIR).filter((f) => f.endsWith('.node'));
    assert.deepEqual(files, ['node.napi.glibc.node']);
    const addon = join(PREBUILD_DIR, 'node.napi.glibc.node');
    if (which('ldd') === null) {
      t.skip('ldd is not installed');
    } else {
      const ldd = run('ldd', [addon], { cwd: ROOT });
      assert.equal(ldd.status, 0, ldd.out);
      assert.doesNotMatch(ldd.out, /liburing/, ldd.out);
    }
    if (which('objdump') === null) {
      t.skip('objdump is not installed (binutils)');
      return;
    }
    const symbols = run('objdump', ['-T', addon], { cwd: ROOT });
    assert.equal(symbols.status, 0, symbols.out);
    // major.minor as one number (2.28 → 2028), so the highest is a plain max.
    const versions = [...symbols.out.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map(
      (m) => Number(m[1]) * 1000 + Number(m[2]),
    );
    assert.ok(versions.length > 0, 'the addon names glibc versions');
    const highest = Math.max(...versions);
    const floor = GLIBC_FLOOR[0] * 1000 + GLIBC_FLOOR[1];
    assert.ok(
      highest <= floor,
      `the addon needs GLIBC_${Math.floor(highest / 1000)}.${highest % 1000}, above the documented floor`,
    );
  });

  // Last: it takes the prebuild out of the shared install.
  test('with no prebuilt addon and no compiler: one line at install, and the node engine with the reason', () => {
    const installed = join(project, 'node_modules', 'overlapped');
    rmSync(join(installed, 'native', 'prebuilds'), { recursive: true, force: true });
    const rebuilt = run('npm', ['rebuild', 'overlapped', '--foreground-scripts'], {
      cwd: project,
      env: bareEnv,
    });
    assert.equal(rebuilt.status, 0, rebuilt.out);
    const lines = rebuilt.out.split('\n').filter((l) => l.startsWith('overlapped:'));
    assert.equal(lines.length, 1, rebuilt.out);
    assert.match(
      lines[0] ?? '',
      /^overlapped: not building the io_uring addon \(no C compiler \(cc\) found \(no prebuilt addon for this machine .*\)\); the node engine will be used$/,
    );
    assert.match(
      chosenEngine(),
      /^node: uring unavailable: native addon not built: no C compiler \(cc\) found/,
    );
  });

  test('with no prebuilt addon but a compiler: built from source at install, one line, and uring runs', {
    skip: uring?.skip ?? false,
  }, () => {
    const env = { ...bareEnv, PATH: `${bareEnv.PATH}${delimiter}${process.env.PATH ?? ''}` };
    const rebuilt = run('npm', ['rebuild', 'overlapped', '--foreground-scripts'], {
      cwd: project,
      env,
    });
    assert.equal(rebuilt.status, 0, rebuilt.out);
    const lines = rebuilt.out.split('\n').filter((l) => l.startsWith('overlapped:'));
    assert.equal(lines.length, 1, rebuilt.out);
    assert.match(
      lines[0] ?? '',
      /^overlapped: built the io_uring addon from source in \d+ ms \(no prebuilt addon for this machine .*\)$/,
    );
    assert.equal(chosenEngine(), 'uring: io_uring is available');
  });
});
