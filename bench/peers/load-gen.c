/*
 * load-gen: a single-threaded closed-loop TCP echo load generator on Linux epoll, the
 * C counterpart of src/load/load-generator.ts that the echo benchmark runs by default
 * (`--loader c`). The node:net generator saturated its own core in every scenario, so
 * servers were measured below saturation. This one does little per message besides
 * one send and one recv system call, so it costs about what the C epoll echo server
 * does (on loopback each side also pays for the other's TCP receive path): against
 * the node-based servers the server is the limit, against c-epoll either side can be.
 *
 * Usage: load-gen --port <n> --conns <n> --size <bytes> --depth <n> --duration <s>
 *                 [--host <addr>] [--warmup <s>] [--connect-timeout-ms <ms>]
 *                 [--server-pid <pid>]
 * Prints one JSON document on stdout, with the fields and meanings of LoadReport.
 * Exit code 0 for a completed run (errors and mismatches are in the report), 1 if the
 * run could not start (a connection failed, too few open files), 2 for bad flags.
 *
 * Semantics are those of the TypeScript generator: every connection is opened before
 * any message is sent; each keeps `depth` messages of `size` bytes in flight; a message
 * counts once all of its bytes came back identical to what was sent, and only then is
 * the next one sent in its slot. Each connection's messages are its own random bytes
 * with a sequence number in the first (up to) 4, so data from another connection, a
 * stale message or a corrupted byte is a mismatch, and that connection is closed.
 * Server CPU, RSS and descriptor counts are read from /proc as src/load/server-cpu.ts
 * and src/load/server-memory.ts read them.
 *
 * Model: level-triggered epoll. A connection is always interested in EPOLLIN and does
 * one recv per event: with many connections and one message in flight each, a wake-up
 * brings one chunk per connection, and edge-triggered would need a second recv per
 * event to see EAGAIN. EPOLLOUT is asked for only while a send backlog exists, which
 * under a closed loop is rare. The bytes in flight on a connection are a contiguous,
 * wrapping stretch of its ring of `depth` slots, and the unsent ones are its tail, so
 * the backlog is a count, not a copy. The clock is read once per wake-up.
 *
 * Build: cc -O2 -Wall -Wextra -o load-gen load-gen.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Limits and timings shared with load-generator.ts. */
#define MAX_MESSAGE_BUFFER_BYTES (1024.0 * 1024 * 1024)
#define CONNECT_BATCH 100
#define DRAIN_MS 2000
/* Accept wait: see ACCEPT_WAIT_MS in load-generator.ts (SYN-ACK retransmits). */
#define ACCEPT_WAIT_MS 8000
#define ACCEPT_POLL_MS 10
/* Settling: see SETTLE_QUIET_MS in load-generator.ts. */
#define SETTLE_QUIET_MS 100
#define SETTLE_MAX_MS 3000

#define MAX_EVENTS 512
#define RECV_BUFFER 65536
/* Descriptors the generator needs besides one per connection. */
#define SPARE_FDS 16

/* Latency histogram: exact 1 µs buckets below 2^16 µs, 1024 µs buckets up to 2^26 µs. */
#define EXACT_LIMIT 65536u
#define COARSE_SHIFT 10
#define COARSE_BUCKETS ((1u << (26 - COARSE_SHIFT)) - (EXACT_LIMIT >> COARSE_SHIFT))

struct settings {
    const char *host;
    long port;
    long conns;
    long size;
    long depth;
    double duration_sec;
    double warmup_sec;
    double connect_timeout_ms;
    long server_pid; /* 0: none */
};

struct conn {
    int fd;
    bool alive;
    bool want_out;
    /* Byte offset in ring of the next byte expected back. */
    size_t recv_pos;
    /* Bytes sent or queued whose echo has not arrived; the last `unsent` are not yet sent. */
    size_t inflight;
    size_t unsent;
    uint32_t next_seq;
    uint8_t *ring;
    /* CLOCK_MONOTONIC ns at which the message now in each slot was queued. */
    uint64_t *sent_at;
    uint64_t connect_started;
};

enum phase { CONNECTING, WARMUP, MEASURING, DRAINING };

