/*
 * uring-echo: a single-threaded TCP echo server on io_uring, the best C peer the
 * echo benchmark compares the toolkit against (`c-uring`): what a careful
 * completion-based server costs with nothing between it and the kernel.
 *
 * Usage: uring-echo [--host <addr>] [--port <n>] [--buffer-size <bytes>]
 * Prints `listening <port>` on stdout once bound (port 0 picks a free port).
 *
 * Model: one multishot accept; each connection owns one buffer (64 KiB unless
 * --buffer-size says otherwise) and has exactly one operation in the kernel at a
 * time: a recv into its buffer, then a send of what arrived (MSG_WAITALL; a short
 * send is posted again for the rest), then the next recv. A client that does not
 * read its echoes is held back by TCP flow control, never by a queue here. EOF or
 * any error closes the connection.
 *
 * The loop makes one io_uring_submit_and_wait per turn: it submits the SQEs the
 * last batch of completions prepared and waits for the next batch. The ring is
 * set up with SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them (6.1),
 * else COOP_TASKRUN (5.19), else plainly, so task work runs inside that one call
 * instead of interrupting the thread.
 *
 * Build: cc -O2 -Wall -Wextra -o uring-echo uring-echo.c -luring
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_BUFFER_SIZE (64 * 1024)
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 16384
#define BACKLOG 4096

/* user_data: a connection pointer (8-byte aligned) with the operation in its low bits; 0 is the accept. */
enum op { OP_RECV = 1, OP_SEND = 2 };
#define OP_MASK 7u
#define ACCEPT_UDATA 0

struct conn {
    int fd;
    /* What the send in flight still has to move: buf[off, off + len). */
    unsigned off;
    unsigned len;
    char buf[];
};

static struct io_uring ring;
static size_t buffer_size = DEFAULT_BUFFER_SIZE;
static int listener;

static void die(const char *what, int err) {
    fprintf(stderr, "uring-echo: %s: %s\n", what, strerror(err));
    exit(1);
}

/* An SQE; when the submission queue is full, what is in it goes to the kernel first. */
static struct io_uring_sqe *sqe(void) {
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    while (s == NULL) {
        int rc = io_uring_submit(&ring);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY) die("io_uring_submit", -rc);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void arm_accept(void) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept(s, listener, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, ACCEPT_UDATA);
}

static void post_recv(struct conn *c) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv(s, c->fd, c->buf, buffer_size, 0);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | OP_RECV);
}

static void post_send(struct conn *c) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_send(s, c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | OP_SEND);
}

/* Nothing of the connection is in the kernel when it closes: its one operation has completed. */
static void conn_close(struct conn *c) {
    close(c->fd);
    free(c);
}

static void on_accept(int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) arm_accept();
    if (res < 0) {
        /* EMFILE and friends: say so; the multishot accept is armed again above. */
        if (res != -ECONNABORTED && res != -EINTR) fprintf(stderr, "uring-echo: accept: %s\n", strerror(-res));
        return;
    }
    int one = 1;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c + buffer_size);
    if (c == NULL) {
        close(res);
        return;
    }
    c->fd = res;
    c->off = 0;
    c->len = 0;
    post_recv(c);
}

static void on_recv(struct conn *c, int res) {
    if (res <= 0) {
        conn_close(c); /* EOF or an error */
        return;
    }
    c->off = 0;
    c->len = (unsigned)res;
    post_send(c);
}

static void on_send(struct conn *c, int res) {
    if (res <= 0) {
        conn_close(c);
        return;
    }
    c->off += (unsigned)res;
    c->len -= (unsigned)res;
    if (c->len > 0) post_send(c);
    else post_recv(c);
}

/* DEFER_TASKRUN needs SINGLE_ISSUER; each set falls back to the next when the kernel refuses it. */
static void setup_ring(void) {
    static const unsigned tries[] = {
#if defined(IORING_SETUP_DEFER_TASKRUN) && defined(IORING_SETUP_SINGLE_ISSUER)
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
#endif
#if defined(IORING_SETUP_COOP_TASKRUN) && defined(IORING_SETUP_SINGLE_ISSUER)
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
#endif
#ifdef IORING_SETUP_COOP_TASKRUN
        IORING_SETUP_COOP_TASKRUN,
#endif
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
        if (rc == 0) return;
        if (rc != -EINVAL) break;
    }
    die("io_uring_queue_init", -rc);
}

static const char *flag(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    }
    return fallback;
}

static long whole(const char *text, long min, long max, const char *name) {
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "uring-echo: %s must be a whole number from %ld to %ld\n", name, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *host = flag(argc, argv, "--host", "127.0.0.1");
    long port = whole(flag(argc, argv, "--port", "0"), 0, 65535, "--port");
    buffer_size = (size_t)whole(flag(argc, argv, "--buffer-size", "65536"), 1, 1 << 24, "--buffer-size");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "uring-echo: --host must be an IPv4 address, got '%s'\n", host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket", errno);
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR", errno);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind", errno);
    if (listen(listener, BACKLOG) < 0) die("listen", errno);
    socklen_t addr_len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0) die("getsockname", errno);

    setup_ring();
    arm_accept();
    printf("listening %u\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY) die("io_uring_submit_and_wait", -rc);
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t data = io_uring_cqe_get_data64(cqe);
            if (data == ACCEPT_UDATA) {
                on_accept(cqe->res, cqe->flags);
                continue;
            }
            struct conn *c = (struct conn *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
            if ((data & OP_MASK) == OP_RECV) on_recv(c, cqe->res);
            else on_send(c, cqe->res);
        }
        io_uring_cq_advance(&ring, seen);
    }
}
