/*
 * Tests of the chat's output side over real loopback sockets and a real loop:
 * producers asked only at the head of the queue and knowing their chat, the
 * drained and low-water callbacks, shutdown_when_done and its linger, connect
 * by address text, a write that meets a vanished peer with SIGPIPE at its
 * default, and no spinning after the peer's half-close.
 *
 * The peer is a plain non-blocking socket; a sink watcher collects what the
 * chat writes.  Every test ends by closing everything and checking the loop
 * is empty.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Reads everything the chat writes to the peer socket, while started. */
typedef struct sink {
    ev_io io;
    int fd;
    evt_bytes got;
    bool eof;
    int err;             /* errno of a failed read (ECONNRESET: the chat reset us) */
} sink;

static void sink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sink *s = w->data;
    (void)revents;
    char buf[65536];
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n > 0) {
            evt_bytes_add(&s->got, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            s->eof = true;
        else if (errno != EAGAIN)
            s->err = errno;
        else
            return;
        ev_io_stop(loop, w);
        return;
    }
}

static void sink_init(sink *s, int fd)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    evt_set_nonblock(fd);
    ev_io_init(&s->io, sink_cb, fd, EV_READ);
    s->io.data = s;
}

/* A recording chat (tests/support.h) with what these tests add: replies pushed
 * from found_terminator, parts sent from handle_drained, a half-close with linger.
 * The recorder comes first, so the hooks find the rest from it. */
typedef struct orec {
    evt_recorder rec;
    size_t pending_at_low_water;
    size_t part_size;         /* handle_drained pushes parts of this size ... */
    int parts, parts_sent;    /* ... until `parts` were sent, then close_when_done */
    size_t on_found_push;     /* found_terminator pushes this many bytes */
    double linger;            /* found_terminator answers and shuts down with this */
    int push_after_shutdown;  /* what a push after shutdown_when_done answered */
    size_t close_push;        /* handle_close pushes this many bytes */
    int push_refused;         /* found_terminator's pushes that answered -EPIPE */
    int found_after_close;    /* frames delivered after handle_close */
} orec;

static void o_frame(evt_recorder *rec, const char *frame, size_t len)
{
    orec *r = (orec *)rec;
    evc_chat *c = rec->chat;
    (void)frame, (void)len;
    if (rec->n_close > 0)
        r->found_after_close++;
    if (r->on_found_push) {
        char *big = malloc(r->on_found_push);
        assert_non_null(big);
        memset(big, 'o', r->on_found_push);
        int rc = evc_chat_push(c, big, r->on_found_push);
        if (rc == -EPIPE)
            r->push_refused++;
        else
            assert_int_equal(rc, 0);
        free(big);
    }
    if (r->part_size && r->parts_sent == 0) {
        char *part = malloc(r->part_size);
        assert_non_null(part);
        memset(part, 'a', r->part_size);
        assert_int_equal(evc_chat_push(c, part, r->part_size), 0);
        r->parts_sent = 1;
        free(part);
    }
    if (r->linger > 0 && rec->n_found == 1) {
        assert_int_equal(evc_chat_push_str(c, "413 too large\r\n"), 0);
        assert_int_equal(evc_chat_shutdown_when_done(c, r->linger), 0);
        r->push_after_shutdown = evc_chat_push_str(c, "more");
    }
}

static void o_close(evt_recorder *rec)
{
    orec *r = (orec *)rec;
    if (r->close_push) {
        char *buf = calloc(1, r->close_push);
        assert_non_null(buf);
        evc_chat_push(rec->chat, buf, r->close_push);
        free(buf);
    }
}

static void o_drained(evt_recorder *rec)
{
    orec *r = (orec *)rec;
    evc_chat *c = rec->chat;
    if (!r->part_size)
        return;
    if (r->parts_sent == r->parts) {
        evc_chat_close_when_done(c);
        return;
    }
    char *part = malloc(r->part_size);
    assert_non_null(part);
    memset(part, 'a' + r->parts_sent, r->part_size);
    assert_int_equal(evc_chat_push(c, part, r->part_size), 0);
    r->parts_sent++;
    free(part);
}

static void o_low_water(evt_recorder *rec)
{
    ((orec *)rec)->pending_at_low_water = evc_chat_output_pending(rec->chat);
}

