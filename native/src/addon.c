/*
 * Node-API glue: the functions the TypeScript side calls (prepare an SQE,
 * submit, synchronous socket calls) and the reap that hands every ready CQE
 * to JavaScript in one call.
 *
 * Calling convention: the first argument of every ring function is the
 * ring (its index among this environment's rings); the try-calls on a
 * connected socket and the fd* blocking calls take no ring. Operation functions return 0 (or a descriptor) on
 * success and -errno when the SQE could not be prepared; they never throw
 * for OS conditions. Argument errors throw (they are bugs in the caller).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring.h"

/*
 * Node-API statuses: in a function JS called, a failed call throws
 * OVL_ERR_INTERNAL (NAPI_OK); in a callback from the loop (the reap), where no
 * caller could hear of it and completions would be lost, it ends the process
 * with the call named (LOOP_OK), as Node's own CHECK does; at teardown it is
 * reported and teardown goes on (TEARDOWN_OK), so the kernel's memory is still
 * drained before it is freed.
 */
static void throw_internal(napi_env env, const char *call) {
  const napi_extended_error_info *info = NULL;
  const char *message = call;
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL &&
      info->error_message != NULL) {
    message = info->error_message;
  }
  /* Fails only when an exception is pending already: that one propagates instead. */
  if (napi_throw_error(env, "OVL_ERR_INTERNAL", message) != napi_ok) return;
}

#define NAPI_OK(call)                         \
  do {                                        \
    if ((call) != napi_ok) {                  \
      throw_internal(env, #call " failed");   \
      return NULL;                            \
    }                                         \
  } while (0)

#define LOOP_OK(call)                                                                  \
  do {                                                                                 \
    if ((call) != napi_ok) {                                                           \
      napi_fatal_error("overlapped_uring", NAPI_AUTO_LENGTH, #call " failed",         \
                       NAPI_AUTO_LENGTH);                                              \
    }                                                                                  \
  } while (0)

#define TEARDOWN_OK(call)                                                    \
  do {                                                                       \
    if ((call) != napi_ok) fprintf(stderr, "overlapped_uring: %s failed at teardown\n", #call); \
  } while (0)

#define ARGS(n)                                                     \
  size_t argc = (n);                                                \
  napi_value argv[(n) > 0 ? (n) : 1];                               \
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));    \
  if (argc < (n)) {                                                 \
    napi_throw_type_error(env, NULL, "overlapped_uring: too few arguments"); \
    return NULL;                                                    \
  }

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  if (napi_create_int64(env, v, &out) != napi_ok) return NULL;
  return out;
}

/*
 * Rings of this environment (main thread or worker), by index: the handle JS
 * holds is that index. Instance data, so there is no process-wide state.
 */
typedef struct ovl_env_rings {
  ovl_ring **rings;
  uint32_t count;
} ovl_env_rings;

static void free_env_rings(napi_env env, void *data, void *hint) {
  ovl_env_rings *t = data;
  free(t->rings);
  free(t);
}

static ovl_env_rings *env_rings(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
  if (data == NULL) {
    ovl_env_rings *t = calloc(1, sizeof *t);
    if (t == NULL || napi_set_instance_data(env, t, free_env_rings, NULL) != napi_ok) {
      free(t);
      return NULL;
    }
    data = t;
  }
  return data;
}

static ovl_ring *get_ring(napi_env env, napi_value v) {
  uint32_t index;
  ovl_env_rings *t = env_rings(env);
  if (t == NULL || napi_get_value_uint32(env, v, &index) != napi_ok || index >= t->count ||
      t->rings[index] == NULL) {
    napi_throw_type_error(env, NULL, "overlapped_uring: not a ring");
    return NULL;
  }
  ovl_ring *r = t->rings[index];
  if (r->torn_down) {
    napi_throw_error(env, "OVL_ERR_INTERNAL", "overlapped_uring: the ring was torn down");
    return NULL;
  }
  return r;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

/* Copies a JS string into `buf`; -1 when it is not a string or does not fit. */
static int get_str(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok) return -1;
  return n + 1 < cap ? 0 : -1;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok) return -1;
  if (type != napi_uint8_array) return -1;
  return 0;
}

#define RING_ARG(i)                         \
  ovl_ring *r = get_ring(env, argv[i]);     \
  if (r == NULL) return NULL;

