/**
 * Sizes and bounds of the io_uring engine, and the kernel's numbers it reads
 * in completions (Linux ABI values: CQE flags, errno, poll(2) events).
 */

/** SQ entries; the CQ has four times as many (the kernel also keeps overflow, FEAT_NODROP). */
export const RING_ENTRIES = 4096;
/** Completion records per call into JavaScript. */
export const RECORDS_PER_CALL = 1024;
/** Int32s before the first record; [0] is 1 while a submit is due (OVL_CTL_SUBMIT_PENDING in native/src/ring.h). */
export const RECORDS_AT = 4;
/** Int32s per record: id, res, flags. */
export const RECORD_INTS = 3;
/**
 * Arrivals a stream's multishot recv may hand over before any recv asks for
 * them; at that point it is cancelled, and armed again once a recv finds
 * nothing held. Its byte limit (MAX_UNREAD_BYTES, rule 6) bounds them too.
 */
export const HOLD_ARRIVALS = 8;
/**
 * Read-ahead buffer size. A plain recv after one that filled its buffer is
 * one kernel recvmsg into its own buffer, then into a stage of this size
 * (rule 6: it is also what a stream may hold unread), and later recvs copy
 * from the stage, as the node engine reads 64 KiB ahead. Idle and
 * request/reply connections never take one.
 */
export const STAGE_SIZE = 64 * 1024;
/** Read-ahead buffers kept for reuse once no stream holds them. */
export const STAGE_SPARES = 64;
/** Pool buffers the kernel gets at first; more (doubling) each time it runs out. */
export const POOL_INITIAL = 32;
/** The pool's bytes, unless OVERLAPPED_URING_POOL_BUFFERS sets the count (settings.ts). */
export const POOL_BYTES = 8 * 1024 * 1024;
/**
 * Pool buffer size where the kernel consumes buffers incrementally (6.12+):
 * an arrival takes only its bytes, so a large buffer costs a small message
 * nothing, and a 16 KiB message comes in one completion instead of two.
 * The contract's MAX_POOLED_RECV_BYTES.
 */
export const POOL_BUFFER_SHARED = 64 * 1024;
/** Pool buffer size where each arrival holds a whole buffer (before 6.12). */
export const POOL_BUFFER_WHOLE = 8 * 1024;
/** How long a gracefully closed stream lets a send in flight finish. */
export const LINGER_MS = 10_000;
/** Sends larger than this are never copied: they are sent from the caller's buffer. */
export const SEND_COPY_MAX = 16 * 1024;
/**
 * A buffered send of at least this many bytes of a lent pool buffer pins the
 * buffer rather than copying them (buffer-pool.ts); a smaller one is copied,
 * which costs less than a whole buffer held for it.
 */
export const PIN_MIN_BYTES = 2048;
/** Size of one chunk of the send arena (send-arena.ts). */
export const ARENA_CHUNK = 256 * 1024;
/** Empty arena chunks kept for reuse. */
export const ARENA_SPARES = 16;
/** Parts one sendmsg gathers at most (IOV_MAX). */
export const MAX_IOV = 1024;

export const IORING_CQE_F_BUFFER = 1;
export const IORING_CQE_F_MORE = 2;
/** With incremental buffers: the kernel goes on filling this CQE's buffer (kernel 6.12+). */
export const IORING_CQE_F_BUF_MORE = 16;
export const IORING_CQE_BUFFER_SHIFT = 16;

// Linux errno values (negative, as a CQE's res carries them) the engine acts on.
export const ECANCELED = -125;
export const ENOBUFS = -105;
export const EINVAL = -22;
export const EAGAIN = -11;

// poll(2) events (Linux values): what a POLL_ADD asks for and its CQE's res reports.
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLRDHUP = 0x2000;

// What an operation id stands for: the owner's CQE handler switches on it.
export const KIND_RECV = 1;
export const KIND_SEND = 2;
export const KIND_CONNECT = 3;
export const KIND_SHUTDOWN = 4;
export const KIND_ACCEPT = 5;
export const KIND_RECV_MULTI = 6;
export const KIND_POLL = 7;
