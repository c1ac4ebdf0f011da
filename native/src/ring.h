/*
 * The io_uring engine's long-lived handle: one ring, its eventfd watched by
 * libuv, the table of per-operation memory, the provided-buffer pool and the
 * record array completions are handed to JavaScript in.
 *
 * Ownership contract (see src/engines/uring/ring.ts for the JS side):
 * - JavaScript allocates operation ids; the id is the SQE's user_data, and
 *   every id the engine reports belongs to an operation JS posted.
 * - Data buffers (recv targets, send sources) are kept alive by JavaScript:
 *   it holds them in its id table until the completion is reported, and the
 *   table is reachable from the callback this ring holds a strong reference
 *   to for its whole life. Memory the kernel reads besides the data (msghdr,
 *   iovec, sockaddr) lives here, in `extras[id]`, until the final CQE.
 * - A ring is torn down only when its Node-API environment is (main thread
 *   exit or worker exit): every operation is cancelled and its CQE reaped
 *   before the ring and its memory are freed.
 */
#ifndef OVL_RING_H
#define OVL_RING_H

#include <liburing.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

/* user_data of SQEs the engine makes for itself (cancels): their CQEs are not reported. */
#define OVL_INTERNAL_UDATA UINT64_MAX

/* Layout of the shared Int32Array: a header, then records of three ints (id, res, flags). */
#define OVL_CTL_SUBMIT_PENDING 0 /* 1 while a submit is due (scheduled by JS, or the reap's own) */
#define OVL_RECORDS_AT 4
#define OVL_RECORD_INTS 3

/* Buffer group of the provided-buffer pool. */
#define OVL_POOL_GROUP 0

/*
 * Incremental consumption of provided buffers (kernel 6.12+; the flag the
 * liburing 2.3 headers lack): each recv takes only the bytes it needs from
 * the buffer at the ring's head, so small messages share a buffer.
 */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif

enum ovl_kind { OVL_KIND_NONE = 0, OVL_KIND_PLAIN, OVL_KIND_ACCEPT };

typedef struct ovl_ring ovl_ring;

/*
 * What the ring's owner does when completions are ready (the eventfd fired):
 * handed to ovl_ring_init, as libuv's uv__io_init takes its watcher's
 * callback, so the ring never calls up into the Node-API layer by name.
 */
typedef void (*ovl_ready_cb)(ovl_ring *r);

/* Memory the kernel may read until an operation's final CQE (send, connect). */
typedef struct ovl_extra {
  struct msghdr msg;
  struct sockaddr_storage addr;
  struct iovec iov[]; /* flexible: as many as the send gathers */
} ovl_extra;

struct ovl_ring {
  napi_env env;
  ovl_ready_cb on_ready; /* reaps ready CQEs (the owner's, see ovl_ready_cb) */
  uint32_t index; /* among the environment's rings: the handle JS holds */
  struct io_uring ring;
  int efd;
  uv_poll_t poll;
  int referenced;  /* the poll handle keeps the loop alive */
  int torn_down;
  int defer_taskrun; /* IORING_SETUP_DEFER_TASKRUN: run task work before reaping */
  int setup_mode;    /* the mode the kernel took (see ovl_ring_init) */
  const char *failed_step; /* after a failed ovl_ring_init: what failed (static text) */
  uint32_t inflight; /* reported operations whose final CQE is not reaped yet */

  /* Per-id state, grown on demand (ids are small and reused by JS). */
  ovl_extra **extras;
  uint8_t *kinds;
  uint32_t ids_cap;

  /* Descriptors this ring opened or accepted and has not closed: closed at teardown. */
  uint8_t *owned;
  int owned_cap;

  int32_t *records; /* shared with JS */
  uint32_t record_cap;
  napi_ref records_ref;
  napi_ref callback_ref;
  napi_async_context async_ctx;

  /* Provided-buffer pool (pooled receive mode); NULL until JS registers one. */
  struct io_uring_buf_ring *buf_ring;
  uint8_t *pool;
  uint32_t pool_count;
  uint32_t pool_size;
  uint32_t pool_published; /* buffers 0..pool_published-1 have been given to the kernel */
  napi_ref pool_ref;

  napi_async_cleanup_hook_handle cleanup; /* NULL until the owner registers it */
};

/* ring.c */
/*
 * mode: 0 = DEFER_TASKRUN, 1 = COOP_TASKRUN, 2 = plain (each falls back to the
 * next). on_ready runs on the loop's thread whenever completions may be ready.
 */
int ovl_ring_init(ovl_ring *r, napi_env env, unsigned entries, int mode, ovl_ready_cb on_ready);
struct io_uring_sqe *ovl_ring_sqe(ovl_ring *r);
int ovl_ring_track(ovl_ring *r, uint32_t id, enum ovl_kind kind, ovl_extra *extra);
void ovl_ring_update_ref(ovl_ring *r);
int ovl_ring_submit(ovl_ring *r);
void ovl_ring_teardown(ovl_ring *r);
int ovl_ring_register_pool(ovl_ring *r, uint8_t *pool, uint32_t size, uint32_t count,
                           uint32_t initial, int incremental);
int ovl_ring_pool_grow(ovl_ring *r, uint32_t n);
void ovl_ring_pool_release(ovl_ring *r, uint32_t bid);
void ovl_own(ovl_ring *r, int fd);
void ovl_disown(ovl_ring *r, int fd);

/* sockets.c: plain system calls, each returning >= 0 or -errno. */
int ovl_parse_ip(const char *host, int port, struct sockaddr_storage *out, socklen_t *len);
int ovl_parse_unix(const char *path, struct sockaddr_storage *out, socklen_t *len);
int ovl_listen_addr(const struct sockaddr_storage *addr, socklen_t len, int backlog);
int ovl_stream_socket(int family);
int ovl_close(int fd, int abortive);
int ovl_set_nodelay(int fd, int on);

/* descriptors.c: calls that need no ring (non-blocking attempts, blocking calls); >= 0 or -errno. */
ssize_t ovl_recv_now(int fd, void *buf, size_t len);
ssize_t ovl_send_now(int fd, const void *buf, size_t len);
int ovl_accept_now(int fd, int poll_first);
int ovl_set_blocking(int fd, int blocking);
ssize_t ovl_recv_wait(int fd, void *buf, size_t len);
ssize_t ovl_send_all(int fd, const void *buf, size_t len);
int ovl_shutdown_fd(int fd, int how);

#endif
