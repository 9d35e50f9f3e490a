/*
 * loadgen: the benchmark's client, one libev loop on one core.
 *
 *   loadgen echo HOST PORT [--conns N] [--lines M] [--depth D] [--seconds S]
 *       N connections to a line echo server, each keeping up to D 32-byte
 *       lines in flight, written M lines per write.  Every echoed byte is
 *       checked against what was sent; a mismatch, an early EOF or an error
 *       fails the run (exit 1) with a message.  Reports lines/s.
 *
 *   loadgen churn HOST PORT [--conns N] [--seconds S]
 *       N concurrent cycles of: connect, send "hi\r\n\r\n", read the reply to
 *       EOF, check that it is a ctime() line ending in "\r\n", close, repeat.
 *       Reports connections/s.
 *
 *   loadgen bulk HOST PORT [--conns N] [--depth D] [--body B] [--seconds S]
 *       N connections to a bulk echo server, each sending requests of a length
 *       line ("1048576\n") and a body of B bytes (default 1 MiB), with up to D
 *       requests in flight, and expecting each body streamed back.  Every byte
 *       that comes back is checked.  Reports requests/s.
 *
 * A short warm-up (a tenth of the run, at most half a second) is not counted.
 * The last lines of the output are machine-readable:
 *
 *     rate: 123456.7      (operations per second in the measured window)
 *     total: 456789       (operations in the whole run, warm-up included)
 *     cpu: 1.234          (loadgen's own CPU seconds, to tell whether the
 *                          client, not the server, was the bottleneck)
 *
 * The echo stream is a shared pattern of PATTERN_LINES distinct lines (each
 * starts with its index in hex); connection i starts at a different line.
 * Sending writes straight from the pattern and checking is one memcmp per
 * read, so the client spends its time in system calls, not in bookkeeping.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define LINE 32
#define PATTERN_LINES 8192
#define PATTERN_BYTES ((size_t)PATTERN_LINES * LINE)
#define READ_CAP (64 * 1024)
#define CONNECT_TIMEOUT 5.0
#define REQUEST "hi\r\n\r\n"
/* Bulk bodies start at one of this many offsets into their pattern, so
 * consecutive bodies differ and a lost or repeated piece shows. */
#define BULK_STARTS 4096
#define BULK_READ_CAP (256 * 1024)

struct gen;

struct conn {
    ev_io io;               /* first: the watcher pointer is the connection */
    struct gen *g;
    int index;
    /* echo */
    uint64_t sent;          /* bytes written */
    uint64_t recvd;         /* bytes read back and verified */
    size_t start;           /* where in the pattern this connection's stream starts */
    bool connected;
    /* churn */
    size_t reply_len;
    char reply[64];
};

struct gen {
    struct ev_loop *loop;
    bool churn;
    bool bulk;
    size_t body;            /* bulk: body bytes per request */
    char header[32];        /* bulk: the length line */
    size_t header_len;
    int conns, lines, depth;
    double seconds, warmup;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct conn *conn;
    int connected;
    uint64_t done;          /* lines echoed, or connections completed */
    uint64_t done_at_start;
    uint64_t done_at_end;
    double t_start, t_end;
    bool measuring;
    ev_timer phase;
    char *pattern;
    char *rbuf;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* Echo                                                                */
/* ------------------------------------------------------------------ */

/* Lines "%08x <letters>\n": the index makes a lost, repeated or reordered line visible. */
static char *make_pattern(void)
{
    char *p = malloc(PATTERN_BYTES);
    if (!p)
        die("out of memory");
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < PATTERN_LINES; i++) {
        char *l = p + i * LINE;
        snprintf(l, 10, "%08zx", i);
        l[8] = ' ';
        for (int j = 9; j < LINE - 1; j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            l[j] = (char)('a' + x % 26);
        }
        l[LINE - 1] = '\n';
    }
    return p;
}