static struct settings cfg;
static size_t ring_len;
static int epfd;
static struct conn *conns;
static uint8_t recv_buf[RECV_BUFFER];

static enum phase phase = CONNECTING;
static bool sending;
static bool measuring;
static uint64_t messages;
static uint64_t errors;
static uint64_t mismatches;
static long alive;
/* While draining: live connections that still have bytes in flight. */
static long draining;

static uint64_t exact_counts[EXACT_LIMIT];
static uint64_t coarse_counts[COARSE_BUCKETS + 1];
static uint64_t latency_total;
static uint64_t latency_max;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- flags */

static void usage(FILE *out) {
    fputs("usage: load-gen --port <n> --conns <n> --size <bytes> --depth <n> --duration <s>\n"
          "                [--host <addr>] [--warmup <s>] [--connect-timeout-ms <ms>]\n"
          "                [--server-pid <pid>]\n"
          "  --host                server address (default 127.0.0.1)\n"
          "  --port                server port, 1 to 65535\n"
          "  --conns               connections, all opened before any message is sent\n"
          "  --size                bytes per message, at least 1\n"
          "  --depth               messages in flight per connection, at least 1\n"
          "  --duration            measured seconds (fractions allowed)\n"
          "  --warmup              seconds of uncounted load before the window (default 0)\n"
          "  --connect-timeout-ms  per-connection connect timeout (default 5000)\n"
          "  --server-pid          process whose CPU time, RSS and descriptors are read\n"
          "Prints one JSON LoadReport on stdout. Exit 0: run completed; 1: it could not\n"
          "start; 2: bad flags.\n",
          out);
}

__attribute__((format(printf, 1, 2))) static _Noreturn void bad_flag(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("load-gen: ", stderr);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

static long parse_whole(const char *name, const char *text, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        char range[64];
        snprintf(range, sizeof range, "from %ld to %ld", min, max);
        fprintf(stderr, "load-gen: --%s must be a whole number %s, got '%s'\n", name, range,
                text);
        exit(2);
    }
    return v;
}

static double parse_number(const char *name, const char *text, bool zero_ok) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 ||
        (!zero_ok && v == 0)) {
        fprintf(stderr, "load-gen: --%s must be a %s number, got '%s'\n", name,
                zero_ok ? "zero or positive" : "positive", text);
        exit(2);
    }
    return v;
}

static void parse_flags(int argc, char **argv) {
    const char *port = NULL, *conns_text = NULL, *size = NULL, *depth = NULL;
    const char *duration = NULL, *warmup = NULL, *timeout = NULL, *pid = NULL;
    cfg.host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) bad_flag("unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *value;
        size_t name_len;
        const char *eq = strchr(name, '=');
        if (eq != NULL) {
            name_len = (size_t)(eq - name);
            value = eq + 1;
        } else {
            name_len = strlen(name);
            if (i + 1 >= argc) bad_flag("%s needs a value", arg);
            value = argv[++i];
        }
        struct {
            const char *name;
            const char **slot;
        } known[] = {
            {"host", &cfg.host},      {"port", &port},         {"conns", &conns_text},
            {"size", &size},          {"depth", &depth},       {"duration", &duration},
            {"warmup", &warmup},      {"connect-timeout-ms", &timeout},
            {"server-pid", &pid},
        };
        bool found = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (strlen(known[k].name) == name_len && strncmp(known[k].name, name, name_len) == 0) {
                *known[k].slot = value;
                found = true;
            }
        }
        if (!found) bad_flag("unknown flag '%s'", arg);
    }
    if (*cfg.host == '\0') bad_flag("--host must not be empty");
    const char *required[] = {port, conns_text, size, depth, duration};
    const char *names[] = {"--port", "--conns", "--size", "--depth", "--duration"};
    for (size_t k = 0; k < 5; k++) {
        if (required[k] == NULL) bad_flag("%s is required", names[k]);
    }
    cfg.port = parse_whole("port", port, 1, 65535);
    cfg.conns = parse_whole("conns", conns_text, 1, 1000000);
    cfg.size = parse_whole("size", size, 1, 1L << 30);
    cfg.depth = parse_whole("depth", depth, 1, 1L << 30);
    cfg.duration_sec = parse_number("duration", duration, false);
    cfg.warmup_sec = warmup == NULL ? 0 : parse_number("warmup", warmup, true);
    cfg.connect_timeout_ms =
        timeout == NULL ? 5000 : parse_number("connect-timeout-ms", timeout, false);
    cfg.server_pid = pid == NULL ? 0 : parse_whole("server-pid", pid, 1, 0x7fffffff);
    double buffer_bytes = (double)cfg.conns * (double)cfg.depth * (double)cfg.size;
    if (buffer_bytes > MAX_MESSAGE_BUFFER_BYTES) {
        fprintf(stderr,
                "load-gen: conns x depth x size is %.0f MiB of message buffers, more than the "
                "%.0f MiB allowed: lower conns, depth or size\n",
                (double)(uint64_t)(buffer_bytes / 1048576 + 0.999999), MAX_MESSAGE_BUFFER_BYTES / 1048576);
        exit(2);
    }
}

