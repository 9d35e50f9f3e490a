/*
 * Tests of the chat layer over real loopback sockets and a real loop: the
 * scenarios of CPython's test_asynchat (line, count and no terminators fed in
 * small chunks, the push FIFO, close_when_done, a terminator changed inside
 * found_terminator), then each deliberate fix over asynchat (no callback after
 * close, nothing lost at EOF, bounded frames and output), then lifetime.
 *
 * A peer is a plain socket driven from the test: a feeder timer sends in
 * chunks with pauses, a sink watcher collects what the chat writes.  Every
 * test ends by closing everything and checking the loop is empty.
 */
#include "support.h"
#include "evchat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* A recording chat: counts every callback, keeps every frame          */
/* ------------------------------------------------------------------ */

#define MAX_FRAMES 128

/* Where a recording chat closes itself. */
enum {
    CLOSE_IN_COLLECT = 1 << 0,
    CLOSE_IN_FOUND = 1 << 1,
    CLOSE_IN_TIMEOUT = 1 << 2,
    CLOSE_IN_CONNECT = 1 << 3,
    CLOSE_IN_ERROR = 1 << 4,
};

typedef struct rec rec;
struct rec {
    evc_chat *chat;
    evt_bytes cur;                 /* collected since the last found_terminator */
    evt_bytes all;                 /* everything collected */
    char *frames[MAX_FRAMES];
    size_t frame_len[MAX_FRAMES];
    const char *incoming_ptr[MAX_FRAMES];
    int n_frames;
    int n_collect, n_found, n_close, n_error, n_timeout, n_connect, n_destroy;
    int last_err;
    int late_calls;           /* callbacks made after the chat was closed or destroyed */
    evt_bytes at_close;            /* `all` as handle_close saw it */
    size_t want_all;          /* have_all turns true once `all` holds this many bytes */
    bool have_all;
    bool destroyed;
    unsigned close_in;        /* CLOSE_IN_* */
    bool keep_open;           /* handle_close and handle_error do not close */
    bool echo;                /* found_terminator pushes the frame and "\n" back */
    size_t max_pending;       /* largest evc_chat_output_pending seen in a callback */
    void (*found_hook)(rec *);
};

static void check_alive(rec *r, evc_chat *c)
{
    assert_ptr_equal(c, r->chat);
    if (r->destroyed || evc_chat_closed(c))
        r->late_calls++;
}

static void note_pending(rec *r)
{
    size_t p = evc_chat_output_pending(r->chat);
    if (p > r->max_pending)
        r->max_pending = p;
}

/* Keeps the first MAX_FRAMES frames; later ones are only counted (n_found). */
static void add_frame(rec *r, const char *p, size_t n, const char *where)
{
    if (r->n_frames == MAX_FRAMES)
        return;
    r->frames[r->n_frames] = malloc(n + 1);
    assert_non_null(r->frames[r->n_frames]);
    memcpy(r->frames[r->n_frames], p, n);
    r->frames[r->n_frames][n] = '\0';
    r->frame_len[r->n_frames] = n;
    r->incoming_ptr[r->n_frames] = where;
    r->n_frames++;
}

static void rec_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    rec *r = data;
    check_alive(r, c);
    assert_true(n > 0);
    r->n_collect++;
    evt_bytes_add(&r->cur, p, n);
    evt_bytes_add(&r->all, p, n);
    if (r->want_all && r->all.len >= r->want_all)
        r->have_all = true;
    if (r->close_in & CLOSE_IN_COLLECT)
        evc_chat_close(c);
}

static void after_found(rec *r, evc_chat *c, const char *frame, size_t len)
{
    if (r->echo) {
        assert_int_equal(evc_chat_push(c, frame, len), 0);
        assert_int_equal(evc_chat_push(c, "\n", 1), 0);
        note_pending(r);
    }
    if (r->found_hook)
        r->found_hook(r);
    if (r->close_in & CLOSE_IN_FOUND)
        evc_chat_close(c);
}

static void rec_found(evc_chat *c, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_found++;
    add_frame(r, r->cur.p ? r->cur.p : "", r->cur.len, NULL);
    after_found(r, c, r->cur.p ? r->cur.p : "", r->cur.len);
    evt_bytes_reset(&r->cur);
}

/* found_terminator for the default collector: the frame is evc_chat_incoming. */
static void rec_found_incoming(evc_chat *c, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_found++;
    size_t len = 12345;
    const char *p = evc_chat_incoming(c, &len);
    /* Nothing collected (an empty frame) is NULL, never a pointer with length 0. */
    assert_true((p == NULL) == (len == 0));
    if (!p)
        p = "";
    add_frame(r, p, len, p);
    after_found(r, c, p, len);
}

static void rec_close(evc_chat *c, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_close++;
    evt_bytes_add(&r->at_close, r->all.p ? r->all.p : "", r->all.len);
    if (!r->keep_open)
        evc_chat_close(c);
}

static void rec_error(evc_chat *c, int err, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_error++;
    r->last_err = err;
    if (!r->keep_open || (r->close_in & CLOSE_IN_ERROR))
        evc_chat_close(c);
}

static void rec_timeout(evc_chat *c, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_timeout++;
    if (r->close_in & CLOSE_IN_TIMEOUT)
        evc_chat_close(c);
}

static void rec_connect(evc_chat *c, void *data)
{
    rec *r = data;
    check_alive(r, c);
    r->n_connect++;
    if (r->close_in & CLOSE_IN_CONNECT)
        evc_chat_close(c);
}

static void rec_destroy(evc_chat *c, void *data)
{
    rec *r = data;
    assert_ptr_equal(c, r->chat);
    assert_false(r->destroyed);
    assert_true(evc_chat_closed(c));
    r->n_destroy++;
    r->destroyed = true;
}

static const struct evc_chat_ops rec_ops = {
    .collect_incoming_data = rec_collect,
    .found_terminator = rec_found,
    .handle_connect = rec_connect,
    .handle_close = rec_close,
    .handle_error = rec_error,
    .handle_timeout = rec_timeout,
    .on_destroy = rec_destroy,
};

/* The default collector: no collect_incoming_data. */
static const struct evc_chat_ops incoming_ops = {
    .found_terminator = rec_found_incoming,
    .handle_close = rec_close,
    .handle_error = rec_error,
    .on_destroy = rec_destroy,
};

/* Every default: handle_close, handle_error and handle_timeout are NULL. */
static const struct evc_chat_ops default_ops = {
    .collect_incoming_data = rec_collect,
    .found_terminator = rec_found,
    .on_destroy = rec_destroy,
};

static evc_chat *rec_new(rec *r, struct ev_loop *loop, int fd, const struct evc_chat_ops *ops)
{
    r->chat = evc_chat_new(loop, fd, ops, r);
    assert_non_null(r->chat);
    assert_ptr_equal(evc_chat_data(r->chat), r);
    return r->chat;
}