static void set_events(struct conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(c->g->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(c->g->loop, &c->io);
}

/* Writes bursts of `lines` lines while fewer than `depth` are in flight. */
static void echo_pump(struct conn *c)
{
    struct gen *g = c->g;
    const size_t burst = (size_t)g->lines * LINE, window = (size_t)g->depth * LINE;
    bool blocked = false;
    while (window - (size_t)(c->sent - c->recvd) >= burst) {
        size_t off = (size_t)((c->start + c->sent) % PATTERN_BYTES);
        struct iovec iov[2] = {{g->pattern + off, burst}, {g->pattern, 0}};
        if (off + burst > PATTERN_BYTES) {
            iov[0].iov_len = PATTERN_BYTES - off;
            iov[1].iov_len = burst - iov[0].iov_len;
        }
        ssize_t n = writev(c->io.fd, iov, iov[1].iov_len ? 2 : 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                blocked = true;
                break;
            }
            die("connection %d: write: %s", c->index, strerror(errno));
        }
        c->sent += (uint64_t)n;
        if ((size_t)n < burst) {
            blocked = true;
            break;
        }
    }
    set_events(c, blocked ? EV_READ | EV_WRITE : EV_READ);
}

/* Checks the echoed bytes against the pattern; dies on the first difference. */
static void echo_verify(struct conn *c, const char *got, size_t n)
{
    struct gen *g = c->g;
    if (c->recvd + n > c->sent)
        die("connection %d: got %zu bytes back at offset %llu but sent only %llu", c->index, n,
            (unsigned long long)c->recvd, (unsigned long long)c->sent);
    size_t done = 0;
    while (done < n) {
        size_t off = (size_t)((c->start + c->recvd + done) % PATTERN_BYTES);
        size_t len = n - done < PATTERN_BYTES - off ? n - done : PATTERN_BYTES - off;
        if (memcmp(got + done, g->pattern + off, len) != 0) {
            size_t i = 0;
            while (got[done + i] == g->pattern[off + i])
                i++;
            uint64_t at = c->recvd + done + i;
            size_t line_off = (size_t)((c->start + at) % PATTERN_BYTES) / LINE * LINE;
            die("connection %d: echoed byte %llu (line %llu) differs: expected line \"%.*s\", "
                "got 0x%02x where 0x%02x was due",
                c->index, (unsigned long long)at, (unsigned long long)(at / LINE), LINE - 1,
                g->pattern + line_off, (unsigned char)got[done + i],
                (unsigned char)g->pattern[off + i]);
        }
        done += len;
    }
    uint64_t before = c->recvd / LINE;
    c->recvd += n;
    g->done += c->recvd / LINE - before;
}

static void echo_readable(struct conn *c)
{
    struct gen *g = c->g;
    ssize_t n = read(c->io.fd, g->rbuf, READ_CAP);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        die("connection %d: read: %s", c->index, strerror(errno));
    }
    if (n == 0)
        die("connection %d: the server closed the connection after %llu of %llu bytes",
            c->index, (unsigned long long)c->recvd, (unsigned long long)c->sent);
    echo_verify(c, g->rbuf, (size_t)n);
}

static void connected(struct conn *c);

static void on_echo(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct conn *c = (struct conn *)w;
    if (!c->connected) {
        connected(c);
        return;
    }
    if (revents & EV_READ)
        echo_readable(c);
    echo_pump(c);
}

/* ------------------------------------------------------------------ */
/* Churn                                                               */
/* ------------------------------------------------------------------ */

static void churn_start(struct conn *c);

/* "Sun Nov 22 05:56:00 2026\r\n": the shape of ctime() plus CRLF. */
static bool looks_like_ctime(const char *s, size_t n)
{
    static const char shape[] = "Aaa Aaa 99 99:99:99 9999\r\n";
    if (n != sizeof shape - 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        char k = shape[i], ch = s[i];
        bool ok = k == 'A' ? (ch >= 'A' && ch <= 'Z')
                : k == 'a' ? (ch >= 'a' && ch <= 'z')
                : k == '9' ? ((ch >= '0' && ch <= '9') || (ch == ' ' && i == 8))
                : ch == k;
        if (!ok)
            return false;
    }
    return true;
}

static void churn_readable(struct conn *c)
{
    ssize_t n = read(c->io.fd, c->reply + c->reply_len, sizeof c->reply - c->reply_len);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        die("connection %d: read: %s", c->index, strerror(errno));
    }
    if (n > 0) {
        c->reply_len += (size_t)n;
        if (c->reply_len == sizeof c->reply)
            die("connection %d: reply longer than %zu bytes", c->index, sizeof c->reply);
        return;
    }
    if (!looks_like_ctime(c->reply, c->reply_len))
        die("connection %d: reply \"%.*s\" (%zu bytes) is not a ctime line ending in CRLF",
            c->index, (int)c->reply_len, c->reply, c->reply_len);
    c->g->done++;
    ev_io_stop(c->g->loop, &c->io);
    close(c->io.fd);
    churn_start(c);
}

