/*
 * GET /stream?n=N for examples/http_server: a body generated piece by piece
 * by a producer and sent with the chunked transfer coding by wrapping it in
 * evc_chunked_producer_new.  The answer's length is never known in advance
 * and never held in memory: the chat asks the producer for more only when
 * the socket takes it, and the chunked producer frames each piece.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STREAM_CHUNKS 1000000u

/* One piece of /stream's body per call, so the chunked producer makes one
 * chunk of each. */
typedef struct stream_state {
    unsigned next, count;
} stream_state;

static ssize_t stream_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    (void)p;
    stream_state *s = data;
    if (s->next == s->count)
        return 0;
    int n = snprintf(buf, cap, "chunk %u of %u\n", s->next + 1, s->count);
    if (n < 0 || (size_t)n >= cap)
        return -EMSGSIZE;
    s->next++;
    return n;
}

static void stream_destroy(evc_producer *p, void *data)
{
    (void)p;
    free(data);
}

static const struct evc_producer_ops stream_ops = {
    .more = stream_more,
    .on_destroy = stream_destroy,
};

/* GET /stream?n=N: N generated lines, each its own chunk.  An HTTP/1.0 client
 * knows no chunked coding: it gets the lines with the end of the body marked
 * by the close of the connection, as HTTP/1.0 did. */
void http_answer_stream(http_conn *conn)
{
    unsigned count = 10;
    const char *query = strchr(conn->req.target, '?');
    if (query && strncmp(query, "?n=", 3) == 0) {
        char *end;
        unsigned long n = strtoul(query + 3, &end, 10);
        if (*end != '\0' || n > MAX_STREAM_CHUNKS) {
            http_respond_text(conn, 400, "n must be a number up to 1000000\n");
            return;
        }
        count = (unsigned)n;
    }
    bool chunked = conn->req.minor >= 1;
    if (!chunked)
        conn->req.keep_alive = false;
    const char *extra = chunked ? "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                                : "Content-Type: text/plain\r\n";
    if (http_respond_head(conn, 200, extra, 0) < 0 || strcmp(conn->req.method, "HEAD") == 0)
        return;
    stream_state *s = calloc(1, sizeof *s);
    evc_producer *body = s ? evc_producer_new(&stream_ops, s) : NULL;
    if (!body) {
        free(s);
        evc_chat_close(conn->chat);
        return;
    }
    s->count = count;
    evc_producer *out = chunked ? evc_chunked_producer_new(body, NULL) : body;
    if (!out || evc_chat_push_with_producer(conn->chat, out) < 0) {
        evc_producer_free(out ? out : body);
        evc_chat_close(conn->chat);
    }
}
