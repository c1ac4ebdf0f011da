/**
 * Handler module of the threaded-server tests: echoes, and answers a few
 * commands so a test can see where its session lives and reach the others.
 * - `where\n` → `thread <t> key <globalKey>\n`
 * - `all <text>\n` → `<text>\n` to every session on every thread but the sender
 * - `to <globalKey> <text>\n` → `<text>\n` to that session, wherever it is
 * - `crash\n` → an uncaught exception in this worker thread
 * Anything else is echoed.
 */
import type { SessionHandlers } from '../../src/servers/session/session-server.js';
import type { ThreadContext } from '../../src/threads/thread-protocol.js';

export default function testHandlers(ctx: ThreadContext): SessionHandlers {
  return {
    onReceive(session, bytes) {
      const text = bytes.toString();
      if (text === 'where\n') {
        session.send(Buffer.from(`thread ${ctx.thread} key ${ctx.globalKey(session)}\n`));
      } else if (text.startsWith('all ')) {
        ctx.broadcast(Buffer.from(text.slice(4)), ctx.globalKey(session));
      } else if (text.startsWith('to ')) {
        const [, key, rest] = text.match(/^to (\d+) (.*\n)$/s) ?? [];
        ctx.sendTo(Number(key), Buffer.from(rest ?? ''));
      } else if (text === 'crash\n') {
        setImmediate(() => {
          throw new Error(`thread ${ctx.thread} crashed on purpose`);
        });
      } else {
        session.send(bytes);
      }
    },
  };
}