static void rec_free(rec *r)
{
    for (int i = 0; i < r->n_frames; i++)
        free(r->frames[i]);
    evt_bytes_free(&r->cur);
    evt_bytes_free(&r->all);
    evt_bytes_free(&r->at_close);
    assert_int_equal(r->late_calls, 0);
}

static void assert_frames(const rec *r, const char *const *want, int n)
{
    assert_int_equal(r->n_frames, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r->frame_len[i], strlen(want[i]));
        assert_memory_equal(r->frames[i], want[i], strlen(want[i]) + 1);
    }
}

/* ------------------------------------------------------------------ */
/* Peers: a chunked feeder, a sink, and loop plumbing                  */
/* ------------------------------------------------------------------ */

static struct ev_loop *new_loop(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    return loop;
}

/* Closes what is left, and checks nothing remains on the loop. */
static void finish_loop(struct ev_loop *loop)
{
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void set_nodelay(int fd)
{
    int on = 1;
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), 0);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* Sends `data` chunk bytes at a time, one chunk per tick, then optionally shuts down. */
typedef struct feeder {
    ev_timer w;
    struct ev_loop *loop;
    int fd;
    const char *data;
    size_t len, pos, chunk;
    bool shut_after;
    bool done;
} feeder;

static void feeder_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    feeder *f = w->data;
    (void)revents;
    size_t n = f->len - f->pos < f->chunk ? f->len - f->pos : f->chunk;
    evt_send_all(f->fd, f->data + f->pos, n);
    f->pos += n;
    if (f->pos == f->len) {
        ev_timer_stop(loop, w);
        if (f->shut_after)
            shutdown(f->fd, SHUT_WR);
        f->done = true;
    }
}

static void feeder_start(feeder *f, struct ev_loop *loop, int fd, const char *data, size_t len,
                         size_t chunk, double pause)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->fd = fd;
    f->data = data;
    f->len = len;
    f->chunk = chunk;
    ev_timer_init(&f->w, feeder_cb, pause, pause);
    f->w.data = f;
    ev_timer_start(loop, &f->w);
}

static void feeder_stop(feeder *f)
{
    ev_timer_stop(f->loop, &f->w);
}

/* Collects everything the chat writes to the peer fd, from the loop. */
typedef struct sink {
    ev_io w;
    struct ev_loop *loop;
    evt_bytes got;
    size_t want;
    bool have;     /* got.len >= want, or EOF */
    bool eof;
} sink;

static void sink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sink *s = w->data;
    (void)revents;
    char tmp[65536];
    for (;;) {
        ssize_t n = recv(w->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            evt_bytes_add(&s->got, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        s->eof = true;
        ev_io_stop(loop, w);
        break;
    }
    if (s->got.len >= s->want || s->eof)
        s->have = true;
}

static void sink_start(sink *s, struct ev_loop *loop, int fd, size_t want)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->want = want;
    ev_io_init(&s->w, sink_cb, fd, EV_READ);
    s->w.data = s;
    ev_io_start(loop, &s->w);
}

/* Runs the loop until the sink holds want bytes (or EOF); asserts it got there. */
static void sink_wait(sink *s, size_t want)
{
    s->want = want;
    s->have = s->got.len >= want || s->eof;
    assert_true(evt_run_until(s->loop, &s->have, 10.0));
}

static void sink_stop(sink *s)
{
    ev_io_stop(s->loop, &s->w);
    evt_bytes_free(&s->got);
}

/* A port on 127.0.0.1 with nobody listening. */
static void closed_port(struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *sin;
    assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof *sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
    close(fd);
}

/* A blocking listener on 127.0.0.1, port chosen by the kernel. */
static int listener(struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *sin;
    assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof *sin), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
    return fd;
}

/* Waits up to a second for fd to have something (or EOF) to read. */
static bool peer_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 1000) == 1;
}

/* ------------------------------------------------------------------ */
/* Terminators: asynchat's line, numeric and none tests                */
/* ------------------------------------------------------------------ */

static void line_case(const char *term, size_t chunk)
{
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nodelay(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, term), 0);

    char msg[128];
    snprintf(msg, sizeof msg, "hello world%sI'm not dead yet!%s", term, term);
    feeder f;
    feeder_start(&f, loop, fds[0], msg, strlen(msg), chunk, 0.001);
    assert_true(evt_run_until(loop, &f.done, 10.0));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    evt_run_for(loop, 0.01);

    static const char *const want[] = {"hello world", "I'm not dead yet!"};
    assert_frames(&r, want, 2);
    assert_int_equal(r.n_close + r.n_error, 0);

    feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    rec_free(&r);
}

static void test_line_terminators_in_small_chunks(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "qqq"};
    for (size_t t = 0; t < 3; t++)
        for (size_t chunk = 1; chunk <= 3; chunk++)
            line_case(terms[t], chunk);
}

static const char numeric_msg[] = "hello world, I'm not dead yet!\n";

static void count_case(uint64_t n, size_t chunk)
{
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nodelay(fds[0]);
    rec r = {.want_all = strlen(numeric_msg)};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator_count(c, n), 0);

    feeder f;
    feeder_start(&f, loop, fds[0], numeric_msg, strlen(numeric_msg), chunk, 0.001);
    assert_true(evt_run_until(loop, &r.have_all, 10.0));
    evt_run_for(loop, 0.01);

    /* Nothing of a count terminator is dropped: every byte is collected. */
    assert_int_equal(r.all.len, strlen(numeric_msg));
    assert_string_equal(r.all.p, numeric_msg);
    if (n == 0) {
        /* A count of 0 is an empty frame (asynchat: none); the rest is data. */
        assert_int_equal(r.n_found, 1);
        assert_int_equal(r.frame_len[0], 0);
    } else {
        assert_int_equal(r.n_found, 1);
        assert_int_equal(r.frame_len[0], n);
        assert_memory_equal(r.frames[0], numeric_msg, n);
        /* After the count ran out, the rest behaves like no terminator. */
        assert_string_equal(r.cur.p, numeric_msg + n);
    }
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 0);

    feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    rec_free(&r);
}

static void test_count_terminators(void **state)
{
    (void)state;
    count_case(1, 31);
    count_case(1, 1);
    count_case(6, 31);
    count_case(6, 2);
    count_case(0, 31);
    count_case(0, 3);
}

static void test_no_terminator_collects_everything(void **state)
{
    (void)state;
    static const char msg[] = "hello\nworld\r\nqqq and no end";
    for (int variant = 0; variant < 3; variant++) {
        struct ev_loop *loop = new_loop();
        int fds[2];
        evt_tcp_pair(fds);
        rec r = {.want_all = strlen(msg)};
        evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
        /* The default, the empty C string, and an explicit none. */
        assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
        if (variant == 0)
            evc_chat_set_terminator_none(c);
        else if (variant == 1)
            assert_int_equal(evc_chat_set_terminator(c, ""), 0);
        else
            assert_int_equal(evc_chat_set_terminator_bytes(c, "x", 0), 0);
        assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);

        feeder f;
        feeder_start(&f, loop, fds[0], msg, strlen(msg), 4, 0.001);
        assert_true(evt_run_until(loop, &r.have_all, 10.0));
        assert_string_equal(r.all.p, msg);
        assert_int_equal(r.n_found, 0);

        feeder_stop(&f);
        evc_chat_close(c);
        close(fds[0]);
        finish_loop(loop);
        rec_free(&r);
    }
}

