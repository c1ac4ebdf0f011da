/**
 * The chat relay's handler module for worker threads (`overlapped chat
 * --threads N`): the same room as chat-server.ts, with lines relayed to the
 * clients of every thread (`context.broadcast`, one shared copy).
 * `context.options` carries `maxLineBytes`.
 */

import type { ThreadContext } from '../../threads/thread-protocol.js';
import type { SessionHandlers } from '../session/session-server.js';
import { type ChatClient, ChatRoom } from './chat-room.js';

export default function chatThreadHandlers(
  context: ThreadContext<ChatClient>,
): SessionHandlers<ChatClient> {
  const { maxLineBytes } = context.options as { maxLineBytes: number };
  let joined = 0;
  return new ChatRoom({
    maxLineBytes,
    relay: (bytes, except) => context.broadcast(bytes, context.globalKey(except)),
    // Unique across threads: thread t names guests t+1, t+1+N, t+1+2N, …
    nextName: () => `guest${joined++ * context.threads + context.thread + 1}`,
  });
}