/* ---------------------------------------------------------------- /proc */

static long clock_ticks;

/* User+system CPU of pid in µs, or -1 if unreadable. Fields counted from the last ')'. */
static double server_cpu_us(void) {
    if (cfg.server_pid == 0) return -1;
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", cfg.server_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    char *p = strrchr(text, ')');
    if (p == NULL) return -1;
    p += 2; /* field 3 */
    for (int field = 3; field < 14; field++) {
        p = strchr(p, ' ');
        if (p == NULL) return -1;
        p++;
    }
    char *end;
    unsigned long long utime = strtoull(p, &end, 10);
    if (end == p || *end != ' ') return -1;
    p = end + 1;
    unsigned long long stime = strtoull(p, &end, 10);
    if (end == p) return -1;
    return (double)(utime + stime) * 1e6 / (double)clock_ticks;
}

/* VmRSS of the server in bytes, or -1. */
static double server_rss_bytes(void) {
    if (cfg.server_pid == 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", cfg.server_pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) return -1;
    double bytes = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            bytes = (double)kb * 1024;
            break;
        }
    }
    fclose(f);
    return bytes;
}

/* Open descriptors of the server, or -1. */
static long server_fds(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", cfg.server_pid);
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    long count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) count++;
    }
    closedir(dir);
    return count;
}

/* Until the server used no CPU for SETTLE_QUIET_MS (at most SETTLE_MAX_MS). */
static void wait_until_quiet(void) {
    double cpu = server_cpu_us();
    uint64_t deadline = now_ns() + (uint64_t)SETTLE_MAX_MS * 1000000;
    while (cpu >= 0 && now_ns() < deadline) {
        struct timespec pause = {0, SETTLE_QUIET_MS * 1000000L};
        nanosleep(&pause, NULL);
        double next = server_cpu_us();
        if (next == cpu) break;
        cpu = next;
    }
}

static double generator_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---------------------------------------------------------------- latency */

static void record_latency(uint64_t sent, uint64_t now, uint64_t count) {
    uint64_t us = now > sent ? (now - sent + 500) / 1000 : 0;
    if (us < EXACT_LIMIT) {
        exact_counts[us] += count;
    } else {
        uint64_t bucket = (us - EXACT_LIMIT) >> COARSE_SHIFT;
        coarse_counts[bucket < COARSE_BUCKETS ? bucket : COARSE_BUCKETS] += count;
    }
    latency_total += count;
    if (us > latency_max) latency_max = us;
}

/*
 * The value at `percentile` as hdr-histogram-js reports it: the smallest recorded value
 * with at least round(p% of the count) samples at or below it; a coarse bucket reports
 * its highest value, capped at the maximum seen.
 */
static uint64_t latency_at(double percentile) {
    if (latency_total == 0) return 0;
    uint64_t wanted = (uint64_t)(percentile / 100 * (double)latency_total + 0.5);
    if (wanted < 1) wanted = 1;
    uint64_t seen = 0;
    for (uint64_t v = 0; v < EXACT_LIMIT; v++) {
        seen += exact_counts[v];
        if (seen >= wanted) return v;
    }
    for (uint64_t b = 0; b <= COARSE_BUCKETS; b++) {
        seen += coarse_counts[b];
        if (seen >= wanted) {
            uint64_t top = EXACT_LIMIT + ((b + 1) << COARSE_SHIFT) - 1;
            return b < COARSE_BUCKETS && top < latency_max ? top : latency_max;
        }
    }
    return latency_max;
}

