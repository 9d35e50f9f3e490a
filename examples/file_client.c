/*
 * file_client: the client side of the tutorials' framed messages (Real
 * Python's "libclient"), for file_server.
 *
 *     file_client [-b HOST] [-p PORT] NAME OUTFILE
 *
 * Sends "NAME\n", then reads the reply in three frames, each with a count
 * terminator: 2 bytes of header length, the JSON header, then content-length
 * bytes of content.  Exit status 0 when OUTFILE holds the whole file; 1 with
 * a message otherwise (an error header, a short transfer, a network error),
 * and then OUTFILE is not left half-written.
 *
 * What it shows: re-arming the terminator inside found_terminator ("length,
 * then N bytes" protocols, asynchat's way); a collect_incoming_data that
 * streams the content to disk as it arrives, so a file of any size costs a
 * read buffer, not its size in memory (the default collector keeps a whole
 * frame, up to a limit); a chat that connects by itself (evc_chat_connect).
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum stage { HEADER_LEN, HEADER, CONTENT, DONE };

struct client {
    enum stage stage;
    unsigned char header[65536];
    size_t have;                 /* bytes of the current frame collected */
    const char *out_path;
    int out_fd;
    uint64_t length, written;
    int status;
};

static void fail(evc_chat *chat, struct client *c, const char *what, const char *detail)
{
    fprintf(stderr, "file_client: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    c->status = 1;
    evc_chat_close(chat);
}

static void collect(evc_chat *chat, const char *bytes, size_t len, void *data)
{
    struct client *c = data;
    if (c->stage == CONTENT) {
        while (len > 0) {
            ssize_t n = write(c->out_fd, bytes, len);
            if (n < 0) {
                fail(chat, c, c->out_path, strerror(errno));
                return;
            }
            bytes += n, len -= (size_t)n, c->written += (uint64_t)n;
        }
    } else if (c->stage != DONE) {
        /* The count terminator never hands out more than the frame it counts. */
        memcpy(c->header + c->have, bytes, len);
        c->have += len;
    }
}

/* The header is in: an error, or where the content goes and how long it is. */
static void read_header(evc_chat *chat, struct client *c)
{
    json_error_t jerr;
    json_t *header = json_loadb((const char *)c->header, c->have, 0, &jerr);
    json_t *error = json_object_get(header, "error");
    json_t *length = json_object_get(header, "content-length");
    if (!header || !json_is_integer(length) || json_integer_value(length) < 0) {
        fail(chat, c, "bad header", header ? "no content-length" : jerr.text);
    } else if (error) {
        fail(chat, c, "server", json_is_string(error) ? json_string_value(error) : "error");
    } else {
        c->length = (uint64_t)json_integer_value(length);
        c->out_fd = open(c->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->out_fd < 0) {
            fail(chat, c, c->out_path, strerror(errno));
        } else if (c->length == 0) {
            c->stage = DONE;    /* a count of 0 would mean "no terminator" */
            c->status = 0;
            evc_chat_close(chat);
        } else {
            c->stage = CONTENT;
            evc_chat_set_terminator_count(chat, c->length);
        }
    }
    json_decref(header);
}

static void found_terminator(evc_chat *chat, void *data)
{
    struct client *c = data;
    switch (c->stage) {
    case HEADER_LEN: {
        size_t len = (size_t)c->header[0] << 8 | c->header[1];
        if (len == 0) {
            fail(chat, c, "bad header", "length 0");
            return;
        }
        c->stage = HEADER;
        c->have = 0;
        evc_chat_set_terminator_count(chat, len);
        break;
    }
    case HEADER:
        read_header(chat, c);
        break;
    case CONTENT:
        c->stage = DONE;
        c->status = 0;
        evc_chat_close(chat);
        break;
    case DONE:
        break;
    }
}

static void handle_close(evc_chat *chat, void *data)
{
    struct client *c = data;
    char detail[96];
    snprintf(detail, sizeof detail, "after %llu of %llu content bytes",
             (unsigned long long)c->written, (unsigned long long)c->length);
    fail(chat, c, "the server closed early", c->stage == CONTENT ? detail : NULL);
}

static void handle_error(evc_chat *chat, int err, void *data)
{
    fail(chat, data, "network", evc_strerror(err));
}

static void handle_timeout(evc_chat *chat, void *data)
{
    fail(chat, data, "timeout", "the server went quiet");
}

static const struct evc_chat_ops client_ops = {
    .collect_incoming_data = collect,
    .found_terminator = found_terminator,
    .handle_close = handle_close,
    .handle_error = handle_error,
    .handle_timeout = handle_timeout,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 8800, " NAME OUTFILE");
    if (opts.argc != 2 || strchr(opts.argv[0], '\n')) {
        fprintf(stderr, "usage: %s [-b HOST] [-p PORT] NAME OUTFILE\n", argv[0]);
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    struct ev_loop *loop = ev_default_loop(0);
    struct client *c = calloc(1, sizeof *c);
    evc_chat *chat = c ? evc_chat_new(loop, -1, &client_ops, c) : NULL;
    if (!chat) {
        perror("file_client");
        free(c);
        return 1;
    }
    *c = (struct client){.stage = HEADER_LEN, .out_path = opts.argv[1], .out_fd = -1, .status = 1};
    evc_chat_set_terminator_count(chat, 2);
    evc_chat_set_timeout(chat, 30.0);
    int rc = evc_chat_connect(chat, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        fprintf(stderr, "file_client: connect: %s\n", evc_strerror(rc));
        evc_chat_close(chat);
    } else {
        evc_chat_pushf(chat, "%s\n", opts.argv[0]);
    }
    ev_run(loop, 0);
    ev_loop_destroy(loop);

    int status = c->status;
    if (c->out_fd >= 0 && close(c->out_fd) < 0)
        status = 1;
    if (status != 0 && c->out_fd >= 0)
        unlink(c->out_path);    /* no half-written file that looks like a download */
    free(c);
    return status;
}
