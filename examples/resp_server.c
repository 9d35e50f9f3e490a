/*
 * resp_server: a Redis-protocol (RESP2) key-value server on the chat layer.
 *
 * Redis' protocol is a line protocol with counted payloads, which is what the
 * chat's framings are for.  A request is either
 *
 *   - a multibulk: "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n": a count line,
 *     then per argument a length line and exactly that many bytes followed by
 *     CRLF.  The lines are CRLF lines; each payload is one count-then-CRLF frame
 *     (evc_chat_set_terminator_count_then(c, n, "\r\n", 2)), so a payload may
 *     hold any bytes, CRLF and NUL included, "$0" is an empty frame, and a
 *     payload not followed by CRLF is a framing error (-EPROTO);
 *   - an inline command, "PING\r\n" or "SET k v\n" typed into nc or telnet: one
 *     line (CRLF or LF), split at spaces, with redis' quoting rules.
 *
 * When a request begins, the server peeks at its first byte (evc_chat_peek)
 * to pick the framing: a '*' starts a multibulk, whose lines end in CRLF
 * strictly; anything else is an inline command, which may end in a bare LF.
 * When nothing is buffered yet, a one-byte frame (a count of 1) fetches that
 * first byte, so the choice is the same however TCP splits the input.
 *
 * Pipelined requests usually arrive many to a read.  When whole, well-formed
 * requests (multibulk, or inline without quotes) are already buffered, the
 * server runs them from the buffer in place (the arguments point into
 * evc_chat_peek's bytes, valid during the callback) and then skips them all
 * with one count frame, instead of one framing change per line and payload
 * and a copy of every argument.  Anything else
 * (a request still arriving, a malformed one, a limit crossed) takes the
 * framings above, so every error is found and worded in one place.
 *
 * Payloads stream straight into the argument's own buffer through
 * collect_incoming_data, so a 10 MB value is copied once, and SET hands that
 * buffer to the key space.  Lines go through the library's collector, whose
 * frame limit (64 KiB, redis' inline limit) ends a runaway line with
 * frame_too_long.  A payload length over -m (default 512 MiB, redis'
 * proto-max-bulk-len) is refused before any of it is read, so a client
 * cannot make the server allocate more than that per argument.
 *
 * A protocol error is answered "-ERR Protocol error: ..." and the connection
 * closes once that reply (and every reply before it) is written, as redis
 * does.  Pipelined requests are answered in order: each reply is pushed when
 * its request completes, and the push FIFO keeps the order.
 *
 * Try it:   examples/resp_server &   then   redis-cli -p 6379 set greeting hello
 *           redis-cli -p 6379 get greeting
 */
#include "common.h"
#include "resp_commands.h"
#include "resp_inline.h"
#include "resp_store.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PORT 6379
#define DEFAULT_MAX_BULK ((uint64_t)512 << 20)  /* redis' proto-max-bulk-len */
/* How long the loop gathers I/O before it handles any (libev's io_collect_interval).
 * A client that pipelines to many connections (redis-benchmark, a connection pool)
 * pays for every wake-up of a server that sleeps between its requests; 100
 * microseconds of gathering lets one wake-up serve many connections, at a cost of
 * at most that much latency.  Measured in bench/README.md (resp); 0 turns it off. */
#define DEFAULT_COLLECT_INTERVAL 0.0001
#define MAX_LINE (64 * 1024)                    /* redis' inline request limit */
#define MAX_MULTIBULK (1024 * 1024)             /* arguments in one request */
#define FIRST_ALLOCATION (1024 * 1024)          /* a payload's buffer grows past this as it comes */
#define PURGE_INTERVAL 1.0                      /* seconds between sweeps of expired keys */
#define IDLE_TIMEOUT 300.0                      /* seconds a client may stay silent */
#define FRAME_DEADLINE 60.0                     /* seconds for one line or bulk argument */
#define IN_PLACE_MAX_ARGS 16                    /* requests run from the buffer have no more */
#define LENGTH_LINE_MAX 21                      /* "*" or "$", a sign, 18 digits, "\r" */

/* One key space and its expiry sweep, per loop: with -w N / -W N every worker
 * has its own (see the usage text). */
