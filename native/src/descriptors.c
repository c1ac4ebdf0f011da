/*
 * Calls on a descriptor that need no ring, made synchronously:
 * - the non-blocking attempts of the readiness models (tryRecv, trySend,
 *   tryAccept): one system call each, never a wait. recv/send take
 *   MSG_DONTWAIT per call, so connected sockets stay blocking descriptors
 *   for io_uring (see ovl_stream_socket); accept has no such flag, so
 *   listening sockets are O_NONBLOCK (see ovl_listen_addr);
 * - the blocking calls of the thread-per-connection model, made by a
 *   worker_threads worker on a descriptor a stream handed over (detach):
 *   they block the calling thread only, which is the point.
 * Each returns >= 0 or -errno; EINTR is retried, never returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>

#include "ring.h"

ssize_t ovl_recv_now(int fd, void *buf, size_t len) {
  ssize_t n;
  do {
    n = recv(fd, buf, len, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/* MSG_NOSIGNAL: a closed connection is EPIPE, not SIGPIPE. A partial count is returned as is. */
ssize_t ovl_send_now(int fd, const void *buf, size_t len) {
  ssize_t n;
  do {
    n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/*
 * accept4 on the (non-blocking) listening socket: -EAGAIN when nobody waits.
 * `poll_first`: the listening socket is blocking (see UringListener: a kernel
 * whose io_uring accept fails O_NONBLOCK listeners with -EAGAIN), so accept4
 * only after a zero-timeout poll(2) says a connection waits.
 * A connection reset while it waited in the queue (ECONNABORTED) is skipped,
 * as libuv does; the next one, if any, is taken instead.
 */
int ovl_accept_now(int fd, int poll_first) {
  for (;;) {
    if (poll_first) {
      struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
      int n = poll(&p, 1, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0 || !(p.revents & POLLIN)) return -EAGAIN;
    }
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) return c;
    if (errno != EINTR && errno != ECONNABORTED) return -errno;
  }
}

/* Clears O_NONBLOCK (blocking != 0) or sets it. */
int ovl_set_blocking(int fd, int blocking) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  int want = blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK;
  if (want != flags && fcntl(fd, F_SETFL, want) < 0) return -errno;
  return 0;
}

/* A blocking recv: waits until at least one byte (or end of stream, 0) is there. */
ssize_t ovl_recv_wait(int fd, void *buf, size_t len) {
  ssize_t n;
  do {
    n = recv(fd, buf, len, 0);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/* Blocking send of every byte (a blocking socket may still take a part at a time). */
ssize_t ovl_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t left = len;
  while (left > 0) {
    ssize_t n = send(fd, p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += n;
    left -= (size_t)n;
  }
  return (ssize_t)len;
}

/* shutdown(2); SHUT_RD or SHUT_RDWR also wakes a recv blocked on `fd` in another thread. */
int ovl_shutdown_fd(int fd, int how) {
  return shutdown(fd, how) < 0 ? -errno : 0;
}