static void on_churn(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct conn *c = (struct conn *)w;
    if (!c->connected) {
        connected(c);
        return;
    }
    churn_readable(c);
}

/* ------------------------------------------------------------------ */
/* Bulk                                                                */
/* ------------------------------------------------------------------ */

/* Where in the pattern the body of connection c's request k starts. */
static size_t bulk_start(const struct conn *c, uint64_t k)
{
    return (size_t)(((uint64_t)c->index * 61 + k * 97) % BULK_STARTS);
}

/* Letters with no short period: a piece of the body moved elsewhere shows. */
static char *make_bulk_pattern(size_t body)
{
    char *p = malloc(body + BULK_STARTS);
    if (!p)
        die("out of memory");
    uint32_t x = 88172645u;
    for (size_t i = 0; i < body + BULK_STARTS; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (char)('a' + x % 26);
    }
    return p;
}

/* Writes requests (length line, then body straight from the pattern) while
 * fewer than `depth` are unanswered.  `sent` counts request-stream bytes,
 * `recvd` response-stream (body) bytes. */
static void bulk_pump(struct conn *c)
{
    struct gen *g = c->g;
    const size_t req = g->header_len + g->body;
    bool blocked = false;
    for (;;) {
        uint64_t k = c->sent / req, answered = c->recvd / g->body;
        if (k - answered >= (uint64_t)g->depth)
            break;
        size_t at = (size_t)(c->sent % req);
        struct iovec iov[2];
        int n = 0;
        if (at < g->header_len)
            iov[n++] = (struct iovec){g->header + at, g->header_len - at};
        size_t body_at = at < g->header_len ? 0 : at - g->header_len;
        iov[n++] = (struct iovec){g->pattern + bulk_start(c, k) + body_at, g->body - body_at};
        size_t want = req - at;
        ssize_t w = writev(c->io.fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                blocked = true;
                break;
            }
            die("connection %d: write: %s", c->index, strerror(errno));
        }
        c->sent += (uint64_t)w;
        if ((size_t)w < want) {
            blocked = true;
            break;
        }
    }
    set_events(c, blocked ? EV_READ | EV_WRITE : EV_READ);
}

/* Checks streamed-back bytes against the bodies sent; dies on the first difference. */
static void bulk_verify(struct conn *c, const char *got, size_t n)
{
    struct gen *g = c->g;
    const size_t req = g->header_len + g->body;
    uint64_t body_sent = c->sent / req * g->body +
                         (c->sent % req > g->header_len ? c->sent % req - g->header_len : 0);
    if (c->recvd + n > body_sent)
        die("connection %d: got %zu bytes back at offset %llu but sent only %llu body bytes",
            c->index, n, (unsigned long long)c->recvd, (unsigned long long)body_sent);
    size_t done = 0;
    while (done < n) {
        uint64_t k = (c->recvd + done) / g->body;
        size_t off = (size_t)((c->recvd + done) % g->body);
        size_t len = n - done < g->body - off ? n - done : g->body - off;
        const char *want = g->pattern + bulk_start(c, k) + off;
        if (memcmp(got + done, want, len) != 0) {
            size_t i = 0;
            while (got[done + i] == want[i])
                i++;
            die("connection %d: byte %zu of body %llu differs: got 0x%02x where 0x%02x was due",
                c->index, off + i, (unsigned long long)k, (unsigned char)got[done + i],
                (unsigned char)want[i]);
        }
        done += len;
    }
    uint64_t before = c->recvd / g->body;
    c->recvd += n;
    g->done += c->recvd / g->body - before;
}

static void bulk_readable(struct conn *c)
{
    struct gen *g = c->g;
    ssize_t n = read(c->io.fd, g->rbuf, BULK_READ_CAP);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        die("connection %d: read: %s", c->index, strerror(errno));
    }
    if (n == 0)
        die("connection %d: the server closed the connection after %llu body bytes",
            c->index, (unsigned long long)c->recvd);
    bulk_verify(c, g->rbuf, (size_t)n);
}

static void on_bulk(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct conn *c = (struct conn *)w;
    if (!c->connected) {
        connected(c);
        return;
    }
    if (revents & EV_READ)
        bulk_readable(c);
    bulk_pump(c);
}

/* ------------------------------------------------------------------ */
/* Connections and phases                                              */
/* ------------------------------------------------------------------ */