struct server {
    resp_store *store;
    uint64_t max_bulk;
    double collect_interval;   /* --collect: seconds of I/O gathered per loop iteration */
    ev_timer purge;     /* sweeps expired keys every PURGE_INTERVAL */
};

enum conn_state {
    WANT_FIRST_BYTE,   /* the byte that tells a multibulk from an inline command */
    WANT_REQUEST,      /* a "*N" line or an inline command */
    WANT_BULK_HEADER,  /* a "$N" line */
    WANT_BULK,         /* the payload of the current argument */
    SKIP_REQUEST,      /* the bytes of a request already run from the buffer */
};

struct conn {
    struct server *server;
    enum conn_state state;
    int first_byte;        /* fetched by WANT_FIRST_BYTE for the request line; -1: none */
    resp_arg *argv;        /* the arguments received so far */
    size_t argc;
    size_t argv_cap;
    size_t expected;       /* arguments the multibulk announced */
    size_t bulk_len;       /* the current payload's announced length */
    size_t bulk_cap;       /* bytes allocated for it so far */
};

/* ---------------------------------------------------------------- arguments */

static void free_args(struct conn *conn)
{
    for (size_t i = 0; i < conn->argc; i++)
        free(conn->argv[i].p);
    conn->argc = 0;
}

/* Room for one more argument.  0 or -ENOMEM. */
static int reserve_arg(struct conn *conn)
{
    if (conn->argc < conn->argv_cap)
        return 0;
    size_t cap = conn->argv_cap ? conn->argv_cap * 2 : 8;
    resp_arg *argv = realloc(conn->argv, cap * sizeof *argv);
    if (!argv)
        return -ENOMEM;
    conn->argv = argv;
    conn->argv_cap = cap;
    return 0;
}

/* Appends a new argument of n bytes from bytes (NULL: uninitialised room for cap
 * bytes, to be filled by the payload).  0 or -ENOMEM. */
static int add_arg(struct conn *conn, const char *bytes, size_t n, size_t cap)
{
    if (reserve_arg(conn) < 0)
        return -ENOMEM;
    char *p = malloc(cap ? cap : 1);
    if (!p)
        return -ENOMEM;
    if (bytes)
        memcpy(p, bytes, n);
    conn->argv[conn->argc++] = (resp_arg){p, n, true};
    return 0;
}

/* ---------------------------------------------------------------- framing */

/* The request line's framing, chosen by its first byte. */
static void expect_request_line(evc_chat *c, struct conn *conn, char first)
{
    conn->state = WANT_REQUEST;
    evc_chat_set_terminator_line(c, first == '*' ? EVC_EOL_CRLF : EVC_EOL_CRLF_OR_LF);
}

static bool run_buffered_requests(evc_chat *c, struct conn *conn, const char *p, size_t n);

/* Sets the framing for the next request: see the top of the file. */
static void expect_request(evc_chat *c, struct conn *conn)
{
    size_t buffered;
    const char *next = evc_chat_peek(c, &buffered);
    conn->first_byte = -1;
    if (next) {
        if (!run_buffered_requests(c, conn, next, buffered))
            expect_request_line(c, conn, next[0]);
    } else {
        conn->state = WANT_FIRST_BYTE;
        evc_chat_set_terminator_count(c, 1);
    }
}

static void expect_bulk_header(evc_chat *c, struct conn *conn)
{
    conn->state = WANT_BULK_HEADER;
    evc_chat_set_terminator_line(c, EVC_EOL_CRLF);
}

/* Answers a malformed request and closes once every reply is written.  Requests
 * pipelined after it are never run. */
static void protocol_error(evc_chat *c, const char *what)
{
    char text[160];
    snprintf(text, sizeof text, "Protocol error: %s", what);
    resp_reply_error(c, text);
    evc_chat_close_when_done(c);
    evc_chat_pause_reading(c);
}

/* Parses the decimal after a "*" or "$": digits with an optional '-', nothing else,
 * at most 18 digits (no overflow possible). */
static bool parse_length(const char *text, size_t len, long long *out)
{
    bool negative = len > 0 && text[0] == '-';
    size_t i = negative;
    if (len == i || len - i > 18)
        return false;
    long long n = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        n = n * 10 + (text[i] - '0');
    }
    *out = negative ? -n : n;
    return true;
}

