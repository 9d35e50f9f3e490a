/*
 * chat_echo_server: the evchat side of the pipelined echo benchmark.  A line
 * echo server written the way the library means it to be used: a chat per
 * connection with the terminator "\n" kept on each frame, the default
 * collector, and a found_terminator that pushes the frame back as it came.  Everything else
 * (reading, framing, queueing, writing, back-pressure) is the library's, so
 * this measures evchat's fast path against bench/ref_echo_server.c.
 *
 *     bench/chat_echo_server -b 127.0.0.1 -p 0
 *
 * The first stdout line is "listening on HOST:PORT"; SIGINT or SIGTERM stop
 * it with exit status 0.
 */
#include "../examples/common.h"

#include <stdio.h>
#include <unistd.h>

/* The default collector hands over the whole line, its "\n" kept. */
static void echo_line(evc_chat *chat, void *data)
{
    (void)data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    evc_chat_push(chat, line, len);
}

static const struct evc_chat_ops echo_channel = {
    .found_terminator = echo_line,
};

/* On the one loop, or a worker's (-w N: N loops on N threads, for bench/workers.sh). */
static void accept_client(struct ev_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t len, void *data)
{
    (void)peer, (void)len, (void)data;
    evc_chat *chat = evc_chat_new(loop, fd, &echo_channel, NULL);
    if (!chat) {
        close(fd);
        return;
    }
    evc_chat_set_terminator(chat, "\n");
    evc_chat_set_keep_terminator(chat, true);
}

static const struct evc_worker_ops echo_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 10002, "");

    return example_serve_workers(&opts, &echo_server_ops, NULL);
}