#define I32_ARG(name, i)                                              \
  int32_t name;                                                       \
  if (get_i32(env, argv[i], &name) != 0) {                            \
    napi_throw_type_error(env, NULL, "overlapped_uring: " #name " must be an integer"); \
    return NULL;                                                      \
  }

/* Prepares a reported operation: SQE with user_data `id`, tracked until its final CQE. */
static struct io_uring_sqe *op_sqe(ovl_ring *r, uint32_t id, enum ovl_kind kind, ovl_extra *extra,
                                   int *err) {
  struct io_uring_sqe *sqe = ovl_ring_sqe(r);
  if (sqe == NULL) {
    *err = -EBUSY;
    return NULL;
  }
  int rc = ovl_ring_track(r, id, kind, extra);
  if (rc < 0) {
    /* The SQE is already taken from the ring: turn it into a NOP nobody hears of. */
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, OVL_INTERNAL_UDATA);
    *err = rc;
    return NULL;
  }
  io_uring_sqe_set_data64(sqe, id);
  return sqe;
}

static napi_value done(napi_env env, ovl_ring *r, int rc) {
  ovl_ring_update_ref(r);
  return int_value(env, rc);
}

/* ---- reap: every ready CQE to JavaScript, in batches of record_cap ---- */

/* The ring's ovl_ready_cb: runs on the loop's thread when the eventfd fires. */
static void reap(ovl_ring *r) {
  napi_env env = r->env;
  if (r->torn_down) return;
  napi_handle_scope scope;
  LOOP_OK(napi_open_handle_scope(env, &scope));
  napi_value callback, global;
  LOOP_OK(napi_get_reference_value(env, r->callback_ref, &callback));
  LOOP_OK(napi_get_global(env, &global));
  /* Posts made while JS handles this batch are submitted once, below, not per post. */
  r->records[OVL_CTL_SUBMIT_PENDING] = 1;
  int32_t *out = r->records + OVL_RECORDS_AT;
  for (;;) {
    uint32_t n = 0;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
      if (n == r->record_cap) break;
      seen++;
      if (cqe->user_data == OVL_INTERNAL_UDATA) continue;
      uint32_t id = (uint32_t)cqe->user_data;
      if (id < r->ids_cap) {
        if (r->kinds[id] == OVL_KIND_ACCEPT && cqe->res >= 0) ovl_own(r, cqe->res);
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
          free(r->extras[id]);
          r->extras[id] = NULL;
          r->kinds[id] = OVL_KIND_NONE;
          r->inflight--;
        }
      }
      out[n * OVL_RECORD_INTS] = (int32_t)id;
      out[n * OVL_RECORD_INTS + 1] = cqe->res;
      out[n * OVL_RECORD_INTS + 2] = (int32_t)cqe->flags;
      n++;
    }
    io_uring_cq_advance(&r->ring, seen);
    if (n == 0) break;
    napi_value argv[1];
    LOOP_OK(napi_create_uint32(env, n, &argv[0]));
    napi_value result;
    napi_status status = napi_make_callback(env, r->async_ctx, global, callback, 1, argv, &result);
    if (status != napi_ok) {
      /*
       * A handler threw: it takes the uncaughtException path, as from any
       * callback. When even that fails, or JS cannot run at all, the
       * environment is stopping (a worker's terminate()): its cleanup hook
       * drains the ring, so the rest of the batch needs no delivery.
       */
      napi_value err;
      bool reported = status == napi_pending_exception &&
                      napi_get_and_clear_last_exception(env, &err) == napi_ok &&
                      napi_fatal_exception(env, err) == napi_ok;
      (void)reported; /* reported or not, this reap ends here */
      break;
    }
    if (r->torn_down) break;
    if (n < r->record_cap) break;
  }
  if (!r->torn_down) {
    ovl_ring_submit(r);
    r->records[OVL_CTL_SUBMIT_PENDING] = 0;
    ovl_ring_update_ref(r);
  }
  LOOP_OK(napi_close_handle_scope(env, scope));
}

/* ---- lifecycle ---- */

static void on_poll_closed(uv_handle_t *handle) {
  ovl_ring *r = handle->data;
  if (r->cleanup != NULL) TEARDOWN_OK(napi_remove_async_cleanup_hook(r->cleanup));
  free(r);
}

/*
 * Drains and frees a ring set up by ovl_ring_init: ovl_ring_teardown first
 * (every operation cancelled and reaped), and only then are the references
 * that keep the kernel's buffers alive dropped; `r` itself is freed once
 * libuv has closed its poll handle.
 */