/* ---------------------------------------------------------------- connections */

static const char *errno_code(int err) {
    switch (err) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    default: return NULL;
    }
}

/* Ends the run before any load with the message load-generator.ts gives (exit 1). */
static _Noreturn void connect_failed(int err, long index) {
    char where[300], which[64] = "";
    snprintf(where, sizeof where, "%s:%ld", cfg.host, cfg.port);
    if (cfg.conns > 1) snprintf(which, sizeof which, " (connection %ld of %ld)", index + 1, cfg.conns);
    const char *code = errno_code(err);
    char code_buf[32];
    if (code == NULL) {
        snprintf(code_buf, sizeof code_buf, "errno %d", err);
        code = code_buf;
    }
    fputs("load-gen: ", stderr);
    switch (err) {
    case ECONNREFUSED:
        fprintf(stderr, "nothing is listening on %s (ECONNREFUSED)\n", where);
        break;
    case ETIMEDOUT:
        fprintf(stderr,
                "connecting to %s timed out after %g ms%s: the server is not accepting (full "
                "listen backlog?) (ETIMEDOUT)\n",
                where, cfg.connect_timeout_ms, which);
        break;
    case EMFILE:
    case ENFILE:
        fprintf(stderr,
                "cannot open connection to %s%s: too many open files (%s); raise the limit "
                "with ulimit -n\n",
                where, which, code);
        break;
    case EADDRNOTAVAIL:
        fprintf(stderr,
                "cannot open connection to %s%s: out of local ports or address not available "
                "(%s)\n",
                where, which, code);
        break;
    default:
        fprintf(stderr, "cannot connect to %s%s: %s (%s)\n", where, which, strerror(err), code);
    }
    exit(1);
}

static void set_interest(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Takes the connection out of the run, counting why. */
static void conn_die(struct conn *c, bool mismatch) {
    if (!c->alive) return;
    c->alive = false;
    if (mismatch) mismatches++;
    else errors++;
    close(c->fd);
    if (phase == DRAINING && c->inflight > 0) draining--;
    alive--;
}

/*
 * Sends the unsent tail of the bytes in flight (two stretches when it wraps the ring).
 * Asks for EPOLLOUT while some remain and drops it once none do.
 */
static void conn_flush(struct conn *c) {
    while (c->unsent > 0) {
        size_t pos = c->recv_pos + c->inflight - c->unsent;
        if (pos >= ring_len) pos -= ring_len;
        size_t first = ring_len - pos < c->unsent ? ring_len - pos : c->unsent;
        struct iovec iov[2] = {{c->ring + pos, first}, {c->ring, c->unsent - first}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = c->unsent > first ? 2 : 1};
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out) {
                    c->want_out = true;
                    set_interest(c, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            conn_die(c, false);
            return;
        }
        c->unsent -= (size_t)n;
    }
    if (c->want_out) {
        c->want_out = false;
        set_interest(c, EPOLLIN);
    }
}

/* A stale or replayed message differs from the one expected in the same slot. */
static void stamp(struct conn *c, size_t slot) {
    uint32_t seq = c->next_seq++;
    uint8_t *at = c->ring + slot * (size_t)cfg.size;
    for (long i = 0; i < 4 && i < cfg.size; i++) at[i] = (uint8_t)(seq >> (8 * i));
}

/* Queues the `count` slots from `first` (wrapping) as new messages and sends them. */
static void conn_send(struct conn *c, size_t first, size_t count, uint64_t now) {
    size_t slot = first;
    for (size_t k = 0; k < count; k++) {
        stamp(c, slot);
        c->sent_at[slot] = now;
        if (++slot == (size_t)cfg.depth) slot = 0;
    }
    c->inflight += count * (size_t)cfg.size;
    c->unsent += count * (size_t)cfg.size;
    conn_flush(c);
}

static void conn_readable(struct conn *c, uint64_t now) {
    ssize_t got = recv(c->fd, recv_buf, sizeof recv_buf, 0);
    if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        conn_die(c, false); /* EOF or error: the server went away mid-run */
        return;
    }
    size_t n = (size_t)got;
    if (n > c->inflight - c->unsent) {
        /* More bytes than were sent: the server duplicated or invented data. */
        conn_die(c, true);
        return;
    }
    size_t head = ring_len - c->recv_pos < n ? ring_len - c->recv_pos : n;
    if (memcmp(recv_buf, c->ring + c->recv_pos, head) != 0 ||
        (head < n && memcmp(recv_buf + head, c->ring, n - head) != 0)) {
        conn_die(c, true);
        return;
    }
    size_t size = (size_t)cfg.size, depth = (size_t)cfg.depth;
    size_t first = c->recv_pos / size;
    size_t completed = (c->recv_pos - first * size + n) / size;
    c->recv_pos += n;
    if (c->recv_pos >= ring_len) c->recv_pos -= ring_len;
    c->inflight -= n;
    if (completed == 0) return;

    if (measuring) {
        messages += completed;
        /* Messages queued together share a timestamp: record them as one run. */
        size_t slot = first;
        uint64_t run_start = c->sent_at[slot], run_length = 0;
        for (size_t k = 0; k < completed; k++) {
            if (c->sent_at[slot] != run_start) {
                record_latency(run_start, now, run_length);
                run_start = c->sent_at[slot];
                run_length = 0;
            }
            run_length++;
            if (++slot == depth) slot = 0;
        }
        record_latency(run_start, now, run_length);
    }
    if (sending) {
        conn_send(c, first, completed, now);
    } else if (c->inflight == 0 && phase == DRAINING) {
        draining--;
    }
}

