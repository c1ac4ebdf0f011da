/**
 * A connection storm past the descriptor limit, in a child process started
 * under `ulimit -n 64`, on every engine: 150 clients connect at once and
 * hold on. The server must keep serving a client connected before the
 * storm, say once (naming EMFILE and `ulimit -n`) that it cannot accept,
 * add at most one summary line per interval while it lasts, and one line
 * when accepting works again; it says at start-up that --max-connections is
 * above the limit; and refusals at --max-connections are rate-limited too.
 * The readiness models, whose `accept` itself fails, back off instead of
 * spinning on a listener that stays readable (and stay up: the notification
 * models used to lose the listener and exit).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { MAIN } from '../support/cli-runner.js';
import { type EchoChild, portOf, watchEchoChild } from '../support/echo-child.js';
import {
  closed,
  connectClient,
  delay,
  destroyAll,
  echoRoundTrip,
  waitFor,
} from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';

function startUnderUlimit(engine: string, nofile: number, args: string[]): EchoChild {
  const child = spawn(
    'sh',
    [
      '-c',
      `ulimit -n ${nofile}; exec "$0" "$@"`,
      process.execPath,
      MAIN,
      'echo',
      '--port',
      '0',
      '--quiet',
      ...args,
    ],
    { env: { ...process.env, OVERLAPPED_ENGINE: engine }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return watchEchoChild(child);
}

/** Opens `n` connections at once; those the OS or the server refuses are simply not kept. */
async function flood(port: number, n: number): Promise<Socket[]> {
  const settled = await Promise.allSettled(Array.from({ length: n }, () => connectClient(port)));
  return settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
}

