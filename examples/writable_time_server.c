/*
 * writable_time_server: asyncore's "writable flag" idiom, on the dispatcher
 * layer alone (no chat, no output queue, no evc_server).
 *
 * The asyncore tutorials show a dispatcher whose handle_read reads a request
 * and sets self.want_write = True; writable() returns that flag, so the loop
 * asks for write readiness only then; handle_write sends the time and clears
 * the flag.  asyncore re-asks readable()/writable() before every select().
 * evchat re-asks them after every callback instead (never by polling), so a
 * connection whose flag is false costs no wake-ups at all: no spinning.
 *
 * Every read (whatever it holds: one message, or several that arrived
 * together) is answered with one time line in ctime(3) format plus "\r\n".
 * The listener is a dispatcher too, written the asyncore way: create_socket,
 * set_reuse_addr, bind, listen, and handle_accepted for each new connection.
 * Default port: 10002 (time_server has 10001).
 *
 * Try it:   examples/echo_client -p 10002     then type a line, and another.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDLE_TIMEOUT 30.0   /* seconds without I/O before a client is closed */

struct time_channel {
    bool want_write;      /* the flag: a read is waiting for its answer */
    char out[64];         /* the answer being sent */
    size_t out_len, out_sent;
};

static bool channel_writable(evc_dispatcher *d, void *data)
{
    (void)d;
    struct time_channel *ch = data;
    return ch->want_write;
}

static void channel_read(evc_dispatcher *d, void *data)
{
    struct time_channel *ch = data;
    char request[4096];
    /* 0 means "would block" or "the peer is gone" (then handle_close has run
     * and closed us); either way there is nothing to answer. */
    if (evc_dispatcher_recv(d, request, sizeof request) > 0)
        ch->want_write = true;
}

static void channel_write(evc_dispatcher *d, void *data)
{
    struct time_channel *ch = data;
    if (ch->out_sent == ch->out_len) {
        time_t now = time(NULL);
        char text[32];
        ctime_r(&now, text);                 /* "Sun Nov 22 05:56:00 2026\n" */
        text[strcspn(text, "\n")] = '\0';
        ch->out_len = (size_t)snprintf(ch->out, sizeof ch->out, "%s\r\n", text);
        ch->out_sent = 0;
    }
    ssize_t n = evc_dispatcher_send(d, ch->out + ch->out_sent, ch->out_len - ch->out_sent);
    if (n <= 0)
        return;   /* would block (try again when writable) or closed */
    ch->out_sent += (size_t)n;
    /* A partial send keeps the flag up until the rest is out. */
    if (ch->out_sent == ch->out_len)
        ch->want_write = false;
}

static void channel_destroy(evc_dispatcher *d, void *data)
{
    (void)d;
    free(data);
}

static const struct evc_dispatcher_ops time_channel_ops = {
    .writable = channel_writable,      /* readable is NULL: always true */
    .handle_read = channel_read,
    .handle_write = channel_write,
    .on_destroy = channel_destroy,     /* handle_close/handle_error NULL: close */
};

static void listener_accepted(evc_dispatcher *listener, int fd, const struct sockaddr *peer,
                              socklen_t len, void *data)
{
    (void)peer, (void)len, (void)data;
    struct ev_loop *loop = evc_dispatcher_loop(listener);
    struct time_channel *ch = calloc(1, sizeof *ch);
    evc_dispatcher *d = ch ? evc_dispatcher_new(loop, &time_channel_ops, ch) : NULL;
    if (!d) {
        free(ch);
        close(fd);
        return;
    }
    /* From here on the dispatcher owns ch: on failure, close it and on_destroy frees ch. */
    if (evc_dispatcher_set_socket(d, fd) < 0) {
        close(fd);
        evc_dispatcher_close(d);
        return;
    }
    /* A client that never reads its answer is not kept forever. */
    evc_dispatcher_set_timeout(d, IDLE_TIMEOUT);
}

static const struct evc_dispatcher_ops listener_ops = {
    .handle_accepted = listener_accepted,   /* handle_accept NULL: accept, then this */
};

/* The asyncore listener: 0 or -errno, and the dispatcher is closed on failure. */
static int start_listening(evc_dispatcher *listener, const char *address)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = evc_addr_parse(address, &ss, &len);
    if (rc == 0)
        rc = evc_dispatcher_create_socket(listener, ss.ss_family, SOCK_STREAM);
    if (rc == 0 && ss.ss_family != AF_UNIX)
        rc = evc_dispatcher_set_reuse_addr(listener);
    if (rc == 0)
        rc = evc_dispatcher_bind(listener, (struct sockaddr *)&ss, len);
    if (rc == 0)
        rc = evc_dispatcher_listen(listener, SOMAXCONN);
    if (rc < 0)
        evc_dispatcher_close(listener);
    return rc;
}

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 10002, "");
    example_refuse_workers(&opts, argv[0]);

    struct ev_loop *loop = ev_default_loop(0);
    char address[EVC_ADDRSTRLEN + 16];
    example_address(&opts, address, sizeof address);
    evc_dispatcher *listener = evc_dispatcher_new(loop, &listener_ops, NULL);
    int rc = listener ? start_listening(listener, address) : -errno;
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", address, evc_strerror(rc));
        ev_run(loop, 0);
        ev_loop_destroy(loop);
        return 1;
    }
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);   /* before the line that says we are up */
    example_announce(evc_dispatcher_fd(listener));
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);   /* every channel's on_destroy runs and frees it */
    ev_loop_destroy(loop);
    return 0;
}