static void open_conn(struct conn *c)
{
    struct gen *g = c->g;
    int fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int on = 1;
    /* Bursts go out as written; the echo side's latency is the server's, not Nagle's. */
    if (!g->churn)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (connect(fd, (struct sockaddr *)&g->addr, g->addr_len) < 0 && errno != EINPROGRESS)
        die("connect: %s%s", strerror(errno),
            errno == EADDRNOTAVAIL ? " (out of local ports: too many sockets in TIME_WAIT?)" : "");
    c->connected = false;
    ev_io_init(&c->io, g->churn ? on_churn : g->bulk ? on_bulk : on_echo, fd, EV_WRITE);
    ev_io_start(g->loop, &c->io);
}

static void churn_start(struct conn *c)
{
    c->reply_len = 0;
    open_conn(c);
}

/* The connect finished (writable): check it, then start talking. */
static void connected(struct conn *c)
{
    struct gen *g = c->g;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        die("connection %d: connect: %s", c->index, strerror(err));
    c->connected = true;
    if (g->churn) {
        /* Six bytes into an empty socket buffer: the kernel takes them whole. */
        if (write(c->io.fd, REQUEST, sizeof REQUEST - 1) != (ssize_t)(sizeof REQUEST - 1))
            die("connection %d: write: %s", c->index, strerror(errno));
        set_events(c, EV_READ);
        return;
    }
    g->connected++;
    if (g->bulk)
        bulk_pump(c);
    else
        echo_pump(c);
}

static void on_phase(struct ev_loop *loop, ev_timer *w, int revents);

static void start_window(struct gen *g)
{
    g->measuring = true;
    ev_now_update(g->loop);
    g->t_start = ev_now(g->loop);
    g->done_at_start = g->done;
    ev_timer_set(&g->phase, g->seconds, 0);
    ev_timer_start(g->loop, &g->phase);
}

/* Phases: waiting for connections -> warm-up -> measuring -> done. */
static void on_phase(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct gen *g = w->data;
    if (g->measuring) {
        ev_now_update(loop);
        g->t_end = ev_now(loop);
        g->done_at_end = g->done;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (!g->churn && g->connected < g->conns)
        die("only %d of %d connections were established within %.0f s", g->connected, g->conns,
            CONNECT_TIMEOUT);
    start_window(g);
}

/* Echo waits for every connection before the warm-up starts; poll cheaply for it. */
static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)revents;
    struct gen *g = w->data;
    if (g->connected < g->conns)
        return;
    ev_check_stop(loop, w);
    ev_timer_stop(loop, &g->phase);
    ev_timer_set(&g->phase, g->warmup, 0);
    ev_timer_start(loop, &g->phase);
}

static void resolve(struct gen *g, const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        die("%s:%s: %s", host, port, gai_strerror(rc));
    memcpy(&g->addr, res->ai_addr, res->ai_addrlen);
    g->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static int positive(const char *opt, const char *text)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v <= 0 || v > 1000000)
        die("%s wants a positive number, not '%s'", opt, text);
    return (int)v;
}