/* What follows a request that ran: the next one, or the close after QUIT. */
static void after_request(evc_chat *c, struct conn *conn, bool quit)
{
    if (evc_chat_closed(c))
        return;
    if (quit) {
        evc_chat_close_when_done(c);
        evc_chat_pause_reading(c);
        return;
    }
    expect_request(c, conn);
}

static void run_request(evc_chat *c, struct conn *conn)
{
    bool quit = resp_execute(c, conn->server->store, conn->argv, conn->argc);
    free_args(conn);
    after_request(c, conn, quit);
}

/* Reads a "<type><length>\r\n" line at *at (before end) and moves past it. */
static bool read_length_line(const char **at, const char *end, char type, long long *value)
{
    const char *p = *at;
    size_t avail = (size_t)(end - p);
    if (avail < 4 || p[0] != type)
        return false;
    const char *cr = memchr(p + 1, '\r', avail < LENGTH_LINE_MAX ? avail : LENGTH_LINE_MAX);
    if (!cr || cr + 1 == end || cr[1] != '\n' || !parse_length(p + 1, (size_t)(cr - p - 1), value))
        return false;
    *at = cr + 2;
    return true;
}

/* Parses the multibulk request at *at (before end) in place into argv (*argc
 * arguments pointing into the buffer) and moves past it.  false, *at unchanged, when
 * it is not all there, malformed, over a limit or has many arguments. */
static bool parse_in_place(const struct conn *conn, const char **at, const char *end,
                           resp_arg *argv, size_t *argc)
{
    const char *p = *at;
    long long count;
    if (!read_length_line(&p, end, '*', &count) || count < 1 || count > IN_PLACE_MAX_ARGS)
        return false;
    for (long long i = 0; i < count; i++) {
        long long len;
        if (!read_length_line(&p, end, '$', &len) || len < 0 ||
            (uint64_t)len > conn->server->max_bulk || (size_t)(end - p) < (size_t)len + 2 ||
            p[len] != '\r' || p[len + 1] != '\n')
            return false;
        argv[i] = (resp_arg){(char *)p, (size_t)len, false};
        p += len + 2;
    }
    *argc = (size_t)count;
    *at = p;
    return true;
}

/* The word separators of resp_split_inline (redis' isspace). */
static bool is_inline_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Splits the inline command at *at (before end) in place into argv, as
 * resp_split_inline would, and moves past its line; *argc is 0 for a blank line.
 * false, *at unchanged, when the line is not all there, is over the line limit, has
 * many words or any quote: quoting rewrites words, so resp_split_inline takes it. */
static bool split_inline_in_place(const char **at, const char *end, resp_arg *argv,
                                  size_t *argc)
{
    const char *p = *at;
    size_t avail = (size_t)(end - p);
    const char *eol = memchr(p, '\n', avail < MAX_LINE ? avail : MAX_LINE);
    if (!eol || memchr(p, '"', (size_t)(eol - p)) || memchr(p, '\'', (size_t)(eol - p)))
        return false;
    size_t n = 0;
    while (p < eol) {
        while (p < eol && is_inline_space(*p))
            p++;
        if (p == eol)
            break;
        const char *word = p;
        while (p < eol && !is_inline_space(*p))
            p++;
        if (n == IN_PLACE_MAX_ARGS)
            return false;
        argv[n++] = (resp_arg){(char *)word, (size_t)(p - word), false};
    }
    *argc = n;
    *at = eol + 1;
    return true;
}

/* The fast path (see the top of the file): runs, in place, the whole and well-formed
 * requests (multibulk, or inline without quotes) at the front of the n buffered bytes
 * at p, then arms one count frame that skips them all.  It stops early once a batch's
 * replies pass the output high-water mark, so that the library's back-pressure still
 * bounds them.  false: nothing was done, the framings take the request. */