static void release_ring(ovl_ring *r) {
  napi_env env = r->env;
  ovl_ring_teardown(r);
  if (r->callback_ref != NULL) TEARDOWN_OK(napi_delete_reference(env, r->callback_ref));
  if (r->records_ref != NULL) TEARDOWN_OK(napi_delete_reference(env, r->records_ref));
  if (r->pool_ref != NULL) TEARDOWN_OK(napi_delete_reference(env, r->pool_ref));
  if (r->async_ctx != NULL) TEARDOWN_OK(napi_async_destroy(env, r->async_ctx));
  uv_poll_stop(&r->poll);
  close(r->efd);
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  ovl_ring *r = arg;
  void *data = NULL;
  TEARDOWN_OK(napi_get_instance_data(r->env, &data));
  if (data != NULL) {
    ovl_env_rings *t = data;
    if (r->index < t->count) t->rings[r->index] = NULL;
  }
  release_ring(r);
}

/*
 * create(records: ArrayBuffer, callback: (count) => void, entries, mode): ring.
 * Throws {errno} when io_uring cannot run. mode: see ovl_ring_init.
 */
static napi_value create(napi_env env, napi_callback_info info) {
  ARGS(4);
  void *records;
  size_t records_len;
  NAPI_OK(napi_get_arraybuffer_info(env, argv[0], &records, &records_len));
  I32_ARG(entries, 2);
  I32_ARG(mode, 3);
  if (mode < 0 || mode > 2) mode = 0;
  if (records_len < (OVL_RECORDS_AT + OVL_RECORD_INTS) * sizeof(int32_t) || entries < 8) {
    napi_throw_range_error(env, NULL, "overlapped_uring: record array or ring too small");
    return NULL;
  }
  ovl_ring *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ENOMEM", "overlapped_uring: out of memory");
    return NULL;
  }
  int rc = ovl_ring_init(r, env, (unsigned)entries, mode, reap);
  if (rc < 0) {
    char text[256];
    snprintf(text, sizeof text, "%s failed: %s",
             r->failed_step != NULL ? r->failed_step : "ring set-up", strerror(-rc));
    free(r);
    napi_value err, code, msg;
    NAPI_OK(napi_create_string_utf8(env, "ENOSYS", NAPI_AUTO_LENGTH, &code));
    NAPI_OK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg));
    NAPI_OK(napi_create_error(env, code, msg, &err));
    NAPI_OK(napi_set_named_property(env, err, "errno", int_value(env, rc)));
    NAPI_OK(napi_throw(env, err));
    return NULL;
  }
  r->records = records;
  r->record_cap = (uint32_t)((records_len / sizeof(int32_t) - OVL_RECORDS_AT) / OVL_RECORD_INTS);
  ovl_env_rings *t = env_rings(env);
  ovl_ring **rings = t == NULL ? NULL : realloc(t->rings, (t->count + 1) * sizeof *rings);
  if (rings == NULL) {
    release_ring(r);
    napi_throw_error(env, "ENOMEM", "overlapped_uring: out of memory");
    return NULL;
  }
  t->rings = rings;
  /* Strong references for the ring's life: the callback reaches every buffer JS lent the kernel. */
  napi_value name;
  const char *failed = NULL;
  if (napi_create_reference(env, argv[0], 1, &r->records_ref) != napi_ok) {
    failed = "napi_create_reference(records)";
  } else if (napi_create_reference(env, argv[1], 1, &r->callback_ref) != napi_ok) {
    failed = "napi_create_reference(callback)";
  } else if (napi_create_string_utf8(env, "overlapped:uring", NAPI_AUTO_LENGTH, &name) != napi_ok ||
             napi_async_init(env, NULL, name, &r->async_ctx) != napi_ok) {
    failed = "napi_async_init";
  } else if (napi_add_async_cleanup_hook(env, on_env_cleanup, r, &r->cleanup) != napi_ok) {
    failed = "napi_add_async_cleanup_hook";
  }
  if (failed != NULL) {
    /* Nothing was posted yet, so nothing of the kernel's is lost with the ring. */
    throw_internal(env, failed);
    release_ring(r);
    return NULL;
  }
  r->index = t->count;
  rings[t->count++] = r;
  return int_value(env, r->index);
}

/* setupMode(ring): which task-run mode the kernel took (0 defer, 1 coop, 2 plain). */
static napi_value setup_mode(napi_env env, napi_callback_info info) {
  ARGS(1);
  RING_ARG(0);
  return int_value(env, r->setup_mode);
}

