/*
 * http_server: an HTTP/1.1 (and 1.0) server for a directory, written the way
 * evchat means HTTP-like protocols to be written.  Try it:
 *
 *     examples/http_server /usr/share/doc &
 *     curl -v http://127.0.0.1:8080/libev-dev/copyright
 *     curl -d hello http://127.0.0.1:8080/echo
 *     curl http://127.0.0.1:8080/stream?n=5          # a chunked answer
 *
 * Serves GET and HEAD of files (Range, If-Modified-Since, index.html for a
 * directory), POST /echo (the body comes back) and GET /stream?n=N (N chunks).
 * Persistent connections, pipelining, chunked request bodies.  One access-log
 * line per request on stdout (common log format) unless -q.
 *
 * How the request is read: no HTTP parser, only the chat's framings, changed
 * from found_terminator as the request goes on (http.h names the states):
 *
 *   request line, headers   evc_chat_set_terminator_line(EVC_EOL_CRLF_OR_LF):
 *                           one frame per line, "\r\n" or a bare "\n" (a
 *                           hand-typed request must not hang), an empty line
 *                           ends the head.  max_frame 8 KiB: a longer line is
 *                           frame_too_long, answered 414 or 431.
 *   Content-Length body     evc_chat_set_terminator_count(n): one frame of n
 *                           bytes; n = 0 is an empty frame, delivered at once.
 *   chunked body            a chunk-size line (line framing), then
 *                           evc_chat_set_terminator_count_then(size, "\r\n"):
 *                           the data and its CRLF as one frame, a missing CRLF
 *                           is handle_error(-EPROTO), answered 400; after the
 *                           0 chunk, trailer lines until an empty one.
 *
 * A frame is handled completely in found_terminator, and every answer is
 * pushed there, so pipelined requests are answered in order by the chat's
 * FIFO with nothing to track: a file producer queued for request 1 is
 * written before the bytes pushed for request 2.
 *
 * Answers that end a connection (bad input, Connection: close, HTTP/1.0)
 * push their answer, pause reading (no later pipelined request is answered,
 * everything before is) and end with evc_chat_shutdown_when_done: a
 * lingering close, so that the client reads the whole answer rather than a
 * reset.
 *
 * Files: see http_files.c.  Parsing of single lines: see http_request.c.
 * The generated /stream body: see http_stream.c.
 */
#include "common.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_PORT 8080
#define HEADER_TIMEOUT 10.0         /* a request head must be complete by then: 408 */
#define IDLE_TIMEOUT 15.0           /* an idle keep-alive connection is closed */
#define STALL_TIMEOUT 60.0          /* no I/O at all (a client that does not read) */
#define LINGER_SECONDS 2.0          /* after a last answer, how long to drain the client */

/* ------------------------------------------------------------------ answers */

/* Statuses after which the connection cannot go on: the request's framing is
 * unknown or broken, or the client was too slow or too big. */
static bool status_closes(int status)
{
    return status == 400 || status == 408 || status == 413 || status == 414 ||
           status == 431 || status >= 500;
}

/* Common log format: host ident user [date] "request line" status bytes.  The
 * request line is the client's, so bytes that would break the log's own
 * syntax are replaced. */
static void log_request(http_conn *conn, int status, uint64_t body_len)
{
    if (conn->config->quiet)
        return;
    char line[HTTP_MAX_HEAD + 1];
    size_t n = 0;
    for (const char *p = conn->req.line; *p && n < sizeof line - 1; p++)
        line[n++] = (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') ? '?' : *p;
    line[n] = '\0';
    char when[40];
    struct tm tm;
    time_t now = (time_t)ev_now(conn->loop);
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    printf("%s - - [%s] \"%s\" %d %" PRIu64 "\n", conn->peer, when, line, status, body_len);
}

int http_respond_head(http_conn *conn, int status, const char *extra, uint64_t body_len)
{
    http_config *cfg = conn->config;
    time_t now = (time_t)ev_now(conn->loop);
    if (now != cfg->date_time) {
        cfg->date_time = now;
        http_format_date(now, cfg->date, sizeof cfg->date);
    }
    const char *connection = !conn->req.keep_alive ? "Connection: close\r\n"
                             : conn->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
    char head[1024];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: evchat\r\nDate: %s\r\n%s%s\r\n",
                     status, http_reason(status), cfg->date, connection, extra);
    if (n < 0 || (size_t)n >= sizeof head)
        return -EMSGSIZE;
    log_request(conn, status, body_len);
    return evc_chat_push(conn->chat, head, (size_t)n);
}

