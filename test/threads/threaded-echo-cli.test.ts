/**
 * `overlapped echo --threads N` as a user runs it: connections spread over
 * both workers (threads on uring, cluster processes on node) and echo
 * byte-exact; SIGTERM drains every worker and exits 0.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { spawnCli } from '../support/cli-runner.js';
import { connectClient, destroyAll, waitFor } from '../support/echo-fixture.js';
import { enginesUnderTest, readExactly } from '../support/engines.js';

for (const { name, skip } of enginesUnderTest()) {
  describe(`overlapped echo --threads on ${name}`, { skip: skip ?? false }, () => {
    it('--threads 2: both threads serve, byte-exact, and SIGTERM stops every thread', async () => {
      const child = spawnCli(['echo', '--threads', '2', '--port', '0', '--engine', name]);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
      });
      child.stderr.resume();
      const clients = new Set<Socket>();
      try {
        await waitFor(() => out.includes('echo server listening'), 'the listening line');
        const port = (JSON.parse(out.split('\n')[0] as string) as { port: number }).port;
        await Promise.all(
          Array.from({ length: 6 }, async (_, i) => {
            const s = await connectClient(port);
            clients.add(s);
            const data = Buffer.alloc(100_000 + i, i + 1);
            const back = readExactly(s, data.length, 10_000);
            s.write(data);
            assert.ok((await back).equals(data), `client ${i}`);
          }),
        );
        const exit = new Promise<number | null>((resolve) => child.once('close', resolve));
        child.kill('SIGTERM');
        assert.equal(await exit, 0);
        const stopped = out
          .split('\n')
          .filter((l) => l.includes('threads stopped'))
          .map((l) => JSON.parse(l) as { threads: { sessions: number }[] })[0];
        const sessions = stopped?.threads.map((t) => t.sessions) ?? [];
        assert.equal(sessions.length, 2, out);
        assert.ok(
          sessions.every((n) => n > 0),
          `both workers served: ${sessions}`,
        );
        assert.equal(
          sessions.reduce((x, y) => x + y, 0),
          6,
        );
      } finally {
        await destroyAll(clients);
        child.kill('SIGKILL');
      }
    });
  });
}