static void usage(FILE *to, const char *argv0)
{
    fprintf(to,
            "usage: %s echo HOST PORT [--conns N] [--lines M] [--depth D] [--seconds S]\n"
            "       %s churn HOST PORT [--conns N] [--seconds S]\n"
            "       %s bulk HOST PORT [--conns N] [--depth D] [--body B] [--seconds S]\n"
            "  echo:  N connections (default 32), up to D 32-byte lines in flight on each\n"
            "         (default 64), written M lines per write (default 16); every echoed\n"
            "         byte is verified.  Reports lines/s.\n"
            "  churn: N concurrent connect / \"hi\\r\\n\\r\\n\" / read-to-EOF cycles (default\n"
            "         16); every reply must be a ctime() line ending in CRLF.  Reports\n"
            "         connections/s.\n"
            "  bulk:  N connections (default 4), each sending a length line and a body of B\n"
            "         bytes (default 1048576) per request, up to D requests in flight\n"
            "         (default 2); every streamed-back byte is verified.  Reports requests/s.\n"
            "  --seconds S: measured time (default 3), after a warm-up of S/10 (at most 0.5).\n",
            argv0, argv0, argv0);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"conns", required_argument, NULL, 'c'},
        {"lines", required_argument, NULL, 'l'},
        {"depth", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 's'},
        {"body", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct gen g = {.conns = 0, .lines = 16, .depth = 0, .seconds = 3.0, .body = 1u << 20};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            g.conns = positive("--conns", optarg);
            break;
        case 'l':
            g.lines = positive("--lines", optarg);
            break;
        case 'd':
            g.depth = positive("--depth", optarg);
            break;
        case 'b':
            g.body = (size_t)positive("--body", optarg);
            break;
        case 's': {
            char *end;
            g.seconds = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(g.seconds > 0 && g.seconds < 3600))
                die("--seconds wants a positive number, not '%s'", optarg);
            break;
        }
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (argc - optind != 3 || (strcmp(argv[optind], "echo") && strcmp(argv[optind], "churn") &&
                               strcmp(argv[optind], "bulk"))) {
        usage(stderr, argv[0]);
        return 2;
    }
    g.churn = strcmp(argv[optind], "churn") == 0;
    g.bulk = strcmp(argv[optind], "bulk") == 0;
    if (g.conns == 0)
        g.conns = g.churn ? 16 : g.bulk ? 4 : 32;
    if (g.depth == 0)
        g.depth = g.bulk ? 2 : 64;
    if (!g.bulk && g.lines > g.depth)
        die("--lines (%d) must not exceed --depth (%d)", g.lines, g.depth);
    if (!g.bulk && g.depth >= PATTERN_LINES)
        die("--depth must be below %d", PATTERN_LINES);
    g.warmup = g.seconds / 10 < 0.5 ? g.seconds / 10 : 0.5;
    resolve(&g, argv[optind + 1], argv[optind + 2]);
    signal(SIGPIPE, SIG_IGN);

    g.loop = ev_default_loop(0);
    g.conn = calloc((size_t)g.conns, sizeof *g.conn);
    g.rbuf = malloc(g.bulk ? BULK_READ_CAP : READ_CAP);
    if (!g.conn || !g.rbuf)
        die("out of memory");
    if (g.bulk) {
        g.pattern = make_bulk_pattern(g.body);
        g.header_len = (size_t)snprintf(g.header, sizeof g.header, "%zu\n", g.body);
    } else if (!g.churn) {
        g.pattern = make_pattern();
    }

    ev_init(&g.phase, on_phase);
    g.phase.data = &g;
    ev_check check;
    ev_check_init(&check, on_check);
    check.data = &g;
    if (g.churn) {
        /* Connections come and go: the warm-up starts at once. */
        ev_timer_set(&g.phase, g.warmup, 0);
    } else {
        ev_timer_set(&g.phase, CONNECT_TIMEOUT, 0);
        ev_check_start(g.loop, &check);
    }
    ev_timer_start(g.loop, &g.phase);

    for (int i = 0; i < g.conns; i++) {
        struct conn *c = &g.conn[i];
        c->g = &g;
        c->index = i;
        c->start = (size_t)i * 997 % PATTERN_LINES * LINE;
        open_conn(c);
    }
    ev_run(g.loop, 0);

    double elapsed = g.t_end - g.t_start;
    uint64_t ops = g.done_at_end - g.done_at_start;
    if (ops == 0)
        die("no %s completed in %.2f s", g.churn ? "connection" : g.bulk ? "request" : "line",
            elapsed);
    double rate = (double)ops / elapsed;
    if (g.churn) {
        printf("churn: %d concurrent: %llu connections in %.3f s\n", g.conns,
               (unsigned long long)ops, elapsed);
    } else if (g.bulk) {
        printf("bulk: %d conns, depth %d, %zu-byte bodies: %llu requests in %.3f s "
               "(%.1f MB/s each way)\n",
               g.conns, g.depth, g.body, (unsigned long long)ops, elapsed, rate * g.body / 1e6);
    } else {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < g.conns; i++) {
            uint64_t l = g.conn[i].recvd / LINE;
            lo = l < lo ? l : lo;
            hi = l > hi ? l : hi;
        }
        printf("echo: %d conns, depth %d, %d lines per write: %llu lines in %.3f s "
               "(%.1f MB/s each way; per connection %llu..%llu lines in all)\n",
               g.conns, g.depth, g.lines, (unsigned long long)ops, elapsed,
               rate * LINE / 1e6, (unsigned long long)lo, (unsigned long long)hi);
    }
    printf("rate: %.1f\ntotal: %llu\ncpu: %.3f\n", rate, (unsigned long long)g.done, cpu_seconds());
    return 0;
}