void http_respond_text(http_conn *conn, int status, const char *text)
{
    if (status_closes(status))
        conn->req.keep_alive = false;
    size_t len = strlen(text);
    char extra[128];
    snprintf(extra, sizeof extra, "Content-Type: text/plain\r\nContent-Length: %zu\r\n", len);
    bool head = strcmp(conn->req.method, "HEAD") == 0;
    if (http_respond_head(conn, status, extra, head ? 0 : len) == 0 && !head)
        evc_chat_push(conn->chat, text, len);
}

/* ------------------------------------------------------------ connection */

/* The answer just pushed is the connection's last.  Later pipelined requests
 * are not delivered (pause), and the close is a lingering one: once
 * everything queued is written the chat shuts down its sending side and
 * reads and drops what the client still sends until it closes too (or
 * LINGER_SECONDS pass).  Closing at once instead would make the kernel answer
 * the unread bytes with a reset, which can destroy the answer in flight
 * before the client has read it: the client would see "connection reset"
 * instead of its 400 or 413. */
static void close_after_answer(http_conn *conn)
{
    conn->state = HTTP_DONE;
    ev_timer_stop(conn->loop, &conn->timer);
    evc_chat_pause_reading(conn->chat);
    if (evc_chat_shutdown_when_done(conn->chat, LINGER_SECONDS) < 0)
        evc_chat_close_when_done(conn->chat);
}

/* Answers a request that cannot be read further with status, then closes. */
static void refuse(http_conn *conn, int status)
{
    char text[96];
    snprintf(text, sizeof text, "%d %s\n", status, http_reason(status));
    http_respond_text(conn, status, text);
    close_after_answer(conn);
}

/* Back to reading a request head.  The line terminator is set only when a
 * body had changed it: a setter ends the chat's fast batch of lines, and a
 * pipelined burst of GETs should stay in that batch. */
static void expect_request(http_conn *conn)
{
    http_request *req = &conn->req;
    req->method[0] = req->target[0] = req->line[0] = '\0';
    req->minor = 1;
    req->keep_alive = true;
    req->has_length = req->chunked = req->expect_continue = req->has_host = false;
    req->content_length = 0;
    req->range[0] = '\0';
    req->if_modified_since = -1;
    req->head_bytes = 0;
    conn->body_len = 0;
    conn->state = HTTP_REQUEST_LINE;
    conn->waiting_since = ev_now(conn->loop);
    if (!conn->lines) {
        evc_chat_set_terminator_line(conn->chat, EVC_EOL_CRLF_OR_LF);
        evc_chat_set_max_frame(conn->chat, HTTP_MAX_HEAD);
        conn->lines = true;
    }
}

/* A whole request has been read (body included): answer it. */
static void answer(http_conn *conn, const char *body, size_t body_len)
{
    http_request *req = &conn->req;
    char path[HTTP_MAX_HEAD + 1];
    if (req->minor >= 1 && !req->has_host) {
        refuse(conn, 400);      /* RFC 9112 section 3.2: a 1.1 request names its host */
        return;
    }
    if (http_decode_path(req->target, path, sizeof path) < 0) {
        refuse(conn, 400);
        return;
    }
    if (strcmp(req->method, "POST") == 0) {
        if (strcmp(path, "/echo") != 0) {
            http_respond_text(conn, 405, "only POST /echo\n");
        } else {
            char extra[128];
            snprintf(extra, sizeof extra,
                     "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n", body_len);
            if (http_respond_head(conn, 200, extra, body_len) == 0 && body_len > 0)
                evc_chat_push(conn->chat, body, body_len);
        }
    } else if (strcmp(path, "/stream") == 0) {
        http_answer_stream(conn);
    } else {
        http_serve_file(conn, path);
    }
    if (evc_chat_closed(conn->chat))
        return;
    conn->answering = true;
    if (!req->keep_alive)
        close_after_answer(conn);
    else
        expect_request(conn);
}