static void handle_events(struct epoll_event *events, int n, uint64_t now) {
    for (int i = 0; i < n; i++) {
        struct conn *c = events[i].data.ptr;
        uint32_t ev = events[i].events;
        if (!c->alive) continue;
        /* Data that arrived before an error or close is still checked and counted. */
        if (ev & EPOLLIN) conn_readable(c, now);
        if (!c->alive) continue;
        if (ev & EPOLLERR) {
            conn_die(c, false);
        } else if (ev & EPOLLOUT) {
            conn_flush(c);
        } else if ((ev & EPOLLHUP) && !(ev & EPOLLIN)) {
            conn_die(c, false);
        }
    }
}

/* Resolves the host once; a name that does not resolve ends the run like a failed connect. */
static struct addrinfo *resolve(void) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[16];
    snprintf(port, sizeof port, "%ld", cfg.port);
    struct addrinfo *res;
    int rc = getaddrinfo(cfg.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "load-gen: cannot resolve host %s (%s)\n", cfg.host,
                rc == EAI_AGAIN ? "EAI_AGAIN" : "ENOTFOUND");
        exit(1);
    }
    return res;
}

/* Makes room for every connection in the open-file limit, or ends the run saying why. */
static void raise_fd_limit(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    rlim_t needed = (rlim_t)cfg.conns + SPARE_FDS;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur >= needed) return;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed) {
        fprintf(stderr,
                "load-gen: %ld connections need %llu open files, more than the hard limit of "
                "%llu (EMFILE): raise it (ulimit -Hn) or lower --conns\n",
                cfg.conns, (unsigned long long)needed, (unsigned long long)lim.rlim_max);
        exit(1);
    }
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        fprintf(stderr, "load-gen: cannot raise the open-file limit to %llu: %s (EMFILE)\n",
                (unsigned long long)lim.rlim_max, strerror(errno));
        exit(1);
    }
}

