/*
 * Plain socket system calls the engine makes synchronously (listen, socket
 * creation, options, close; the try-calls and blocking calls are in descriptors.c). Each returns >= 0 or -errno; JavaScript turns
 * the errno into a Node-style error with the syscall Node would name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring.h"

/* A numeric IPv4 or IPv6 address (JS resolves names first). */
int ovl_parse_ip(const char *host, int port, struct sockaddr_storage *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
  }
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return 0;
  }
  return -EINVAL;
}

int ovl_parse_unix(const char *path, struct sockaddr_storage *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_un *un = (struct sockaddr_un *)out;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof un->sun_path) return -ENAMETOOLONG;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, n + 1);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/*
 * socket + bind + listen. TCP gets SO_REUSEADDR (as libuv does), so TIME_WAIT does not block a restart.
 * The listening socket is O_NONBLOCK, for tryAccept's accept4 (accept has no MSG_DONTWAIT): the
 * ring's multishot accept does not mind (io_uring issues it non-blocking and waits by polling
 * either way), and connections it accepts are blocking sockets (no SOCK_NONBLOCK asked).
 */
int ovl_listen_addr(const struct sockaddr_storage *addr, socklen_t len, int backlog) {
  int family = addr->ss_family;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail;
  if (bind(fd, (const struct sockaddr *)addr, len) < 0) goto fail;
  if (listen(fd, backlog) < 0) goto fail;
  return fd;
fail:;
  int err = -errno;
  close(fd);
  return err;
}

/* A blocking stream socket: io_uring does the waiting (FAST_POLL), so O_NONBLOCK is not needed. */
int ovl_stream_socket(int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

/* Abortive close: SO_LINGER {1, 0} makes close() send RST and drop unsent data. */
int ovl_close(int fd, int abortive) {
  if (abortive) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* not a socket or not TCP: plain close */
  }
  return close(fd) < 0 ? -errno : 0;
}

int ovl_set_nodelay(int fd, int on) {
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0 ? -errno : 0;
}