static evc_chat *o_new(orec *r, struct ev_loop *loop, int fd)
{
    r->rec.on_frame = o_frame;
    r->rec.on_close = o_close;
    r->rec.on_drained = o_drained;
    r->rec.on_low_water = o_low_water;
    evc_chat *c = evt_recorder_new(&r->rec, loop, fd,
                                   EVT_REC_CLOSE | EVT_REC_ERROR | EVT_REC_CONNECT | EVT_REC_DRAINED);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    return c;
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */
/* ------------------------------------------------------------------ */

/* A producer that records, at its first more(), what was still queued in front
 * of it and which chat it belongs to; then hands out `text`. */
typedef struct watcher {
    evc_producer *self;
    sink *peer;
    const char *text;
    size_t pos;
    int asked;
    size_t pending_at_first;
    evc_chat *chat_at_first;
    bool stall_first;        /* answer EVC_NOT_YET once */
    bool destroyed;
} watcher;

static ssize_t watcher_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    watcher *w = data;
    if (w->asked++ == 0) {
        w->self = p;
        w->chat_at_first = evc_producer_chat(p);
        w->pending_at_first = evc_chat_output_pending(w->chat_at_first);
        if (w->stall_first)
            return EVC_NOT_YET;
    }
    size_t n = strlen(w->text) - w->pos;
    if (n > cap)
        n = cap;
    memcpy(buf, w->text + w->pos, n);
    w->pos += n;
    return (ssize_t)n;
}

static void watcher_destroy(evc_producer *p, void *data)
{
    watcher *w = data;
    (void)p;
    w->destroyed = true;
}

static const struct evc_producer_ops watcher_ops = {
    .more = watcher_more,
    .on_destroy = watcher_destroy,
};

/* more() runs only once everything queued in front of the producer was handed
 * to the kernel: never while earlier bytes are still pending. */
static void test_producer_more_runs_at_head(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {0};
    evc_chat *c = o_new(&r, loop, fds[1]);
    sink peer;
    sink_init(&peer, fds[0]);
    ev_io_start(loop, &peer.io);

    size_t big = 512 * 1024;
    char *bytes = malloc(big);
    assert_non_null(bytes);
    memset(bytes, 'b', big);
    watcher w = {.text = "tail"};
    evc_producer *p = evc_producer_new(&watcher_ops, &w);
    assert_non_null(p);
    assert_null(evc_producer_chat(p));
    assert_int_equal(evc_chat_push(c, bytes, big), 0);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    assert_ptr_equal(evc_producer_chat(p), c);
    assert_int_equal(w.asked, 0);

    size_t want = big + 4;
    for (int i = 0; i < 1000 && peer.got.len < want; i++)
        evt_run_for(loop, 0.01);
    assert_int_equal(peer.got.len, want);
    assert_memory_equal(peer.got.p, bytes, big);
    assert_memory_equal(peer.got.p + big, "tail", 4);
    assert_true(w.asked >= 1);
    assert_int_equal(w.pending_at_first, 0);
    assert_ptr_equal(w.chat_at_first, c);
    assert_true(w.destroyed);

    evc_chat_close(c);
    ev_io_stop(loop, &peer.io);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
    assert_int_equal(r.rec.n_destroy, 1);
    free(bytes);
    evt_bytes_free(&peer.got);
}

static void resume_later(struct ev_loop *loop, ev_timer *t, int revents)
{
    watcher *w = t->data;
    (void)loop;
    (void)revents;
    evc_chat_resume(evc_producer_chat(w->self));
}

/* A producer that answered EVC_NOT_YET resumes through its own chat. */
static void test_producer_resumes_through_its_chat(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {0};
    evc_chat *c = o_new(&r, loop, fds[1]);
    sink peer;
    sink_init(&peer, fds[0]);
    ev_io_start(loop, &peer.io);

    watcher w = {.text = "late bytes", .stall_first = true};
    evc_producer *p = evc_producer_new(&watcher_ops, &w);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    evt_run_for(loop, 0.05);
    assert_int_equal(w.asked, 1);
    assert_int_equal(peer.got.len, 0);

    ev_timer t;
    ev_timer_init(&t, resume_later, 0.01, 0.);
    t.data = &w;
    ev_timer_start(loop, &t);
    for (int i = 0; i < 500 && peer.got.len < strlen(w.text); i++)
        evt_run_for(loop, 0.01);
    assert_int_equal(peer.got.len, strlen(w.text));
    assert_memory_equal(peer.got.p, w.text, peer.got.len);
    assert_true(w.destroyed);

    evc_chat_close(c);
    ev_io_stop(loop, &peer.io);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
    evt_bytes_free(&peer.got);
}