static void test_terminator_starts_as_none(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.want_all = 6};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);
    evt_send_all(fds[0], S("a\nb\r\n"));
    evt_send_all(fds[0], S("c"));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    assert_string_equal(r.all.p, "a\nb\r\nc");
    assert_int_equal(r.n_found, 0);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_empty_lines_call_found_without_collect(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);

    evt_send_all(fds[0], S("\r\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    assert_int_equal(r.n_collect, 0);
    assert_int_equal(r.frame_len[0], 0);

    evt_send_all(fds[0], S("a\r\n\r\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 3, 5.0));
    static const char *const want[] = {"", "a", ""};
    assert_frames(&r, want, 3);
    assert_int_equal(r.n_collect, 1);

    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_binary_terminator_with_nul(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator_bytes(c, "\0\1", 2), 0);
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 2);
    assert_memory_equal(t.bytes, "\0\1", 2);

    evt_send_all(fds[0], S("ab\0\1\0c\0\1"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    assert_int_equal(r.frame_len[0], 2);
    assert_memory_equal(r.frames[0], "ab", 2);
    assert_int_equal(r.frame_len[1], 2);
    assert_memory_equal(r.frames[1], "\0c", 2);

    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_default_collector_in_place_and_assembled(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nodelay(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &incoming_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);

    /* Two frames in one read: both handed over in place, back to back in the
     * read buffer, so the second starts right after the first and its "\n". */
    evt_send_all(fds[0], S("hello\nworld!\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    static const char *const want2[] = {"hello", "world!"};
    assert_frames(&r, want2, 2);
    assert_ptr_equal(r.incoming_ptr[1], r.incoming_ptr[0] + 6);

    /* A frame spread over many reads is assembled whole. */
    static const char spread[] = "spanning several reads\n";
    feeder f;
    feeder_start(&f, loop, fds[0], spread, strlen(spread), 2, 0.002);
    assert_true(evt_run_until_count(loop, &r.n_found, 3, 10.0));
    assert_string_equal(r.frames[2], "spanning several reads");

    /* An empty frame. */
    evt_send_all(fds[0], S("\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 4, 5.0));
    assert_int_equal(r.frame_len[3], 0);
    assert_int_equal(r.n_collect, 0);

    feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

/* ------------------------------------------------------------------ */
/* The push FIFO                                                       */
/* ------------------------------------------------------------------ */

static void count_release(void *arg)
{
    (*(int *)arg)++;
}

/* A producer that answers EVC_NOT_YET until the test makes it ready. */
typedef struct slow_prod {
    bool ready;
    int asked;          /* more() calls */
    int not_yet;        /* EVC_NOT_YET answers */
    int handed;         /* chunks handed out */
    int destroyed;
    const char *text;
} slow_prod;

static ssize_t slow_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    slow_prod *s = data;
    (void)p;
    s->asked++;
    if (!s->ready) {
        s->not_yet++;
        return EVC_NOT_YET;
    }
    if (s->handed > 0)
        return 0;
    size_t n = strlen(s->text);
    assert_true(cap >= n);
    memcpy(buf, s->text, n);
    s->handed++;
    return (ssize_t)n;
}

static void slow_destroy(evc_producer *p, void *data)
{
    slow_prod *s = data;
    (void)p;
    s->destroyed++;
}

static const struct evc_producer_ops slow_ops = {
    .more = slow_more,
    .on_destroy = slow_destroy,
};

/* A producer that says "not yet" once, but resumes itself before answering. */
typedef struct self_resuming {
    evc_chat *chat;
    int asked;
} self_resuming;

static ssize_t self_resuming_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    self_resuming *s = data;
    (void)p;
    s->asked++;
    if (s->asked == 1) {
        evc_chat_resume(s->chat);   /* "I will have more at once" */
        return EVC_NOT_YET;
    }
    if (s->asked == 2) {
        assert_true(cap >= 5);
        memcpy(buf, "ready", 5);
        return 5;
    }
    return 0;
}

static const struct evc_producer_ops self_resuming_ops = {.more = self_resuming_more};

static void test_resume_inside_more_is_not_lost(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nonblock(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    self_resuming sr = {.chat = c};
    evc_producer *p = evc_producer_new(&self_resuming_ops, &sr);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    assert_int_equal(evc_chat_push_str(c, "!"), 0);

    sink k;
    sink_start(&k, loop, fds[0], 6);
    sink_wait(&k, 6);
    assert_memory_equal(k.got.p, "ready!", 6);
    sink_stop(&k);

    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_write_failure_honours_close_when_done(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.keep_open = true};      /* handle_close does not close */
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    evt_close_reset(fds[0]);          /* the peer is gone: the write fails */
    /* handle_close for the reset proves the kernel has it: from now on every
     * write on the socket fails (EPIPE), so the close marker can never be
     * reached by writing the bytes in front of it. */
    assert_true(evt_run_until_count(loop, &r.n_close, 1, 5.0));
    assert_false(evc_chat_closed(c));
    assert_int_equal(evc_chat_push_str(c, "nobody will read this"), 0);
    assert_int_equal(evc_chat_output_pending(c), strlen("nobody will read this"));
    evc_chat_close_when_done(c);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    /* Closed by the failed write, with no second handle_close and no error. */
    assert_int_equal(r.n_close, 1);
    assert_int_equal(r.n_error, 0);
    finish_loop(loop);
    rec_free(&r);
}

static void test_push_flavours_in_one_fifo(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nonblock(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);

    char longtext[301];
    for (size_t i = 0; i < 300; i++)
        longtext[i] = (char)('a' + i % 26);
    longtext[300] = '\0';
    static const char refbytes[] = "[by reference]";
    static const char simple[] = "simple producer text, longer than eight";
    int released = 0;
    slow_prod slow = {.text = "<slow>"};

    evt_bytes want = {0};
    assert_int_equal(evc_chat_push(c, S("push;")), 0);
    evt_bytes_adds(&want, "push;");
    assert_int_equal(evc_chat_push_str(c, "str;"), 0);
    evt_bytes_adds(&want, "str;");
    assert_int_equal(evc_chat_pushf(c, "%d-%s;", 42, longtext), 0);
    evt_bytes_adds(&want, "42-");
    evt_bytes_adds(&want, longtext);
    evt_bytes_adds(&want, ";");
    assert_int_equal(evc_chat_push_ref(c, S(refbytes), count_release, &released), 0);
    evt_bytes_adds(&want, refbytes);
    evc_producer *sp = evc_simple_producer_new(S(simple), 8);
    assert_non_null(sp);
    assert_int_equal(evc_chat_push_with_producer(c, sp), 0);
    evt_bytes_adds(&want, simple);
    size_t before_slow = want.len;
    evc_producer *slp = evc_producer_new(&slow_ops, &slow);
    assert_non_null(slp);
    assert_int_equal(evc_chat_push_with_producer(c, slp), 0);
    evt_bytes_adds(&want, slow.text);
    assert_int_equal(evc_chat_push_str(c, ";tail"), 0);
    evt_bytes_adds(&want, ";tail");
    assert_true(evc_chat_output_pending(c) > 0);
    assert_int_equal(released, 0);   /* nothing is sent before the loop runs */

    /* Pushed from outside any callback: written before the loop sleeps. */
    sink s;
    sink_start(&s, loop, fds[0], before_slow);
    sink_wait(&s, before_slow);
    evt_run_for(loop, 0.05);
    /* The stalled producer holds back everything behind it. */
    assert_int_equal(s.got.len, before_slow);
    assert_memory_equal(s.got.p, want.p, before_slow);
    assert_int_equal(released, 1);
    assert_true(slow.not_yet >= 1);
    /* Waiting on a producer must not spin: a handful of asks, not thousands. */
    assert_true(slow.asked < 10);

    slow.ready = true;
    evc_chat_resume(c);
    sink_wait(&s, want.len);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, want.len);
    assert_memory_equal(s.got.p, want.p, want.len);
    assert_int_equal(slow.destroyed, 1);
    assert_int_equal(released, 1);
    assert_int_equal(evc_chat_output_pending(c), 0);

    sink_stop(&s);
    evt_bytes_free(&want);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    assert_int_equal(released, 1);
    assert_int_equal(slow.destroyed, 1);
    assert_int_equal(r.n_destroy, 1);
    rec_free(&r);
}

static void test_ref_release_on_close_and_discard(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    int fds2[2];
    evt_tcp_pair(fds2);
    rec r = {0}, r2 = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    evc_chat *c2 = rec_new(&r2, loop, fds2[1], &rec_ops);
    int released = 0, released2 = 0;
    slow_prod p1 = {.text = "x"}, p2 = {.text = "y"};

    /* Closed before anything was written: released and destroyed exactly once. */
    assert_int_equal(evc_chat_push_ref(c, S("never sent"), count_release, &released), 0);
    assert_int_equal(evc_chat_push_with_producer(c, evc_producer_new(&slow_ops, &p1)), 0);
    evc_chat_close(c);
    evc_chat_close(c);
    /* Pushes into a closed chat fail, and the caller keeps what it offered. */
    int late = 0;
    assert_int_equal(evc_chat_push_ref(c, S("late"), count_release, &late), -EPIPE);
    assert_int_equal(evc_chat_push(c, S("late")), -EPIPE);
    evc_producer *kept = evc_producer_new(&slow_ops, &p2);
    assert_int_equal(evc_chat_push_with_producer(c, kept), -EPIPE);
    evc_producer_free(kept);
    assert_int_equal(p2.destroyed, 1);
    assert_int_equal(late, 0);

    /* Discarded: released and destroyed, nothing reaches the peer, the chat lives on. */
    assert_int_equal(evc_chat_push(c2, S("dropped copy;")), 0);
    assert_int_equal(evc_chat_push_ref(c2, S("dropped ref;"), count_release, &released2), 0);
    assert_int_equal(evc_chat_push_with_producer(c2, evc_producer_new(&slow_ops, &p1)), 0);
    evc_chat_discard_buffers(c2);
    assert_int_equal(released2, 1);
    assert_int_equal(evc_chat_output_pending(c2), 0);
    assert_int_equal(evc_chat_push_str(c2, "after discard"), 0);

    set_nonblock(fds2[0]);
    sink s;
    sink_start(&s, loop, fds2[0], 13);
    sink_wait(&s, 13);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, 13);
    assert_memory_equal(s.got.p, "after discard", 13);
    sink_stop(&s);

    evc_chat_close(c2);
    finish_loop(loop);
    assert_int_equal(released, 1);
    assert_int_equal(released2, 1);
    assert_int_equal(p1.destroyed, 2);
    assert_int_equal(r.n_destroy, 1);
    assert_int_equal(r2.n_destroy, 1);
    /* The peer of the closed chat saw the end, and none of the dropped bytes. */
    char buf[16];
    assert_true(peer_readable(fds[0]));
    assert_int_equal(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    close(fds[0]);
    close(fds2[0]);
    rec_free(&r);
    rec_free(&r2);
}

static void test_close_when_done_flushes_then_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nonblock(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);

    size_t big_len = 200000;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('A' + i % 23);
    evt_bytes want = {0};
    assert_int_equal(evc_chat_push_str(c, "head;"), 0);
    evt_bytes_adds(&want, "head;");
    evc_producer *p = evc_simple_producer_new(big, big_len, 100);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    evt_bytes_add(&want, big, big_len);
    int released = 0;
    assert_int_equal(evc_chat_push_ref(c, S(";ref"), count_release, &released), 0);
    evt_bytes_adds(&want, ";ref");
    evc_chat_close_when_done(c);

    /* Nothing can be queued behind the close. */
    int late = 0;
    assert_int_equal(evc_chat_push(c, S("x")), -EPIPE);
    assert_int_equal(evc_chat_push_str(c, "x"), -EPIPE);
    assert_int_equal(evc_chat_pushf(c, "%s", "x"), -EPIPE);
    assert_int_equal(evc_chat_push_ref(c, S("x"), count_release, &late), -EPIPE);
    evc_producer *kept = evc_simple_producer_new(S("x"), 0);
    assert_int_equal(evc_chat_push_with_producer(c, kept), -EPIPE);
    evc_producer_free(kept);
    evc_chat_close_when_done(c);   /* twice is once */

    sink s;
    sink_start(&s, loop, fds[0], SIZE_MAX);
    assert_true(evt_run_until(loop, &s.eof, 10.0));
    assert_int_equal(s.got.len, want.len);
    assert_memory_equal(s.got.p, want.p, want.len);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(released, 1);
    assert_int_equal(late, 0);
    assert_int_equal(r.n_close + r.n_error, 0);

    sink_stop(&s);
    evt_bytes_free(&want);
    free(big);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

/* ------------------------------------------------------------------ */
/* A "line, then N bytes" protocol: terminator changed in found        */
/* ------------------------------------------------------------------ */

static void len_protocol_hook(rec *r)
{
    evc_chat *c = r->chat;
    evc_terminator t = evc_chat_get_terminator(c);
    if (t.kind == EVC_TERM_BYTES) {
        unsigned n = 0;
        assert_int_equal(sscanf(r->frames[r->n_frames - 1], "LEN %u", &n), 1);
        assert_int_equal(evc_chat_set_terminator_count(c, n), 0);
    } else {
        assert_int_equal(t.kind, EVC_TERM_COUNT);
        assert_int_equal(t.count, 0);
        assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);
    }
}

static void test_terminator_changed_in_found_applies_to_buffered(void **state)
{
    (void)state;
    static const char msg[] = "LEN 5\r\nhelloLEN 2\r\nhiLEN 0\r\n";
    static const size_t chunks[] = {1, 2, 3, 0};   /* 0: all at once */
    for (size_t k = 0; k < ARRAY_LEN(chunks); k++) {
        size_t chunk = chunks[k];
        struct ev_loop *loop = new_loop();
        int fds[2];
        evt_tcp_pair(fds);
        set_nodelay(fds[0]);
        rec r = {.found_hook = len_protocol_hook};
        evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
        assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);

        if (chunk == 0) {
            /* All of it in one read: the count applies to bytes already buffered. */
            evt_send_all(fds[0], S(msg));
        } else {
            feeder f;
            feeder_start(&f, loop, fds[0], msg, strlen(msg), chunk, 0.001);
            assert_true(evt_run_until(loop, &f.done, 10.0));
            feeder_stop(&f);
        }
        assert_true(evt_run_until_count(loop, &r.n_found, 6, 5.0));
        evt_run_for(loop, 0.01);
        /* "LEN 0" sets count 0, an empty frame at once (asynchat: none, which
         * swallowed the rest of the connection). */
        static const char *const want[] = {"LEN 5", "hello", "LEN 2", "hi", "LEN 0", ""};
        assert_frames(&r, want, 6);

        evc_chat_close(c);
        close(fds[0]);
        finish_loop(loop);
        rec_free(&r);
    }
}

static void test_get_terminator_and_setters_reject_null(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.want_all = 4};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);

    assert_int_equal(evc_chat_set_terminator(c, "\r\n\r\n"), 0);
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 4);
    assert_memory_equal(t.bytes, "\r\n\r\n", 4);

    /* Rejected setters leave the terminator alone. */
    assert_int_equal(evc_chat_set_terminator(c, NULL), -EINVAL);
    assert_int_equal(evc_chat_set_terminator(NULL, "\n"), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_bytes(c, NULL, 3), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_bytes(NULL, "\n", 1), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_count(NULL, 3), -EINVAL);
    evc_chat_set_terminator_none(NULL);
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 4);

    /* The terminator is a copy: the caller's buffer may change. */
    char mine[] = "END";
    assert_int_equal(evc_chat_set_terminator_bytes(c, mine, 3), 0);
    mine[0] = 'X';
    t = evc_chat_get_terminator(c);
    assert_memory_equal(t.bytes, "END", 3);

    /* A count shows what is still to come. */
    assert_int_equal(evc_chat_set_terminator_count(c, 10), 0);
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 10);
    evt_send_all(fds[0], S("abcd"));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 6);
    assert_int_equal(r.n_found, 0);

    evc_chat_set_terminator_none(c);
    assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);

    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_new_rejects_bad_fds(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec r = {0};
    errno = 0;
    assert_null(evc_chat_new(loop, -2, &rec_ops, &r));
    assert_int_equal(errno, EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    errno = 0;
    assert_null(evc_chat_new(loop, p[0], &rec_ops, &r));
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_null(evc_chat_new(NULL, -1, &rec_ops, &r));
    assert_int_equal(errno, EINVAL);
    finish_loop(loop);
    /* A failed constructor calls nothing. */
    assert_int_equal(r.n_destroy, 0);
}

/* ------------------------------------------------------------------ */
/* Client mode                                                         */
/* ------------------------------------------------------------------ */

static void test_client_connect_flushes_early_pushes(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    struct sockaddr_in sin;
    int lfd = listener(&sin);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, -1, &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_push_str(c, "early\n"), 0);
    evt_run_for(loop, 0.01);   /* no fd yet: the push waits, nothing breaks */
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin) < 0, 1);
    assert_int_equal(evc_chat_pushf(c, "%s\n", "second"), 0);
    assert_true(evt_run_until_count(loop, &r.n_connect, 1, 5.0));

    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    set_nonblock(peer);
    sink s;
    sink_start(&s, loop, peer, 13);
    sink_wait(&s, 13);
    assert_int_equal(s.got.len, 13);
    assert_memory_equal(s.got.p, "early\nsecond\n", 13);

    struct sockaddr_storage ss;
    socklen_t sslen;
    assert_int_equal(evc_chat_peer_address(c, &ss, &sslen), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, sin.sin_port);

    evt_send_all(peer, S("reply\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    assert_string_equal(r.frames[0], "reply");
    assert_int_equal(r.n_connect, 1);
    assert_int_equal(r.n_error, 0);

    sink_stop(&s);
    evc_chat_close(c);
    close(peer);
    close(lfd);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    rec_free(&r);
}

static void test_client_connect_refused_reports_error(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    struct sockaddr_in sin;
    closed_port(&sin);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, -1, &rec_ops);
    assert_int_equal(evc_chat_push_str(c, "never\n"), 0);
    int rc = evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin);
    if (rc == 0) {
        assert_true(evt_run_until_count(loop, &r.n_error, 1, 5.0));
        assert_int_equal(r.last_err, -ECONNREFUSED);
        assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    } else {
        /* A synchronous failure: no callback follows. */
        assert_int_equal(rc, -ECONNREFUSED);
        evt_run_for(loop, 0.05);
        assert_int_equal(r.n_error, 0);
        evc_chat_close(c);
    }
    assert_int_equal(r.n_connect, 0);
    assert_int_equal(r.n_close, 0);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    rec_free(&r);
}