static bool run_buffered_requests(evc_chat *c, struct conn *conn, const char *p, size_t n)
{
    resp_arg argv[IN_PLACE_MAX_ARGS];
    size_t argc;
    const char *at = p, *end = p + n;
    while (evc_chat_output_pending(c) < EVC_DEFAULT_HIGH_WATER && at < end &&
           (*at == '*' ? parse_in_place(conn, &at, end, argv, &argc)
                       : split_inline_in_place(&at, end, argv, &argc))) {
        if (argc == 0)
            continue;   /* a blank line is no request */
        bool quit = resp_execute(c, conn->server->store, argv, argc);
        if (evc_chat_closed(c) || quit) {
            after_request(c, conn, quit);
            return true;
        }
    }
    if (at == p)
        return false;
    conn->state = SKIP_REQUEST;
    evc_chat_set_terminator_count(c, (uint64_t)(at - p));
    return true;
}

/* ---------------------------------------------------------------- inline commands */

/* resp_split_inline's callback: each word becomes an owned argument. */
static int add_word(const char *word, size_t n, void *data)
{
    return add_arg(data, word, n, n);
}

static void inline_request(evc_chat *c, struct conn *conn, const char *line, size_t len)
{
    char *joined = NULL;
    if (conn->first_byte >= 0) {
        /* The line's first byte came alone: put it back in front. */
        joined = malloc(len + 1);
        if (!joined) {
            evc_chat_close(c);
            return;
        }
        joined[0] = (char)conn->first_byte;
        if (len > 0)
            memcpy(joined + 1, line, len);   /* an empty line has no bytes at all */
        line = joined;
        len++;
    }
    int rc = resp_split_inline(line, len, add_word, conn);
    free(joined);
    if (rc == -EINVAL) {
        free_args(conn);
        protocol_error(c, "unbalanced quotes in request");
    } else if (rc < 0) {
        evc_chat_close(c);
    } else if (conn->argc == 0) {
        expect_request(c, conn);   /* an empty line is no request */
    } else {
        run_request(c, conn);
    }
}

/* ---------------------------------------------------------------- chat callbacks */

static void on_first_byte(evc_chat *c, struct conn *conn, const char *byte, size_t len)
{
    if (len != 1 || byte[0] == '\n') {
        expect_request(c, conn);   /* a blank line is no request */
        return;
    }
    expect_request_line(c, conn, byte[0]);
    conn->first_byte = (unsigned char)byte[0];
}

static void on_request_line(evc_chat *c, struct conn *conn, const char *line, size_t len)
{
    bool multibulk = conn->first_byte >= 0 ? conn->first_byte == '*' : len > 0 && line[0] == '*';
    if (!multibulk) {
        inline_request(c, conn, line, len);
        return;
    }
    if (conn->first_byte < 0) {
        line++;   /* past the '*' */
        len--;
    }
    long long count;
    if (!parse_length(line, len, &count) || count > MAX_MULTIBULK) {
        protocol_error(c, "invalid multibulk length");
        return;
    }
    if (count <= 0) {
        expect_request(c, conn);   /* "*0" and "*-1" are empty requests: no reply */
        return;
    }
    conn->expected = (size_t)count;
    expect_bulk_header(c, conn);
}

static void on_bulk_header(evc_chat *c, struct conn *conn, const char *line, size_t len)
{
    if (len == 0 || line[0] != '$') {
        char what[40];
        snprintf(what, sizeof what, "expected '$', got '%c'", len ? line[0] : ' ');
        protocol_error(c, what);
        return;
    }
    long long n;
    if (!parse_length(line + 1, len - 1, &n) || n < 0 || (uint64_t)n > conn->server->max_bulk) {
        protocol_error(c, "invalid bulk length");
        return;
    }
    /* A large payload's buffer grows as bytes arrive, so a length alone costs little. */
    size_t cap = (size_t)n < FIRST_ALLOCATION ? (size_t)n : FIRST_ALLOCATION;
    if (add_arg(conn, NULL, 0, cap) < 0) {
        evc_chat_close(c);
        return;
    }
    conn->bulk_len = (size_t)n;
    conn->bulk_cap = cap ? cap : 1;
    conn->state = WANT_BULK;
    evc_chat_set_terminator_count_then(c, (uint64_t)n, "\r\n", 2);
}

