/**
 * A TCP listener's PROXY protocol front (`ListenOptions.proxyProtocol`): it
 * takes connections from the engine listener, reads each one's header, and
 * only then hands the connection to whoever accepts on the TcpListener:
 * posted accepts (every completion model), `tryAccept` and `poll` (the
 * readiness models) alike.
 *
 * Why the header is read this way:
 * - Reads are sized by {@link ProxyHeaderParser.wanted}, never past the
 *   header's end, with `tryRecv` after a readiness `poll`. Every byte after
 *   the header therefore stays in the engine (or the kernel), and the
 *   application's first recv, pooled recv, tryRecv or poll gets it from
 *   there exactly as on a connection without a header: nothing is copied
 *   aside, nothing can be lost or doubled, and the socket is an ordinary
 *   TcpSocket (its descriptor can still be detached to a thread). A v2
 *   header takes two reads; a v1 line a handful, each bounded below by the
 *   fields still missing.
 * - One scratch buffer per thread serves every read (they are synchronous),
 *   so a connection in its handshake holds a parser (at most 107 bytes) and
 *   a deadline, never a receive buffer.
 * - The header deadline is a {@link Deadline} in this loop's one timer
 *   structure, never a timer per connection.
 * - Handshakes in progress plus connections ready and not yet taken are
 *   bounded ({@link MAX_UNTAKEN}): past it no accept is posted, and the
 *   kernel's backlog holds the rest, as it does without the protocol.
 *
 * A connection that fails (no header, a malformed one, too slow, a source
 * outside the allow-list, or closed early) is reset and reported to
 * `onError` with an `OVL_ERR_PROXY_*` error; nothing else sees it.
 */
import {
  type EngineListener,
  type EngineStream,
  Readiness,
  WOULD_BLOCK,
} from '../../engines/contract.js';
import { add, countError, counters, countLimitClose } from '../counters.js';
import { Deadline, deadlines } from '../deadlines.js';
import { completeLater, deliverInBatch, InternalRequest } from '../delivery.js';
import { abortedError, OverlappedError } from '../errors.js';
import type { Overlapped } from '../overlapped.js';
import { type ProxyHeader, ProxyHeaderParser, type ProxyProtocol } from './proxy-header.js';
import type { SourceAllowList } from './source-allow-list.js';

/** Default `proxyTimeoutMs`: the whole header must arrive within this of the accept. */
export const DEFAULT_PROXY_TIMEOUT_MS = 3000;

/** Accepts kept posted on the engine listener, so a burst of connects does not wait on one. */
const ACCEPTS_POSTED = 16;

/** Cap on connections in their handshake plus those ready and not yet taken. */
export const MAX_UNTAKEN = 1024;

/** One thread's scratch buffer for header reads (larger than any read: v1's 107 bytes). */
const scratch = Buffer.allocUnsafe(512);

export interface ProxySettings {
  readonly protocol: ProxyProtocol;
  readonly timeoutMs: number;
  readonly allow: SourceAllowList;
}

/** Told of each connection closed for its header: the error and the peer (the balancer or not). */
export type ProxyErrorHandler = (error: OverlappedError, peer: string) => void;

/** A connection whose header arrived, waiting to be taken. */
interface Ready {
  readonly stream: EngineStream;
  readonly header: ProxyHeader;
}

/** An accept this front keeps posted on the engine listener. */
class EngineAccept extends InternalRequest {
  constructor(readonly front: ProxyAcceptor) {
    super();
  }

  done(): void {
    this.front.accepted(this);
  }
}

/** One connection's header read: the poll request it re-posts, its parser and deadline. */
class Handshake extends InternalRequest {
  readonly parser: ProxyHeaderParser;
  readonly deadline: Deadline;
  finished = false;

  constructor(
    readonly front: ProxyAcceptor,
    readonly stream: EngineStream,
    protocol: ProxyProtocol,
  ) {
    super();
    this.parser = new ProxyHeaderParser(protocol);
    this.deadline = new Deadline(() => front.expired(this));
  }

  done(): void {
    if (!this.finished) this.front.readable(this);
  }
}

