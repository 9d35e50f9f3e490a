/*
 * http_get: fetches http:// URLs and writes their bodies to stdout (or -o
 * FILE), in the order given.  Try it, with http_server running:
 *
 *     examples/http_get http://127.0.0.1:8080/a.txt http://127.0.0.1:8080/stream?n=3
 *
 * Consecutive URLs on the same host:port share one keep-alive connection and
 * their requests are pipelined: all of them are pushed at once, and the
 * answers are read one after the other.  No redirect is followed.  Exit
 * status 0 when every answer was 2xx; otherwise 1, with the status (or the
 * network error) on stderr.  Bodies of answers that are not 2xx are read and
 * dropped, so that the connection stays in step for the next answer.
 *
 * The response is read with the chat's framings, as http_server reads
 * requests: the status line and headers as CRLF-or-LF lines, then the body as
 * one of the three kinds HTTP/1.1 has: a count (Content-Length), chunks
 * (chunk-size lines and count_then frames of data + CRLF), or everything
 * until the server closes (terminator none, ended by handle_close).
 *
 * Unlike the server this client streams bodies: its collect_incoming_data
 * writes body bytes to the output as they arrive (any size, constant memory)
 * and hands the other frames to evc_chat_collect, the library's own
 * collector, so that found_terminator still sees whole lines.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_LINE 8192
#define IO_TIMEOUT 30.0
#define MAX_URLS 4096

typedef struct url {
    const char *text;
    char host[256];
    int port;
    const char *path;       /* in text: from the first '/' after the host */
    bool tls;               /* https://, or --tls */
} url;

/* Where the current response is. */
enum stage { STATUS_LINE, HEADERS, BODY_COUNT, CHUNK_SIZE, CHUNK_DATA, TRAILERS, BODY_TO_CLOSE };

typedef struct client {
    url *urls;
    size_t n_urls;
    size_t next;            /* the URL whose answer comes next */
    size_t group_end;       /* the current connection's URLs are [next, group_end) */
    int out_fd;
    int status;             /* the exit status so far */
    evc_chat *chat;
    enum stage stage;
    int code;               /* the current answer's status code */
    char reason[128];
    bool keep_body;         /* 2xx: the body goes to the output */
    bool has_length, chunked, closes;
    uint64_t length;
    bool progress;          /* an answer completed on this connection */
} client;

static void start_group(client *cl, struct ev_loop *loop);

/* "http://host[:port][/path]" into u.  0, or -1 with a message. */
static int parse_url(url *u, const char *text)
{
    u->text = text;
    u->tls = strncasecmp(text, "https://", 8) == 0;
    if (!u->tls && strncasecmp(text, "http://", 7) != 0) {
        fprintf(stderr, "http_get: %s: only http:// and https:// URLs\n", text);
        return -1;
    }
    const char *host = text + (u->tls ? 8 : 7);
    const char *end = host + strcspn(host, "/?#");
    const char *colon = NULL;
    if (*host == '[') {             /* an IPv6 literal */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close)
            goto bad;
        if (close + 1 < end && close[1] == ':')
            colon = close + 1;
        else if (close + 1 != end)
            goto bad;
        host++;
        if ((size_t)(close - host) >= sizeof u->host)
            goto bad;
        memcpy(u->host, host, (size_t)(close - host));
        u->host[close - host] = '\0';
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
        const char *stop = colon ? colon : end;
        if (stop == host || (size_t)(stop - host) >= sizeof u->host)
            goto bad;
        memcpy(u->host, host, (size_t)(stop - host));
        u->host[stop - host] = '\0';
    }
    u->port = u->tls ? 443 : 80;
    if (colon) {
        char *after;
        long port = strtol(colon + 1, &after, 10);
        if (after != end || port <= 0 || port > 65535)
            goto bad;
        u->port = (int)port;
    }
    u->path = *end == '/' ? end : NULL;
    if (!u->path && *end != '\0')
        goto bad;   /* "http://h?q" has no path to put the query on */
    return 0;