static void collect(evc_chat *c, const char *bytes, size_t n, void *data)
{
    struct conn *conn = data;
    if (conn->state == SKIP_REQUEST)
        return;   /* a request that already ran */
    if (conn->state != WANT_BULK) {
        /* Lines: the library collects them and enforces the line limit. */
        if (evc_chat_collect(c, bytes, n) == -ENOMEM)
            evc_chat_close(c);
        return;
    }
    resp_arg *arg = &conn->argv[conn->argc - 1];
    if (arg->len + n > conn->bulk_cap) {
        size_t cap = conn->bulk_cap * 2;
        if (cap < arg->len + n)
            cap = arg->len + n;
        if (cap > conn->bulk_len)
            cap = conn->bulk_len;
        char *p = realloc(arg->p, cap);
        if (!p) {
            evc_chat_close(c);
            return;
        }
        arg->p = p;
        conn->bulk_cap = cap;
    }
    memcpy(arg->p + arg->len, bytes, n);
    arg->len += n;
}

static void found_terminator(evc_chat *c, void *data)
{
    struct conn *conn = data;
    size_t len = 0;
    const char *line = conn->state < WANT_BULK ? evc_chat_incoming(c, &len) : NULL;
    switch (conn->state) {
    case WANT_FIRST_BYTE:
        on_first_byte(c, conn, line, len);
        break;
    case WANT_REQUEST:
        on_request_line(c, conn, line, len);
        break;
    case WANT_BULK_HEADER:
        on_bulk_header(c, conn, line, len);
        break;
    case WANT_BULK:
        if (conn->argc == conn->expected)
            run_request(c, conn);
        else
            expect_bulk_header(c, conn);
        break;
    case SKIP_REQUEST:
        expect_request(c, conn);
        break;
    }
}

/* A line over the limit: the library closes the chat once this answer is written. */
static void line_too_long(evc_chat *c, void *data)
{
    struct conn *conn = data;
    resp_reply_error(c, conn->state == WANT_REQUEST ? "Protocol error: too big inline request"
                                                    : "Protocol error: too big bulk count string");
}

/* -EPROTO: a payload was not followed by CRLF.  The library drops the rest of the
 * input and closes once this answer is written. */
static void channel_error(evc_chat *c, int err, void *data)
{
    (void)data;
    if (err == -EPROTO)
        resp_reply_error(c, "Protocol error: expected CRLF after bulk string");
    else
        evc_chat_close(c);
}

static void conn_destroy(evc_chat *c, void *data)
{
    (void)c;
    struct conn *conn = data;
    free_args(conn);
    free(conn->argv);
    free(conn);
}

static const struct evc_chat_ops resp_channel = {
    .collect_incoming_data = collect,
    .found_terminator = found_terminator,
    .handle_error = channel_error,
    .frame_too_long = line_too_long,
    .on_destroy = conn_destroy,
};

static void accept_client(struct ev_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t len, void *data)
{
    (void)peer, (void)len;
    struct conn *conn = calloc(1, sizeof *conn);
    evc_chat *c = conn ? evc_chat_new(loop, fd, &resp_channel, conn) : NULL;
    if (!c) {
        free(conn);
        close(fd);
        return;
    }
    conn->server = data;
    evc_chat_set_max_frame(c, MAX_LINE);
    /* Like redis' normal clients, replies are not capped (MGET of big values); the
     * high-water mark still stops reading while a client does not read its replies. */
    evc_chat_set_output_limit(c, 0);
    evc_chat_set_timeout(c, IDLE_TIMEOUT);
    evc_chat_set_frame_deadline(c, FRAME_DEADLINE);
    expect_request(c, conn);
}

static void purge_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct server *server = w->data;
    resp_store_purge_expired(server->store, resp_store_now_ms());
}

/* A loop's key space (data: the settings from the command line). */
static int worker_setup(struct ev_loop *loop, unsigned index, void *data, void **worker_data)
{
    (void)index;
    const struct server *settings = data;
    struct server *server = calloc(1, sizeof *server);
    if (!server || !(server->store = resp_store_new())) {
        free(server);
        return -ENOMEM;
    }
    server->max_bulk = settings->max_bulk;
    ev_set_io_collect_interval(loop, settings->collect_interval);
    ev_timer_init(&server->purge, purge_expired, PURGE_INTERVAL, PURGE_INTERVAL);
    server->purge.data = server;
    ev_timer_start(loop, &server->purge);
    ev_unref(loop);   /* the sweep must not keep the loop alive once the server is closed */
    *worker_data = server;
    return 0;
}

