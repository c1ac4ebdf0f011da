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
import type { Endpoint, Engine } from '../../engines/contract.js';
import {
  type CloseReason,
  type Session,
  SessionServer,
  type SessionStats,
} from '../session/session-server.js';

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
  /** Longest name `/nick` takes. */
  maxNameLength: 32,
} as const;

export interface ChatServerOptions {
  engine?: Engine;
  host?: string;
  port?: number;
  maxQueuedBytes?: number;
  maxLineBytes?: number;
  maxSessions?: number;
  /** Per-client join/leave lines at info; warnings always. */
  logger?: Logger;
}

/** One client's state: its name and the line it is in the middle of. */
interface ChatClient {
  name: string;
  /** Bytes of the current line so far (copied: receive views live only during the hook). */
  pending: Buffer[];
  pendingBytes: number;
  /** The current line passed the maximum: the rest of it is discarded. */
  discarding: boolean;
  quitting: boolean;
}

const NAME = /^[A-Za-z0-9_.-]+$/;
const NEWLINE = 0x0a;

/** The chat relay. */
export class ChatServer {
  readonly sessions: SessionServer<ChatClient>;
  readonly maxLineBytes: number;
  readonly #logger: Logger | undefined;
  #guests = 0;

  private constructor(sessions: SessionServer<ChatClient>, maxLineBytes: number, logger?: Logger) {
    this.sessions = sessions;
    this.maxLineBytes = maxLineBytes;
    this.#logger = logger;
  }

  static async start(options: ChatServerOptions = {}): Promise<ChatServer> {
    const maxLineBytes = options.maxLineBytes ?? CHAT_DEFAULTS.maxLineBytes;
    check(
      Number.isSafeInteger(maxLineBytes) && maxLineBytes >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `maxLineBytes must be a whole number >= 1, got ${String(maxLineBytes)}`,
    );
    let chat: ChatServer | undefined;
    const sessions = await SessionServer.start<ChatClient>({
      ...(options.engine === undefined ? {} : { engine: options.engine }),
      host: options.host ?? CHAT_DEFAULTS.host,
      port: options.port ?? CHAT_DEFAULTS.port,
      maxQueuedBytes: options.maxQueuedBytes ?? CHAT_DEFAULTS.maxQueuedBytes,
      ...(options.maxSessions === undefined ? {} : { maxSessions: options.maxSessions }),
      queuePolicy: 'disconnect',
      handlers: {
        // Completions come from I/O events, after `chat` is set below.
        onAccept: (s) => (chat as ChatServer).#joined(s),
        onReceive: (s, bytes) => (chat as ChatServer).#received(s, bytes),
        onClose: (s, reason) => (chat as ChatServer).#left(s, reason),
      },
      onError: (error, session) =>
        options.logger?.warn({ err: error, session: session?.key }, 'chat handler failed'),
    });
    chat = new ChatServer(sessions, maxLineBytes, options.logger);
    return chat;
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

  #joined(session: Session<ChatClient>): void {
    const name = `guest${++this.#guests}`;
    session.data = { name, pending: [], pendingBytes: 0, discarding: false, quitting: false };
    session.send(
      Buffer.from(`* welcome, you are ${name} (/nick <name> to change it, /quit to leave)\n`),
    );
    this.#notice(session, `* ${name} joined\n`);
    this.#logger?.info({ name, peer: session.remoteAddress?.address }, 'joined');
  }

  #left(session: Session<ChatClient>, reason: CloseReason): void {
    const client = session.data as ChatClient;
    const why =
      reason.code === 'send-queue-full'
        ? ' (cut off: it stopped reading)'
        : reason.code === 'error'
          ? ' (connection lost)'
          : '';
    this.#notice(session, `* ${client.name} left${why}\n`);
    this.#logger?.info({ name: client.name, reason: reason.code }, 'left');
  }

  /** Splits what arrived into lines; a line's bytes are copied only while it is incomplete. */
  #received(session: Session<ChatClient>, bytes: Buffer): void {
    const client = session.data as ChatClient;
    let start = 0;
    while (start < bytes.length && session.open && !client.quitting) {
      const end = bytes.indexOf(NEWLINE, start);
      const stop = end === -1 ? bytes.length : end;
      this.#take(client, session, bytes.subarray(start, stop));
      if (end === -1) return;
      const line = client.pending.length === 1 ? client.pending[0] : Buffer.concat(client.pending);
      client.pending = [];
      client.pendingBytes = 0;
      client.discarding = false;
      this.#line(session, client, line ?? Buffer.alloc(0));
      start = end + 1;
    }
  }

  /** Adds a piece of the current line, up to the maximum; the sender hears once when it is cut. */
  #take(client: ChatClient, session: Session<ChatClient>, piece: Buffer): void {
    if (client.discarding || piece.length === 0) return;
    const room = this.maxLineBytes - client.pendingBytes;
    if (piece.length > room) {
      piece = piece.subarray(0, room);
      client.discarding = true;
      session.send(Buffer.from(`* line too long: cut to ${this.maxLineBytes} bytes\n`));
    }
    client.pending.push(Buffer.from(piece));
    client.pendingBytes += piece.length;
  }

  #line(session: Session<ChatClient>, client: ChatClient, raw: Buffer): void {
    const line = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, -1) : raw;
    if (line.length === 0) return;
    if (line[0] === 0x2f /* '/' */) {
      this.#command(session, client, line.toString('utf8'));
      return;
    }
    const prefix = `${client.name}: `;
    const out = Buffer.allocUnsafe(Buffer.byteLength(prefix) + line.length + 1);
    const n = out.write(prefix);
    line.copy(out, n);
    out[out.length - 1] = NEWLINE;
    this.sessions.broadcast(out, (s) => s !== session);
  }

  #command(session: Session<ChatClient>, client: ChatClient, line: string): void {
    const [command, ...rest] = line.split(/\s+/);
    if (command === '/quit') {
      client.quitting = true;
      session.send(Buffer.from('* bye\n'));
      session.close();
      return;
    }
    if (command === '/nick') {
      const name = rest.join(' ');
      if (name.length === 0 || name.length > CHAT_DEFAULTS.maxNameLength || !NAME.test(name)) {
        session.send(
          Buffer.from(
            `* bad name: 1 to ${CHAT_DEFAULTS.maxNameLength} of A-Z a-z 0-9 _ . -, no spaces\n`,
          ),
        );
        return;
      }
      const old = client.name;
      client.name = name;
      session.send(Buffer.from(`* you are now ${name}\n`));
      this.#notice(session, `* ${old} is now ${name}\n`);
      return;
    }
    session.send(Buffer.from(`* unknown command ${command}: try /nick <name> or /quit\n`));
  }

  /** A server line to everyone but `session`. */
  #notice(session: Session<ChatClient>, text: string): void {
    this.sessions.broadcast(Buffer.from(text), (s) => s !== session);
  }
}