/* submit(ring): hands every prepared SQE to the kernel (once per JS turn). */
static napi_value submit(napi_env env, napi_callback_info info) {
  ARGS(1);
  RING_ARG(0);
  int rc = ovl_ring_submit(r);
  r->records[OVL_CTL_SUBMIT_PENDING] = 0;
  return int_value(env, rc);
}

/* ---- operations ---- */

/*
 * RECV_POLL_FIRST: a recv may be posted with IORING_RECVSEND_POLL_FIRST (5.19+):
 * the kernel arms the poll without trying the recv first. JS asks for it when
 * the stream's previous recv did not fill its buffer, i.e. the socket was
 * drained: a request/reply server posts its recv right after sending the
 * reply, before the next request has arrived, and a first attempt would only
 * fail with EAGAIN. After a full buffer more data is likely waiting, and
 * polling first would add a task-work round trip (what each choice measured:
 * docs/benchmarks.md).
 */

/*
 * MSG_WAITALL makes io_uring retry a short send on a stream socket until every
 * byte is taken (a partial count comes back only with an error), as an
 * overlapped WSASend completes whole. MSG_NOSIGNAL: EPIPE, not SIGPIPE.
 */
#define SEND_FLAGS (MSG_NOSIGNAL | MSG_WAITALL)

/*
 * recv(ring, id, fd, buffer, pollFirst) and send(ring, id, fd, buffer): one
 * caller's buffer each.
 */
static napi_value buffer_op(napi_env env, napi_callback_info info, bool is_send) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < (is_send ? 4u : 5u)) {
    napi_throw_type_error(env, NULL, "overlapped_uring: too few arguments");
    return NULL;
  }
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  void *data;
  size_t len;
  if (get_bytes(env, argv[3], &data, &len) != 0) {
    napi_throw_type_error(env, NULL,
                          is_send ? "overlapped_uring: send needs a Uint8Array"
                                  : "overlapped_uring: recv needs a Uint8Array");
    return NULL;
  }
  bool poll_first = false;
  if (!is_send && napi_get_value_bool(env, argv[4], &poll_first) != napi_ok) {
    napi_throw_type_error(env, NULL, "overlapped_uring: recv needs pollFirst (a boolean)");
    return NULL;
  }
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, NULL, &err);
  if (sqe == NULL) return done(env, r, err);
  if (is_send) {
    io_uring_prep_send(sqe, fd, data, len, SEND_FLAGS); /* no msghdr to keep */
  } else {
    io_uring_prep_recv(sqe, fd, data, len, 0);
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* see RECV_POLL_FIRST */
  }
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

static napi_value op_recv(napi_env env, napi_callback_info info) {
  return buffer_op(env, info, false);
}

static napi_value op_send(napi_env env, napi_callback_info info) {
  return buffer_op(env, info, true);
}

/*
 * recvPooled(ring, id, fd, limit): the kernel picks a pool buffer when data
 * arrives. limit > 0: multishot, armed until it has received `limit` bytes,
 * and completing once per arrival (IORING_CQE_F_MORE) until then, or until it
 * runs out of pool buffers, fails, meets end of stream or is cancelled.
 * limit 0: a single-shot recv, posted poll-first like recv.
 */
static napi_value op_recv_pooled(napi_env env, napi_callback_info info) {
  ARGS(4);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  I32_ARG(multishot, 3);
  if (r->buf_ring == NULL) return int_value(env, -ENOBUFS);
  if (multishot < 0) {
    napi_throw_range_error(env, NULL, "overlapped_uring: recvPooled takes a limit >= 0");
    return NULL;
  }
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, NULL, &err);
  if (sqe == NULL) return done(env, r, err);
  if (multishot > 0) {
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    /*
     * The kernel's `optlen` (this union member in liburing 2.3's header): the
     * multishot ends once it has received this many bytes in all, so what it
     * holds for no recv stays bounded (kernels without it answer -EINVAL).
     */
    sqe->file_index = (uint32_t)multishot;
  } else {
    io_uring_prep_recv(sqe, fd, NULL, r->pool_size, 0);
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* see RECV_POLL_FIRST */
  }
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = OVL_POOL_GROUP;
  return done(env, r, 0);
}

/*
 * recvv(ring, id, fd, first, second): one recvmsg scattering into two
 * buffers, `first` filled before `second`: read-ahead, the caller's buffer
 * first and the stage after it, so the bytes that fit need no copy.
 */
