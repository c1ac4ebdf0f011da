/**
 * Implementation notes: the native io_uring engine (Linux).
 *
 * What the kernel gives: io_uring is Linux's completion port. Operations
 * are posted as SQEs and complete into a CQ, in batches, with no readiness
 * step in between; a blocked socket operation waits inside the kernel
 * (FAST_POLL) until it can finish. The ring signals an eventfd per CQE.
 *
 * What the engine adds (native/ for the C side, this folder for the rest):
 * - Event loop: libuv watches the ring's eventfd. One wake-up reaps every
 *   ready CQE into a shared Int32Array (records of id, res, flags) and makes
 *   ONE call into JavaScript, which maps ids to requests and hands the sink
 *   one batch. SQEs prepared while that batch is handled (handlers posting
 *   the next recv/send) are submitted once, after the call; SQEs prepared
 *   at any other time are submitted once per turn from a microtask. No busy
 *   polling, no thread per connection.
 * - Ordering (rule 7) and stream integrity: io_uring does not order two
 *   SQEs on one socket (a send waiting for buffer space could be overtaken
 *   by a later one). So each stream has at most one recv and one send in
 *   the kernel; more wait here, in order. Sends waiting here when one
 *   completes leave together in one sendmsg with an iovec. Shutdown waits
 *   for earlier sends (FIN after data).
 * - Sends use MSG_WAITALL, so the kernel retries a short send until every
 *   byte is taken, as an overlapped WSASend completes whole.
 * - Buffered sends (the contract's rule of that name): while bytes stream
 *   in (received bytes held unread, a last recv that filled its buffer, or
 *   buffered bytes waiting already), a send of at most SEND_COPY_MAX bytes
 *   is copied into the ring's send arena (send-arena.ts) and completed at
 *   once, up to SEND_BUFFER_BYTES per stream and only while no send of the
 *   caller's waits. The kernel send is left to the ring's flush, which runs
 *   once the turn's JavaScript is done (ring.flushSoon), so the pieces an
 *   echo handler sends, one per recv the read-ahead serves, leave in one
 *   sendmsg. A request/reply send is not copied: it has nothing to leave
 *   with. A graceful close sends what is buffered before the FIN (it
 *   lingers like a send in flight); an abortive one drops it; cancel leaves
 *   it alone; a failed send of buffered bytes becomes the stream's error.
 *   A buffered send of PIN_MIN_BYTES or more from a lent pool buffer (the
 *   pooled echo) is not copied: it pins the buffer, and a release of the
 *   lease meanwhile waits for the last pin (buffer-pool.ts), so the pooled
 *   echo makes no user-space copy at all. At most a quarter of the pool is
 *   pinned at once; past it, sends copy, and recvs keep the rest.
 * - A recv is posted with IORING_RECVSEND_POLL_FIRST unless the stream's
 *   previous recv filled its buffer: a request/reply server posts its next
 *   recv before the next request has arrived, so the kernel's first attempt
 *   would only fail with EAGAIN, while after a full buffer more is likely
 *   waiting (RECV_POLL_FIRST in native/src/addon.c; docs/benchmarks.md has
 *   what it was measured to save).
 * - Rule 6: a plain recv reads into the posted buffer and, as read-ahead
 *   after one that filled its buffer, into a stage of STAGE_SIZE after it
 *   (one recvmsg), so at most that much is held unread. Pooled recvs share
 *   one multishot recv per stream (below), which holds at most
 *   MAX_UNREAD_BYTES (64 KiB) for no recv: the kernel ends it after that
 *   many bytes (its byte limit), and it is cancelled once HOLD_ARRIVALS
 *   arrivals are held; TCP flow control does the rest.
 * - Accept is multishot (kernel 5.19+): armed at the first accept and kept
 *   armed while the listener is open; connections no accept is posted for
 *   wait in a queue of `backlog`; once it is full the multishot accept is
 *   cancelled, so further clients wait in the kernel's listen backlog (as
 *   with any listening socket nobody accepts from), and it is armed again
 *   when an accept finds the queue empty. Posted accepts are served oldest
 *   first.
 * - Cancel: IORING_OP_ASYNC_CANCEL by user_data (one operation), or by
 *   descriptor (IORING_ASYNC_CANCEL_FD | ALL, 5.19+) when everything of a
 *   stream goes (reset, abortive close); the operation then
 *   completes with -ECANCELED (OVL_ERR_ABORTED), or with its result if it
 *   finished first (too late to cancel). A cancelled send may have moved an
 *   unknown part of its bytes, so, as in the node engine, cancelling a send
 *   the kernel has not finished resets the connection (ECONNABORTED after).
 * - Close: requests waiting here abort at once; requests in the kernel are
 *   cancelled (a graceful close lets a send in flight finish, for at most
 *   10 s, and completes it aborted with the bytes it moved, as the node
 *   engine does); the descriptor is closed once nothing of it is in the
 *   kernel, so no buffer is still in use. Abortive close sets SO_LINGER 0;
 *   one after a graceful close (destroy() after close()) cancels the
 *   lingering send and resets the connection (contract: abortive wins).
 * - Pooled receive: a provided-buffer ring of 8 MiB of address space
 *   (128 × 64 KiB buffers on 6.12+, below; 1024 × 8 KiB before), registered
 *   on the first pooled recv. The kernel picks a buffer only when data
 *   arrives; the lease gives it back.
 *   A stream's pooled recvs are served by one multishot recv (6.0+), armed
 *   by the first and kept armed while recvs come: each arrival completes the
 *   oldest waiting recv, or is held (in order, with end of stream or an error
 *   behind it) for the next one. A recv into a buffer copies from what is
 *   held, and otherwise waits for the multishot to end before its own SQE
 *   goes in, so no arrival overtakes it. A kernel without multishot recv
 *   (-EINVAL) gets single-shot pooled recvs.
 *   On 6.12+ the buffers are consumed incrementally (IOU_PBUF_RING_INC):
 *   an arrival takes only its bytes from the buffer at the ring's head and
 *   the next goes on after it, so a thousand 64-byte messages share a few
 *   buffers instead of holding one each; a buffer goes back once the kernel
 *   has moved past it and every lease and held slice of it is released.
 *   A message may then end in one buffer and go on in the next: two
 *   completions, as TCP allows. Large buffers cost a small message nothing
 *   then, and let a 16 KiB message come in one completion, not two. Older
 *   kernels give each arrival a whole buffer, so theirs stay at 8 KiB.
 *   The ring is FIFO, so every buffer the kernel has is used in turn: it
 *   gets 32 at first and more (doubling, once per turn) only when it
 *   answers -ENOBUFS, so the pages the pool touches follow the peak of
 *   bytes (whole buffers, before 6.12) in use. With all of them out, the recv
 *   waits here until one comes back, then is posted again (not an error).
 * - Readiness and non-blocking attempts (select, WSAAsyncSelect,
 *   WSAEventSelect, non-blocking sockets) use the kernel's own mechanisms.
 *   `poll` is a single-shot IORING_OP_POLL_ADD for POLLIN/POLLOUT (and
 *   POLLRDHUP when HANGUP is asked); the CQE's revents map to Readiness
 *   bits (POLLERR/POLLHUP: ERROR, and READABLE when asked). Several may be
 *   pending per handle; cancel and close cancel them like any operation,
 *   and the descriptor stays open until their CQEs are in. Bytes the engine
 *   holds for no recv (multishot arrivals, read-ahead) are served first:
 *   a READABLE poll completes from them without the kernel, and one in the
 *   kernel when such bytes come in is cancelled and completes from them,
 *   since the kernel may no longer see them on the socket. The try-calls
 *   make one plain system call, no SQE: recv/send with MSG_DONTWAIT (the
 *   socket stays a blocking descriptor for io_uring) and accept4 on the
 *   listening socket, which is O_NONBLOCK for that (accept has no per-call
 *   flag; io_uring's multishot accept polls either way). Order (rule 7):
 *   while a recv or send is posted the try-call says WOULD_BLOCK, and while
 *   a pooled recv's multishot is armed tryRecv stops it rather than read past
 *   it. `detach` disowns the descriptor (the ring would close it at
 *   teardown) for a worker's blocking calls (`engine.blocking`, ring-less
 *   addon functions).
 * - Memory safety: the native ring holds a strong reference to the ring's
 *   record callback (ring.ts), so every owner in its id table, and every
 *   buffer the owner holds for an operation, stays reachable until the
 *   operation's final CQE is reaped, whatever the caller drops; the pool's
 *   ArrayBuffer is referenced natively before the kernel may write into it. Memory the kernel
 *   reads besides data (msghdr, iovec, sockaddr) is native and freed at the
 *   final CQE. When the Node-API environment ends (process or worker exit),
 *   the native side cancels and reaps everything before freeing the ring.
 *   No global state: one ring per engine, one engine per thread.
 *
 * Where the time goes, and what was tried and not kept (registered files,
 * smaller completion batches): docs/benchmarks.md, "The io_uring engine's
 * design measurements".
 *
 * Quirks and limits:
 * - Task work: by default the kernel finishes a waited-for socket operation
 *   by interrupting this thread (an IPI), which is dear under load (see
 *   docs/benchmarks.md). The ring is set up with
 *   COOP_TASKRUN (the work runs at the thread's next system call, which
 *   libuv's epoll_wait is). `OVERLAPPED_URING_TASKRUN=defer` selects
 *   DEFER_TASKRUN (run only when asked, in batches); since 6.13 the kernel runs at most 20 deferred items per ask and
 *   signals the eventfd again only for new work, so the engine keeps asking
 *   while asking yields completions. `plain` is the kernel default.
 * - liburing 2.3 has no io_uring_setup_buf_ring; the C side allocates the
 *   buffer ring page-aligned and registers it itself.
 * - Connected sockets are blocking descriptors: io_uring waits for them; a
 *   non-blocking socket would hand -EAGAIN back on some kernels. Listening
 *   sockets are O_NONBLOCK (for tryAccept); accept is not affected.
 * - Host names are resolved with `dns.lookup` before connect/listen.
 * - Kernels before 5.19 (no multishot accept, no cancel by descriptor) are
 *   not supported: the start-up probe asks the kernel for both, and where it
 *   refuses them the toolkit runs on the node engine and says why.
 *
 * Layout (one file per concern; streams and listeners depend on the ring
 * and the pool, never on this engine object):
 * - uring-engine.ts: these notes and the Engine (listen, connect, adopt).
 * - ring.ts: the ring, its operation-id/owner table, batched delivery.
 * - buffer-pool.ts: the provided-buffer pool, its leases, read-ahead stages,
 *   and send-arena.ts: the copies of buffered sends.
 * - stream.ts (UringStream), listener.ts (UringListener), poll-list.ts
 *   (readiness polls of either).
 * - constants.ts (sizes, kernel ABI numbers), settings.ts (the
 *   OVERLAPPED_URING_* variables), probe.ts (opening the ring is the probe),
 *   native.ts (loading the addon), blocking-io.ts (a worker's blocking calls).
 * - OS errors come from core/errors.ts (osErrorFromErrno), as the node
 *   engine's do.
 */