/** User plus system CPU seconds of a process so far (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const READINESS_MODELS = ['nonblocking', 'select', 'async-select', 'event-select'];

const warnings = (server: EchoChild) =>
  server.lines.filter((l) => l.level === 40).map((l) => String(l.msg));

for (const e of enginesUnderTest()) {
  describe(`accept storm on ${e.name}`, {
    skip: e.skip ?? (process.platform !== 'linux' ? 'reads /proc' : false),
  }, () => {
    test('under ulimit -n 64: one EMFILE warning, bounded summaries, one line on recovery, others served', async () => {
      const server = startUnderUlimit(e.name, 64, []);
      const sockets: Socket[] = [];
      try {
        const port = await portOf(server);
        await waitFor(
          () => warnings(server).some((m) => m.startsWith('--max-connections')),
          'the start-up line about --max-connections',
          5000,
        );
        const startup = warnings(server).filter((m) => m.startsWith('--max-connections'));
        assert.equal(
          startup.length,
          1,
          'the start-up line says --max-connections is above ulimit -n',
        );
        assert.match(startup[0] as string, /ulimit -n 64/);
        const steady = await connectClient(port);
        sockets.push(steady);
        const t0 = performance.now();
        sockets.push(...(await flood(port, 150)));
        // The steady client is served throughout the storm.
        for (let i = 0; i < 10; i++) {
          const msg = Buffer.from(`during the storm ${i}`);
          assert.deepEqual(await echoRoundTrip(steady, msg, 3000), msg);
          await delay(100);
        }
        // libuv (the node engine) drops a connection it cannot take without telling Node
        // (its reserved-descriptor trick), so only uring can say so; see the README.
        const told = e.name !== 'node';
        if (told) {
          await waitFor(
            () => warnings(server).some((m) => m.startsWith('cannot accept connections: EMFILE')),
            'the EMFILE warning',
            5000,
          );
        }
        // End the storm: let go of every connection but the steady one.
        const flooders = sockets.splice(1);
        await destroyAll(flooders);
        await delay(1500);
        const after = await connectClient(port);
        sockets.push(after);
        assert.deepEqual(await echoRoundTrip(after, Buffer.from('after')), Buffer.from('after'));
        if (told) {
          await waitFor(
            () => warnings(server).some((m) => m.startsWith('accepting connections again')),
            'the recovery line',
            5000,
          ).catch((err) => {
            console.log(JSON.stringify(server.lines.filter((l) => (l.level as number) >= 40)));
            throw err;
          });
        }
        const seconds = (performance.now() - t0) / 1000;
        const w = warnings(server);
        const first = w.filter((m) => m.startsWith('cannot accept connections')).length;
        const summaries = w.filter((m) => / more failed accepts in the last/.test(m)).length;
        const resumed = w.filter((m) => m.startsWith('accepting connections again')).length;
        console.log(
          `${e.name}: ${w.length} warning lines in ${seconds.toFixed(1)} s: ${first} first, ${summaries} summaries, ${resumed} resumed`,
        );
        assert.equal(first, told ? 1 : 0, w.join('\n'));
        if (told) assert.match(w.find((m) => m.startsWith('cannot accept')) as string, /ulimit -n/);
        assert.ok(
          summaries <= Math.ceil(seconds / 5) + 1,
          `${summaries} summaries in ${seconds} s`,
        );
        assert.equal(resumed, told ? 1 : 0);
        assert.ok(w.length <= 3 + summaries, w.join('\n'));
      } finally {
        await destroyAll(sockets);
        server.child.kill('SIGTERM');
        await server.exited;
      }
    });

    test('--max-connections 5 with 200 clients refused: one warning, then at most one summary per interval', async () => {
      const server = startUnderUlimit(e.name, 1024, ['--max-connections', '5']);
      const sockets: Socket[] = [];
      try {
        const port = await portOf(server);
        for (let i = 0; i < 5; i++) sockets.push(await connectClient(port));
        for (let round = 0; round < 4; round++) {
          const refused = await flood(port, 50);
          await Promise.all(refused.map((s) => closed(s, 5000).catch(() => s.destroy())));
        }
        await delay(200);
        const w = warnings(server).filter((m) => m.includes('maxConnections'));
        console.log(`${e.name}: ${w.length} refusal warning lines for 200 refused clients`);
        assert.equal(w.filter((m) => m === 'connection refused: at maxConnections').length, 1);
        assert.ok(w.length <= 2, w.join('\n'));
      } finally {
        await destroyAll(sockets);
        server.child.kill('SIGTERM');
        await server.exited;
      }
    });
  });

  // Only uring's try-accept sees EMFILE: libuv drops such connections before Node hears of them.
  describe(`accept storm on ${e.name}: the readiness models back off`, {
    skip:
      e.skip ??
      (process.platform !== 'linux'
        ? 'reads /proc'
        : e.name === 'node'
          ? 'the node engine never sees EMFILE (libuv drops the connection)'
          : false),
  }, () => {
    for (const model of READINESS_MODELS) {
      test(`${model}: under ulimit -n 64 it serves, backs off without spinning, and recovers`, async () => {
        const server = startUnderUlimit(e.name, 64, ['--model', model]);
        const sockets: Socket[] = [];
        try {
          const port = await portOf(server);
          const steady = await connectClient(port);
          sockets.push(steady);
          sockets.push(...(await flood(port, 150)));
          await waitFor(
            () => warnings(server).some((m) => m.startsWith('cannot accept connections: EMFILE')),
            'the EMFILE warning',
            5000,
          );
          const pid = server.child.pid as number;
          const cpu0 = cpuSeconds(pid);
          const t0 = performance.now();
          for (let i = 0; i < 10; i++) {
            const msg = Buffer.from(`during the storm ${i}`);
            assert.deepEqual(await echoRoundTrip(steady, msg, 3000), msg);
            await delay(150);
          }
          const busy = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
          console.log(
            `${model}: server CPU ${(busy * 100).toFixed(0)}% of a core during the storm`,
          );
          // A spinning accept loop takes a whole core; backing off takes almost nothing.
          assert.ok(busy < 0.5, `the server used ${(busy * 100).toFixed(0)}% of a core`);
          await destroyAll(sockets.splice(1));
          await waitFor(
            () => warnings(server).some((m) => m.startsWith('accepting connections again')),
            'the recovery line',
            8000,
          );
          const after = await connectClient(port);
          sockets.push(after);
          assert.deepEqual(await echoRoundTrip(after, Buffer.from('after')), Buffer.from('after'));
          const w = warnings(server);
          assert.equal(w.filter((m) => m.startsWith('cannot accept connections')).length, 1);
          assert.match(w.find((m) => m.startsWith('cannot accept')) as string, /retrying in 50 ms/);
        } finally {
          await destroyAll(sockets);
          server.child.kill('SIGTERM');
          assert.equal(await server.exited, 0, 'the server stopped cleanly');
        }
      });
    }
  });
}