static napi_value op_recvv(napi_env env, napi_callback_info info) {
  ARGS(5);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  ovl_extra *extra = calloc(1, sizeof *extra + 2 * sizeof(struct iovec));
  if (extra == NULL) return int_value(env, -ENOMEM);
  for (int i = 0; i < 2; i++) {
    if (get_bytes(env, argv[3 + i], &extra->iov[i].iov_base, &extra->iov[i].iov_len) != 0) {
      free(extra);
      napi_throw_type_error(env, NULL, "overlapped_uring: recvv needs two Uint8Arrays");
      return NULL;
    }
  }
  extra->msg.msg_iov = extra->iov;
  extra->msg.msg_iovlen = 2;
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, extra, &err);
  if (sqe == NULL) {
    free(extra);
    return done(env, r, err);
  }
  io_uring_prep_recvmsg(sqe, fd, &extra->msg, 0);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

/* sendv(ring, id, fd, parts: Uint8Array[], count): gathered, one sendmsg with an iovec. */
static napi_value op_sendv(napi_env env, napi_callback_info info) {
  ARGS(5);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  I32_ARG(count, 4);
  if (count < 0 || count > 1024) {
    napi_throw_range_error(env, NULL, "overlapped_uring: sendv takes 0 to 1024 parts");
    return NULL;
  }
  ovl_extra *extra = calloc(1, sizeof *extra + (size_t)count * sizeof(struct iovec));
  if (extra == NULL) return int_value(env, -ENOMEM);
  for (int32_t i = 0; i < count; i++) {
    napi_value part;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[3], (uint32_t)i, &part) != napi_ok ||
        get_bytes(env, part, &data, &len) != 0) {
      free(extra);
      napi_throw_type_error(env, NULL, "overlapped_uring: sendv parts must be Uint8Arrays");
      return NULL;
    }
    extra->iov[i].iov_base = data;
    extra->iov[i].iov_len = len;
  }
  extra->msg.msg_iov = extra->iov;
  extra->msg.msg_iovlen = (size_t)count;
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, extra, &err);
  if (sqe == NULL) {
    free(extra);
    return done(env, r, err);
  }
  io_uring_prep_sendmsg(sqe, fd, &extra->msg, SEND_FLAGS);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

/* Shared by connectTcp/connectUnix: a new socket and a connect SQE; returns the fd or -errno. */
static napi_value connect_addr(napi_env env, ovl_ring *r, int32_t id, ovl_extra *extra, socklen_t len) {
  int fd = ovl_stream_socket(extra->addr.ss_family);
  if (fd < 0) {
    free(extra);
    return int_value(env, fd);
  }
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, extra, &err);
  if (sqe == NULL) {
    free(extra);
    close(fd);
    return done(env, r, err);
  }
  io_uring_prep_connect(sqe, fd, (struct sockaddr *)&extra->addr, len);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  ovl_own(r, fd);
  return done(env, r, fd);
}

/* connectTcp(ring, id, ip, port): fd or -errno. */
static napi_value op_connect_tcp(napi_env env, napi_callback_info info) {
  ARGS(4);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(port, 3);
  char host[INET6_ADDRSTRLEN + 8];
  if (get_str(env, argv[2], host, sizeof host) != 0) return int_value(env, -EINVAL);
  ovl_extra *extra = calloc(1, sizeof *extra);
  if (extra == NULL) return int_value(env, -ENOMEM);
  socklen_t len;
  int rc = ovl_parse_ip(host, port, &extra->addr, &len);
  if (rc < 0) {
    free(extra);
    return int_value(env, rc);
  }
  return connect_addr(env, r, id, extra, len);
}

/* connectUnix(ring, id, path): fd or -errno. */
static napi_value op_connect_unix(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(id, 1);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (get_str(env, argv[2], path, sizeof path) != 0) return int_value(env, -ENAMETOOLONG);
  ovl_extra *extra = calloc(1, sizeof *extra);
  if (extra == NULL) return int_value(env, -ENOMEM);
  socklen_t len;
  int rc = ovl_parse_unix(path, &extra->addr, &len);
  if (rc < 0) {
    free(extra);
    return int_value(env, rc);
  }
  return connect_addr(env, r, id, extra, len);
}

/* accept(ring, id, fd): multishot; one CQE per connection while IORING_CQE_F_MORE is set. */
static napi_value op_accept(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_ACCEPT, NULL, &err);
  if (sqe == NULL) return done(env, r, err);
  io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

/* shutdown(ring, id, fd): SHUT_WR. */
static napi_value op_shutdown(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, NULL, &err);
  if (sqe == NULL) return done(env, r, err);
  io_uring_prep_shutdown(sqe, fd, SHUT_WR);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

