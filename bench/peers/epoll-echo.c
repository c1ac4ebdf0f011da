/*
 * epoll-echo: a small single-threaded TCP echo server on Linux epoll, the C peer the
 * echo benchmark compares the toolkit against (`c-epoll`). It is what a careful
 * event-driven server costs with nothing between it and the kernel.
 *
 * Usage: epoll-echo [--host <addr>] [--port <n>]
 * Prints `listening <port>` on stdout once bound (port 0 picks a free port).
 *
 * Model: level-triggered epoll. Each connection owns one 8 KiB buffer. Data read is
 * written straight back; if the kernel takes only part of it, the connection stops
 * reading (interest EPOLLOUT only) until the rest is written, so a client that does
 * not read its echoes is held back by TCP flow control instead of growing a queue
 * here. EOF or any error closes the connection.
 *
 * Build: cc -O2 -Wall -Wextra -o epoll-echo epoll-echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER_SIZE 8192
#define MAX_EVENTS 256
#define BACKLOG 4096

struct conn {
    int fd;
    /* Bytes of buf still to be written back, starting at buf + off. */
    size_t off;
    size_t len;
    char buf[BUFFER_SIZE];
};

static int epfd;

static void die(const char *what) {
    fprintf(stderr, "epoll-echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void conn_close(struct conn *c) {
    /* Closing the only descriptor also removes it from the epoll set. */
    close(c->fd);
    free(c);
}

static int set_interest(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * Writes what is left in c->buf. Returns 1 when all of it was written, 0 when the
 * socket is full (the caller waits for EPOLLOUT), -1 on error.
 */
static int flush(struct conn *c) {
    while (c->len > 0) {
        /* MSG_NOSIGNAL: a peer that reset gives EPIPE here rather than SIGPIPE. */
        ssize_t n = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->off += (size_t)n;
        c->len -= (size_t)n;
    }
    c->off = 0;
    return 1;
}

/*
 * Reads and echoes until the socket has no more data or the echo cannot be written
 * in full. Returns 0 to keep the connection, -1 to close it (EOF or error).
 */
static int echo(struct conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n == 0) return -1; /* EOF */
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->off = 0;
        c->len = (size_t)n;
        int sent = flush(c);
        if (sent < 0) return -1;
        if (sent == 0) {
            /* Stop reading until the rest is out: at most one buffer per connection. */
            return set_interest(c, EPOLLOUT) < 0 ? -1 : 0;
        }
        /* A short read means the socket is drained; skip the recv that says EAGAIN. */
        if ((size_t)n < sizeof c->buf) return 0;
    }
}

static void on_writable(struct conn *c) {
    int sent = flush(c);
    if (sent < 0 || (sent == 1 && (set_interest(c, EPOLLIN) < 0 || echo(c) < 0))) {
        conn_close(c);
    }
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /*
             * EMFILE and friends: say so and leave the rest in the backlog. The
             * listener stays readable, so this repeats until a connection closes.
             */
            fprintf(stderr, "epoll-echo: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->off = 0;
        c->len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) conn_close(c);
    }
}

static const char *flag(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    }
    return fallback;
}

int main(int argc, char **argv) {
    const char *host = flag(argc, argv, "--host", "127.0.0.1");
    const char *port_text = flag(argc, argv, "--port", "0");
    char *end;
    long port = strtol(port_text, &end, 10);
    if (*port_text == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "epoll-echo: --port must be a whole number from 0 to 65535\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "epoll-echo: --host must be an IPv4 address, got '%s'\n", host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR");
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, BACKLOG) < 0) die("listen");
    socklen_t addr_len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0) die("getsockname");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    /* The listener is the one entry whose data.ptr is NULL. */
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &lev) < 0) die("epoll_ctl listener");

    printf("listening %u\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (c == NULL) {
                accept_all(listener);
            } else if (ev & (EPOLLERR | EPOLLHUP)) {
                conn_close(c);
            } else if (ev & EPOLLOUT) {
                on_writable(c);
            } else if (ev & EPOLLIN) {
                if (echo(c) < 0) conn_close(c);
            }
        }
    }
}