/* ------------------------------------------------------------------ */
/* The deliberate fixes over asynchat                                  */
/* ------------------------------------------------------------------ */

static void test_close_in_found_stops_buffered_frames(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.close_in = CLOSE_IN_FOUND};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    /* Sent before the loop runs, so all three frames arrive in one read. */
    evt_send_all(fds[0], S("one\ntwo\nthree\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_found, 1);
    assert_int_equal(r.n_collect, 1);
    assert_string_equal(r.frames[0], "one");
    assert_int_equal(r.n_close + r.n_error + r.n_timeout, 0);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_close_in_collect_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.close_in = CLOSE_IN_COLLECT};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evt_send_all(fds[0], S("one\ntwo\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_collect, 1);
    assert_int_equal(r.n_found + r.n_close + r.n_error, 0);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_close_in_error_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.close_in = CLOSE_IN_ERROR, .keep_open = true};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evc_chat_set_max_frame(c, 4);
    evt_send_all(fds[0], S("0123456789\nok\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    assert_int_equal(r.n_found + r.n_close, 0);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_close_in_connect_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    struct sockaddr_in sin;
    int lfd = listener(&sin);
    rec r = {.close_in = CLOSE_IN_CONNECT};
    evc_chat *c = rec_new(&r, loop, -1, &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_push_str(c, "queued\n"), 0);
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    /* The peer speaks first and hangs up before the chat hears of its connect. */
    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    evt_send_all(peer, S("hello\n"));
    shutdown(peer, SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_connect, 1);
    assert_int_equal(r.n_collect + r.n_found + r.n_close + r.n_error, 0);
    /* Closed inside handle_connect: the queued push was dropped, not sent (the
     * unread "hello" makes the close a reset). */
    char buf[16];
    assert_true(peer_readable(peer));
    assert_true(recv(peer, buf, sizeof buf, MSG_DONTWAIT) <= 0);
    close(peer);
    close(lfd);
    finish_loop(loop);
    rec_free(&r);
}

static void held_prefix_case(const char *term, const char *sent, bool full_close)
{
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, term), 0);
    evt_send_all(fds[0], sent, strlen(sent));
    if (full_close)
        close(fds[0]);
    else
        shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_close, 1, 5.0));
    /* Everything the peer sent was collected before handle_close. */
    assert_int_equal(r.at_close.len, strlen(sent));
    assert_memory_equal(r.at_close.p, sent, strlen(sent));
    assert_int_equal(r.n_found, 0);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    if (!full_close)
        close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_held_prefix_delivered_at_eof(void **state)
{
    (void)state;
    held_prefix_case("\r\n", "abc\r", false);
    held_prefix_case("\r\n", "abc\r", true);
    held_prefix_case("\r\n\r\n", "GET / HTTP/1.0\r\n\r", false);
    held_prefix_case("qqq", "abqq", false);
    held_prefix_case("\n", "no newline at all", false);
}