/* ------------------------------------------------------------------ */
/* Drained and low water                                               */
/* ------------------------------------------------------------------ */

/* "Send the next part when the last is out": handle_drained runs once per
 * emptied queue, never from inside found_terminator, and sees nothing pending. */
static void test_drained_sends_the_next_part(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.part_size = 200 * 1024, .parts = 5};
    o_new(&r, loop, fds[1]);
    sink peer;
    sink_init(&peer, fds[0]);
    ev_io_start(loop, &peer.io);

    evt_send_all(fds[0], S("go\n"));
    assert_true(evt_run_until(loop, &peer.eof, 10.0));
    assert_int_equal(r.rec.n_found, 1);
    assert_int_equal(r.parts_sent, 5);
    /* One call after each part; the last one queued the close. */
    assert_int_equal(r.rec.n_drained, 5);
    assert_int_equal(r.rec.callbacks_in_found, 0);
    assert_int_equal(peer.got.len, 5 * r.part_size);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(peer.got.p[(size_t)i * r.part_size], 'a' + i);
        assert_int_equal(peer.got.p[(size_t)(i + 1) * r.part_size - 1], 'a' + i);
    }
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
    assert_int_equal(r.rec.n_destroy, 1);
    evt_bytes_free(&peer.got);
}

/* Replies written at once drain too: one handle_drained per event that emptied
 * the queue, and none for output that was discarded rather than written. */
static void test_drained_once_per_emptied_queue(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.on_found_push = 10};
    evc_chat *c = o_new(&r, loop, fds[1]);

    evt_send_all(fds[0], S("a\nb\nc\n"));
    assert_true(evt_run_until_count(loop, &r.rec.n_drained, 1, 5.0));
    evt_run_for(loop, 0.05);
    assert_int_equal(r.rec.n_found, 3);
    assert_int_equal(r.rec.n_drained, 1);
    assert_int_equal(r.rec.callbacks_in_found, 0);
    assert_int_equal(r.rec.n_low_water, 0);   /* the high-water mark was never crossed */

    /* Discarded output does not "drain". */
    assert_int_equal(evc_chat_push_str(c, "dropped"), 0);
    evc_chat_discard_buffers(c);
    evt_run_for(loop, 0.05);
    assert_int_equal(r.rec.n_drained, 1);

    /* A push from outside the chat's callbacks drains before the loop sleeps. */
    assert_int_equal(evc_chat_push_str(c, "later"), 0);
    assert_true(evt_run_until_count(loop, &r.rec.n_drained, 2, 5.0));

    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

static void start_sink(struct ev_loop *loop, ev_timer *t, int revents)
{
    sink *s = t->data;
    (void)revents;
    ev_io_start(loop, &s->io);
}

/* handle_low_water runs once the queue, having crossed the high-water mark,
 * falls to the low one: once, at or under the low mark, outside found_terminator. */
static void test_low_water_after_high(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    /* Small socket buffers, so that the kernel cannot take the whole reply while
     * nobody reads: with its autotuning, loopback buffers can grow past 4 MiB. */
    int small = 32768;
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    orec r = {.on_found_push = 4 << 20};
    evc_chat *c = o_new(&r, loop, fds[1]);
    assert_int_equal(evc_chat_set_watermarks(c, 4096, 65536), 0);
    sink peer;
    sink_init(&peer, fds[0]);

    evt_send_all(fds[0], S("big\n"));
    assert_true(evt_run_until_count(loop, &r.rec.n_found, 1, 5.0));
    evt_run_for(loop, 0.05);
    assert_int_equal(r.rec.n_low_water, 0);
    assert_true(evc_chat_output_pending(c) > 65536);

    ev_timer t;
    ev_timer_init(&t, start_sink, 0.001, 0.);
    t.data = &peer;
    ev_timer_start(loop, &t);
    assert_true(evt_run_until_count(loop, &r.rec.n_low_water, 1, 10.0));
    assert_true(r.pending_at_low_water <= 4096);
    assert_int_equal(r.rec.callbacks_in_found, 0);
    for (int i = 0; i < 1000 && peer.got.len < r.on_found_push; i++)
        evt_run_for(loop, 0.01);
    assert_int_equal(peer.got.len, r.on_found_push);
    assert_int_equal(r.rec.n_low_water, 1);

    evc_chat_close(c);
    ev_io_stop(loop, &peer.io);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
    evt_bytes_free(&peer.got);
}

