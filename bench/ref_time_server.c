/*
 * ref_time_server: the reference for the connection churn benchmark.  The
 * asynchat time server (read a request up to a blank line, answer with the
 * time, close) written directly on libev with read, write and memchr, the way
 * a careful C programmer would write it by hand.  libev and libc only.
 *
 *     bench/ref_time_server -b 127.0.0.1 -p 0
 *     printf 'hi\r\n\r\n' | nc 127.0.0.1 PORT
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A request longer than this is scanned in pieces: only the last 3 bytes are kept. */
#define IN_CAP 512
#define ACCEPT_BATCH 32

struct conn {
    ev_io io;           /* first: the watcher pointer is the connection */
    size_t in_len;      /* bytes in in[] */
    size_t scanned;     /* in[0..scanned) holds no complete terminator */
    size_t reply_off;   /* bytes of reply written; replying once reply_len > 0 */
    size_t reply_len;
    char reply[64];
    char in[IN_CAP];
};

static void conn_free(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c);
}

/* True once in[] holds "\r\n\r\n"; scanning resumes where it stopped. */
static bool find_blank_line(struct conn *c)
{
    size_t from = c->scanned;
    while (from + 4 <= c->in_len) {
        char *cr = memchr(c->in + from, '\r', c->in_len - from - 3);
        if (!cr)
            break;
        if (memcmp(cr, "\r\n\r\n", 4) == 0)
            return true;
        from = (size_t)(cr - c->in) + 1;
    }
    /* The last 3 bytes may start a terminator the next read completes. */
    c->scanned = c->in_len > 3 ? c->in_len - 3 : 0;
    if (c->in_len == IN_CAP) {
        memmove(c->in, c->in + c->scanned, 3);
        c->in_len = 3;
        c->scanned = 0;
    }
    return false;
}

/* Writes the rest of the reply; -1 when the connection is done (or failed). */
static int write_reply(struct conn *c)
{
    while (c->reply_off < c->reply_len) {
        ssize_t n = write(c->io.fd, c->reply + c->reply_off, c->reply_len - c->reply_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        c->reply_off += (size_t)n;
    }
    return -1;
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    if (c->reply_len > 0) {
        if ((revents & EV_WRITE) && write_reply(c) < 0)
            conn_free(loop, c);
        return;
    }
    ssize_t n;
    do
        n = read(w->fd, c->in + c->in_len, IN_CAP - c->in_len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0)
        goto drop;
    c->in_len += (size_t)n;
    if (!find_blank_line(c))
        return;

    time_t now = time(NULL);
    char text[32];
    ctime_r(&now, text);                  /* "Sun Nov 22 05:56:00 2026\n" */
    size_t len = strcspn(text, "\n");
    memcpy(c->reply, text, len);
    memcpy(c->reply + len, "\r\n", 2);
    c->reply_len = len + 2;
    if (write_reply(c) < 0)
        goto drop;
    /* The kernel took only part of 26 bytes: finish when writable, read no more. */
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_WRITE);
    ev_io_start(loop, &c->io);
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
        c->in_len = c->scanned = c->reply_off = c->reply_len = 0;
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
    const char *host = "127.0.0.1", *port = "10001";
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
                   "  a CRLFCRLF time server on raw libev, the benchmark's reference\n"
                   "  -b, --bind ADDR   address (default 127.0.0.1)\n"
                   "  -p, --port PORT   port (default 10001; 0 picks a free one)\n"
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