/* cancel(ring, id): IORING_OP_ASYNC_CANCEL by user_data; the operation completes (-ECANCELED or its result). */
static napi_value op_cancel(napi_env env, napi_callback_info info) {
  ARGS(2);
  RING_ARG(0);
  I32_ARG(id, 1);
  struct io_uring_sqe *sqe = ovl_ring_sqe(r);
  if (sqe == NULL) return int_value(env, -EBUSY);
  io_uring_prep_cancel64(sqe, (uint32_t)id, 0);
  io_uring_sqe_set_data64(sqe, OVL_INTERNAL_UDATA);
  return int_value(env, 0);
}

/* cancelFd(ring, fd): every operation on fd (IORING_ASYNC_CANCEL_FD | ALL, kernel 5.19+). */
static napi_value op_cancel_fd(napi_env env, napi_callback_info info) {
  ARGS(2);
  RING_ARG(0);
  I32_ARG(fd, 1);
  struct io_uring_sqe *sqe = ovl_ring_sqe(r);
  if (sqe == NULL) return int_value(env, -EBUSY);
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, OVL_INTERNAL_UDATA);
  return int_value(env, 0);
}

/*
 * registerPool(ring, pool: ArrayBuffer, size, count, initial, incremental):
 * the buffers published, or -errno (-EINVAL for `incremental` on a kernel
 * before 6.12).
 */
static napi_value register_pool(napi_env env, napi_callback_info info) {
  ARGS(6);
  RING_ARG(0);
  I32_ARG(size, 2);
  I32_ARG(count, 3);
  I32_ARG(initial, 4);
  I32_ARG(incremental, 5);
  void *pool;
  size_t len;
  NAPI_OK(napi_get_arraybuffer_info(env, argv[1], &pool, &len));
  if (size <= 0 || count <= 0 || (size_t)size * (size_t)count > len) return int_value(env, -EINVAL);
  if (initial < 0) return int_value(env, -EINVAL);
  if (r->pool_ref != NULL) return int_value(env, -EEXIST);
  /* The reference first: from registration on the kernel may write into the pool. */
  NAPI_OK(napi_create_reference(env, argv[1], 1, &r->pool_ref));
  int rc = ovl_ring_register_pool(r, pool, (uint32_t)size, (uint32_t)count, (uint32_t)initial,
                                  incremental != 0);
  if (rc < 0) {
    napi_ref ref = r->pool_ref;
    r->pool_ref = NULL;
    NAPI_OK(napi_delete_reference(env, ref));
  }
  return int_value(env, rc);
}

/* poolGrow(ring, n): publishes up to n more buffers; returns how many (0: the pool is all out). */
static napi_value pool_grow(napi_env env, napi_callback_info info) {
  ARGS(2);
  RING_ARG(0);
  I32_ARG(n, 1);
  return int_value(env, n > 0 ? ovl_ring_pool_grow(r, (uint32_t)n) : 0);
}

/* poolRelease(ring, bid) */
static napi_value pool_release(napi_env env, napi_callback_info info) {
  ARGS(2);
  RING_ARG(0);
  I32_ARG(bid, 1);
  ovl_ring_pool_release(r, (uint32_t)bid);
  return NULL;
}

/*
 * poll(ring, id, fd, mask): a single-shot IORING_OP_POLL_ADD for the poll(2)
 * events in `mask` (POLLIN, POLLOUT, POLLRDHUP); it completes once, with the
 * revents as the CQE's res (POLLERR and POLLHUP are always reported).
 * Cancelled like any operation (by id, or by descriptor), with -ECANCELED.
 */
static napi_value op_poll(napi_env env, napi_callback_info info) {
  ARGS(4);
  RING_ARG(0);
  I32_ARG(id, 1);
  I32_ARG(fd, 2);
  I32_ARG(mask, 3);
  int err = 0;
  struct io_uring_sqe *sqe = op_sqe(r, (uint32_t)id, OVL_KIND_PLAIN, NULL, &err);
  if (sqe == NULL) return done(env, r, err);
  io_uring_prep_poll_add(sqe, fd, (unsigned)mask);
  io_uring_sqe_set_data64(sqe, (uint32_t)id);
  return done(env, r, 0);
}

/* ---- synchronous socket calls ---- */