import { lookup } from 'node:dns';
import { chmod } from 'node:fs/promises';
import { isIP } from 'node:net';
import { osErrorFromErrno, toOsError, UsageError } from '../../core/errors.js';
import type {
  BlockingDescriptorIo,
  CompletionSink,
  Engine,
  EngineListener,
  EngineRequest,
  EngineStream,
  PipeListenOptions,
  TcpListenOptions,
} from '../contract.js';
import { uringBlockingIo } from './blocking-io.js';
import { BufferPool } from './buffer-pool.js';
import { RING_ENTRIES } from './constants.js';
import { UringListener } from './listener.js';
import { loadAddon, type Ring, type UringAddon } from './native.js';
import { UringRing } from './ring.js';
import { TASK_RUN_MODES, taskRunMode } from './settings.js';
import { UringStream } from './stream.js';

/** A Node-style OS error for a negative errno from a CQE or a system call. */
export { osErrorFromErrno as uringError } from '../../core/errors.js';
export { checkUringSettings } from './settings.js';

/** The io_uring engine. One instance per thread (event loop). */
export class UringEngine implements Engine {
  readonly name = 'uring';
  /** @internal */
  readonly addon: UringAddon;
  /** @internal The addon's handle of this engine's ring. */
  readonly ring: Ring;
  readonly #ring: UringRing;
  readonly #pool: BufferPool;

