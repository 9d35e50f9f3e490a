/*
 * udp_echo_client: the tutorials' datagram echo client (sendto, then
 * recvfrom with a timeout) for udp_echo, on an event loop.
 *
 *     udp_echo_client [-b HOST] [-p PORT] [MESSAGE...]
 *
 * Each MESSAGE (or, with none, each line of stdin, without its newline) is
 * sent as one datagram; the next goes out once its reply has been printed,
 * one reply per line.  A reply that does not come within 3 seconds ends the
 * program with status 1 (UDP may lose datagrams; this client does not retry).
 *
 * What it shows: a dispatcher adopting a socket the program made itself
 * (evc_dispatcher_set_socket); a connected datagram socket, which only hears
 * from the server and learns "nobody listens" (ECONNREFUSED) from the
 * kernel; an ev_timer beside a dispatcher in the same loop for the timeout.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLY_TIMEOUT 3.0

struct client {
    char **messages;
    size_t count, next;          /* next: the message whose reply is awaited */
    size_t *lengths;
    ev_timer timer;
    evc_dispatcher *d;
    int status;
    char reply[65536];
};

static void send_next(struct client *c)
{
    struct ev_loop *loop = evc_dispatcher_loop(c->d);
    if (c->next == c->count) {
        c->status = 0;
        evc_dispatcher_close(c->d);
        ev_timer_stop(loop, &c->timer);
        return;
    }
    ssize_t n = evc_dispatcher_sendto(c->d, c->messages[c->next], c->lengths[c->next], NULL, 0);
    if (n < 0) {
        fprintf(stderr, "udp_echo_client: send: %s\n", evc_strerror((int)n));
        evc_dispatcher_close(c->d);
        ev_timer_stop(loop, &c->timer);
        return;
    }
    ev_timer_set(&c->timer, REPLY_TIMEOUT, 0.);
    ev_timer_start(loop, &c->timer);
}

static void handle_read(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    ssize_t n = evc_dispatcher_recvfrom(d, c->reply, sizeof c->reply, NULL, NULL);
    if (n == -EAGAIN)
        return;
    ev_timer_stop(evc_dispatcher_loop(d), &c->timer);
    if (n < 0) {
        /* A connected UDP socket reports the ICMP "port unreachable" here. */
        fprintf(stderr, "udp_echo_client: %s\n", evc_strerror((int)n));
        evc_dispatcher_close(d);
        return;
    }
    fwrite(c->reply, 1, (size_t)n, stdout);
    putchar('\n');
    fflush(stdout);
    c->next++;
    send_next(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct client *c = w->data;
    fprintf(stderr, "udp_echo_client: no reply within %.0f s\n", REPLY_TIMEOUT);
    evc_dispatcher_close(c->d);
}

static const struct evc_dispatcher_ops client_ops = {
    .handle_read = handle_read,
};

/* The messages: the operands, or the lines of stdin. */
static void gather(struct client *c, const example_opts *opts)
{
    size_t cap = opts->argc > 0 ? (size_t)opts->argc : 16;
    c->messages = calloc(cap, sizeof *c->messages);
    c->lengths = calloc(cap, sizeof *c->lengths);
    if (opts->argc > 0) {
        for (int i = 0; i < opts->argc; i++) {
            c->messages[i] = strdup(opts->argv[i]);
            c->lengths[i] = strlen(opts->argv[i]);
        }
        c->count = (size_t)opts->argc;
        return;
    }
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    while ((n = getline(&line, &linecap, stdin)) >= 0) {
        if (c->count == cap) {
            cap *= 2;
            c->messages = realloc(c->messages, cap * sizeof *c->messages);
            c->lengths = realloc(c->lengths, cap * sizeof *c->lengths);
        }
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        c->messages[c->count] = line;
        c->lengths[c->count++] = (size_t)n;
        line = NULL;
        linecap = 0;
    }
    free(line);
}

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 10000, " [MESSAGE...] (none: stdin lines)");
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    struct client c = {.status = 1};
    gather(&c, &opts);
    struct ev_loop *loop = ev_default_loop(0);
    ev_timer_init(&c.timer, on_timeout, REPLY_TIMEOUT, 0.);
    c.timer.data = &c;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    c.d = evc_dispatcher_new(loop, &client_ops, &c);
    /* connect() on a datagram socket only fixes the peer: it completes at once. */
    if (fd < 0 || !c.d || connect(fd, (struct sockaddr *)&ss, len) < 0 ||
        evc_dispatcher_set_socket(c.d, fd) < 0) {
        perror("udp_echo_client");
        if (fd >= 0)
            close(fd);
        if (c.d)
            evc_dispatcher_close(c.d);
    } else {
        send_next(&c);
    }
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    for (size_t i = 0; i < c.count; i++)
        free(c.messages[i]);
    free(c.messages);
    free(c.lengths);
    return c.status;
}
