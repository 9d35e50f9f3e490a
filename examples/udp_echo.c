/*
 * udp_echo: the datagram echo server of the Python socket tutorials
 * (socket(AF_INET, SOCK_DGRAM), bind, then recvfrom/sendto in a loop), as a
 * dispatcher on an event loop.  Try it:
 *
 *     echo hello | nc -u -w1 127.0.0.1 10000        # prints "echo:hello"
 *
 * What it shows: an evc_dispatcher over a datagram socket
 * (evc_dispatcher_create_socket(family, SOCK_DGRAM), evc_dispatcher_bind,
 * evc_dispatcher_recvfrom/sendto); the readable()/writable() predicates as
 * back-pressure: while a reply waits for room in the socket's send buffer the
 * server stops reading (so it never has to queue replies without bound), and
 * asks for write readiness instead.
 *
 * Each datagram (0 to 65507 bytes, the largest IPv4 UDP payload) is answered
 * with "echo:" followed by its bytes.  Such a reply can be 5 bytes longer than
 * any datagram can be, so a reply is TRUNCATED to 65507 bytes: the client
 * always gets an answer, and its first 5 + n bytes are exactly "echo:" + the
 * first n bytes it sent.  The same limit is used over IPv6 so both behave alike.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ECHO_PREFIX "echo:"
#define PREFIX_LEN (sizeof ECHO_PREFIX - 1)
#define MAX_UDP_PAYLOAD 65507
#define MAX_BATCH 64            /* datagrams per wakeup, so a flood cannot starve signals */

struct echo {
    /* The prefix, then the datagram is received straight after it: no copy. */
    char reply[PREFIX_LEN + 65536];
    size_t reply_len;
    bool pending;               /* reply waits for room in the send buffer */
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

/* Tries to send the pending reply.  A full socket keeps it pending; any other
 * failure (an unreachable peer, say) drops it, as UDP would. */
static void flush_reply(evc_dispatcher *d, struct echo *echo)
{
    ssize_t n = evc_dispatcher_sendto(d, echo->reply, echo->reply_len,
                                      (struct sockaddr *)&echo->peer, echo->peer_len);
    echo->pending = n == -EAGAIN;
}

static void handle_read(evc_dispatcher *d, void *data)
{
    struct echo *echo = data;
    for (int i = 0; i < MAX_BATCH && !echo->pending; i++) {
        echo->peer_len = sizeof echo->peer;
        ssize_t n = evc_dispatcher_recvfrom(d, echo->reply + PREFIX_LEN,
                                            sizeof echo->reply - PREFIX_LEN,
                                            &echo->peer, &echo->peer_len);
        if (n < 0)
            return;             /* -EAGAIN: drained; errors of one datagram: skip it */
        echo->reply_len = PREFIX_LEN + (size_t)n;
        if (echo->reply_len > MAX_UDP_PAYLOAD)
            echo->reply_len = MAX_UDP_PAYLOAD;
        flush_reply(d, echo);
    }
}

static void handle_write(evc_dispatcher *d, void *data)
{
    flush_reply(d, data);
}

/* While a reply is pending, the loop watches for writability instead of input. */
static bool readable(evc_dispatcher *d, void *data)
{
    (void)d;
    return !((struct echo *)data)->pending;
}

static bool writable(evc_dispatcher *d, void *data)
{
    (void)d;
    return ((struct echo *)data)->pending;
}

/* A datagram socket has no "peer closed"; an error of one send is not fatal. */
static void handle_error(evc_dispatcher *d, int err, void *data)
{
    (void)d, (void)err, (void)data;
}

static const struct evc_dispatcher_ops echo_ops = {
    .readable = readable,
    .writable = writable,
    .handle_read = handle_read,
    .handle_write = handle_write,
    .handle_error = handle_error,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 10000, "");
    if (strncmp(opts.host, "unix:", 5) == 0) {
        fprintf(stderr, "udp_echo: UDP needs an IP address, not %s\n", opts.host);
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    static struct echo echo;    /* 64 KiB: too big for a polite stack frame */
    memcpy(echo.reply, ECHO_PREFIX, PREFIX_LEN);
    struct ev_loop *loop = ev_default_loop(0);
    evc_dispatcher *d = evc_dispatcher_new(loop, &echo_ops, &echo);
    if (!d) {
        perror("udp_echo");
        return 1;
    }
    int rc = evc_dispatcher_create_socket(d, ss.ss_family, SOCK_DGRAM);
    if (rc == 0)
        rc = evc_dispatcher_bind(d, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        fprintf(stderr, "udp_echo: %s:%d: %s\n", opts.host, opts.port, evc_strerror(rc));
        evc_dispatcher_close(d);
        ev_run(loop, 0);
        ev_loop_destroy(loop);
        return 1;
    }
    /* The stop signals are caught before the address is announced: a test that
     * sends SIGTERM as soon as it reads it must get a clean exit. */
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
    example_announce(evc_dispatcher_fd(d));
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);            /* runs the deferred destroys */
    ev_loop_destroy(loop);
    return 0;
}