bad:
    fprintf(stderr, "http_get: %s: not a valid URL\n", text);
    return -1;
}

static bool same_origin(const url *a, const url *b)
{
    return a->port == b->port && a->tls == b->tls && strcmp(a->host, b->host) == 0;
}

/* Gives up on the connection's remaining URLs and moves to the next group. */
static void fail_rest(client *cl, const char *why)
{
    for (size_t i = cl->next; i < cl->group_end; i++)
        fprintf(stderr, "http_get: %s: %s\n", cl->urls[i].text, why);
    cl->status = 1;
    cl->next = cl->group_end;
    struct ev_loop *loop = evc_dispatcher_loop(evc_chat_dispatcher(cl->chat));
    evc_chat_close(cl->chat);
    start_group(cl, loop);
}

static int write_out(client *cl, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(cl->out_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The current answer is complete: report it, then the next one, or the next group. */
static void answer_done(client *cl)
{
    if (!cl->keep_body) {
        fprintf(stderr, "http_get: %s: %d %s\n", cl->urls[cl->next].text, cl->code, cl->reason);
        cl->status = 1;
    }
    cl->next++;
    cl->progress = true;
    cl->stage = STATUS_LINE;
    evc_chat_set_terminator_line(cl->chat, EVC_EOL_CRLF_OR_LF);
    if (cl->next == cl->group_end || cl->closes) {
        /* A server that announced its close answers nothing more here: the
         * rest of the group is asked again on a new connection. */
        struct ev_loop *loop = evc_dispatcher_loop(evc_chat_dispatcher(cl->chat));
        evc_chat_close(cl->chat);
        start_group(cl, loop);
    }
}

static void collect(evc_chat *chat, const char *p, size_t len, void *data)
{
    client *cl = data;
    if (cl->stage == BODY_COUNT || cl->stage == CHUNK_DATA || cl->stage == BODY_TO_CLOSE) {
        if (cl->keep_body && write_out(cl, p, len) < 0)
            fail_rest(cl, strerror(errno));
        return;
    }
    if (evc_chat_collect(chat, p, len) == -ENOMEM)
        fail_rest(cl, "out of memory");
}

static void header_line(client *cl, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon) {
        fail_rest(cl, "malformed header in the answer");
        return;
    }
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t vlen = len - name_len - 1;
    while (vlen > 0 && (*value == ' ' || *value == '\t'))
        value++, vlen--;
    while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
    if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        char text[24];
        if (vlen == 0 || vlen >= sizeof text) {
            fail_rest(cl, "bad Content-Length in the answer");
            return;
        }
        memcpy(text, value, vlen);
        text[vlen] = '\0';
        char *end;
        cl->length = strtoull(text, &end, 10);
        cl->has_length = *end == '\0';
    } else if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        cl->chunked = vlen >= 7 && strncasecmp(value + vlen - 7, "chunked", 7) == 0;
    } else if (name_len == 10 && strncasecmp(line, "Connection", 10) == 0) {
        if (vlen == 5 && strncasecmp(value, "close", 5) == 0)
            cl->closes = true;
    }
}

/* The blank line after the headers: choose the body's framing. */
static void headers_done(client *cl)
{
    bool head_only = cl->code == 204 || cl->code == 304 || (cl->code >= 100 && cl->code < 200);
    if (cl->code >= 100 && cl->code < 200) {
        cl->stage = STATUS_LINE;        /* 100 Continue: the real answer follows */
        return;
    }
    if (head_only) {
        answer_done(cl);
    } else if (cl->chunked) {
        cl->stage = CHUNK_SIZE;
    } else if (cl->has_length) {
        cl->stage = BODY_COUNT;
        evc_chat_set_terminator_count(cl->chat, cl->length);   /* 0: done at once */
    } else {
        cl->stage = BODY_TO_CLOSE;      /* the body ends when the server closes */
        cl->closes = true;
        evc_chat_set_terminator_none(cl->chat);
    }
}

