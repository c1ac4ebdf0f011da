/**
 * Network events (`FD_READ`, `FD_WRITE`, `FD_ACCEPT`, `FD_CLOSE`) and the
 * rules that say when each is reported, shared by WSAAsyncSelect (which
 * posts a window message per event) and WSAEventSelect (which records the
 * event and sets an event object). The rules are Winsock's:
 *
 * - An event is reported once, then not again until its *re-enabling call*:
 *   `FD_READ` until `recv`, `FD_ACCEPT` until `accept`, `FD_WRITE` until a
 *   `send` fails with WSAEWOULDBLOCK. After the re-enabling call, the event
 *   is reported again if its condition still holds (bytes are still there,
 *   another connection waits), and otherwise when it next does.
 * - `FD_WRITE` is reported when a socket is first selected while connected
 *   (an accepted socket), and then only after a `send` returned
 *   WSAEWOULDBLOCK and room came back: sends are possible from one FD_WRITE
 *   until a send returns WSAEWOULDBLOCK.
 * - `FD_CLOSE` is reported once, after every byte before the peer's close
 *   has been read (`recv` returned 0), or at once when `FD_READ` is not
 *   selected; with the connection's error when it failed (ECONNRESET).
 * - A new selection on a socket replaces the old one (events 0 turns it
 *   off); an accepted socket inherits its listener's selection.
 * - Nothing is reported for a socket after `closesocket`.
 *
 * Conditions are learnt through posted polls (./readiness-port.ts): one for
 * the read side while FD_READ/FD_ACCEPT/FD_CLOSE may be reported, one for
 * the write side while FD_WRITE may be.
 */
import { OsError, UsageError } from '../core/errors.js';
import type { Overlapped } from '../core/overlapped.js';
import { Readiness } from '../engines/contract.js';
import {
  type NonBlockingHandle,
  NonBlockingListener,
  type NonBlockingSocket,
  type SelectionHooks,
  WOULD_BLOCK,
} from './nonblocking.js';
import { isAborted, type PollOwner, pollRecord, watch } from './readiness-port.js';

/** Bytes can be read: `recv` re-enables it. */
export const FD_READ = 0x01;
/** Bytes can be sent: reported on connect/accept, then after a send failed with WSAEWOULDBLOCK. */
export const FD_WRITE = 0x02;
/** Out-of-band data (not supported: TCP urgent data is not part of this toolkit). */
export const FD_OOB = 0x04;
/** A connection waits on a listener: `accept` re-enables it. */
export const FD_ACCEPT = 0x08;
/** A non-blocking connect finished (not supported: sockets here connect overlapped). */
export const FD_CONNECT = 0x10;
/** The connection closed (gracefully, or with its error): reported once. */
export const FD_CLOSE = 0x20;

const SUPPORTED = FD_READ | FD_WRITE | FD_ACCEPT | FD_CLOSE;

/** Names of the network events set in `events`, for log lines and messages. */
export function describeNetworkEvents(events: number): string {
  const names: string[] = [];
  if (events & FD_READ) names.push('FD_READ');
  if (events & FD_WRITE) names.push('FD_WRITE');
  if (events & FD_OOB) names.push('FD_OOB');
  if (events & FD_ACCEPT) names.push('FD_ACCEPT');
  if (events & FD_CONNECT) names.push('FD_CONNECT');
  if (events & FD_CLOSE) names.push('FD_CLOSE');
  return names.length === 0 ? '0' : names.join(' | ');
}

/** Throws a UsageError unless `events` is a mask of the supported FD_* bits. */
export function checkNetworkEvents(events: number): void {
  if (!Number.isInteger(events) || events < 0 || events > 0x3ff) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `network events must be a mask of FD_READ, FD_WRITE, FD_ACCEPT and FD_CLOSE, got ${String(events)}`,
    );
  }
  if ((events & ~SUPPORTED) !== 0) {
    throw new UsageError(
      'OVL_ERR_NOT_SUPPORTED',
      `${describeNetworkEvents(events & ~SUPPORTED)} cannot be selected: this toolkit has no out-of-band data and no non-blocking connect (select FD_READ, FD_WRITE, FD_ACCEPT, FD_CLOSE)`,
    );
  }
}

/** Receives each network event a selection reports, with the error for a failed connection. */
export type NetworkEventSink = (
  handle: NonBlockingHandle,
  event: number,
  error: Error | null,
) => void;

/** The error FD_CLOSE carries when a poll said the connection failed without saying how. */
const connectionFailed = () =>
  new OsError('ECONNRESET', -104, 'recv', 'the connection was reset by the peer');

/**
 * One selection on one socket or listener: which events are selected, which
 * are enabled now, and the polls that watch for them. Install it with
 * {@link selectNetworkEvents}.
 */
class Selection implements SelectionHooks, PollOwner {
  readonly #handle: NonBlockingHandle;
  readonly events: number;
  readonly #sink: NetworkEventSink;
  /** Selected events that may be reported now (each is disabled once reported until re-enabled). */
  #enabled: number;
  readonly #readPoll: Overlapped<PollOwner>;
  readonly #writePoll: Overlapped<PollOwner>;
  /** The peer's FIN was seen: what is left to read ends in end of stream. */
  #peerClosed = false;
  #over = false;

