/*
 * The ring itself: set-up with a start-up probe, the eventfd libuv watches,
 * per-id bookkeeping, the provided-buffer pool, and teardown that drains
 * every operation before freeing anything the kernel could still touch.
 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_readable(uv_poll_t *handle, int status, int events) {
  ovl_ring *r = handle->data;
  uint64_t value;
  /* Level-triggered: drain the counter, then reap every CQE that is there. */
  while (read(r->efd, &value, sizeof value) < 0 && errno == EINTR) {
  }
  if (!r->defer_taskrun) {
    r->on_ready(r);
    return;
  }
  /*
   * DEFER_TASKRUN: completions wait as task work until this thread asks the
   * kernel to run it. Since 6.13 one enter runs at most 20 items per pass
   * (IO_LOCAL_TW_DEFAULT_MAX) and the eventfd fires again only when new work
   * arrives, so keep asking while asking yields completions.
   */
  for (int pass = 0; pass < 1024 && !r->torn_down; pass++) {
    io_uring_get_events(&r->ring);
    if (io_uring_cq_ready(&r->ring) == 0) break;
    r->on_ready(r);
  }
}

/*
 * One submit proves the ring works and has what the engine relies on: a NOP
 * must complete with 0; multishot accept and cancelling by descriptor
 * (IORING_ASYNC_CANCEL_FD) are 5.19+, and before that the kernel refuses their
 * flags with -EINVAL when it prepares the SQE. Both are asked of `fd` (the
 * ring's own descriptor: valid, and not a socket), so a kernel that has them
 * fails them later, with -ENOTSOCK and -ENOENT. Sets r->failed_step on failure.
 */
static int probe(ovl_ring *r, int fd) {
  struct io_uring *ring = &r->ring;
  struct io_uring_sqe *nop_sqe = io_uring_get_sqe(ring);
  io_uring_prep_nop(nop_sqe);
  io_uring_sqe_set_data64(nop_sqe, 0);
  struct io_uring_sqe *accept = io_uring_get_sqe(ring);
  io_uring_prep_multishot_accept(accept, fd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(accept, 1);
  struct io_uring_sqe *cancel = io_uring_get_sqe(ring);
  io_uring_prep_cancel_fd(cancel, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(cancel, 2);
  r->failed_step = "a NOP through the ring";
  int rc = io_uring_submit(ring);
  if (rc < 0) return rc;
  int nop = 0, refused = 0;
  for (int seen = 0; seen < 3;) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec timeout = {.tv_sec = 1, .tv_nsec = 0};
    rc = io_uring_wait_cqe_timeout(ring, &cqe, &timeout);
    if (rc == -EINTR) continue;
    if (rc < 0) return rc;
    if (cqe->user_data == 0) nop = cqe->res;
    else if (cqe->res == -EINVAL) refused = 1;
    io_uring_cqe_seen(ring, cqe);
    seen++;
  }
  if (nop < 0) return nop;
  r->failed_step = "multishot accept and cancel by descriptor (kernel 5.19+)";
  return refused ? -ENOTSUP : 0;
}

/*
 * Sets up the ring and probes it: a NOP must complete, and the kernel must
 * have what the engine uses. io_uring can be disabled (kernel.io_uring_disabled,
 * seccomp): the negative errno says why, and r->failed_step at which step.
 */
int ovl_ring_init(ovl_ring *r, napi_env env, unsigned entries, int mode, ovl_ready_cb on_ready) {
  r->env = env;
  r->on_ready = on_ready;
  r->efd = -1;
  struct io_uring_params p;
  /*
   * Task work (the kernel's second half of a socket operation that waited)
   * runs, by default, by interrupting this thread wherever it is (an IPI;
   * its cost is in docs/benchmarks.md). COOP_TASKRUN (5.19+) runs it at
   * this thread's next system call (libuv's epoll_wait wakes for it)
   * without an interrupt: the default. DEFER_TASKRUN (6.1+) runs it only
   * when this thread asks (io_uring_get_events), in batches; see
   * on_readable for its batch limit. Each mode falls back to the next when
   * the kernel refuses it.
   */
  static const unsigned tries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  int rc = -EINVAL;
  for (int i = mode; i < 3; i++) {
    memset(&p, 0, sizeof p);
    /* A large CQ: every connection may have a recv outstanding. */
    p.flags = IORING_SETUP_CQSIZE | tries[i];
    p.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &r->ring, &p);
    if (rc != -EINVAL) {
      r->defer_taskrun = rc == 0 && i == 0;
      r->setup_mode = i;
      break;
    }
  }
  if (rc < 0) {
    r->failed_step = "io_uring_setup";
    return rc;
  }
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_FAST_POLL) ||
      !(p.features & IORING_FEAT_SUBMIT_STABLE)) {
    /* Kernels before 5.7: no FAST_POLL, CQEs could be dropped. Not supported. */
    r->failed_step = "io_uring features (FAST_POLL, NODROP, SUBMIT_STABLE: kernel 5.7+)";
    io_uring_queue_exit(&r->ring);
    return -ENOTSUP;
  }

  rc = probe(r, r->ring.ring_fd);
  if (rc < 0) {
    io_uring_queue_exit(&r->ring);
    return rc;
  }

  r->failed_step = "the ring's eventfd and its libuv poll handle";
  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->efd < 0) {
    rc = -errno;
    io_uring_queue_exit(&r->ring);
    return rc;
  }
  rc = io_uring_register_eventfd(&r->ring, r->efd);
  if (rc < 0) goto fail;

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    rc = -EINVAL;
    goto fail;
  }
  rc = uv_poll_init(loop, &r->poll, r->efd);
  if (rc < 0) goto fail;
  r->poll.data = r;
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    uv_close((uv_handle_t *)&r->poll, NULL);
    goto fail;
  }
  r->failed_step = NULL;
  /* Nothing pending yet: an idle ring must not keep the process alive. */
  uv_unref((uv_handle_t *)&r->poll);
  r->referenced = 0;
  return 0;

