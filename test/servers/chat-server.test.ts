/**
 * The chat relay (docs/chat.md) on every engine: the protocol with node:net
 * clients, a reader that stops reading is cut off while the others get
 * every line, and the `overlapped chat` command with socat and nc clients.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { CHAT_DEFAULTS, ChatServer } from '../../src/servers/chat/chat-server.js';
import { spawnCli } from '../support/cli-runner.js';
import { closed, destroyAll, waitFor } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';

/** A line-reading client of the relay. */
class LineClient {
  readonly lines: string[] = [];
  #rest = '';
  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => {
      const parts = (this.#rest + s).split('\n');
      this.#rest = parts.pop() ?? '';
      this.lines.push(...parts);
    });
  }
  static open(port: number, clients: Set<Socket>): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      clients.add(socket);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.on('error', () => {});
        resolve(new LineClient(socket));
      });
    });
  }
  /** Waits for a line that `match` accepts (a string: equal to it). */
  async line(match: string | RegExp, timeoutMs = 5000): Promise<string> {
    const ok = (l: string) => (typeof match === 'string' ? l === match : match.test(l));
    await waitFor(
      () => this.lines.some(ok),
      `a line ${String(match)}; got ${JSON.stringify(this.lines.slice(-5))}`,
      timeoutMs,
    );
    return this.lines.find(ok) as string;
  }
  send(text: string): void {
    this.socket.write(text);
  }
}

function socatAvailable(): string | null {
  return spawnSync('socat', ['-V']).error === undefined ? null : 'socat is not installed';
}

function ncAvailable(): string | null {
  const r = spawnSync('nc', ['-h']);
  return r.error === undefined ? null : 'nc is not installed here (apt-get install netcat-openbsd)';
}