/* listenTcp(ring, ip, port, backlog): fd or -errno. */
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  ARGS(4);
  RING_ARG(0);
  I32_ARG(port, 2);
  I32_ARG(backlog, 3);
  char host[INET6_ADDRSTRLEN + 8];
  if (get_str(env, argv[1], host, sizeof host) != 0) return int_value(env, -EINVAL);
  struct sockaddr_storage addr;
  socklen_t len;
  int rc = ovl_parse_ip(host, port, &addr, &len);
  if (rc < 0) return int_value(env, rc);
  rc = ovl_listen_addr(&addr, len, backlog);
  if (rc >= 0) ovl_own(r, rc);
  return int_value(env, rc);
}

/* listenUnix(ring, path, backlog): fd or -errno. An existing file is EADDRINUSE, as in libuv. */
static napi_value listen_unix(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(backlog, 2);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (get_str(env, argv[1], path, sizeof path) != 0) return int_value(env, -ENAMETOOLONG);
  struct sockaddr_storage addr;
  socklen_t len;
  int rc = ovl_parse_unix(path, &addr, &len);
  if (rc < 0) return int_value(env, rc);
  rc = ovl_listen_addr(&addr, len, backlog);
  if (rc >= 0) ovl_own(r, rc);
  return int_value(env, rc);
}

/* close(ring, fd, abortive): 0 or -errno. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(fd, 1);
  bool abortive;
  NAPI_OK(napi_get_value_bool(env, argv[2], &abortive));
  ovl_disown(r, fd);
  return int_value(env, ovl_close(fd, abortive));
}

/* setNoDelay(fd, on): 0 or -errno. */
static napi_value set_nodelay(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  bool on;
  NAPI_OK(napi_get_value_bool(env, argv[1], &on));
  return int_value(env, ovl_set_nodelay(fd, on));
}

/* sockName(fd, peer): [address, port, family] or null. */
static napi_value sock_name(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  bool peer;
  NAPI_OK(napi_get_value_bool(env, argv[1], &peer));
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int rc = peer ? getpeername(fd, (struct sockaddr *)&addr, &len)
                : getsockname(fd, (struct sockaddr *)&addr, &len);
  napi_value out;
  if (rc < 0 || (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)) {
    NAPI_OK(napi_get_null(env, &out));
    return out;
  }
  char text[INET6_ADDRSTRLEN];
  int port;
  const char *family;
  if (addr.ss_family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
    family = "IPv4";
  } else {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
    family = "IPv6";
  }
  napi_value a, f;
  NAPI_OK(napi_create_array_with_length(env, 3, &out));
  NAPI_OK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &a));
  NAPI_OK(napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &f));
  NAPI_OK(napi_set_element(env, out, 0, a));
  NAPI_OK(napi_set_element(env, out, 1, int_value(env, port)));
  NAPI_OK(napi_set_element(env, out, 2, f));
  return out;
}

/*
 * ---- calls that need no ring (descriptors.c) ----
 * tryRecv/trySend: one non-blocking system call (MSG_DONTWAIT), -EAGAIN when
 * nothing moves. The fd* functions are the blocking calls a worker thread
 * makes on a detached descriptor: they block the calling thread (and only
 * it) in the system call, which is what the thread-per-connection model asks
 * for. None of them touches this environment's rings, so a worker can load
 * the addon and call them without opening one.
 */

#define BYTES_ARG(name, len, i, what)                                       \
  void *name;                                                              \
  size_t len;                                                              \
  if (get_bytes(env, argv[i], &name, &len) != 0) {                         \
    napi_throw_type_error(env, NULL, "overlapped_uring: " what " needs a Uint8Array"); \
    return NULL;                                                           \
  }

/* tryRecv(fd, buffer): bytes (> 0), 0 at end of stream, or -errno (-EAGAIN: nothing there). */
static napi_value try_recv(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  BYTES_ARG(data, len, 1, "tryRecv");
  return int_value(env, ovl_recv_now(fd, data, len));
}

/* trySend(fd, buffer): bytes the kernel took now (maybe fewer than given), or -errno. */
static napi_value try_send(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  BYTES_ARG(data, len, 1, "trySend");
  return int_value(env, ovl_send_now(fd, data, len));
}

/*
 * tryAccept(ring, fd, pollFirst): the accepted descriptor (owned by the ring),
 * or -errno (-EAGAIN: nobody waits). pollFirst: see ovl_accept_now.
 */
static napi_value try_accept(napi_env env, napi_callback_info info) {
  ARGS(3);
  RING_ARG(0);
  I32_ARG(fd, 1);
  bool poll_first;
  NAPI_OK(napi_get_value_bool(env, argv[2], &poll_first));
  int c = ovl_accept_now(fd, poll_first);
  if (c >= 0) ovl_own(r, c);
  return int_value(env, c);
}

