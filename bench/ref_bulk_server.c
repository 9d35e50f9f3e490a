/*
 * ref_bulk_server: the reference for the bulk benchmark.  Each request is a
 * length line ("1048576\n") and then that many bytes of body; the server
 * streams the body back as it arrives.  Written directly on libev with read
 * and write, the way a careful C programmer would stream by hand: the body is
 * written straight out of the read buffer, with no copy in between.  It uses
 * libev and libc only (no evchat).
 *
 * Per connection: one 64 KiB input buffer.  Body bytes are written from it
 * right after each read; what the kernel does not take stays there, reading
 * stops and write interest is armed until it is written (so at most one
 * buffer of body waits per connection: the kernel's socket buffers do the
 * rest of the queueing).
 *
 *     bench/ref_bulk_server -b 127.0.0.1 -p 0
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One read takes up to this much: the same 64 KiB evchat reads. */
#define IN_CAP (64 * 1024)
/* A length line longer than this is not a length. */
#define LINE_MAX_LEN 32
#define ACCEPT_BATCH 32

struct conn {
    ev_io io;           /* first: the watcher pointer is the connection */
    size_t pos;         /* first byte of in not yet handled */
    size_t len;         /* bytes in in */
    uint64_t body_left; /* body bytes still to stream back; 0: reading a length line */
    char in[IN_CAP];
};

static void conn_free(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c);
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

/*
 * Handles the buffered bytes: parses length lines, writes body bytes straight
 * from the buffer.  1 when the kernel is full (the rest waits in the buffer),
 * 0 when everything buffered was handled, -1 when the connection must close.
 */
static int handle(struct conn *c)
{
    while (c->pos < c->len) {
        if (c->body_left > 0) {
            size_t n = c->len - c->pos;
            if (n > c->body_left)
                n = (size_t)c->body_left;
            ssize_t w = write(c->io.fd, c->in + c->pos, n);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 1;
                return -1;
            }
            c->pos += (size_t)w;
            c->body_left -= (uint64_t)w;
            if ((size_t)w < n)
                return 1;
            continue;
        }
        char *nl = memchr(c->in + c->pos, '\n', c->len - c->pos);
        if (!nl) {
            if (c->len - c->pos >= LINE_MAX_LEN)
                return -1;
            break;
        }
        char *end;
        unsigned long long n = strtoull(c->in + c->pos, &end, 10);
        if (end == c->in + c->pos || end != nl || n == 0)
            return -1;
        c->body_left = n;
        c->pos = (size_t)(nl + 1 - c->in);
    }
    /* Keep a partial length line at the front; an empty buffer starts over. */
    if (c->pos > 0) {
        memmove(c->in, c->in + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    return 0;
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    if (revents & EV_READ) {
        ssize_t n;
        do
            n = read(c->io.fd, c->in + c->len, IN_CAP - c->len);
        while (n < 0 && errno == EINTR);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            goto drop;
        if (n > 0)
            c->len += (size_t)n;
    }
    int rc = handle(c);
    if (rc < 0)
        goto drop;
    set_events(loop, c, rc > 0 ? EV_WRITE : EV_READ);
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
        c->pos = c->len = 0;
        c->body_left = 0;
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
    const char *host = "127.0.0.1", *port = "10003";
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
                   "  a bulk (length line, then body) echo server on raw libev, the benchmark's reference\n"
                   "  -b, --bind ADDR   address (default 127.0.0.1)\n"
                   "  -p, --port PORT   port (default 10003; 0 picks a free one)\n"
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
