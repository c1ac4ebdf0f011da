/**
 * `overlapped chat`: a line-based chat relay on the session framework; the
 * protocol is docs/chat.md.
 *
 * Every line a client sends is relayed to every other client as
 * `name: text`, with one `broadcast` (one copy of the line, however many
 * receive it). A client that stops reading only grows its own session's
 * queue; past `maxQueuedBytes` the framework resets it (policy
 * `'disconnect'`) and the others get a leave notice. Nobody waits for it:
 * a send never blocks the relay loop.
 */
import type { Logger } from 'pino';
import { check } from '../../core/errors.js';
import { type ProxyListenOptions, pickProxyOptions } from '../../core/tcp-listener.js';
import type { Endpoint, Engine } from '../../engines/contract.js';
import { proxyErrorLog } from '../rate-limited-log.js';
import { SessionServer, type SessionStats } from '../session/session-server.js';
import { type ChatClient, ChatRoom } from './chat-room.js';

export const CHAT_DEFAULTS = {
  host: '127.0.0.1',
  port: 5151,
  /**
   * Longest line relayed, in bytes, not counting the newline. Longer lines
   * are cut there: the first 1024 bytes are relayed, the rest up to the
   * newline is discarded, and the sender is told once per line.
   */
  maxLineBytes: 1024,
  /**
   * Queued bytes per client before it is cut off: 256 KiB is over a
   * thousand full lines, so a client that reads at all never meets it,
   * while 10,000 stalled clients hold at most 2.5 GiB.
   */
  maxQueuedBytes: 256 * 1024,
  /**
   * A client that sends nothing and is sent nothing for 10 minutes is closed:
   * a quiet room keeps its lurkers that long, while a connection flood that
   * never speaks is let go instead of holding a slot for ever.
   */
  idleTimeoutMs: 600_000,
  /**
   * A client that takes no byte of what it is sent for 30 s is reset: with
   * `maxQueuedBytes` this bounds a stalled reader both in bytes and in time.
   */
  writeTimeoutMs: 30_000,
} as const;

/** `proxyProtocol`, `proxyTimeoutMs`, `proxyFrom`: see ListenOptions; join lines name the header's client. */
export interface ChatServerOptions extends ProxyListenOptions {
  engine?: Engine;
  host?: string;
  port?: number;
  maxQueuedBytes?: number;
  maxLineBytes?: number;
  maxSessions?: number;
  /** Default 10 minutes; 0: off. */
  idleTimeoutMs?: number;
  /** Default 30 s; 0: off. */
  writeTimeoutMs?: number;
  /** Per-client join/leave lines at info; warnings always. */
  logger?: Logger;
}

/** The chat relay. */
export class ChatServer {
  readonly sessions: SessionServer<ChatClient>;
  readonly maxLineBytes: number;

  private constructor(sessions: SessionServer<ChatClient>, maxLineBytes: number) {
    this.sessions = sessions;
    this.maxLineBytes = maxLineBytes;
  }

  static async start(options: ChatServerOptions = {}): Promise<ChatServer> {
    const maxLineBytes = options.maxLineBytes ?? CHAT_DEFAULTS.maxLineBytes;
    check(
      Number.isSafeInteger(maxLineBytes) && maxLineBytes >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `maxLineBytes must be a whole number >= 1, got ${String(maxLineBytes)}`,
    );
    let sessions: SessionServer<ChatClient> | undefined;
    let guests = 0;
    const room = new ChatRoom({
      maxLineBytes,
      // Hooks run from I/O completions, after `sessions` is set below.
      relay: (bytes, except) =>
        (sessions as SessionServer<ChatClient>).broadcast(bytes, (s) => s !== except),
      nextName: () => `guest${++guests}`,
      logger: options.logger,
    });
    sessions = await SessionServer.start<ChatClient>({
      ...(options.engine === undefined ? {} : { engine: options.engine }),
      host: options.host ?? CHAT_DEFAULTS.host,
      port: options.port ?? CHAT_DEFAULTS.port,
      maxQueuedBytes: options.maxQueuedBytes ?? CHAT_DEFAULTS.maxQueuedBytes,
      ...(options.maxSessions === undefined ? {} : { maxSessions: options.maxSessions }),
      queuePolicy: 'disconnect',
      idleTimeoutMs: options.idleTimeoutMs ?? CHAT_DEFAULTS.idleTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs ?? CHAT_DEFAULTS.writeTimeoutMs,
      ...pickProxyOptions(options),
      onProxyError: proxyErrorLog(options.logger),
      handlers: room,
      onError: (error, session) =>
        options.logger?.warn({ err: error, session: session?.key }, 'chat handler failed'),
    });
    return new ChatServer(sessions, maxLineBytes);
  }

  get address(): Endpoint {
    return this.sessions.address;
  }

  get clients(): number {
    return this.sessions.size;
  }

  get stats(): SessionStats {
    return this.sessions.stats;
  }

  /** Graceful: every client gets what was queued for it, then FIN; reset after `deadlineMs`. */
  async stop(deadlineMs = 5000): Promise<void> {
    await this.sessions.stop({ deadlineMs });
  }
}