fail:
  close(r->efd);
  r->efd = -1;
  io_uring_queue_exit(&r->ring);
  return rc;
}

/* A free SQE; when the SQ is full, what is in it goes to the kernel first. */
struct io_uring_sqe *ovl_ring_sqe(ovl_ring *r) {
  if (r->torn_down) return NULL;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (sqe == NULL) {
    io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
  }
  return sqe;
}

/* Records a reported operation under `id` (its SQE is prepared); takes `extra`. */
int ovl_ring_track(ovl_ring *r, uint32_t id, enum ovl_kind kind, ovl_extra *extra) {
  if (id >= r->ids_cap) {
    uint32_t cap = r->ids_cap ? r->ids_cap : 1024;
    while (cap <= id) cap *= 2;
    ovl_extra **extras = realloc(r->extras, cap * sizeof *extras);
    if (extras == NULL) return -ENOMEM;
    r->extras = extras;
    uint8_t *kinds = realloc(r->kinds, cap);
    if (kinds == NULL) return -ENOMEM;
    r->kinds = kinds;
    memset(extras + r->ids_cap, 0, (cap - r->ids_cap) * sizeof *extras);
    memset(kinds + r->ids_cap, 0, cap - r->ids_cap);
    r->ids_cap = cap;
  }
  r->extras[id] = extra;
  r->kinds[id] = (uint8_t)kind;
  r->inflight++;
  return 0;
}

/* The loop stays alive exactly while some reported operation is in flight (as libuv handles do). */
void ovl_ring_update_ref(ovl_ring *r) {
  if (r->torn_down) return;
  if (r->inflight > 0 && !r->referenced) {
    uv_ref((uv_handle_t *)&r->poll);
    r->referenced = 1;
  } else if (r->inflight == 0 && r->referenced) {
    uv_unref((uv_handle_t *)&r->poll);
    r->referenced = 0;
  }
}

int ovl_ring_submit(ovl_ring *r) {
  if (r->torn_down) return 0;
  int rc;
  do {
    rc = io_uring_submit(&r->ring);
  } while (rc == -EINTR);
  return rc;
}

void ovl_own(ovl_ring *r, int fd) {
  if (fd < 0) return;
  if (fd >= r->owned_cap) {
    int cap = r->owned_cap ? r->owned_cap : 1024;
    while (cap <= fd) cap *= 2;
    uint8_t *owned = realloc(r->owned, (size_t)cap);
    if (owned == NULL) return; /* only teardown bookkeeping is lost */
    memset(owned + r->owned_cap, 0, (size_t)(cap - r->owned_cap));
    r->owned = owned;
    r->owned_cap = cap;
  }
  r->owned[fd] = 1;
}

void ovl_disown(ovl_ring *r, int fd) {
  if (fd >= 0 && fd < r->owned_cap) r->owned[fd] = 0;
}

/*
 * Pool of `count` buffers of `size` bytes at `pool` (memory JS allocated and
 * this ring holds a reference to), as buffer group 0. Only `initial` buffers
 * are published to the kernel at first; ovl_ring_pool_grow publishes more
 * when the kernel runs out. The buffer ring is FIFO, so every published
 * buffer gets used in turn: publishing only what the load needs keeps the
 * pages the pool touches (its share of RSS) to the peak in use.
 * `incremental` asks for IOU_PBUF_RING_INC; a kernel without it answers
 * -EINVAL, and the caller may register again without.
 */
