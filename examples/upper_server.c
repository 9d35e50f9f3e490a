/*
 * upper_server: the "select plus message queues" server, on the push FIFO.
 *
 * The classic Python tutorial (PyMOTW's select example) keeps one queue per
 * client: whatever select() reports readable is read and appended to that
 * client's queue, the socket is added to the "outputs" list, and when select()
 * reports it writable the next message is sent back (here: upper-cased).  All
 * of that bookkeeping is what a chat already is:
 *
 *   - the terminator is none, so every byte read goes straight to
 *     collect_incoming_data, in whatever pieces the kernel delivered it;
 *   - collect_incoming_data upper-cases the piece and pushes it: the push FIFO
 *     is the message queue, and evchat writes it when the socket is writable
 *     (write interest is armed only while something is queued: no spinning);
 *   - a client that sends a lot but reads nothing is not read from while more
 *     than the high-water mark (1 MiB) waits for it, so its queue stays bounded;
 *   - when a client closes its side, what is still queued for it is written
 *     before the connection closes (the default handle_close).
 *
 * Try it:   printf 'hello, world\n' | examples/echo_client -p 9999
 */
#include "common.h"

#include <ctype.h>
#include <stdio.h>
#include <unistd.h>

#define IDLE_TIMEOUT 300.0   /* seconds without I/O before a client is closed */

static void upper_and_queue(evc_chat *chat, const char *bytes, size_t len, void *data)
{
    (void)data;
    char upper[4096];
    while (len > 0) {
        size_t n = len < sizeof upper ? len : sizeof upper;
        for (size_t i = 0; i < n; i++)
            upper[i] = (char)toupper((unsigned char)bytes[i]);
        /* Only -ENOBUFS (past the 64 MiB output limit, which the high-water
         * mark keeps us far from) or -ENOMEM can fail here: give up on the client. */
        if (evc_chat_push(chat, upper, n) < 0) {
            evc_chat_close(chat);
            return;
        }
        bytes += n;
        len -= n;
    }
}

static const struct evc_chat_ops upper_channel = {
    .collect_incoming_data = upper_and_queue,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    (void)peer, (void)len, (void)data;
    struct ev_loop *loop = evc_server_loop(server);
    /* A new chat's terminator is none already: no framing at all, so no frame
     * deadline either; the idle timeout closes clients that went quiet. */
    evc_chat *chat = evc_chat_new(loop, fd, &upper_channel, NULL);
    if (!chat) {
        close(fd);
        return;
    }
    evc_chat_set_timeout(chat, IDLE_TIMEOUT);
}

static const struct evc_server_ops upper_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 9999, "");

    return example_serve(&opts, &upper_server_ops, NULL);
}
