/**
 * The chat protocol of docs/chat.md as session hooks, apart from how lines
 * reach the other clients: `relay` is one `broadcast` on a single-thread
 * server (chat-server.ts) and a broadcast across threads in the handler
 * module of worker threads (chat-thread-handlers.ts).
 */
import type { Logger } from 'pino';
import type { CloseReason, Session, SessionHandlers } from '../session/session-server.js';

/** Longest name `/nick` takes. */
export const MAX_NAME_LENGTH = 32;

/** One client's state: its name and the line it is in the middle of. */
export interface ChatClient {
  name: string;
  /** Bytes of the current line so far (copied: receive views live only during the hook). */
  pending: Buffer[];
  pendingBytes: number;
  /** The current line passed the maximum: the rest of it is discarded. */
  discarding: boolean;
  quitting: boolean;
}

export interface ChatRoomOptions {
  maxLineBytes: number;
  /** Sends `bytes` (never changed afterwards) to every client but `except`. */
  relay(bytes: Buffer, except: Session<ChatClient>): void;
  /** The default name of the next client, unique in the room. */
  nextName(): string;
  logger?: Logger | undefined;
}

const NAME = /^[A-Za-z0-9_.-]+$/;
const NEWLINE = 0x0a;

/** The hooks of a chat room. */
export class ChatRoom implements SessionHandlers<ChatClient> {
  readonly maxLineBytes: number;
  readonly #relay: (bytes: Buffer, except: Session<ChatClient>) => void;
  readonly #nextName: () => string;
  readonly #logger: Logger | undefined;

  constructor(options: ChatRoomOptions) {
    this.maxLineBytes = options.maxLineBytes;
    this.#relay = options.relay;
    this.#nextName = options.nextName;
    this.#logger = options.logger;
  }

  onAccept(session: Session<ChatClient>): void {
    this.#joined(session);
  }

  onReceive(session: Session<ChatClient>, bytes: Buffer): void {
    this.#received(session, bytes);
  }

  onClose(session: Session<ChatClient>, reason: CloseReason): void {
    this.#left(session, reason);
  }

  #joined(session: Session<ChatClient>): void {
    const name = this.#nextName();
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
          : reason.code === 'idle-timeout' || reason.code === 'write-timeout'
            ? ' (timed out)'
            : '';
    this.#notice(session, `* ${client.name} left${why}\n`);
    this.#logger?.info(
      {
        name: client.name,
        reason: reason.code,
        ...(reason.error === null ? {} : { err: reason.error.message }),
      },
      'left',
    );
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
    this.#relay(out, session);
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
      if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
        session.send(
          Buffer.from(`* bad name: 1 to ${MAX_NAME_LENGTH} of A-Z a-z 0-9 _ . -, no spaces\n`),
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
    this.#relay(Buffer.from(text), session);
  }
}