static void found(evc_chat *chat, void *data)
{
    client *cl = data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    switch (cl->stage) {
    case STATUS_LINE: {
        int code;
        int reason_at = 0;
        char text[MAX_LINE + 1];
        memcpy(text, line, len);
        text[len] = '\0';
        if (sscanf(text, "HTTP/1.%*1[01] %3d %n", &code, &reason_at) != 1 || code < 100) {
            fail_rest(cl, "not an HTTP/1.x answer");
            return;
        }
        cl->code = code;
        snprintf(cl->reason, sizeof cl->reason, "%s", reason_at ? text + reason_at : "");
        cl->keep_body = code >= 200 && code < 300;
        cl->has_length = cl->chunked = false;
        cl->closes = strncmp(text, "HTTP/1.0", 8) == 0;
        cl->stage = HEADERS;
        break;
    }
    case HEADERS:
        if (len == 0)
            headers_done(cl);
        else
            header_line(cl, line, len);
        break;
    case BODY_COUNT:
        answer_done(cl);
        break;
    case CHUNK_SIZE: {
        char text[32];
        size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
        memcpy(text, line, n);
        text[n] = '\0';
        char *end;
        uint64_t size = strtoull(text, &end, 16);
        if (end == text) {
            fail_rest(cl, "bad chunk size in the answer");
        } else if (size == 0) {
            cl->stage = TRAILERS;
        } else {
            cl->stage = CHUNK_DATA;
            evc_chat_set_terminator_count_then(chat, size, "\r\n", 2);
        }
        break;
    }
    case CHUNK_DATA:
        cl->stage = CHUNK_SIZE;
        evc_chat_set_terminator_line(chat, EVC_EOL_CRLF_OR_LF);
        break;
    case TRAILERS:
        if (len == 0)
            answer_done(cl);
        break;
    case BODY_TO_CLOSE:
        break;
    }
}

static void on_close(evc_chat *chat, void *data)
{
    client *cl = data;
    if (cl->stage == BODY_TO_CLOSE) {
        answer_done(cl);    /* closes the chat and goes on */
        return;
    }
    if (!cl->progress || cl->stage != STATUS_LINE) {
        fail_rest(cl, "connection closed before the answer was complete");
        return;
    }
    /* Closed between answers: ask the rest again. */
    struct ev_loop *loop = evc_dispatcher_loop(evc_chat_dispatcher(chat));
    evc_chat_close(chat);
    start_group(cl, loop);
}

static void on_error(evc_chat *chat, int err, void *data)
{
    char why[300];
    if (evc_chat_tls_error(chat, why, sizeof why) > 0)
        fail_rest(data, why);
    else
        fail_rest(data, evc_strerror(err));
}

static void on_timeout(evc_chat *chat, void *data)
{
    (void)chat;
    fail_rest(data, "timed out");
}

static const struct evc_chat_ops client_ops = {
    .collect_incoming_data = collect,
    .found_terminator = found,
    .handle_close = on_close,
    .handle_error = on_error,
    .handle_timeout = on_timeout,
};

/* Connects for urls[next] and pipelines the requests of every following URL
 * on the same host:port.  Does nothing once every URL is done. */