/** Collects a child's stdout lines. */
function stdoutLines(child: ChildProcessWithoutNullStreams): string[] {
  const lines: string[] = [];
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    const parts = (rest + s).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts);
  });
  return lines;
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`chat relay on ${name}`, { skip: skip ?? false }, () => {
    const e = engine as NonNullable<typeof engine>;

    it('deadlines are on by default; a silent client is closed at --idle-timeout and the room is told', async () => {
      const defaults = await ChatServer.start({ engine: e, port: 0 });
      assert.equal(defaults.sessions.idleTimeoutMs, CHAT_DEFAULTS.idleTimeoutMs);
      assert.equal(defaults.sessions.writeTimeoutMs, CHAT_DEFAULTS.writeTimeoutMs);
      assert.ok(CHAT_DEFAULTS.idleTimeoutMs > 0 && CHAT_DEFAULTS.writeTimeoutMs > 0);
      await defaults.stop();
      const chat = await ChatServer.start({ engine: e, port: 0, idleTimeoutMs: 400 });
      const sockets = new Set<Socket>();
      try {
        const talker = await LineClient.open(chat.address.port, sockets);
        await talker.line(/^\* welcome, you are guest1/);
        const silent = await LineClient.open(chat.address.port, sockets);
        await silent.line(/^\* welcome, you are guest2/);
        // The talker keeps a line in progress (relayed to nobody yet): it moves bytes, guest2 none.
        const typing = setInterval(() => talker.send('.'), 100);
        try {
          await closed(silent.socket, 3000);
        } finally {
          clearInterval(typing);
        }
        await talker.line('* guest2 left (timed out)');
        assert.equal(chat.stats.timedOut, 1);
        assert.equal(chat.clients, 1);
      } finally {
        await destroyAll(sockets);
        await chat.stop();
      }
    });

    it('relays lines with names, /nick, /quit, notices, cut long lines and lines in pieces', async () => {
      const chat = await ChatServer.start({ engine: e, port: 0, maxLineBytes: 16 });
      const sockets = new Set<Socket>();
      try {
        const port = chat.address.port;
        const a = await LineClient.open(port, sockets);
        const nameA = (await a.line(/^\* welcome, you are /)).split(' ')[4] as string;
        const b = await LineClient.open(port, sockets);
        const nameB = (await b.line(/^\* welcome, you are /)).split(' ')[4] as string;
        await a.line(`* ${nameB} joined`);

        a.send('/nick alice\n');
        await a.line('* you are now alice');
        await b.line(`* ${nameA} is now alice`);
        a.send('/nick no spaces allowed\n');
        await a.line(/^\* bad name/);
        a.send('/dance\n');
        await a.line(/^\* unknown command \/dance/);

        a.send('hi there\r\n');
        await b.line('alice: hi there');
        a.send('hel');
        await new Promise((r) => setTimeout(r, 50));
        a.send('lo\n');
        await b.line('alice: hello');
        a.send(`${'x'.repeat(40)}\nafter\n`);
        await b.line(`alice: ${'x'.repeat(16)}`);
        await b.line('alice: after');
        await a.line('* line too long: cut to 16 bytes');
        assert.ok(
          !a.lines.some((l) => l.startsWith('alice:')),
          'a sender never gets its own lines',
        );
        assert.ok(!b.lines.some((l) => l.includes('xxxxxxxxxxxxxxxxx')), 'nothing past the cut');

        a.send('/quit\n');
        await a.line('* bye');
        await closed(a.socket);
        await b.line('* alice left');
        assert.equal(chat.clients, 1);
      } finally {
        await destroyAll(sockets);
        await chat.stop(1000);
      }
    });

    it('a reader that stops reading is cut off and the others keep receiving every line', async () => {
      // 1 MiB: far above what a reading client ever has queued here (about 100 KiB at peak),
      // far below the 8 MiB sent, of which a stalled client's kernel buffers take about 4.
      const chat = await ChatServer.start({ engine: e, port: 0, maxQueuedBytes: 1024 * 1024 });
      const sockets = new Set<Socket>();
      try {
        const port = chat.address.port;
        const slow = await LineClient.open(port, sockets);
        await slow.line(/^\* welcome/);
        slow.socket.pause();
        const readers = [
          await LineClient.open(port, sockets),
          await LineClient.open(port, sockets),
        ];
        for (const r of readers) await r.line(/^\* welcome/);
        const sender = await LineClient.open(port, sockets);
        const senderName = (await sender.line(/^\* welcome, you are /)).split(' ')[4] as string;
        await waitFor(() => chat.clients === 4, 'four clients');
        // 8 MiB of lines, more than the slow reader's kernel buffers hold, so its queue
        // must grow; paced at 16 KiB per 2 ms (64 Mbit/s), as a busy room's traffic comes
        // in, rather than one burst that queues faster than any reader's sends complete.
        const count = 40_000;
        const text = 'y'.repeat(200);
        let batch = '';
        for (let i = 0; i < count; i++) {
          batch += `${i} ${text}\n`;
          if (batch.length > 16 * 1024) {
            sender.send(batch);
            batch = '';
            await new Promise((r) => setTimeout(r, 2));
          }
        }
        sender.send(batch);
        for (const r of readers) {
          await r.line(`${senderName}: ${count - 1} ${text}`, 30_000);
          const relayed = r.lines.filter((l) => l.startsWith(`${senderName}: `));
          assert.equal(relayed.length, count, 'every line arrived');
          assert.ok(
            relayed.every((l, i) => l === `${senderName}: ${i} ${text}`),
            'in order',
          );
        }
        assert.equal(chat.stats.cutOff, 1, 'the slow reader was cut off');
        await readers[0]?.line(/ left \(cut off: it stopped reading\)$/);
        slow.socket.resume();
        await closed(slow.socket);
      } finally {
        await destroyAll(sockets);
        await chat.stop(1000);
      }
    });

    it('`overlapped chat --threads 2` relays between clients of both workers', async () => {
      const server = spawnCli(['chat', '--threads', '2', '--port', '0', '--engine', name]);
      const serverOut = stdoutLines(server);
      server.stderr.resume();
      const sockets = new Set<Socket>();
      try {
        await waitFor(
          () => serverOut.some((l) => l.includes('chat relay listening on')),
          'listening',
        );
        const port = (
          JSON.parse(serverOut.find((l) => l.includes('listening')) as string) as { port: number }
        ).port;
        const clients: LineClient[] = [];
        const names: string[] = [];
        for (let i = 0; i < 4; i++) {
          const c = await LineClient.open(port, sockets);
          names.push((await c.line(/^\* welcome, you are /)).split(' ')[4] as string);
          clients.push(c);
        }
        assert.equal(new Set(names).size, 4, `unique names: ${names.join(' ')}`);
        // Spread over both workers (threads on uring, cluster processes on node).
        await (clients[0] as LineClient).line(`* ${names[3]} joined`);
        (clients[1] as LineClient).send('across threads\n');
        for (const i of [0, 2, 3]) {
          await (clients[i] as LineClient).line(`${names[1]}: across threads`);
        }
        (clients[2] as LineClient).send('/quit\n');
        await (clients[1] as LineClient).line(`* ${names[2]} left`);
        const exit = new Promise<number | null>((resolve) => server.once('close', resolve));
        server.kill('SIGTERM');
        assert.equal(await exit, 0);
      } finally {
        await destroyAll(sockets);
        server.kill('SIGKILL');
      }
    });

    it('`overlapped chat` relays between socat and nc clients and stops on SIGTERM', async (t) => {
      const noSocat = socatAvailable();
      if (noSocat !== null) {
        t.skip(noSocat);
        return;
      }
      const server = spawnCli(['chat', '--port', '0', '--engine', name]);
      const serverOut = stdoutLines(server);
      server.stderr.resume();
      const children: ChildProcessWithoutNullStreams[] = [];
      try {
        await waitFor(
          () => serverOut.some((l) => l.includes('chat relay listening on')),
          'the listening line',
        );
        const port = (
          JSON.parse(serverOut.find((l) => l.includes('listening')) as string) as { port: number }
        ).port;
        const client = (argv: string[]) => {
          const child = spawn(argv[0] as string, argv.slice(1), {
            stdio: ['pipe', 'pipe', 'pipe'],
          });
          children.push(child);
          return { child, lines: stdoutLines(child) };
        };
        const a = client(['socat', '-', `TCP:127.0.0.1:${port}`]);
        await waitFor(() => a.lines.some((l) => l.startsWith('* welcome')), 'socat welcome');
        const noNc = ncAvailable();
        if (noNc !== null) t.diagnostic(`nc client skipped: ${noNc}; a second socat stands in`);
        const b = client(
          noNc === null
            ? ['nc', '127.0.0.1', String(port)]
            : ['socat', '-', `TCP:127.0.0.1:${port}`],
        );
        await waitFor(() => b.lines.some((l) => l.startsWith('* welcome')), 'second welcome');
        await waitFor(() => a.lines.some((l) => / joined$/.test(l)), 'join notice');
        a.child.stdin.write('/nick sam\nhello from socat\n');
        await waitFor(() => b.lines.includes('sam: hello from socat'), 'the relayed line');
        b.child.stdin.write('/nick kim\nhi sam\n');
        await waitFor(() => a.lines.includes('kim: hi sam'), 'the reply');
        b.child.stdin.write('/quit\n');
        await waitFor(() => a.lines.includes('* kim left'), 'the leave notice');
        const exit = new Promise<number | null>((resolve) => server.once('close', resolve));
        server.kill('SIGTERM');
        assert.equal(await exit, 0);
        await waitFor(() => a.child.exitCode !== null, 'socat to see the end', 5000);
      } finally {
        for (const c of children) c.kill('SIGKILL');
        server.kill('SIGKILL');
      }
    });
  });
}