/* The empty line after the headers: the body's framing follows from them. */
static void head_complete(http_conn *conn)
{
    http_request *req = &conn->req;
    if (!req->chunked && !req->has_length) {
        answer(conn, NULL, 0);
        return;
    }
    if (req->has_length && req->content_length > conn->config->max_body) {
        refuse(conn, 413);
        return;
    }
    /* curl and others wait for this before sending a large body. */
    if (req->expect_continue && req->minor >= 1)
        evc_chat_push_str(conn->chat, "HTTP/1.1 100 Continue\r\n\r\n");
    /* Bodies are collected by the chat's default collector, up to the limit. */
    evc_chat_set_max_frame(conn->chat, conn->config->max_body + 2);
    conn->lines = false;
    if (req->chunked) {
        evc_chat_set_terminator_line(conn->chat, EVC_EOL_CRLF_OR_LF);
        conn->state = HTTP_CHUNK_SIZE;
    } else {
        /* A count of 0 is an empty frame: found_terminator runs at once. */
        evc_chat_set_terminator_count(conn->chat, req->content_length);
        conn->state = HTTP_BODY;
    }
}

/* A line of the head: counts against the 8 KiB limit, then is parsed. */
static void head_line(http_conn *conn, const char *line, size_t len)
{
    http_request *req = &conn->req;
    req->head_bytes += len + 2;
    if (req->head_bytes > HTTP_MAX_HEAD) {
        refuse(conn, conn->state == HTTP_REQUEST_LINE ? 414 : 431);
        return;
    }
    if (conn->state == HTTP_REQUEST_LINE) {
        if (len == 0) {
            req->head_bytes = 0;    /* RFC 9112 section 2.2: ignore empty lines before a request */
            return;
        }
        int status = http_parse_request_line(req, line, len);
        if (status != 0)
            refuse(conn, status);
        else
            conn->state = HTTP_HEADERS;
    } else if (len == 0) {
        head_complete(conn);
    } else {
        int status = http_parse_header(req, line, len);
        if (status != 0)
            refuse(conn, status);
    }
}

/* A chunk-size line or a trailer line of a chunked body. */
static void chunk_line(http_conn *conn, const char *line, size_t len)
{
    if (conn->state == HTTP_TRAILERS) {
        if (len == 0)
            answer(conn, conn->body, conn->body_len);
        else if (!memchr(line, ':', len))
            refuse(conn, 400);
        return;
    }
    uint64_t size;
    if (http_parse_chunk_size(line, len, &size) < 0) {
        refuse(conn, 400);
    } else if (size == 0) {
        conn->state = HTTP_TRAILERS;
    } else if (size > conn->config->max_body - conn->body_len) {
        refuse(conn, 413);
    } else {
        evc_chat_set_terminator_count_then(conn->chat, size, "\r\n", 2);
        conn->state = HTTP_CHUNK_DATA;
    }
}

/* Appends a chunk's data to the body being assembled (the limit was checked
 * against the chunk size before it was read). */
static int body_append(http_conn *conn, const char *data, size_t len)
{
    if (conn->body_len + len > conn->body_cap) {
        size_t cap = conn->body_cap ? conn->body_cap : 4096;
        while (cap < conn->body_len + len)
            cap *= 2;
        char *grown = realloc(conn->body, cap);
        if (!grown)
            return -ENOMEM;
        conn->body = grown;
        conn->body_cap = cap;
    }
    memcpy(conn->body + conn->body_len, data, len);
    conn->body_len += len;
    return 0;
}

static void on_frame(evc_chat *chat, void *data)
{
    http_conn *conn = data;
    size_t len;
    const char *frame = evc_chat_incoming(chat, &len);
    switch (conn->state) {
    case HTTP_REQUEST_LINE:
    case HTTP_HEADERS:
        head_line(conn, frame, len);
        break;
    case HTTP_BODY:
        answer(conn, frame, len);
        break;
    case HTTP_CHUNK_SIZE:
    case HTTP_TRAILERS:
        chunk_line(conn, frame, len);
        break;
    case HTTP_CHUNK_DATA:
        if (body_append(conn, frame, len) < 0) {
            refuse(conn, 500);
            break;
        }
        evc_chat_set_terminator_line(chat, EVC_EOL_CRLF_OR_LF);
        conn->state = HTTP_CHUNK_SIZE;
        break;
    case HTTP_DONE:
        break;
    }
}

/* A line over 8 KiB: the chat keeps what was queued, lets us push one more
 * answer, and discards the rest of the input; refuse makes the close a
 * lingering one. */