export class ProxyAcceptor {
  readonly #listener: EngineListener;
  readonly #settings: ProxySettings;
  #posted = 0;
  readonly #handshakes = new Set<Handshake>();
  readonly #ready: Ready[] = [];
  readonly #accepts: Overlapped<unknown>[] = [];
  readonly #polls: Overlapped<unknown>[] = [];
  readonly #headers = new WeakMap<EngineStream, ProxyHeader>();
  #closed = false;
  #refillScheduled = false;
  onError: ProxyErrorHandler | null = null;

  constructor(listener: EngineListener, settings: ProxySettings) {
    this.#listener = listener;
    this.#settings = settings;
    this.#refill();
  }

  get protocol(): ProxyProtocol {
    return this.#settings.protocol;
  }

  /** Connections reading their header now. */
  get handshakes(): number {
    return this.#handshakes.size;
  }

  /** A posted accept (already begun on the TcpListener). */
  accept(ov: Overlapped<unknown>): void {
    const ready = this.#ready.shift();
    if (ready === undefined) {
      this.#accepts.push(ov);
      return;
    }
    ov.result = ready.stream;
    completeLater(ov, null, 0);
    this.#refill();
  }

  /** A posted readiness poll: READABLE once a connection is ready to take. */
  poll(ov: Overlapped<unknown>): void {
    if (this.#ready.length > 0) completeLater(ov, null, Readiness.READABLE);
    else this.#polls.push(ov);
  }

  /** A ready connection, or null (posted accepts are served first, so they never race this). */
  tryAccept(): EngineStream | null {
    const ready = this.#ready.shift();
    if (ready === undefined) return null;
    this.#refill();
    return ready.stream;
  }

  /** The header a stream this front handed out arrived with (read once, by the listener). */
  takeHeader(stream: EngineStream): ProxyHeader | null {
    const header = this.#headers.get(stream) ?? null;
    this.#headers.delete(stream);
    return header;
  }

  cancel(ov: Overlapped<unknown> | null): boolean {
    let found = false;
    for (const queue of [this.#accepts, this.#polls]) {
      for (let i = queue.length - 1; i >= 0; i--) {
        const pending = queue[i] as Overlapped<unknown>;
        if (ov !== null && pending !== ov) continue;
        queue.splice(i, 1);
        completeLater(pending, abortedError());
        found = true;
      }
    }
    return found;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const h of this.#handshakes) this.#drop(h);
    for (const ready of this.#ready.splice(0)) ready.stream.close(true);
    this.cancel(null);
  }

  /** @internal An engine accept completed. */
  accepted(req: EngineAccept): void {
    this.#posted--;
    const stream = req.result;
    req.result = null;
    if (this.#closed) {
      stream?.close(true);
      return;
    }
    if (stream === null) {
      // The engine retries failures itself (onAcceptError); one that completes an accept goes to
      // a waiting accept, as it would without the protocol, and posting resumes on a later turn.
      const waiting = this.#accepts.shift();
      if (waiting !== undefined && req.error !== null) {
        waiting.error = req.error;
        waiting.bytes = 0;
        deliverInBatch(waiting);
      }
      this.#refillLater();
      return;
    }
    const allow = this.#settings.allow;
    // Without an allow-list the peer is not asked for: one that already left has none to give.
    const peer = allow.networks.length === 0 ? null : stream.remoteEndpoint;
    if (allow.networks.length > 0 && (peer === null || !allow.allows(peer.address))) {
      stream.close(true);
      this.#report(
        new OverlappedError(
          'OVL_ERR_PROXY_SOURCE',
          `a connection from ${peer?.address ?? 'an unknown address'} is outside --proxy-from (${this.#settings.allow.networks.join(', ')}): closed before reading it`,
        ),
        peer === null ? 'unknown' : `${peer.address}:${peer.port}`,
      );
      this.#refill();
      return;
    }
    const h = new Handshake(this, stream, this.#settings.protocol);
    this.#handshakes.add(h);
    deadlines.arm(h.deadline, this.#settings.timeoutMs);
    this.readable(h);
    this.#refill();
  }

  /** @internal The handshake's poll completed (or it starts): read what there is. */
  readable(h: Handshake): void {
    if (h.error !== null) {
      this.#fail(
        h,
        'OVL_ERR_PROXY_HEADER',
        `the connection failed before its PROXY header ended: ${h.error.message}`,
      );
      return;
    }
    const parser = h.parser;
    for (;;) {
      const want = Math.min(parser.wanted, scratch.length);
      let n: number;
      try {
        n = h.stream.tryRecv(scratch.subarray(0, want));
      } catch (err) {
        this.#fail(
          h,
          'OVL_ERR_PROXY_HEADER',
          `the connection failed before its PROXY header ended: ${(err as Error).message}`,
        );
        return;
      }
      if (n === WOULD_BLOCK) {
        h.stream.poll(h, Readiness.READABLE);
        return;
      }
      if (n === 0) {
        this.#fail(
          h,
          'OVL_ERR_PROXY_HEADER',
          `the peer closed the connection after ${parser.consumed} bytes of a PROXY header`,
        );
        return;
      }
      parser.push(scratch.subarray(0, n));
      if (parser.state === 'error') {
        this.#fail(h, 'OVL_ERR_PROXY_HEADER', `bad PROXY header: ${parser.error}`);
        return;
      }
      if (parser.state === 'done') {
        this.#complete(h, parser.header as ProxyHeader);
        return;
      }
    }
  }

  /** @internal The header deadline passed. */
  expired(h: Handshake): void {
    if (h.finished) return;
    this.#fail(
      h,
      'OVL_ERR_PROXY_TIMEOUT',
      `no complete PROXY header within ${this.#settings.timeoutMs} ms (--proxy-timeout; ${h.parser.consumed} bytes of one arrived)`,
    );
  }