/* disown(ring, fd): the ring no longer closes `fd` at teardown (a detached stream's). */
static napi_value disown(napi_env env, napi_callback_info info) {
  ARGS(2);
  RING_ARG(0);
  I32_ARG(fd, 1);
  ovl_disown(r, fd);
  return NULL;
}

/* fdSetBlocking(fd, blocking): 0 or -errno. */
static napi_value fd_set_blocking(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  bool blocking;
  NAPI_OK(napi_get_value_bool(env, argv[1], &blocking));
  return int_value(env, ovl_set_blocking(fd, blocking));
}

/* fdRecv(fd, buffer): blocks until bytes (> 0) or end of stream (0); or -errno. */
static napi_value fd_recv(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  BYTES_ARG(data, len, 1, "fdRecv");
  if (len == 0) return int_value(env, -EINVAL); /* 0 would read as end of stream */
  return int_value(env, ovl_recv_wait(fd, data, len));
}

/* fdSend(fd, buffer): blocks until every byte is written; the byte count, or -errno. */
static napi_value fd_send(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  BYTES_ARG(data, len, 1, "fdSend");
  return int_value(env, ovl_send_all(fd, data, len));
}

/* fdShutdown(fd, how): 0 or -errno. */
static napi_value fd_shutdown(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  I32_ARG(how, 1);
  return int_value(env, ovl_shutdown_fd(fd, how));
}

/* fdClose(fd, abortive): 0 or -errno (abortive: SO_LINGER {1, 0} first, the peer sees RST). */
static napi_value fd_close(napi_env env, napi_callback_info info) {
  ARGS(2);
  I32_ARG(fd, 0);
  bool abortive;
  NAPI_OK(napi_get_value_bool(env, argv[1], &abortive));
  return int_value(env, ovl_close(fd, abortive));
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
      {"setupMode", NULL, setup_mode, NULL, NULL, NULL, napi_default, NULL},
      {"submit", NULL, submit, NULL, NULL, NULL, napi_default, NULL},
      {"recv", NULL, op_recv, NULL, NULL, NULL, napi_default, NULL},
      {"recvPooled", NULL, op_recv_pooled, NULL, NULL, NULL, napi_default, NULL},
      {"recvv", NULL, op_recvv, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, op_send, NULL, NULL, NULL, napi_default, NULL},
      {"sendv", NULL, op_sendv, NULL, NULL, NULL, napi_default, NULL},
      {"connectTcp", NULL, op_connect_tcp, NULL, NULL, NULL, napi_default, NULL},
      {"connectUnix", NULL, op_connect_unix, NULL, NULL, NULL, napi_default, NULL},
      {"accept", NULL, op_accept, NULL, NULL, NULL, napi_default, NULL},
      {"shutdown", NULL, op_shutdown, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, op_cancel, NULL, NULL, NULL, napi_default, NULL},
      {"cancelFd", NULL, op_cancel_fd, NULL, NULL, NULL, napi_default, NULL},
      {"registerPool", NULL, register_pool, NULL, NULL, NULL, napi_default, NULL},
      {"poolGrow", NULL, pool_grow, NULL, NULL, NULL, napi_default, NULL},
      {"poolRelease", NULL, pool_release, NULL, NULL, NULL, napi_default, NULL},
      {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_default, NULL},
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"setNoDelay", NULL, set_nodelay, NULL, NULL, NULL, napi_default, NULL},
      {"sockName", NULL, sock_name, NULL, NULL, NULL, napi_default, NULL},
      {"poll", NULL, op_poll, NULL, NULL, NULL, napi_default, NULL},
      {"tryRecv", NULL, try_recv, NULL, NULL, NULL, napi_default, NULL},
      {"trySend", NULL, try_send, NULL, NULL, NULL, napi_default, NULL},
      {"tryAccept", NULL, try_accept, NULL, NULL, NULL, napi_default, NULL},
      {"disown", NULL, disown, NULL, NULL, NULL, napi_default, NULL},
      {"fdSetBlocking", NULL, fd_set_blocking, NULL, NULL, NULL, napi_default, NULL},
      {"fdRecv", NULL, fd_recv, NULL, NULL, NULL, napi_default, NULL},
      {"fdSend", NULL, fd_send, NULL, NULL, NULL, napi_default, NULL},
      {"fdShutdown", NULL, fd_shutdown, NULL, NULL, NULL, napi_default, NULL},
      {"fdClose", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
