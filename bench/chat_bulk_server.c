/*
 * chat_bulk_server: the evchat side of the bulk benchmark.  Each request is a
 * length line ("1048576\n") and then that many bytes of body; the server
 * streams the body back as it arrives.  Written the way the library means
 * streaming to be done: the terminator "\n" for the line, then a count
 * terminator for the body, and a collect_incoming_data that hands each piece
 * of the body straight back with evc_chat_push_incoming, by reference to the
 * read block it sits in, so no byte of the body is copied in user space.
 *
 *     bench/chat_bulk_server -b 127.0.0.1 -p 0 [copy]
 *
 * With the operand "copy" the pieces are pushed with evc_chat_push instead
 * (a copy into the output queue), to measure what the reference saves.  The
 * first stdout line is "listening on HOST:PORT"; SIGINT or SIGTERM stop it
 * with exit status 0.
 */
#include "../examples/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A length line longer than this is not a length. */
#define LINE_MAX_LEN 32

typedef struct bulk_conn {
    bool copy;              /* push copies instead of references ("copy" operand) */
    bool in_body;
    size_t line_len;
    char line[LINE_MAX_LEN];
} bulk_conn;

static void collect(evc_chat *chat, const char *p, size_t n, void *data)
{
    bulk_conn *b = data;
    if (b->in_body) {
        int rc = b->copy ? evc_chat_push(chat, p, n) : evc_chat_push_incoming(chat, chat, p, n);
        if (rc < 0)
            evc_chat_close(chat);
        return;
    }
    if (n > sizeof b->line - 1 - b->line_len) {
        evc_chat_close(chat);
        return;
    }
    memcpy(b->line + b->line_len, p, n);
    b->line_len += n;
}

static void found(evc_chat *chat, void *data)
{
    bulk_conn *b = data;
    if (b->in_body) {
        b->in_body = false;
        evc_chat_set_terminator(chat, "\n");
        return;
    }
    b->line[b->line_len] = '\0';
    b->line_len = 0;
    char *end;
    unsigned long long n = strtoull(b->line, &end, 10);
    if (end == b->line || *end != '\0' || n == 0) {
        evc_chat_close(chat);
        return;
    }
    b->in_body = true;
    evc_chat_set_terminator_count(chat, n);
}

static void destroy(evc_chat *chat, void *data)
{
    (void)chat;
    free(data);
}

static const struct evc_chat_ops bulk_channel = {
    .collect_incoming_data = collect,
    .found_terminator = found,
    .on_destroy = destroy,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    (void)peer, (void)len;
    struct ev_loop *loop = evc_server_loop(server);
    bulk_conn *b = calloc(1, sizeof *b);
    if (b)
        b->copy = *(const bool *)data;
    evc_chat *chat = b ? evc_chat_new(loop, fd, &bulk_channel, b) : NULL;
    if (!chat) {
        free(b);
        close(fd);
        return;
    }
    evc_chat_set_terminator(chat, "\n");
}

static const struct evc_server_ops bulk_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 10003, " [copy]");
    bool copy = opts.argc > 0 && strcmp(opts.argv[0], "copy") == 0;
    return example_serve(&opts, &bulk_server_ops, &copy);
}
