/*
 * What the three files of examples/http_server share: the connection and the
 * request it is reading (http_server.c), the parsing helpers
 * (http_request.c) and the static files (http_files.c).  Not part of the
 * library.
 */
#ifndef EVC_EXAMPLE_HTTP_H
#define EVC_EXAMPLE_HTTP_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "evchat.h"

#define HTTP_MAX_HEAD 8192          /* request line + headers: more is 431 (or 414) */
#define HTTP_DEFAULT_MAX_BODY (1u << 20)

/* What the server was started with. */
typedef struct http_config {
    int root_fd;                    /* the served directory */
    uint64_t max_body;              /* -m: longer request bodies are 413 */
    double header_timeout;          /* -T: a head not finished in time is 408 */
    double idle_timeout;            /* -k: an idle keep-alive connection is closed */
    bool quiet;                     /* -q: no access log */
    /* The Date header, formatted once per second rather than once per answer. */
    time_t date_time;
    char date[40];
} http_config;

/* Where a connection is in reading its current request. */
typedef enum http_state {
    HTTP_REQUEST_LINE,              /* waiting for (or reading) a request line */
    HTTP_HEADERS,                   /* header lines until an empty one */
    HTTP_BODY,                      /* a Content-Length body (one count frame) */
    HTTP_CHUNK_SIZE,                /* a chunk-size line of a chunked body */
    HTTP_CHUNK_DATA,                /* chunk data and its CRLF (one count_then frame) */
    HTTP_TRAILERS,                  /* trailer lines after the last chunk */
    HTTP_DONE                       /* answered with a close: later input is ignored */
} http_state;

/* The request being read: only what the server acts on is kept. */
typedef struct http_request {
    char method[16];
    char target[HTTP_MAX_HEAD + 1]; /* as sent: path and query, percent-encoded */
    char line[HTTP_MAX_HEAD + 1];   /* the request line, for the access log */
    int minor;                      /* HTTP/1.<minor> */
    bool keep_alive;                /* from the version and Connection */
    bool has_length;
    uint64_t content_length;
    bool chunked;
    bool expect_continue;
    bool has_host;
    char range[128];                /* the Range value, or "" */
    time_t if_modified_since;       /* -1: none */
    size_t head_bytes;              /* request line and headers so far */
} http_request;

/* One client connection. */
typedef struct http_conn {
    evc_chat *chat;
    http_config *config;
    struct ev_loop *loop;
    http_state state;
    http_request req;
    char *body;                     /* a chunked request body, assembled */
    size_t body_len, body_cap;
    ev_timer timer;                 /* header (408) and keep-alive idle timeouts */
    ev_tstamp waiting_since;        /* when the connection began to wait for this request */
    bool lines;                     /* the terminator is the line one (not a body's) */
    bool answering;                 /* answers queued and not all written (handle_drained) */
    char peer[EVC_ADDRSTRLEN];      /* for the access log */
} http_conn;

/* --- http_request.c: parsing, all on single lines the chat has framed --- */

/* Parses "METHOD SP TARGET SP HTTP/1.x" into req.  0, or the status to answer
 * (400 malformed, 501 method not implemented, 505 version not supported). */
int http_parse_request_line(http_request *req, const char *line, size_t len);
/* Parses one header line ("Name: value") into req.  0, or the status to answer
 * (400 malformed or conflicting, 501 a transfer coding other than chunked). */
int http_parse_header(http_request *req, const char *line, size_t len);
/* Parses a chunk-size line ("1a;ext=1"): 0 and *size, or -1 when malformed. */
int http_parse_chunk_size(const char *line, size_t len, uint64_t *size);
/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate) of t into buf (at least 30 bytes). */
void http_format_date(time_t t, char *buf, size_t cap);
/* The reason phrase of a status code. */
const char *http_reason(int status);
/* Decodes a target's path (up to '?') into out: 0, or -1 when malformed (bad
 * escape, an encoded NUL, not starting with '/'). */
int http_decode_path(const char *target, char *out, size_t cap);

/* --- http_server.c: responses --- */

/* Pushes a status line and the common headers (Date, Server, Connection), then
 * `extra` (header lines each ending "\r\n", may be ""), then the blank line.
 * Logs the request with body_len.  0 or -errno. */
int http_respond_head(http_conn *conn, int status, const char *extra, uint64_t body_len);
/* A complete short answer with a text body (HEAD gets only the head).  An error
 * status closes the connection after the answer. */
void http_respond_text(http_conn *conn, int status, const char *text);

/* --- http_stream.c: the generated chunked body --- */

/* Answers GET or HEAD /stream?n=N (N lines, one chunk each; default 10). */
void http_answer_stream(http_conn *conn);

/* --- http_files.c: static files under the served directory --- */

/* Answers a GET or HEAD for the decoded path: 200, 206, 304, 403, 404 or 416. */
void http_serve_file(http_conn *conn, char *path);

#endif
