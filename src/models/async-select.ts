/**
 * The WSAAsyncSelect model: network events arrive as window messages.
 *
 * `asyncSelect(socket, window, message, FD_READ | FD_WRITE | FD_CLOSE)`
 * puts the socket in the model (it is non-blocking already) and posts
 * `message` to `window` whenever one of the events happens, with the socket
 * as `wParam` and `lParam` packing the event and the Winsock error number
 * (read them with {@link WSAGETSELECTEVENT} and {@link WSAGETSELECTERROR}).
 * The events are reported by the rules of ./network-events.ts (one FD_READ
 * until `recv`, FD_WRITE after WSAEWOULDBLOCK, FD_CLOSE once, a new call
 * replaces the old selection, accepted sockets inherit the listener's).
 *
 * A {@link MessageWindow} stands in for the `HWND`: a message queue and a
 * window procedure. `postMessage` queues, `getMessage` takes the next
 * message (waiting when none is queued), `dispatchMessage` calls the window
 * procedure with it, and `run()` is the `GetMessage`/`DispatchMessage` loop
 * of a Win32 program, until `destroy()`. One window serves any number of
 * sockets: this model has no 64-socket limit.
 */
import { check, OsError, OverlappedError, UsageError } from '../core/errors.js';
import { selectNetworkEvents } from './network-events.js';
import type { NonBlockingHandle } from './nonblocking.js';

/** One queued message, as `MSG` holds it (and the full error, which `lParam` only numbers). */
export interface WindowMessage {
  readonly message: number;
  readonly wParam: unknown;
  readonly lParam: number;
  /** For a network event that failed: the error that `WSAGETSELECTERROR(lParam)` numbers. */
  readonly error: Error | null;
}

/** The window procedure: called by `dispatchMessage` for each message. */
export type WindowProc = (
  window: MessageWindow,
  message: number,
  wParam: unknown,
  lParam: number,
  error: Error | null,
) => void;

/** `WM_USER`: the first message number free for an application's own messages. */
export const WM_USER = 0x0400;

/** `WSAMAKESELECTREPLY(event, error)`: the `lParam` of a network-event message. */
export function WSAMAKESELECTREPLY(event: number, error: number): number {
  return ((error & 0xffff) << 16) | (event & 0xffff);
}

/** `WSAGETSELECTEVENT(lParam)`: the FD_* event of a network-event message. */
export function WSAGETSELECTEVENT(lParam: number): number {
  return lParam & 0xffff;
}

/** `WSAGETSELECTERROR(lParam)`: the Winsock error number (0 when none; 10054 is WSAECONNRESET). */
export function WSAGETSELECTERROR(lParam: number): number {
  return (lParam >>> 16) & 0xffff;
}

/** The Winsock number of an error, for `lParam` (WSAECONNRESET when it has none of its own). */
function winsockCode(error: Error): number {
  if (error instanceof OsError || error instanceof OverlappedError) {
    const code = error.win32?.code;
    if (code !== undefined && code <= 0xffff) return code;
  }
  return 10054;
}

/**
 * A window stand-in: a message queue drained by a window procedure. Messages
 * are dispatched in the order they were posted. Make one with {@link createWindow}.
 */
export class MessageWindow {
  readonly #windowProc: WindowProc;
  readonly #queue: WindowMessage[] = [];
  #head = 0;
  #waiting: ((message: WindowMessage | null) => void) | null = null;
  #destroyed = false;

  /** @internal Use {@link createWindow}. */
  constructor(windowProc: WindowProc) {
    this.#windowProc = windowProc;
  }

  /** Messages queued and not yet taken. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** `PostMessage`: queues a message for the window procedure; false once the window is destroyed. */
  postMessage(
    message: number,
    wParam: unknown,
    lParam: number,
    error: Error | null = null,
  ): boolean {
    if (this.#destroyed) return false;
    const msg: WindowMessage = { message, wParam, lParam, error };
    const waiting = this.#waiting;
    if (waiting !== null) {
      this.#waiting = null;
      waiting(msg);
    } else {
      this.#queue.push(msg);
    }
    return true;
  }

  /** `PeekMessage(PM_REMOVE)`: the next message, or null when none is queued. Never waits. */
  peekMessage(): WindowMessage | null {
    if (this.#head === this.#queue.length) return null;
    const msg = this.#queue[this.#head] as WindowMessage;
    this.#queue[this.#head++] = undefined as unknown as WindowMessage;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return msg;
  }

  /**
   * `GetMessage`: the next message, waiting for one when none is queued;
   * null once the window is destroyed (as GetMessage returns 0 on WM_QUIT).
   * One caller waits at a time.
   */
  getMessage(): Promise<WindowMessage | null> {
    const msg = this.peekMessage();
    if (msg !== null) return Promise.resolve(msg);
    if (this.#destroyed) return Promise.resolve(null);
    check(this.#waiting === null, 'OVL_ERR_INVALID_ARGUMENT', 'getMessage() is already waiting');
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** `DispatchMessage`: calls the window procedure with `msg`. */
  dispatchMessage(msg: WindowMessage): void {
    this.#windowProc(this, msg.message, msg.wParam, msg.lParam, msg.error);
  }

  /**
   * The message loop: takes and dispatches every message until the window is
   * destroyed, draining what is queued before it waits again. A window
   * procedure that throws ends the loop with its error.
   */
  async run(): Promise<void> {
    for (;;) {
      let msg = this.peekMessage();
      while (msg !== null) {
        this.dispatchMessage(msg);
        msg = this.peekMessage();
      }
      msg = await this.getMessage();
      if (msg === null) return;
      this.dispatchMessage(msg);
    }
  }

  /**
   * `DestroyWindow`: no more messages are queued; those queued are dropped,
   * and `getMessage` returns null. Sockets still selected to this window
   * should be closed (or deselected) first. Idempotent.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#queue.length = 0;
    this.#head = 0;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.(null);
  }
}

/** `CreateWindow` for a window that only receives messages: its procedure and its queue. */
export function createWindow(windowProc: WindowProc): MessageWindow {
  check(
    typeof windowProc === 'function',
    'OVL_ERR_INVALID_ARGUMENT',
    'createWindow() takes the window procedure (window, message, wParam, lParam, error) => void',
  );
  return new MessageWindow(windowProc);
}

/**
 * `WSAAsyncSelect(s, hWnd, wMsg, lEvent)`: posts `message` to `window` for
 * each of `events` (FD_READ | FD_WRITE | FD_ACCEPT | FD_CLOSE) on `socket`,
 * with `wParam` = the socket and `lParam` = WSAMAKESELECTREPLY(event,
 * error). Replaces the socket's earlier selection (of either model);
 * `events` 0 cancels it. The socket must be in non-blocking mode
 * (`setNonBlocking`), as WSAAsyncSelect itself makes it.
 */
export function asyncSelect(
  socket: NonBlockingHandle,
  window: MessageWindow,
  message: number,
  events: number,
): void {
  if (!(window instanceof MessageWindow)) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      'asyncSelect() needs a window from createWindow()',
    );
  }
  check(
    Number.isInteger(message) && message >= 0,
    'OVL_ERR_INVALID_ARGUMENT',
    `the message number must be a whole number >= 0 (e.g. WM_USER + 1), got ${String(message)}`,
  );
  check(!window.destroyed, 'OVL_ERR_HANDLE_CLOSED', 'asyncSelect() on a destroyed window');
  selectNetworkEvents(socket, events, (handle, event, error) => {
    window.postMessage(
      message,
      handle,
      WSAMAKESELECTREPLY(event, error === null ? 0 : winsockCode(error)),
      error,
    );
  });
}