static void on_frame_too_long(evc_chat *chat, void *data)
{
    (void)chat;
    http_conn *conn = data;
    if (conn->state == HTTP_DONE)
        return;
    int status = conn->state == HTTP_REQUEST_LINE ? 414
               : conn->state == HTTP_HEADERS ? 431 : 413;
    refuse(conn, status);
}

/* -EPROTO: a chunk's data was not followed by CRLF.  As for a frame too long,
 * what is queued stays queued and our 400 follows it. */
static void on_error(evc_chat *chat, int err, void *data)
{
    http_conn *conn = data;
    if (err == -EPROTO && conn->state != HTTP_DONE) {
        refuse(conn, 400);
        return;
    }
    evc_chat_close(chat);
}

/* The header and idle timeouts, on one timer that is re-armed lazily: the
 * connection only records when it began waiting (expect_request), so a burst
 * of requests costs no timer operations. */
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    http_conn *conn = w->data;
    const http_config *cfg = conn->config;
    ev_tstamp now = ev_now(loop);
    if (conn->state == HTTP_DONE)
        return;
    /* A client still taking a long answer is not idle.  The queue's byte count
     * cannot tell: a file producer has handed out nothing while it waits. */
    if (conn->answering)
        conn->waiting_since = now;
    /* The header timeout bounds the head alone.  Once it is in, a body that
     * keeps coming is a slow client, not a slowloris: it is bounded by the
     * chat's stall timeout (no I/O for STALL_TIMEOUT) and by -m. */
    if (conn->state >= HTTP_BODY && conn->state <= HTTP_TRAILERS)
        conn->waiting_since = now;
    size_t buffered = 0;
    evc_chat_peek(conn->chat, &buffered);
    bool started = conn->state != HTTP_REQUEST_LINE || buffered > 0;
    double limit = started ? cfg->header_timeout : cfg->idle_timeout;
    double left = conn->waiting_since + limit - now;
    if (left > 0) {
        ev_timer_set(w, left, 0);
        ev_timer_start(loop, w);
    } else if (started) {
        refuse(conn, 408);      /* slowloris: the head never finished */
    } else {
        evc_chat_close(conn->chat);
    }
}

/* Everything queued, producers included, has been written. */
static void on_drained(evc_chat *chat, void *data)
{
    (void)chat;
    http_conn *conn = data;
    conn->answering = false;
    conn->waiting_since = ev_now(conn->loop);   /* idle from now on */
}

static void on_destroy(evc_chat *chat, void *data)
{
    (void)chat;
    http_conn *conn = data;
    ev_timer_stop(conn->loop, &conn->timer);
    free(conn->body);
    free(conn);
}

static const struct evc_chat_ops conn_ops = {
    .found_terminator = on_frame,
    .frame_too_long = on_frame_too_long,
    .handle_error = on_error,
    .handle_drained = on_drained,
    .on_destroy = on_destroy,
};

/* A new connection on loop: the one loop, or a worker's with -w/-W (the
 * configuration is read-only, so every worker shares it). */
static void on_accepted(struct ev_loop *loop, int fd, const struct sockaddr *sa, socklen_t len,
                        void *data)
{
    http_config *cfg = data;
    http_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        close(fd);
        return;
    }
    conn->config = cfg;
    conn->loop = loop;
    char peer[EVC_ADDRSTRLEN];
    if (evc_addr_format(sa, len, peer, sizeof peer) < 0)
        snprintf(peer, sizeof peer, "-");
    /* The log wants the host alone: drop ":port" (and an IPv6 literal's brackets). */
    char *colon = strrchr(peer, ':');
    if (colon && colon != peer && strncmp(peer, "unix:", 5) != 0)
        *colon = '\0';
    const char *host = peer;
    if (host[0] == '[') {
        host++;
        char *close_bracket = strchr(peer, ']');
        if (close_bracket)
            *close_bracket = '\0';
    }
    snprintf(conn->peer, sizeof conn->peer, "%s", host);
    conn->chat = evc_chat_new(conn->loop, fd, &conn_ops, conn);
    if (!conn->chat) {
        close(fd);
        free(conn);
        return;
    }
    evc_chat_set_timeout(conn->chat, STALL_TIMEOUT);
    /* With --cert/--key: HTTPS, the same requests over TLS. */
    if (example_tls_start(conn->chat, NULL) < 0) {
        evc_chat_close(conn->chat);   /* on_destroy frees conn */
        return;
    }
    ev_timer_init(&conn->timer, on_timer, cfg->idle_timeout < cfg->header_timeout
                                              ? cfg->idle_timeout : cfg->header_timeout, 0);
    conn->timer.data = conn;
    ev_timer_start(conn->loop, &conn->timer);
    expect_request(conn);
}