static void start_group(client *cl, struct ev_loop *loop)
{
    cl->chat = NULL;
    if (cl->next >= cl->n_urls)
        return;
    const url *first = &cl->urls[cl->next];
    cl->group_end = cl->next + 1;
    while (cl->group_end < cl->n_urls && same_origin(first, &cl->urls[cl->group_end]))
        cl->group_end++;
    cl->stage = STATUS_LINE;
    cl->progress = false;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = evc_addr_from_host_port(first->host, first->port, &ss, &sslen);
    evc_chat *chat = rc < 0 ? NULL : evc_chat_new(loop, -1, &client_ops, cl);
    if (chat)
        rc = evc_chat_connect(chat, (struct sockaddr *)&ss, sslen);
    /* https:// (or --tls): the handshake follows the connect, checking the
     * certificate names the URL's host; the requests wait for it. */
    if (chat && rc == 0 && first->tls)
        rc = example_tls_start(chat, first->host);
    if (rc < 0 || !chat) {
        const char *why = evc_strerror(rc < 0 ? rc : -errno);
        if (chat)
            evc_chat_close(chat);
        for (size_t i = cl->next; i < cl->group_end; i++)
            fprintf(stderr, "http_get: %s: %s\n", cl->urls[i].text, why);
        cl->status = 1;
        cl->next = cl->group_end;
        start_group(cl, loop);
        return;
    }
    cl->chat = chat;
    evc_chat_set_timeout(chat, IO_TIMEOUT);
    evc_chat_set_max_frame(chat, MAX_LINE);
    evc_chat_set_terminator_line(chat, EVC_EOL_CRLF_OR_LF);
    /* A literal IPv6 host goes in brackets in the Host header. */
    bool v6 = strchr(first->host, ':') != NULL;
    for (size_t i = cl->next; i < cl->group_end; i++) {
        const url *u = &cl->urls[i];
        evc_chat_pushf(chat, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: evchat-http_get\r\n"
                             "Accept: */*\r\n%s\r\n",
                       u->path ? u->path : "/", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port,
                       i + 1 == cl->group_end ? "Connection: close\r\n" : "");
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"output", required_argument, NULL, 'o'},
        EXAMPLE_LOOP_LONGOPTS,
        EXAMPLE_TLS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *out_path = NULL;
    example_opts loop_opts = {0};   /* only the loop's options: URLs name their servers */
    bool all_tls = false;
    int c;
    example_tls_offer();
    while ((c = getopt_long(argc, argv, "ho:k" EXAMPLE_LOOP_SHORTOPTS, longopts, NULL)) != -1) {
        if (example_loop_option(&loop_opts, c, optarg, argv[0]))
            continue;
        if (c == 'h') {
            printf("usage: %s [-o FILE] [--tls] [--ca FILE] [-k] URL...\n"
                   "Fetches http:// and https:// URLs in order, bodies to stdout or FILE; exit 0 if all were 2xx\n"
                   "  -o, --output FILE  write the bodies to FILE\n"
                   EXAMPLE_LOOP_HELP
                   "  --tls              TLS for http:// URLs too (on their port, default 80)\n"
                   "  --ca FILE          trust these CA certificates (default: the system's)\n"
                   "  -k, --insecure     no certificate check\n"
                   "  -h, --help         this text\n", argv[0]);
            return 0;
        }
        if (c == EXAMPLE_OPT_TLS)
            all_tls = true;
        if (example_tls_option(c == 'k' ? EXAMPLE_OPT_INSECURE : c, optarg))
            continue;
        if (c != 'o') {
            fprintf(stderr, "try '%s --help'\n", argv[0]);
            return 2;
        }
        out_path = optarg;
    }
    size_t n = (size_t)(argc - optind);
    if (n == 0 || n > MAX_URLS) {
        fprintf(stderr, "usage: %s [-o FILE] URL... (1 to %d URLs)\n", argv[0], MAX_URLS);
        return 2;
    }
    example_loop_start(&loop_opts, argv[0]);
    client cl = {.n_urls = n, .out_fd = STDOUT_FILENO};
    cl.urls = calloc(n, sizeof *cl.urls);
    if (!cl.urls)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (parse_url(&cl.urls[i], argv[optind + (int)i]) < 0) {
            free(cl.urls);
            return 2;
        }
        cl.urls[i].tls = cl.urls[i].tls || all_tls;
        if (cl.urls[i].tls)
            example_tls_option(EXAMPLE_OPT_TLS, NULL);
    }
    example_tls_ready(argv[0]);
    if (out_path) {
        cl.out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (cl.out_fd < 0) {
            perror(out_path);
            free(cl.urls);
            return 1;
        }
    }
    struct ev_loop *loop = ev_default_loop(0);
    start_group(&cl, loop);
    ev_run(loop, 0);
    evc_close_all(loop);
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    if (out_path && close(cl.out_fd) < 0) {
        perror(out_path);
        cl.status = 1;
    }
    free(cl.urls);
    example_tls_cleanup();
    return cl.status;
}