  constructor(handle: NonBlockingHandle, events: number, sink: NetworkEventSink) {
    this.#handle = handle;
    this.events = events;
    this.#sink = sink;
    this.#enabled = events;
    this.#readPoll = pollRecord(this);
    this.#writePoll = pollRecord(this);
  }

  /** The same selection for a socket accepted from this listener. */
  inherit(socket: NonBlockingSocket): Selection {
    return new Selection(socket, this.events, this.#sink);
  }

  /** Arms the polls for what is enabled (reporting at once what holds already). */
  arm(): void {
    if (this.#over) return;
    const handle = this.#handle;
    if (handle instanceof NonBlockingListener) {
      if (this.#enabled & FD_ACCEPT && !this.#readPoll.pending && !handle.closed) {
        handle.listener.poll(this.#readPoll);
      }
      return;
    }
    const socket = handle.socket;
    if (socket.closed) return;
    if (!this.#readPoll.pending) {
      if (this.#enabled & FD_READ) {
        socket.poll(Readiness.READABLE | Readiness.HANGUP, this.#readPoll);
      } else if (this.#enabled & FD_CLOSE && !(this.events & FD_READ) && !this.#peerClosed) {
        socket.poll(Readiness.HANGUP, this.#readPoll);
      }
    }
    if (this.#enabled & FD_WRITE && !this.#writePoll.pending) {
      socket.poll(Readiness.WRITABLE, this.#writePoll);
    }
  }

  #report(event: number, error: Error | null): void {
    if (!(this.#enabled & event) || this.#over) return;
    this.#enabled &= ~event;
    if (event === FD_CLOSE) this.#enabled = 0;
    this.#sink(this.#handle, event, error);
  }

  onPoll(ready: number, error: Error | null, ov: Overlapped<PollOwner>): void {
    if (this.#over || isAborted(error)) return;
    if (error !== null) ready = Readiness.ERROR;
    if (this.#handle instanceof NonBlockingListener) {
      this.#report(FD_ACCEPT, null);
      return;
    }
    if (ov === this.#writePoll) {
      this.#report(FD_WRITE, null);
      return;
    }
    if (ready & Readiness.HANGUP) this.#peerClosed = true;
    if (this.events & FD_READ) {
      // Bytes, the FIN or the failure: recv tells which, and FD_CLOSE follows from it.
      this.#report(FD_READ, null);
    } else if (ready & (Readiness.HANGUP | Readiness.ERROR)) {
      this.#report(FD_CLOSE, ready & Readiness.ERROR ? connectionFailed() : null);
    }
    this.arm();
  }

  afterRecv(result: number | Error): void {
    if (this.#over) return;
    if (result instanceof Error) {
      this.#report(FD_CLOSE, result);
    } else if (result === 0) {
      this.#report(FD_CLOSE, null);
    } else {
      // recv re-enables FD_READ; the poll reports it again at once if bytes remain.
      this.#enabled |= this.events & FD_READ;
      this.arm();
    }
  }

  afterSend(result: number | Error): void {
    if (this.#over) return;
    if (result instanceof Error) {
      this.#report(FD_CLOSE, result);
    } else if (result === WOULD_BLOCK) {
      this.#enabled |= this.events & FD_WRITE;
      this.arm();
    }
  }

  afterAccept(socket: NonBlockingSocket | null): void {
    if (this.#over) return;
    this.#enabled |= this.events & FD_ACCEPT;
    this.arm();
    if (socket !== null && this.events & ~FD_ACCEPT) install(socket, this.inherit(socket));
  }

  /** Ends this selection: nothing more is reported; its polls are cancelled. */
  closed(): void {
    if (this.#over) return;
    this.#over = true;
    const handle = this.#handle;
    const target = handle instanceof NonBlockingListener ? handle.listener : handle.socket;
    if (target.closed) return;
    if (this.#readPoll.pending) target.cancel(this.#readPoll);
    if (this.#writePoll.pending) target.cancel(this.#writePoll);
  }
}

function install(handle: NonBlockingHandle, selection: Selection | null): void {
  handle.selection?.closed();
  handle.selection = selection;
  if (selection === null) return;
  watch(handle instanceof NonBlockingListener ? handle.listener : handle.socket);
  selection.arm();
}

/**
 * Starts reporting `events` of `handle` to `sink`, replacing any selection
 * the handle had (`events` 0 only ends it). The notification models call
 * this; `sink` may be called from inside a `recv` or `send` call (FD_CLOSE
 * learnt from a recv's 0 or error), so it must only queue or record.
 */
export function selectNetworkEvents(
  handle: NonBlockingHandle,
  events: number,
  sink: NetworkEventSink,
): void {
  checkNetworkEvents(events);
  if (handle.closed) throw new UsageError('OVL_ERR_HANDLE_CLOSED');
  install(handle, events === 0 ? null : new Selection(handle, events, sink));
}