int ovl_ring_register_pool(ovl_ring *r, uint8_t *pool, uint32_t size, uint32_t count,
                           uint32_t initial, int incremental) {
  if (r->buf_ring != NULL) return -EEXIST;
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) return -EINVAL;
  /* liburing 2.3 has no io_uring_setup_buf_ring: allocate page-aligned ring memory ourselves. */
  void *mem;
  size_t bytes = count * sizeof(struct io_uring_buf);
  if (posix_memalign(&mem, 4096, bytes < 4096 ? 4096 : bytes) != 0) return -ENOMEM;
  memset(mem, 0, bytes < 4096 ? 4096 : bytes);
  struct io_uring_buf_ring *br = mem;
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)br;
  reg.ring_entries = count;
  reg.bgid = OVL_POOL_GROUP;
  reg.pad = incremental ? IOU_PBUF_RING_INC : 0; /* `flags` in kernel headers from 6.12 */
  int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
  if (rc < 0) {
    free(mem);
    return rc;
  }
  io_uring_buf_ring_init(br);
  r->buf_ring = br;
  r->pool = pool;
  r->pool_size = size;
  r->pool_count = count;
  r->pool_published = 0;
  return ovl_ring_pool_grow(r, initial);
}

/* Publishes up to `n` buffers the kernel has never had; returns how many. */
int ovl_ring_pool_grow(ovl_ring *r, uint32_t n) {
  if (r->buf_ring == NULL || r->torn_down) return 0;
  uint32_t left = r->pool_count - r->pool_published;
  if (n > left) n = left;
  int mask = io_uring_buf_ring_mask(r->pool_count);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t bid = r->pool_published + i;
    io_uring_buf_ring_add(r->buf_ring, r->pool + (size_t)bid * r->pool_size, r->pool_size,
                          (unsigned short)bid, mask, (int)i);
  }
  io_uring_buf_ring_advance(r->buf_ring, (int)n);
  r->pool_published += n;
  return (int)n;
}

/* Buffer `bid` is free again: the kernel may pick it for the next pooled recv. */
void ovl_ring_pool_release(ovl_ring *r, uint32_t bid) {
  if (r->buf_ring == NULL || bid >= r->pool_count || r->torn_down) return;
  io_uring_buf_ring_add(r->buf_ring, r->pool + (size_t)bid * r->pool_size, r->pool_size,
                        (unsigned short)bid, io_uring_buf_ring_mask(r->pool_count), 0);
  io_uring_buf_ring_advance(r->buf_ring, 1);
}

/*
 * Cancels everything in flight and reaps until nothing is, then frees the
 * ring. Called from the environment's cleanup hook, before the JS heap (and
 * so the buffers the kernel writes into) goes away.
 */
void ovl_ring_teardown(ovl_ring *r) {
  if (r->torn_down) return;
  int waited_ms = 0;
  if (r->inflight > 0) {
    struct io_uring_sqe *sqe = ovl_ring_sqe(r);
    if (sqe != NULL) {
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, OVL_INTERNAL_UDATA);
    }
    ovl_ring_submit(r);
  }
  while (r->inflight > 0 && waited_ms < 5000) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    int rc = io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts);
    if (rc == -ETIME) {
      waited_ms += 100;
      continue;
    }
    if (rc < 0 && rc != -EINTR) break;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
      seen++;
      if (cqe->user_data == OVL_INTERNAL_UDATA) continue;
      uint32_t id = (uint32_t)cqe->user_data;
      if (id < r->ids_cap && r->kinds[id] == OVL_KIND_ACCEPT && cqe->res >= 0) close(cqe->res);
      if (!(cqe->flags & IORING_CQE_F_MORE) && id < r->ids_cap) {
        free(r->extras[id]);
        r->extras[id] = NULL;
        r->inflight--;
      }
    }
    io_uring_cq_advance(&r->ring, seen);
  }
  r->torn_down = 1;
  for (int fd = 0; fd < r->owned_cap; fd++) {
    if (r->owned[fd]) close(fd);
  }
  /* Exiting the ring unregisters the buffer ring and the eventfd with it. */
  io_uring_queue_exit(&r->ring);
  free(r->buf_ring);
  r->buf_ring = NULL;
  for (uint32_t i = 0; i < r->ids_cap; i++) free(r->extras[i]);
  free(r->extras);
  free(r->kinds);
  free(r->owned);
  r->extras = NULL;
  r->kinds = NULL;
  r->owned = NULL;
}