/* Opens every connection, CONNECT_BATCH in progress at a time; the first failure ends the run. */
static void connect_all(const struct addrinfo *addr) {
    long started = 0, connected = 0, pending = 0, oldest = 0;
    struct epoll_event events[MAX_EVENTS];
    uint64_t timeout_ns = (uint64_t)(cfg.connect_timeout_ms * 1e6);
    while (connected < cfg.conns) {
        while (pending < CONNECT_BATCH && started < cfg.conns) {
            struct conn *c = &conns[started];
            c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) connect_failed(errno, started);
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->connect_started = now_ns();
            if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
                connect_failed(errno, started);
            }
            /* Writable once the handshake completes or fails; SO_ERROR tells which. */
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) connect_failed(errno, started);
            started++;
            pending++;
        }
        /* Connections start in order, so the oldest pending one is the first to time out. */
        while (conns[oldest].alive) oldest++;
        uint64_t now = now_ns();
        uint64_t deadline = conns[oldest].connect_started + timeout_ns;
        if (now >= deadline) connect_failed(ETIMEDOUT, oldest);
        int wait_ms = (int)((deadline - now + 999999) / 1000000);
        int n = epoll_wait(epfd, events, MAX_EVENTS, wait_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("load-gen: epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            /* Already connected, and now readable or closed: the run loop sees to it. */
            if (c->alive) continue;
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            if (err != 0) connect_failed(err, c - conns);
            c->alive = true;
            set_interest(c, EPOLLIN);
            connected++;
            pending--;
        }
    }
    alive = cfg.conns;
}

/* ---------------------------------------------------------------- run */

static uint64_t xorshift_state;

static uint64_t next_random(void) {
    uint64_t x = xorshift_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    xorshift_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Random ring contents per connection, so data crossing connections is caught too. */
static void fill_rings(void) {
    if (getrandom(&xorshift_state, sizeof xorshift_state, 0) != sizeof xorshift_state) {
        xorshift_state = now_ns() ^ ((uint64_t)getpid() << 32);
    }
    xorshift_state |= 1;
    for (long i = 0; i < cfg.conns; i++) {
        uint8_t *ring = conns[i].ring;
        size_t k = 0;
        for (; k + 8 <= ring_len; k += 8) {
            uint64_t r = next_random();
            memcpy(ring + k, &r, 8);
        }
        uint64_t r = next_random();
        for (; k < ring_len; k++, r >>= 8) ring[k] = (uint8_t)r;
    }
}

static void print_number(const char *name, double v) {
    if (v > -9e15 && v < 9e15 && v == (double)(long long)v) {
        printf("\"%s\":%.0f", name, v);
        return;
    }
    /* The shortest form that reads back as the same double, as JSON.stringify writes it. */
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v) break;
    }
    printf("\"%s\":%s", name, text);
}