/* ------------------------------------------------------------------ */
/* Shutdown when done                                                  */
/* ------------------------------------------------------------------ */

/* Sends n bytes of junk on a non-blocking socket, as much as goes; in lines
 * when lines is true. */
static size_t send_junk(int fd, size_t n, bool lines)
{
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    for (size_t i = 63; lines && i < sizeof junk; i += 64)
        junk[i] = '\n';
    size_t sent = 0;
    while (sent < n) {
        size_t want = n - sent < sizeof junk ? n - sent : sizeof junk;
        ssize_t k = send(fd, junk, want, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    return sent;
}

/*
 * An HTTP server answering 413 to a client still sending its body: the answer
 * arrives whole, followed by an orderly EOF, never a reset, although the
 * client keeps sending after the answer was queued.
 */
static void test_shutdown_when_done_delivers_the_answer(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.linger = 5.0};
    evc_chat *c = o_new(&r, loop, fds[1]);
    evt_set_nonblock(fds[0]);

    /* The request line and a first part of a body the server will never read. */
    evt_send_all(fds[0], S("POST /upload\n"));
    assert_true(send_junk(fds[0], 64 * 1024, false) > 0);
    assert_true(evt_run_until_count(loop, &r.rec.n_found, 1, 5.0));
    assert_int_equal(r.push_after_shutdown, -EPIPE);
    assert_int_equal(evc_chat_shutdown_when_done(c, 1.0), -EPIPE);
    evt_run_for(loop, 0.05);
    /* The client goes on sending after the answer (lines now, which are not
     * delivered: the chat only drains them), then finishes. */
    assert_true(send_junk(fds[0], 64 * 1024, true) > 0);
    evt_run_for(loop, 0.05);
    assert_int_equal(r.rec.n_destroy, 0);   /* still lingering: the client has not closed */
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));

    char buf[256];
    size_t got = 0;
    ssize_t n;
    for (;;) {
        n = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            evt_run_for(loop, 0.01);
            continue;
        }
        break;
    }
    assert_int_equal(n, 0);   /* an orderly EOF, not ECONNRESET */
    buf[got] = '\0';
    assert_string_equal(buf, "413 too large\r\n");
    /* Lingering delivers nothing and reports nothing. */
    assert_int_equal(r.rec.n_found, 1);
    assert_int_equal(r.rec.n_close + r.rec.n_error + r.rec.n_drained + r.rec.n_low_water, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

/* Lingering, the chat takes no more output, even after discard_buffers (which
 * drops a close that is still queued, but this one was already reached). */
static void test_lingering_refuses_pushes_after_discard(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.linger = 5.0};
    evc_chat *c = o_new(&r, loop, fds[1]);
    evt_set_nonblock(fds[0]);

    evt_send_all(fds[0], S("POST /upload\n"));
    assert_true(evt_run_until_count(loop, &r.rec.n_found, 1, 5.0));
    /* Read the answer up to our FIN: from then on the chat lingers. */
    char buf[64];
    size_t got = 0;
    ssize_t n;
    for (int i = 0; i < 500; i++) {
        n = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        evt_run_for(loop, 0.01);
    }
    assert_int_equal(n, 0);
    buf[got] = '\0';
    assert_string_equal(buf, "413 too large\r\n");

    evc_chat_discard_buffers(c);
    assert_int_equal(evc_chat_push_str(c, "late"), -EPIPE);
    assert_int_equal(evc_chat_shutdown_when_done(c, 1.0), -EPIPE);
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    assert_int_equal(r.rec.n_close + r.rec.n_error, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

static void keep_sending(struct ev_loop *loop, ev_timer *t, int revents)
{
    int *fd = t->data;
    (void)loop;
    (void)revents;
    send_junk(*fd, 512, true);
}

/* A peer that never closes cannot keep a lingering chat alive by sending:
 * the linger is a deadline from the shutdown, not an idle timeout. */
static void test_linger_is_a_deadline(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.linger = 0.2};
    o_new(&r, loop, fds[1]);
    evt_set_nonblock(fds[0]);
    evt_send_all(fds[0], S("x\n"));

    ev_timer t;
    ev_timer_init(&t, keep_sending, 0.02, 0.02);
    t.data = &fds[0];
    ev_timer_start(loop, &t);
    ev_tstamp start = ev_time();
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    ev_tstamp took = ev_time() - start;
    ev_timer_stop(loop, &t);
    assert_true(took >= 0.15);
    assert_true(took < 2.0);
    assert_int_equal(r.rec.n_close + r.rec.n_error, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

/* A pipe cannot half-close: shutdown_when_done closes it once the answer is out. */
static void test_shutdown_when_done_on_a_pipe_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int p[2];
    assert_int_equal(pipe(p), 0);
    orec r = {0};
    evc_chat *c = o_new(&r, loop, p[1]);
    assert_int_equal(evc_chat_shutdown_when_done(c, 0), -EINVAL);
    assert_int_equal(evc_chat_push_str(c, "bye\n"), 0);
    assert_int_equal(evc_chat_shutdown_when_done(c, 1.0), 0);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    char buf[16] = {0};
    assert_int_equal(read(p[0], buf, sizeof buf), 4);
    assert_string_equal(buf, "bye\n");
    assert_int_equal(read(p[0], buf, sizeof buf), 0);
    close(p[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

/* ------------------------------------------------------------------ */
/* Connect by text, the server's loop                                  */
/* ------------------------------------------------------------------ */

typedef struct acceptor {
    int fd;
} acceptor;

static void keep_fd(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    acceptor *a = data;
    (void)s;
    (void)sa;
    (void)len;
    a->fd = fd;
}

static const struct evc_server_ops keep_ops = {.handle_accepted = keep_fd};

static void test_connect_addr(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    acceptor a = {.fd = -1};
    evc_server *s = evc_server_new(loop, "127.0.0.1:0", 0, &keep_ops, &a);
    assert_non_null(s);
    assert_ptr_equal(evc_server_loop(s), loop);
    char addr[EVC_ADDRSTRLEN];
    assert_true(evc_server_address(s, addr, sizeof addr) > 0);

    orec r = {0};
    evc_chat *c = o_new(&r, loop, -1);
    assert_int_equal(evc_chat_connect_addr(c, "no port here"), -EINVAL);
    assert_int_equal(evc_chat_connect_addr(c, NULL), -EINVAL);
    assert_int_equal(evc_chat_connect_addr(c, addr), 0);
    assert_int_equal(evc_chat_push_str(c, "hi\n"), 0);
    assert_true(evt_run_until_count(loop, &r.rec.n_connect, 1, 5.0));
    for (int i = 0; i < 100 && a.fd < 0; i++)
        evt_run_for(loop, 0.01);
    assert_true(a.fd >= 0);
    char buf[8] = {0};
    size_t got = evt_recv_until(a.fd, buf, sizeof buf - 1, "\n");
    assert_int_equal(got, 3);
    assert_string_equal(buf, "hi\n");
    assert_int_equal(r.rec.n_error, 0);

    evc_chat_close(c);
    evc_server_close(s);
    close(a.fd);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
    assert_int_equal(r.rec.n_destroy, 1);
}

/* ------------------------------------------------------------------ */
/* A peer that went away                                               */
/* ------------------------------------------------------------------ */

static void push_from_outside(struct ev_loop *loop, ev_timer *t, int revents)
{
    orec *r = t->data;
    (void)loop;
    (void)revents;
    char buf[1024] = {0};
    if (!evc_chat_closed(r->rec.chat))
        evc_chat_push(r->rec.chat, buf, sizeof buf);
}

/*
 * The peer closed (FIN) and its kernel answered our first write with a reset:
 * the next writev fails with EPIPE, which raises SIGPIPE unless the write says
 * MSG_NOSIGNAL.  With SIGPIPE at its default the process must live, and the
 * chat, whose handle_close already heard of the peer's close, is closed.
 */
static void test_epipe_with_default_sigpipe(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    sigset_t unblock, old_mask;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &unblock, &old_mask), 0);

    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.rec.keep_open = true, .close_push = 1024};
    o_new(&r, loop, fds[1]);
    close(fds[0]);   /* nothing unread: a FIN, not a reset */
    assert_true(evt_run_until_count(loop, &r.rec.n_close, 1, 5.0));
    evt_run_for(loop, 0.05);   /* the reset comes back for the bytes handle_close pushed */

    ev_timer t;
    ev_timer_init(&t, push_from_outside, 0.001, 0.01);
    t.data = &r;
    ev_timer_start(loop, &t);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    ev_timer_stop(loop, &t);
    assert_int_equal(r.rec.n_close, 1);
    assert_int_equal(r.rec.n_error, 0);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);

    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

/* A handle_close that keeps the chat open after the peer's shutdown(SHUT_WR)
 * must not make the loop spin on the readable EOF. */
static void test_no_spin_after_peer_half_close(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.rec.keep_open = true};
    evc_chat *c = o_new(&r, loop, fds[1]);
    assert_int_equal(shutdown(fds[0], SHUT_WR), 0);
    assert_true(evt_run_until_count(loop, &r.rec.n_close, 1, 5.0));
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.2);
    unsigned spins = ev_iteration(loop) - before;
    assert_int_equal(r.rec.n_close, 1);
    assert_true(spins < 20);
    assert_false(evc_chat_closed(c));

    /* Still able to answer: the peer only closed its sending side. */
    assert_int_equal(evc_chat_push_str(c, "bye\n"), 0);
    evc_chat_close_when_done(c);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    char buf[8] = {0};
    assert_int_equal(evt_recv_all(fds[0], buf, sizeof buf - 1), 4);
    assert_string_equal(buf, "bye\n");
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

/*
 * A failed write never runs input callbacks from inside the flush: frames held
 * at the high-water mark are delivered from the top of the handler, before
 * handle_close, and their replies are refused (-EPIPE) rather than queued for
 * a socket that can no longer take them.
 */
static void test_failed_write_delivers_held_frames_then_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    orec r = {.on_found_push = 16 << 20};
    evc_chat *c = o_new(&r, loop, fds[1]);
    evc_chat_set_output_limit(c, 0);

    /* The first frame's reply crosses the high-water mark: the rest are held. */
    evt_send_all(fds[0], S("a\nb\nc\nd\n"));
    assert_true(evt_run_until_count(loop, &r.rec.n_found, 1, 5.0));
    evt_run_for(loop, 0.05);
    assert_int_equal(r.rec.n_found, 1);
    assert_true(evc_chat_output_pending(c) > 0);

    /* The peer vanishes: the next write fails. */
    evt_close_reset(fds[0]);
    assert_true(evt_run_until_count(loop, &r.rec.n_destroy, 1, 5.0));
    assert_int_equal(r.rec.n_found, 4);          /* nothing read was lost */
    assert_int_equal(r.push_refused, 3);     /* the held frames' replies: refused */
    assert_int_equal(r.found_after_close, 0);
    assert_int_equal(r.rec.n_close, 1);
    assert_int_equal(r.rec.n_error, 0);
    evt_loop_finish(loop);
    evt_recorder_free(&r.rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_more_runs_at_head),
        cmocka_unit_test(test_producer_resumes_through_its_chat),
        cmocka_unit_test(test_drained_sends_the_next_part),
        cmocka_unit_test(test_drained_once_per_emptied_queue),
        cmocka_unit_test(test_low_water_after_high),
        cmocka_unit_test(test_shutdown_when_done_delivers_the_answer),
        cmocka_unit_test(test_linger_is_a_deadline),
        cmocka_unit_test(test_lingering_refuses_pushes_after_discard),
        cmocka_unit_test(test_shutdown_when_done_on_a_pipe_closes),
        cmocka_unit_test(test_connect_addr),
        cmocka_unit_test(test_epipe_with_default_sigpipe),
        cmocka_unit_test(test_no_spin_after_peer_half_close),
        cmocka_unit_test(test_failed_write_delivers_held_frames_then_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