static const struct evc_worker_ops server_ops = {
    .handle_accepted = on_accepted,
};

/* ------------------------------------------------------------------ main */

static void usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [-b ADDR] [-p PORT] [-w N | -W N] [-q] [-m BYTES] [-T SECONDS] [-k SECONDS] [DIR]\n"
            "HTTP/1.1 server for DIR (default .): GET/HEAD files, POST /echo, GET /stream?n=N\n"
            "  -b, --bind ADDR         address (default 127.0.0.1)\n"
            "  -p, --port PORT         port (default %d; 0 picks a free one)\n"
            "  -q, --quiet             no access log on stdout\n"
            "  -m, --max-body BYTES    longest request body (default %u)\n"
            "  -T, --header-timeout S  seconds to send a request head (default %g)\n"
            "  -k, --idle-timeout S    seconds a keep-alive connection may idle (default %g)\n"
            EXAMPLE_LOOP_HELP
            EXAMPLE_WORKERS_USAGE
            "  -h, --help              this text\n"
            "  --cert FILE --key FILE  serve HTTPS with this certificate (chain) and key\n",
            prog, DEFAULT_PORT, HTTP_DEFAULT_MAX_BODY, HEADER_TIMEOUT, IDLE_TIMEOUT);
    exit(status);
}

static double parse_seconds(const char *prog, const char *text)
{
    char *end;
    double s = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(s > 0) || s > 86400) {
        fprintf(stderr, "%s: bad number of seconds '%s'\n", prog, text);
        exit(2);
    }
    return s;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"max-body", required_argument, NULL, 'm'},
        {"header-timeout", required_argument, NULL, 'T'},
        {"idle-timeout", required_argument, NULL, 'k'},
        EXAMPLE_LOOP_LONGOPTS,
        EXAMPLE_WORKERS_LONGOPTS,
        EXAMPLE_TLS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    example_opts opts = {.host = "127.0.0.1", .port = DEFAULT_PORT};
    http_config cfg = {
        .max_body = HTTP_DEFAULT_MAX_BODY,
        .header_timeout = HEADER_TIMEOUT,
        .idle_timeout = IDLE_TIMEOUT,
    };
    int c;
    example_tls_offer();
    while ((c = getopt_long(argc, argv, "hb:p:qm:T:k:" EXAMPLE_LOOP_SHORTOPTS
                            EXAMPLE_WORKERS_OPTSTRING, longopts, NULL)) != -1) {
        if (example_loop_option(&opts, c, optarg, argv[0]))
            continue;
        char *end;
        if (c != 'k' && example_tls_option(c, optarg))
            continue;
        if (example_parse_workers(&opts, c, optarg, argv[0]))
            continue;
        switch (c) {
        case 'h':
            usage(argv[0], 0);
            break;
        case 'b':
            opts.host = optarg;
            break;
        case 'p': {
            long port = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], optarg);
                return 2;
            }
            opts.port = (int)port;
            break;
        }
        case 'q':
            cfg.quiet = true;
            break;
        case 'm':
            cfg.max_body = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || cfg.max_body > (1ull << 40)) {
                fprintf(stderr, "%s: bad size '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'T':
            cfg.header_timeout = parse_seconds(argv[0], optarg);
            break;
        case 'k':
            cfg.idle_timeout = parse_seconds(argv[0], optarg);
            break;
        default:
            usage(argv[0], 2);
        }
    }
    if (argc - optind > 1)
        usage(argv[0], 2);
    example_loop_start(&opts, argv[0]);
    example_tls_ready(argv[0]);
    const char *dir = optind < argc ? argv[optind] : ".";
    cfg.root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfg.root_fd < 0) {
        perror(dir);
        return 1;
    }
    /* One line per request: a log that a crash cannot leave half-written. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int status = example_serve_workers(&opts, &server_ops, &cfg);
    close(cfg.root_fd);
    return status;
}