int main(int argc, char **argv) {
    parse_flags(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    clock_ticks = sysconf(_SC_CLK_TCK);
    if (clock_ticks <= 0) clock_ticks = 100;
    if (cfg.server_pid != 0 && server_cpu_us() < 0) {
        fprintf(stderr,
                "load-gen: cannot read the CPU time of server process %ld from /proc: is it "
                "running?\n",
                cfg.server_pid);
        exit(2);
    }
    raise_fd_limit();
    struct addrinfo *addr = resolve();

    ring_len = (size_t)cfg.size * (size_t)cfg.depth;
    conns = calloc((size_t)cfg.conns, sizeof *conns);
    uint8_t *rings = malloc(ring_len * (size_t)cfg.conns);
    uint64_t *stamps = calloc((size_t)cfg.conns * (size_t)cfg.depth, sizeof *stamps);
    if (conns == NULL || rings == NULL || stamps == NULL) {
        fputs("load-gen: out of memory for the message buffers\n", stderr);
        exit(1);
    }
    for (long i = 0; i < cfg.conns; i++) {
        conns[i].ring = rings + (size_t)i * ring_len;
        conns[i].sent_at = stamps + (size_t)i * (size_t)cfg.depth;
    }
    fill_rings();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("load-gen: epoll_create1");
        exit(1);
    }

    /* Server memory idle, then with every connection open (see ServerRssSamples). */
    double rss_idle = server_rss_bytes(), rss_connected = -1, rss_end = -1;
    long idle_fds = rss_idle >= 0 ? server_fds() : -1;
    connect_all(addr);
    freeaddrinfo(addr);
    bool all_accepted = false;
    if (rss_idle >= 0) {
        if (idle_fds >= 0) {
            uint64_t deadline = now_ns() + (uint64_t)ACCEPT_WAIT_MS * 1000000;
            for (;;) {
                long fds = server_fds();
                if (fds < 0) break;
                all_accepted = fds >= idle_fds + cfg.conns;
                if (all_accepted || now_ns() >= deadline) break;
                struct timespec pause = {0, ACCEPT_POLL_MS * 1000000L};
                nanosleep(&pause, NULL);
            }
        }
        wait_until_quiet();
        rss_connected = server_rss_bytes();
    }

    uint64_t now = now_ns();
    sending = true;
    phase = WARMUP;
    for (long i = 0; i < cfg.conns; i++) conn_send(&conns[i], 0, (size_t)cfg.depth, now);
    uint64_t deadline = now + (uint64_t)(cfg.warmup_sec * 1e9);
    uint64_t window_start = 0, window_end = 0;
    double cpu_start = -1, cpu_end = -1, own_start = 0, own_end = 0;
    bool windowed = false;

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        /* Phase changes first, so a wake-up's messages fall on the right side of the window. */
        if (phase == WARMUP && alive == 0) break; /* every connection lost: no window */
        if (phase == WARMUP && now >= deadline) {
            cpu_start = server_cpu_us();
            own_start = generator_cpu_us();
            window_start = now_ns();
            windowed = true;
            measuring = true;
            phase = MEASURING;
            deadline = window_start + (uint64_t)(cfg.duration_sec * 1e9);
        }
        if (phase == MEASURING && (now >= deadline || alive == 0)) {
            measuring = false;
            window_end = now_ns();
            cpu_end = server_cpu_us();
            own_end = generator_cpu_us();
            rss_end = server_rss_bytes();
            /* In-flight messages may come back for DRAIN_MS, uncounted, before closing. */
            sending = false;
            phase = DRAINING;
            draining = 0;
            for (long i = 0; i < cfg.conns; i++) {
                if (conns[i].alive && conns[i].inflight > 0) draining++;
            }
            deadline = window_end + (uint64_t)DRAIN_MS * 1000000;
        }
        if (phase == DRAINING && (now >= deadline || draining <= 0)) break;
        uint64_t left = deadline > now ? deadline - now : 0;
        int n = epoll_wait(epfd, events, MAX_EVENTS, (int)((left + 999999) / 1000000));
        if (n < 0 && errno != EINTR) {
            perror("load-gen: epoll_wait");
            exit(1);
        }
        now = now_ns();
        if (n > 0) handle_events(events, n, now);
    }
    for (long i = 0; i < cfg.conns; i++) {
        if (conns[i].alive) close(conns[i].fd);
    }

    double duration = windowed ? (double)(window_end - window_start) / 1e9 : 0;
    double per_sec = duration > 0 ? (double)messages / duration : 0;
    printf("{\"host\":");
    /* The host came from the command line: escape what JSON requires. */
    putchar('"');
    for (const char *p = cfg.host; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
    printf(",\"port\":%ld,\"conns\":%ld,\"size\":%ld,\"depth\":%ld,", cfg.port, cfg.conns,
           cfg.size, cfg.depth);
    print_number("durationSec", duration);
    printf(",\"messages\":%llu,", (unsigned long long)messages);
    print_number("messagesPerSec", per_sec);
    putchar(',');
    print_number("mbPerSec", per_sec * (double)cfg.size / 1e6);
    printf(",\"latencyUs\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"max\":%llu}",
           (unsigned long long)latency_at(50), (unsigned long long)latency_at(90),
           (unsigned long long)latency_at(99), (unsigned long long)latency_max);
    printf(",\"errors\":%llu,\"mismatches\":%llu", (unsigned long long)errors,
           (unsigned long long)mismatches);
    if (windowed && cpu_start >= 0 && cpu_end >= 0) {
        putchar(',');
        print_number("serverCpuUs", cpu_end - cpu_start);
        if (messages > 0) {
            putchar(',');
            print_number("serverCpuUsPerMessage", (cpu_end - cpu_start) / (double)messages);
        }
    }
    if (windowed) {
        putchar(',');
        print_number("generatorCpuUs", own_end - own_start);
    }
    if (rss_idle >= 0 && rss_connected >= 0) {
        printf(",\"serverRss\":{");
        print_number("idleBytes", rss_idle);
        putchar(',');
        print_number("connectedBytes", rss_connected);
        if (rss_end >= 0) {
            putchar(',');
            print_number("endBytes", rss_end);
        }
        printf(",\"allAccepted\":%s}", all_accepted ? "true" : "false");
    }
    printf("}\n");
    return 0;
}