  #complete(h: Handshake, header: ProxyHeader): void {
    this.#finish(h);
    this.#headers.set(h.stream, header);
    const waiting = this.#accepts.shift();
    if (waiting !== undefined) {
      waiting.result = h.stream;
      waiting.bytes = 0;
      waiting.error = null;
      deliverInBatch(waiting);
      this.#refill();
      return;
    }
    this.#ready.push({ stream: h.stream, header });
    for (const ov of this.#polls.splice(0)) {
      ov.bytes = Readiness.READABLE;
      ov.error = null;
      deliverInBatch(ov);
    }
  }

  #finish(h: Handshake): void {
    h.finished = true;
    deadlines.disarm(h.deadline);
    this.#handshakes.delete(h);
  }

  /** Closes a handshake without a report (the listener is closing). */
  #drop(h: Handshake): void {
    this.#finish(h);
    h.stream.close(true);
  }

  #fail(
    h: Handshake,
    code: 'OVL_ERR_PROXY_HEADER' | 'OVL_ERR_PROXY_TIMEOUT',
    message: string,
  ): void {
    const peer = h.stream.remoteEndpoint;
    this.#drop(h);
    this.#report(
      new OverlappedError(code, message),
      peer === null ? 'unknown' : `${peer.address}:${peer.port}`,
    );
    this.#refill();
  }

  #report(error: OverlappedError, peer: string): void {
    countError(error.code);
    if (error.code === 'OVL_ERR_PROXY_TIMEOUT') add(counters.deadlineCloses, 1);
    else if (error.code === 'OVL_ERR_PROXY_SOURCE') countLimitClose('proxy_source');
    const handler = this.onError;
    if (handler === null) return;
    try {
      handler(error, peer);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  #refill(): void {
    while (
      !this.#closed &&
      this.#posted < ACCEPTS_POSTED &&
      this.#posted + this.#handshakes.size + this.#ready.length < MAX_UNTAKEN
    ) {
      this.#posted++;
      this.#listener.accept(new EngineAccept(this));
    }
  }

  #refillLater(): void {
    if (this.#refillScheduled) return;
    this.#refillScheduled = true;
    setTimeout(() => {
      this.#refillScheduled = false;
      this.#refill();
    }, 100).unref();
  }
}