  /** @internal The ring's receive pool (its size is known once the first pooled recv registered it). */
  get pool(): BufferPool {
    return this.#pool;
  }

  /** Opens a ring and probes it; throws with the reason io_uring cannot run here. */
  constructor() {
    this.addon = loadAddon();
    this.#ring = new UringRing(this.addon, RING_ENTRIES, taskRunMode());
    this.ring = this.#ring.handle;
    this.#pool = new BufferPool(this.#ring);
  }

  setSink(sink: CompletionSink): void {
    this.#ring.setSink(sink);
  }

  /**
   * Blocking calls on a descriptor from `detach()` (blocking-io.ts): the
   * addon's ring-less functions, so a worker thread that owns the descriptor
   * calls them without an engine of its own.
   */
  get blocking(): BlockingDescriptorIo {
    return uringBlockingIo();
  }

  /** How the kernel runs this ring's task work: 'defer', 'coop' or 'plain' (see notes). */
  get taskRun(): string {
    return TASK_RUN_MODES[this.addon.setupMode(this.ring)] ?? 'plain';
  }

  async listenTcp(options: TcpListenOptions): Promise<EngineListener> {
    const ip = await resolveHost(options.host);
    const fd = this.addon.listenTcp(this.ring, ip, options.port, options.backlog);
    if (fd < 0) throw osErrorFromErrno(fd, 'listen', { address: ip, port: options.port });
    return new UringListener(this.#ring, this.#pool, fd, options.backlog, null);
  }

  async listenPipe(options: PipeListenOptions): Promise<EngineListener> {
    const fd = this.addon.listenUnix(this.ring, options.path, options.backlog);
    if (fd < 0) throw osErrorFromErrno(fd, 'listen', { address: options.path });
    const listener = new UringListener(this.#ring, this.#pool, fd, options.backlog, options.path);
    try {
      await chmod(options.path, options.mode);
    } catch (err) {
      listener.close();
      throw toOsError(err, 'chmod');
    }
    return listener;
  }

  connectTcp(req: EngineRequest, host: string, port: number): EngineStream {
    const stream = new UringStream(this.#ring, this.#pool, -1, req, null);
    if (isIP(host) !== 0) {
      stream.startConnect(host, port);
    } else {
      lookup(host, (err, address) => {
        if (err) stream.connectFailed(toOsError(err, 'getaddrinfo'));
        else stream.startConnect(address, port);
      });
    }
    return stream;
  }

  /**
   * The contract's `adopt`: the descriptor becomes a stream of this ring, as
   * an accepted one would (accepted sockets are blocking descriptors here;
   * io_uring does the waiting, and try-calls pass MSG_DONTWAIT).
   */
  adopt(fd: number): EngineStream {
    if (!Number.isSafeInteger(fd) || fd < 0) {
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        `adopt() takes a descriptor (a whole number >= 0), got ${String(fd)}`,
      );
    }
    return new UringStream(this.#ring, this.#pool, fd, null, null);
  }

  connectPipe(req: EngineRequest, path: string): EngineStream {
    const stream = new UringStream(this.#ring, this.#pool, -1, req, path);
    stream.startConnect(path, -1);
    return stream;
  }
}

function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return Promise.resolve(host);
  return new Promise((resolve, reject) => {
    lookup(host, (err, address) => {
      if (err) reject(toOsError(err, 'getaddrinfo'));
      else resolve(address);
    });
  });
}