static void test_default_close_on_eof_writes_pending_replies(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nonblock(fds[0]);
    rec r = {.echo = true};
    evc_chat *c = rec_new(&r, loop, fds[1], &default_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    /* The peer sends a request and half-closes: the reply still arrives, then EOF. */
    evt_send_all(fds[0], S("ping\n"));
    shutdown(fds[0], SHUT_WR);
    sink s;
    sink_start(&s, loop, fds[0], SIZE_MAX);
    assert_true(evt_run_until(loop, &s.eof, 5.0));
    assert_int_equal(s.got.len, 5);
    assert_memory_equal(s.got.p, "ping\n", 5);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    sink_stop(&s);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_oversized_frame_fails_only_that_channel(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2], other[2];
    evt_tcp_pair(fds);
    evt_tcp_pair(other);
    set_nonblock(other[0]);
    /* Even a handle_error that keeps the chat open cannot keep this one. */
    rec r = {.keep_open = true}, r2 = {.echo = true};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    evc_chat *c2 = rec_new(&r2, loop, other[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_set_terminator(c2, "\n"), 0);
    evc_chat_set_max_frame(c, 16);
    evc_chat_set_max_frame(c2, 16);

    /* Exactly at the limit is fine; past it is not. */
    evt_send_all(fds[0], S("0123456789abcdef\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    assert_int_equal(r.n_error, 0);
    evt_send_all(fds[0], S("0123456789abcdefg"));
    assert_true(evt_run_until_count(loop, &r.n_error, 1, 5.0));
    assert_int_equal(r.last_err, -EMSGSIZE);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(r.n_found, 1);
    char buf[16];
    assert_true(peer_readable(fds[0]));
    assert_true(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT) <= 0);

    /* The other channel on the loop goes on. */
    sink s;
    sink_start(&s, loop, other[0], 5);
    evt_send_all(other[0], S("ping\n"));
    sink_wait(&s, 5);
    assert_memory_equal(s.got.p, "ping\n", 5);
    assert_int_equal(r2.n_error, 0);

    sink_stop(&s);
    evc_chat_close(c2);
    close(fds[0]);
    close(other[0]);
    finish_loop(loop);
    rec_free(&r);
    rec_free(&r2);
}

/* The peer of the back-pressure test: writes numbered lines as fast as the chat takes them. */
typedef struct flooder {
    ev_io w;
    const char *data;
    size_t len, pos;
    int eagain;
} flooder;

static void flooder_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    flooder *f = w->data;
    (void)revents;
    while (f->pos < f->len) {
        ssize_t n = send(w->fd, f->data + f->pos, f->len - f->pos, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            f->pos += (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
        if (errno != EINTR) {
            f->eagain++;
            return;
        }
    }
    ev_io_stop(loop, w);
}

static void set_bufs(int fd, int size)
{
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

static void test_reader_that_never_reads_bounds_memory(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_bufs(fds[0], 32768);
    set_bufs(fds[1], 32768);
    set_nonblock(fds[0]);
    rec r = {.echo = true};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    const size_t low = 16384, high = 65536;
    assert_int_equal(evc_chat_set_watermarks(c, 100, 10), -EINVAL);
    assert_int_equal(evc_chat_set_watermarks(c, low, high), 0);

    /* 4 MiB of numbered 64-byte lines. */
    const size_t line = 64, lines = 65536;
    evt_bytes text = {0};
    for (size_t i = 0; i < lines; i++) {
        char l[80];
        int n = snprintf(l, sizeof l, "%08zu:", i);
        memset(l + n, 'a' + (int)(i % 26), line - 1 - (size_t)n);
        l[line - 1] = '\n';
        evt_bytes_add(&text, l, line);
    }
    flooder f = {.data = text.p, .len = text.len};
    ev_io_init(&f.w, flooder_cb, fds[0], EV_WRITE);
    f.w.data = &f;
    ev_io_start(loop, &f.w);

    /* The peer writes and never reads: the chat must stop reading rather than queue.
     * (Polled, not a fixed wait: under valgrind the mark takes longer to reach.) */
    for (int i = 0; i < 200 && !(r.max_pending > high && f.eagain > 0); i++)
        evt_run_for(loop, 0.05);
    evt_run_for(loop, 0.2);
    assert_true(f.eagain > 0);
    assert_true(f.pos < f.len);
    assert_true(r.max_pending > high);   /* the mark was reached ... */
    if (r.max_pending > high + 64 * 1024)
        fail_msg("output grew to %zu bytes past a high-water mark of %zu", r.max_pending, high);
    size_t found_then = (size_t)r.n_found;
    evt_run_for(loop, 0.2);
    assert_int_equal((size_t)r.n_found, found_then);   /* ... and reading stopped */

    /* The peer drains: reading resumes and every line comes back, in order. */
    sink s;
    sink_start(&s, loop, fds[0], text.len);
    sink_wait(&s, text.len);
    assert_int_equal(s.got.len, text.len);
    assert_memory_equal(s.got.p, text.p, text.len);
    assert_int_equal((size_t)r.n_found, lines);
    if (r.max_pending > high + 64 * 1024)
        fail_msg("output grew to %zu bytes past a high-water mark of %zu", r.max_pending, high);

    ev_io_stop(loop, &f.w);
    sink_stop(&s);
    evt_bytes_free(&text);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_output_limit(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nonblock(fds[0]);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    evc_chat_set_output_limit(c, 1000);
    char a[600], b[400], big[5000];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    memset(big, 'c', sizeof big);
    int released = 0;
    assert_int_equal(evc_chat_push(c, a, sizeof a), 0);
    assert_int_equal(evc_chat_push(c, a, sizeof a), -ENOBUFS);
    assert_int_equal(evc_chat_push_ref(c, a, sizeof a, count_release, &released), -ENOBUFS);
    assert_int_equal(evc_chat_pushf(c, "%600d", 1), -ENOBUFS);
    assert_int_equal(evc_chat_push(c, b, sizeof b), 0);   /* exactly at the limit */
    assert_int_equal(evc_chat_push(c, "x", 1), -ENOBUFS);
    assert_int_equal(evc_chat_output_pending(c), 1000);
    assert_int_equal(released, 0);
    evc_chat_set_output_limit(c, 0);
    assert_int_equal(evc_chat_push(c, big, sizeof big), 0);

    sink s;
    sink_start(&s, loop, fds[0], 6000);
    sink_wait(&s, 6000);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, 6000);
    assert_memory_equal(s.got.p, a, 600);
    assert_memory_equal(s.got.p + 600, b, 400);
    assert_memory_equal(s.got.p + 1000, big, 5000);
    assert_int_equal(evc_chat_output_pending(c), 0);

    sink_stop(&s);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

static void discard_hook(rec *r)
{
    if (r->n_found == 1)
        evc_chat_discard_buffers(r->chat);
}

static void test_discard_in_found_drops_buffered_input(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.found_hook = discard_hook};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evt_send_all(fds[0], S("one\ntwo\nthree\npartial"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_found, 1);
    evt_send_all(fds[0], S("four\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    static const char *const want[] = {"one", "four"};
    assert_frames(&r, want, 2);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_close_is_idempotent_and_destroy_once(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {.close_in = CLOSE_IN_FOUND};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_false(evc_chat_closed(c));
    evt_send_all(fds[0], S("x\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    /* Closed inside found_terminator; the handle stays valid until on_destroy. */
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_destroy, 1);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);

    /* From outside: close, close again, destroy once, from the loop. */
    loop = new_loop();
    rec r2 = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    c = rec_new(&r2, loop, p[0], &rec_ops);
    evc_chat_close(c);
    assert_true(evc_chat_closed(c));
    evc_chat_close(c);
    assert_int_equal(r2.n_destroy, 0);   /* never inside close itself */
    evc_chat_discard_buffers(c);
    evc_chat_close_when_done(c);
    finish_loop(loop);
    assert_int_equal(r2.n_destroy, 1);
    assert_int_equal(r2.n_close + r2.n_error, 0);
    close(p[1]);
    close(fds[0]);
    rec_free(&r);
    rec_free(&r2);
}

static void test_idle_timeout_default_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &default_ops);
    evc_chat_set_timeout(c, 0.05);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    char buf[4];
    assert_true(peer_readable(fds[0]));
    assert_int_equal(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_idle_timeout_handler_and_activity(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_nodelay(fds[0]);
    rec r = {.want_all = 10};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);

    /* Activity more often than the timeout keeps it from firing. */
    evc_chat_set_timeout(c, 0.3);
    feeder f;
    feeder_start(&f, loop, fds[0], "0123456789", 10, 1, 0.05);   /* 0.5 s in all */
    assert_true(evt_run_until(loop, &f.done, 5.0));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    assert_int_equal(r.n_timeout, 0);
    evc_chat_set_timeout(c, 0.05);

    /* Idle: the handler runs, every idle period, and the chat stays open. */
    assert_true(evt_run_until_count(loop, &r.n_timeout, 2, 5.0));
    assert_false(evc_chat_closed(c));
    set_nonblock(fds[0]);
    sink s;
    sink_start(&s, loop, fds[0], 6);
    assert_int_equal(evc_chat_push_str(c, "alive\n"), 0);
    sink_wait(&s, 6);
    assert_memory_equal(s.got.p, "alive\n", 6);

    /* 0 turns it off. */
    evc_chat_set_timeout(c, 0);
    int seen = r.n_timeout;
    evt_run_for(loop, 0.3);
    assert_int_equal(r.n_timeout, seen);

    /* A handler that closes: no callback after it. */
    r.close_in = CLOSE_IN_TIMEOUT;
    evc_chat_set_timeout(c, 0.02);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(r.n_timeout, seen + 1);

    sink_stop(&s);
    feeder_stop(&f);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

/* Records, at each release and producer destroy, whether on_destroy already ran. */
typedef struct order_probe {
    rec *r;
    int released, released_after_destroy;
} order_probe;

static void probe_release(void *arg)
{
    order_probe *o = arg;
    o->released++;
    if (o->r->destroyed)
        o->released_after_destroy++;
}

static ssize_t probe_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    (void)p;
    (void)buf;
    (void)cap;
    (void)data;
    return EVC_NOT_YET;
}

static void probe_destroy(evc_producer *p, void *data)
{
    (void)p;
    probe_release(data);
}

static const struct evc_producer_ops probe_ops = {
    .more = probe_more,
    .on_destroy = probe_destroy,
};

static void test_on_destroy_is_the_last_callback(void **state)
{
    (void)state;
    /* Closed by evc_close_all, by evc_chat_close, and by the peer. */
    for (int how = 0; how < 3; how++) {
        struct ev_loop *loop = new_loop();
        int fds[2];
        evt_tcp_pair(fds);
        rec r = {0};
        order_probe o = {.r = &r};
        evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
        /* The producer stalls, so the ref behind it is still queued at the close. */
        assert_int_equal(evc_chat_push_with_producer(c, evc_producer_new(&probe_ops, &o)), 0);
        assert_int_equal(evc_chat_push_ref(c, S("queued"), probe_release, &o), 0);
        evt_run_for(loop, 0.01);
        if (how == 0)
            evc_close_all(loop);
        else if (how == 1)
            evc_chat_close(c);
        else
            close(fds[0]);
        assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
        /* on_destroy may free what release callbacks and producers use. */
        assert_int_equal(o.released, 2);
        assert_int_equal(o.released_after_destroy, 0);
        if (how != 2)
            close(fds[0]);
        finish_loop(loop);
        rec_free(&r);
    }
}

static void test_discard_outside_callbacks_resumes_reading(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    set_bufs(fds[0], 32768);
    set_bufs(fds[1], 32768);
    set_nonblock(fds[0]);
    rec r = {.echo = true};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_set_watermarks(c, 16384, 65536), 0);
    size_t len = 8 << 20;
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t i = 0; i < len; i++)
        text[i] = (i % 64 == 63) ? '\n' : 'x';
    flooder f = {.data = text, .len = len};
    ev_io_init(&f.w, flooder_cb, fds[0], EV_WRITE);
    f.w.data = &f;
    ev_io_start(loop, &f.w);

    /* The peer never reads: the chat stops reading. */
    for (int i = 0; i < 200 && !(evc_chat_output_pending(c) > 65536 && f.eagain > 0); i++)
        evt_run_for(loop, 0.05);
    evt_run_for(loop, 0.2);
    int paused_at = r.n_found;
    evt_run_for(loop, 0.1);
    assert_int_equal(r.n_found, paused_at);
    assert_true(evc_chat_output_pending(c) > 16384);

    /* Dropping the replies from outside any callback must let reading resume. */
    evc_chat_discard_buffers(c);
    assert_int_equal(evc_chat_output_pending(c), 0);
    evt_run_for(loop, 0.2);
    assert_true(r.n_found > paused_at);

    ev_io_stop(loop, &f.w);
    free(text);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_close_all_closes_chats(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int a[2], b[2];
    evt_tcp_pair(a);
    evt_tcp_pair(b);
    rec ra = {0}, rb = {0};
    evc_chat *ca = rec_new(&ra, loop, a[1], &rec_ops);
    evc_chat *cb = rec_new(&rb, loop, b[1], &rec_ops);
    assert_int_equal(evc_chat_push_str(cb, "unsent"), 0);
    evc_close_all(loop);
    assert_true(evc_chat_closed(ca));
    assert_true(evc_chat_closed(cb));
    /* Pushes into a chat closed by close_all fail. */
    assert_int_equal(evc_chat_push_str(ca, "late"), -EPIPE);
    finish_loop(loop);
    assert_int_equal(ra.n_destroy, 1);
    assert_int_equal(rb.n_destroy, 1);
    assert_int_equal(ra.n_close + rb.n_close + ra.n_error + rb.n_error, 0);
    char buf[8];
    assert_true(peer_readable(a[0]));
    assert_int_equal(recv(a[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    assert_true(peer_readable(b[0]));
    assert_true(recv(b[0], buf, sizeof buf, MSG_DONTWAIT) <= 0);
    close(a[0]);
    close(b[0]);
    rec_free(&ra);
    rec_free(&rb);
}

typedef struct ticker {
    ev_timer w;
    evc_chat *chat;
    int ticks;
} ticker;

static void ticker_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ticker *t = w->data;
    (void)revents;
    assert_int_equal(evc_chat_pushf(t->chat, "tick %d\n", t->ticks), 0);
    t->ticks++;
    if (t->ticks == 3)
        ev_timer_stop(loop, w);
}

static void test_push_from_timer_is_written(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int fds[2];
    evt_tcp_pair(fds);
    rec r = {0};
    evc_chat *c = rec_new(&r, loop, fds[1], &rec_ops);
    ticker t = {.chat = c};
    ev_timer_init(&t.w, ticker_cb, 0.01, 0.01);
    t.w.data = &t;
    ev_timer_start(loop, &t.w);
    /* The peer only blocks in recv: the loop runs between the ticks. */
    assert_true(evt_run_until_count(loop, &t.ticks, 1, 5.0));
    /* Written before the loop slept again: one non-blocking pass suffices. */
    ev_run(loop, EVRUN_NOWAIT);
    char buf[64];
    assert_true(peer_readable(fds[0]));
    ssize_t n = recv(fds[0], buf, sizeof buf, MSG_DONTWAIT);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "tick 0\n", 7);
    assert_true(evt_run_until_count(loop, &t.ticks, 3, 5.0));
    ev_run(loop, EVRUN_NOWAIT);
    size_t got = evt_recv_until(fds[0], buf, sizeof buf, "tick 2\n");
    assert_int_equal(got, 14);
    assert_memory_equal(buf, "tick 1\ntick 2\n", 14);
    evc_chat_close(c);
    close(fds[0]);
    finish_loop(loop);
    rec_free(&r);
}

static void test_chat_over_pipes(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    rec rin = {0}, rout = {0};
    evc_chat *reader = rec_new(&rin, loop, in[0], &rec_ops);
    evc_chat *writer = rec_new(&rout, loop, out[1], &rec_ops);
    assert_int_equal(evc_chat_set_terminator(reader, "\n"), 0);

    assert_int_equal(write(in[1], "a\nbc\nd", 6), 6);
    assert_true(evt_run_until_count(loop, &rin.n_found, 2, 5.0));
    close(in[1]);
    assert_true(evt_run_until_count(loop, &rin.n_close, 1, 5.0));
    static const char *const want[] = {"a", "bc"};
    assert_frames(&rin, want, 2);
    /* Collected bytes (terminators dropped), the unterminated "d" included. */
    assert_string_equal(rin.at_close.p, "abcd");
    assert_true(evt_run_until_count(loop, &rin.n_destroy, 1, 5.0));

    /* Writes to a pipe, then close_when_done: the reader gets it all, then EOF. */
    assert_int_equal(evc_chat_push_str(writer, "to the pipe\n"), 0);
    evc_chat_close_when_done(writer);
    assert_true(evt_run_until_count(loop, &rout.n_destroy, 1, 5.0));
    char buf[32];
    ssize_t n = read(out[0], buf, sizeof buf);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, "to the pipe\n", 12);
    assert_int_equal(read(out[0], buf, sizeof buf), 0);
    close(out[0]);
    finish_loop(loop);
    rec_free(&rin);
    rec_free(&rout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_terminators_in_small_chunks),
        cmocka_unit_test(test_count_terminators),
        cmocka_unit_test(test_no_terminator_collects_everything),
        cmocka_unit_test(test_terminator_starts_as_none),
        cmocka_unit_test(test_empty_lines_call_found_without_collect),
        cmocka_unit_test(test_binary_terminator_with_nul),
        cmocka_unit_test(test_default_collector_in_place_and_assembled),
        cmocka_unit_test(test_push_flavours_in_one_fifo),
        cmocka_unit_test(test_ref_release_on_close_and_discard),
        cmocka_unit_test(test_close_when_done_flushes_then_closes),
        cmocka_unit_test(test_terminator_changed_in_found_applies_to_buffered),
        cmocka_unit_test(test_get_terminator_and_setters_reject_null),
        cmocka_unit_test(test_new_rejects_bad_fds),
        cmocka_unit_test(test_client_connect_flushes_early_pushes),
        cmocka_unit_test(test_client_connect_refused_reports_error),
        cmocka_unit_test(test_close_in_found_stops_buffered_frames),
        cmocka_unit_test(test_close_in_collect_stops_everything),
        cmocka_unit_test(test_close_in_error_stops_everything),
        cmocka_unit_test(test_close_in_connect_stops_everything),
        cmocka_unit_test(test_held_prefix_delivered_at_eof),
        cmocka_unit_test(test_default_close_on_eof_writes_pending_replies),
        cmocka_unit_test(test_oversized_frame_fails_only_that_channel),
        cmocka_unit_test(test_reader_that_never_reads_bounds_memory),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_discard_in_found_drops_buffered_input),
        cmocka_unit_test(test_close_is_idempotent_and_destroy_once),
        cmocka_unit_test(test_idle_timeout_default_closes),
        cmocka_unit_test(test_idle_timeout_handler_and_activity),
        cmocka_unit_test(test_on_destroy_is_the_last_callback),
        cmocka_unit_test(test_discard_outside_callbacks_resumes_reading),
        cmocka_unit_test(test_close_all_closes_chats),
        cmocka_unit_test(test_push_from_timer_is_written),
        cmocka_unit_test(test_chat_over_pipes),
        cmocka_unit_test(test_resume_inside_more_is_not_lost),
        cmocka_unit_test(test_write_failure_honours_close_when_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
