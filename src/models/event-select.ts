/**
 * The WSAEventSelect model: network events are recorded per socket and
 * signal an event object.
 *
 * `eventSelect(socket, event, FD_READ | FD_WRITE | FD_CLOSE)` associates
 * `event` with the socket: each of the events, when it happens (by the
 * rules of ./network-events.ts), is recorded in the socket's record of
 * network events, with its error if it failed, and `event` is set. A loop
 * waits on many such events with `waitForMultipleEvents` (64 at most per
 * wait, so a server shards its sockets, as the events model does) and calls
 * `enumNetworkEvents(socket, event)` for the one that fired, which returns
 * the record, clears it and resets the event in one step.
 */

import { check, UsageError } from '../core/errors.js';
import { ManualResetEvent, type WaitableEvent } from '../core/events.js';
import { selectNetworkEvents } from './network-events.js';
import type { NonBlockingHandle } from './nonblocking.js';

/** `WSANETWORKEVENTS`: the events recorded since the last call, and each one's error. */
export interface NetworkEvents {
  /** `lNetworkEvents`: FD_* bits. */
  readonly events: number;
  /**
   * `iErrorCode[FD_*_BIT]`: the error of each recorded event that failed,
   * keyed by its FD_* value (only FD_CLOSE carries one here: ECONNRESET, …).
   */
  readonly errors: ReadonlyMap<number, Error>;
}

const NO_ERRORS: ReadonlyMap<number, Error> = new Map();

/** The record of one socket: what happened since `enumNetworkEvents` last cleared it. */
class EventRecord {
  events = 0;
  errors: Map<number, Error> | null = null;
  constructor(readonly event: WaitableEvent) {}
}

const records = new WeakMap<NonBlockingHandle, EventRecord>();

/** `WSACreateEvent`: a manual-reset event, not signalled. */
export function createEvent(): ManualResetEvent {
  return new ManualResetEvent();
}

/**
 * `WSAEventSelect(s, hEventObject, lNetworkEvents)`: records `events`
 * (FD_READ | FD_WRITE | FD_ACCEPT | FD_CLOSE) of `socket` and sets `event`
 * when one happens. Replaces the socket's earlier selection (of either
 * model) and starts a new, empty record; `events` 0 cancels it. A socket
 * accepted from a selected listener inherits the selection: the same event
 * and events, with a record of its own.
 */
export function eventSelect(socket: NonBlockingHandle, event: WaitableEvent, events: number): void {
  check(
    event !== null && typeof event === 'object' && typeof event.set === 'function',
    'OVL_ERR_INVALID_ARGUMENT',
    'eventSelect() needs an event object (createEvent(), a ManualResetEvent)',
  );
  if (events === 0) {
    records.delete(socket);
    selectNetworkEvents(socket, 0, () => {});
    return;
  }
  const fresh = new EventRecord(event);
  selectNetworkEvents(socket, events, (handle, fired, error) => {
    let record = handle === socket ? fresh : records.get(handle);
    if (record === undefined) {
      // A socket accepted from a selected listener: its own record, the listener's event.
      record = new EventRecord(event);
      records.set(handle, record);
    }
    record.events |= fired;
    if (error !== null) {
      record.errors ??= new Map();
      record.errors.set(fired, error);
    }
    record.event.set();
  });
  // Only once the selection is in place (a refused call leaves the earlier
  // one and its record untouched); its sink cannot run before this line, as
  // polls never complete inside the call that posts them.
  records.set(socket, fresh);
}

/**
 * `WSAEnumNetworkEvents(s, hEventObject, &networkEvents)`: the events
 * recorded for `socket` since the last call (and their errors); clears the
 * record and, when `event` is given, resets it, in one step. A socket with
 * no selection returns no events.
 */
export function enumNetworkEvents(socket: NonBlockingHandle, event?: WaitableEvent): NetworkEvents {
  const record = records.get(socket);
  if (event !== undefined) {
    if (record !== undefined && record.event !== event) {
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        'enumNetworkEvents() was given another event than the one eventSelect() associated with this socket',
      );
    }
    event.reset();
  }
  if (record === undefined || record.events === 0) return { events: 0, errors: NO_ERRORS };
  const result: NetworkEvents = { events: record.events, errors: record.errors ?? NO_ERRORS };
  record.events = 0;
  record.errors = null;
  return result;
}
