/*
 * ref_echo_server: the reference for the pipelined echo benchmark.  A line
 * echo server written directly on libev with read, write and memchr, the way
 * a careful C programmer would write it by hand, so that evchat's chat echo
 * server has an honest yardstick.  It uses libev and libc only (no evchat).
 *
 * Per connection: an input buffer that is read into and scanned in place, and
 * an output buffer that every complete line is copied into.  After each read
 * the output is written at once; write interest is armed only for what the
 * kernel did not take, and reading stops while too much output is pending.
 *
 *     bench/ref_echo_server -b 127.0.0.1 -p 0
 *
 * The first stdout line is "listening on HOST:PORT"; SIGINT or SIGTERM stop
 * it with exit status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One read takes up to this much: the same 64 KiB evchat reads (bench/README.md).
 * Lines longer than this close the connection: the benchmark sends 32 bytes. */
#define IN_CAP (64 * 1024)
/* Stop reading while this much output waits for a slow reader. */
#define OUT_HIGH (1u << 20)
#define ACCEPT_BATCH 32

struct conn {
    ev_io io;           /* first: the watcher pointer is the connection */
    size_t in_len;
    char *out;
    size_t out_off;     /* written prefix of out */
    size_t out_len;     /* bytes in out, written or not */
    size_t out_cap;
    char in[IN_CAP];
};

static void conn_free(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->out);
    free(c);
}

/* Appends bytes to the output buffer, moving the unwritten part to the front first. */
static int out_append(struct conn *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + n)
                cap *= 2;
            char *grown = realloc(c->out, cap);
            if (!grown)
                return -1;
            c->out = grown;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Sets the watcher's events only when they change: libev needs a stop/start. */
static void set_events(struct ev_loop *loop, struct conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Writes what is pending; returns -1 if the connection must close. */
static int flush(struct ev_loop *loop, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->io.fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    size_t pending = c->out_len - c->out_off;
    if (pending == 0)
        c->out_off = c->out_len = 0;
    int events = pending == 0 ? EV_READ : pending > OUT_HIGH ? EV_WRITE : EV_READ | EV_WRITE;
    set_events(loop, c, events);
    return 0;
}

/* Reads once, echoes every complete line, keeps the partial one; -1 closes. */
static int on_readable(struct conn *c)
{
    ssize_t n;
    do
        n = read(c->io.fd, c->in + c->in_len, IN_CAP - c->in_len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (n == 0)
        return -1;
    c->in_len += (size_t)n;

    char *p = c->in, *end = c->in + c->in_len, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (out_append(c, p, (size_t)(nl + 1 - p)) < 0)
            return -1;
        p = nl + 1;
    }
    c->in_len = (size_t)(end - p);
    if (c->in_len == IN_CAP)
        return -1;   /* a line longer than the buffer */
    if (c->in_len > 0 && p != c->in)
        memmove(c->in, p, c->in_len);
    return 0;
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    if ((revents & EV_READ) && on_readable(c) < 0)
        goto drop;
    if (flush(loop, c) < 0)
        goto drop;
    return;
drop:
    conn_free(loop, c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;   /* EAGAIN, or out of fds: try again on the next event */
        }
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->in_len = 0;
        c->out = NULL;
        c->out_off = c->out_len = c->out_cap = 0;
        ev_io_init(&c->io, on_conn, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Binds and listens on host:port; prints "listening on HOST:PORT".  fd or -1. */
static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "%s:%s: %s\n", host, port, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(res);

    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char text[INET6_ADDRSTRLEN] = "?";
    int bound = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text);
            bound = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text);
            bound = ntohs(s4->sin_port);
        }
    }
    printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n",
           text, bound);
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "10002";
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "hb:p:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'h':
            printf("usage: %s [-b ADDR] [-p PORT]\n"
                   "  a line echo server on raw libev, the benchmark's reference\n"
                   "  -b, --bind ADDR   address (default 127.0.0.1)\n"
                   "  -p, --port PORT   port (default 10002; 0 picks a free one)\n"
                   "  -h, --help        this text\n",
                   argv[0]);
            return 0;
        default:
            fprintf(stderr, "try '%s --help'\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_on(host, port);
    if (lfd < 0)
        return 1;

    struct ev_loop *loop = ev_default_loop(0);
    ev_io accept_watcher;
    ev_io_init(&accept_watcher, on_accept, lfd, EV_READ);
    ev_io_start(loop, &accept_watcher);
    ev_signal stop_int, stop_term;
    ev_signal_init(&stop_int, on_signal, SIGINT);
    ev_signal_init(&stop_term, on_signal, SIGTERM);
    ev_signal_start(loop, &stop_int);
    ev_signal_start(loop, &stop_term);
    ev_run(loop, 0);

    /* Connections still open are released by the exit; the listener is closed. */
    ev_io_stop(loop, &accept_watcher);
    close(lfd);
    ev_loop_destroy(loop);
    return 0;
}
