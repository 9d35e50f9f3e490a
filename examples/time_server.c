/*
 * time_server: the asynchat time server, the demo evchat grew from.
 *
 * Python's version subclasses async_chat, sets the terminator to "\r\n\r\n",
 * and in found_terminator pushes time.ctime() and calls close_when_done().
 * Here the "subclass" is an evc_chat_ops table.  Try it:
 *
 *     examples/time_server &   then   examples/time_client
 *
 * With -w N it serves on N loops on N threads (-W N: N processes), socketserver's
 * ThreadingTCPServer and ForkingTCPServer; the chat code is the same.
 *
 * With --cert FILE --key FILE it speaks TLS (examples/README.md).
 *
 * What it shows: a listening evc_server handing each connection to a chat;
 * a byte-string terminator; push + close_when_done (the reply is written, then
 * the connection closes); a timeout that closes clients which never finish
 * their request, without disturbing anybody else: the idle timeout for one
 * that sends nothing, the frame deadline for one that trickles a byte now and
 * then (every byte would push the idle timeout back).
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The request's bytes are not needed: only the blank line that ends it. */
static void ignore_request(evc_chat *chat, const char *bytes, size_t len, void *data)
{
    (void)chat, (void)bytes, (void)len, (void)data;
}

static void send_time(evc_chat *chat, void *data)
{
    (void)data;
    time_t now = time(NULL);
    char text[64];
    ctime_r(&now, text);                 /* "Sun Nov 22 05:56:00 2026\n" */
    size_t len = strcspn(text, "\n");
    memcpy(text + len, "\r\n", 2);       /* ctime's "\n" becomes the protocol's "\r\n" */
    evc_chat_push(chat, text, len + 2);
    evc_chat_close_when_done(chat);
}

static const struct evc_chat_ops time_channel = {
    .collect_incoming_data = ignore_request,
    .found_terminator = send_time,
};

/* A new connection, on whichever loop serves it (the one loop, or a worker's). */
static void accept_client(struct ev_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t len, void *data)
{
    (void)peer, (void)len;
    const double *timeout = data;
    evc_chat *chat = evc_chat_new(loop, fd, &time_channel, NULL);
    if (!chat) {
        close(fd);
        return;
    }
    evc_chat_set_terminator(chat, "\r\n\r\n");
    evc_chat_set_timeout(chat, *timeout);
    evc_chat_set_frame_deadline(chat, *timeout);
    /* With --cert/--key: TLS, and the same conversation over it. */
    if (example_tls_start(chat, NULL) < 0)
        evc_chat_close(chat);
}

/* No per-worker state: every worker shares the (read-only) timeout. */
static const struct evc_worker_ops time_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_tls_offer();   /* --cert/--key, --tls */
    example_parse(&opts, argc, argv, "127.0.0.1", 10001,
                  " [TIMEOUT_SECONDS (default 30: the time a client has to send its request;"
                  " 0: none)]");
    double timeout = 30.0;
    if (opts.argc > 0)
        timeout = example_parse_seconds(argv[0], "timeout", opts.argv[0]);

    return example_serve_workers(&opts, &time_server_ops, &timeout);
}