static void worker_teardown(struct ev_loop *loop, unsigned index, void *worker_data, void *data)
{
    (void)index, (void)data;
    struct server *server = worker_data;
    ev_ref(loop);
    ev_timer_stop(loop, &server->purge);
    resp_store_free(server->store);
    free(server);
}

static const struct evc_worker_ops resp_server_ops = {
    .setup = worker_setup,
    .handle_accepted = accept_client,
    .teardown = worker_teardown,
};

/* ---------------------------------------------------------------- main */

/* "512mb", "10m", "1048576": a byte count with an optional k/m/g (binary) suffix. */
static bool parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case '\0': break;
    default: return false;
    }
    if (*end && end[1] && !((end[1] == 'b' || end[1] == 'B') && end[2] == '\0'))
        return false;
    if (n == 0 || n > (UINT64_MAX >> shift) || (n << shift) > SIZE_MAX / 2)
        return false;
    *out = (uint64_t)n << shift;
    return true;
}

/* getopt_long's value for --collect (long only; apart from the examples' shared ones). */
enum { OPT_COLLECT = 0x10C0 };

static void usage(const char *prog, int status)
{
    printf("usage: %s [-b ADDR] [-p PORT] [-w N | -W N] [-m BYTES]\n"
           "A Redis-protocol key-value server.  With -w or -W each worker has its own\n"
           "key space (like N redis-servers behind one address): a key set on one\n"
           "connection is seen only by connections the same worker serves.\n"
           "  -b, --bind ADDR        address (host, IP or unix:/path; default 127.0.0.1)\n"
           "  -p, --port PORT        port (default %d; 0 picks a free one)\n"
           "  -m, --max-bulk BYTES   longest argument, k/m/g suffixes allowed (default 512mb)\n"
           "      --collect SECONDS  gather I/O this long per loop iteration (default 0.0001;\n"
           "                         0: handle each event at once, lowest latency)\n"
           EXAMPLE_LOOP_HELP
           EXAMPLE_WORKERS_USAGE
           "  -h, --help             this text\n",
           prog, DEFAULT_PORT);
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'},
        {"max-bulk", required_argument, NULL, 'm'},
        {"collect", required_argument, NULL, OPT_COLLECT},
        EXAMPLE_LOOP_LONGOPTS,
        EXAMPLE_WORKERS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    example_opts opts = {.host = "127.0.0.1", .port = DEFAULT_PORT};
    struct server server = {.max_bulk = DEFAULT_MAX_BULK,
                            .collect_interval = DEFAULT_COLLECT_INTERVAL};
    int opt;
    while ((opt = getopt_long(argc, argv, "hb:p:m:" EXAMPLE_LOOP_SHORTOPTS EXAMPLE_WORKERS_OPTSTRING,
                              longopts, NULL)) != -1) {
        if (example_loop_option(&opts, opt, optarg, argv[0]))
            continue;
        char *end;
        if (example_parse_workers(&opts, opt, optarg, argv[0]))
            continue;
        switch (opt) {
        case 'h':
            usage(argv[0], 0);
            break;
        case 'b':
            opts.host = optarg;
            break;
        case 'p':
            opts.port = (int)strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || opts.port < 0 || opts.port > 65535) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case OPT_COLLECT:
            server.collect_interval = example_parse_seconds(argv[0], "collect interval", optarg);
            if (server.collect_interval > 1) {
                fprintf(stderr, "%s: a collect interval over 1 s would stall every client\n",
                        argv[0]);
                return 2;
            }
            break;
        case 'm':
            if (!parse_size(optarg, &server.max_bulk)) {
                fprintf(stderr, "%s: bad size '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "try '%s --help'\n", argv[0]);
            return 2;
        }
    }
    if (optind < argc)
        usage(argv[0], 2);
    example_loop_start(&opts, argv[0]);

    return example_serve_workers(&opts, &resp_server_ops, &server);
}
