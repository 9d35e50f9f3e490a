/*
 * Test helpers for the chat tests: loops and sockets, a feeder and a sink for
 * the peer's end, and the recording chat every chat test program uses (see
 * support.h for the contract of each).
 */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Loops and sockets                                                   */
/* ------------------------------------------------------------------ */

struct ev_loop *evt_loop_new(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    return loop;
}

void evt_loop_finish(struct ev_loop *loop)
{
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

void evt_set_nodelay(int fd)
{
    int on = 1;
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), 0);
}

void evt_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void evt_closed_port(struct sockaddr_in *sin)
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

int evt_listener(struct sockaddr_in *sin)
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

bool evt_fd_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 1000) == 1;
}

/* ------------------------------------------------------------------ */
/* The feeder and the sink                                             */
/* ------------------------------------------------------------------ */

static void feeder_finished(evt_feeder *f)
{
    f->done = true;
    evt_feeder_stop(f);
}

static void feeder_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    evt_feeder *f = w->data;
    (void)loop, (void)revents;
    size_t n = f->len - f->pos < f->chunk ? f->len - f->pos : f->chunk;
    evt_send_all(f->fd, f->data + f->pos, n);
    f->pos += n;
    if (f->pos == f->len) {
        if (f->shut_after)
            shutdown(f->fd, SHUT_WR);
        feeder_finished(f);
    }
}

static void feeder_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    evt_feeder *f = w->data;
    (void)loop, (void)revents;
    size_t want = f->nchunks ? f->chunks[f->next++ % f->nchunks] : 0;
    size_t left = f->len - f->pos;
    if (want == 0 || want > left)
        want = left;
    ssize_t n = send(f->fd, f->data + f->pos, want, MSG_NOSIGNAL);
    if (n > 0)
        f->pos += (size_t)n;
    else if (errno != EAGAIN)
        f->pos = f->len;   /* the chat closed (a test that fails it on purpose): stop */
    if (f->pos == f->len)
        feeder_finished(f);
}

static void feeder_init(evt_feeder *f, struct ev_loop *loop, int fd, const char *data, size_t len)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->fd = fd;
    f->data = data;
    f->len = len;
    ev_timer_init(&f->tick, feeder_tick, 0., 0.);
    f->tick.data = f;
    ev_io_init(&f->io, feeder_writable, fd, EV_WRITE);
    f->io.data = f;
}

void evt_feeder_start(evt_feeder *f, struct ev_loop *loop, int fd, const char *data, size_t len,
                      size_t chunk, double pause)
{
    feeder_init(f, loop, fd, data, len);
    f->chunk = chunk;
    ev_timer_set(&f->tick, pause, pause);
    ev_timer_start(loop, &f->tick);
}

void evt_feeder_flood(evt_feeder *f, struct ev_loop *loop, int fd, const char *data, size_t len,
                      const size_t *chunks, size_t nchunks)
{
    feeder_init(f, loop, fd, data, len);
    f->chunks = chunks;
    f->nchunks = nchunks;
    f->done = len == 0;
    if (!f->done)
        ev_io_start(loop, &f->io);
}

void evt_feeder_stop(evt_feeder *f)
{
    ev_timer_stop(f->loop, &f->tick);
    ev_io_stop(f->loop, &f->io);
}

static void sink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    evt_sink *s = w->data;
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

void evt_sink_start(evt_sink *s, struct ev_loop *loop, int fd, size_t want)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->want = want;
    ev_io_init(&s->w, sink_cb, fd, EV_READ);
    s->w.data = s;
    ev_io_start(loop, &s->w);
}

void evt_sink_wait(evt_sink *s, size_t want)
{
    s->want = want;
    s->have = s->got.len >= want || s->eof;
    assert_true(evt_run_until(s->loop, &s->have, 10.0));
}

void evt_sink_stop(evt_sink *s)
{
    ev_io_stop(s->loop, &s->w);
    evt_bytes_free(&s->got);
}

/* ------------------------------------------------------------------ */
/* The recording chat                                                  */
/* ------------------------------------------------------------------ */

void evt_bytes_add_frame(evt_bytes *b, const char *p, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof head, "%zu:", n);
    evt_bytes_add(b, head, (size_t)h);
    evt_bytes_add(b, p, n);
    evt_bytes_add(b, "|", 1);
}

/* Every callback is for r's chat; one made after close or destroy is counted. */
static void check_alive(evt_recorder *r, evc_chat *c)
{
    assert_ptr_equal(c, r->chat);
    if (r->destroyed || evc_chat_closed(c))
        r->late_calls++;
}

static void note_nested(evt_recorder *r)
{
    if (r->in_found)
        r->callbacks_in_found++;
}

/* Keeps the first EVT_MAX_FRAMES frames whole; all of them go into `framed`. */
static void add_frame(evt_recorder *r, const char *p, size_t n, const char *where)
{
    r->bytes_in += n;
    evt_bytes_add_frame(&r->framed, p, n);
    if (r->n_frames == EVT_MAX_FRAMES)
        return;
    r->frames[r->n_frames] = malloc(n + 1);
    assert_non_null(r->frames[r->n_frames]);
    memcpy(r->frames[r->n_frames], p, n);
    r->frames[r->n_frames][n] = '\0';
    r->frame_len[r->n_frames] = n;
    r->incoming_ptr[r->n_frames] = where;
    r->n_frames++;
}

/* What found_terminator does with a frame, however it was collected. */
static void found_frame(evt_recorder *r, evc_chat *c, const char *frame, size_t len,
                        const char *where)
{
    check_alive(r, c);
    r->n_found++;
    add_frame(r, frame, len, where);
    size_t pending = evc_chat_output_pending(c);
    if (pending > r->max_pending)
        r->max_pending = pending;
    r->in_found = true;
    if (r->echo) {
        assert_int_equal(evc_chat_push(c, frame, len), 0);
        assert_int_equal(evc_chat_push(c, "\n", 1), 0);
        pending = evc_chat_output_pending(c);
        if (pending > r->max_pending)
            r->max_pending = pending;
    }
    if (r->on_frame)
        r->on_frame(r, frame, len);
    if (r->close_in & EVT_CLOSE_IN_FOUND)
        evc_chat_close(c);
    r->in_found = false;
}

void evt_recorder_keep(evt_recorder *r, const char *p, size_t n)
{
    evt_bytes_add(&r->cur, p, n);
    evt_bytes_add(&r->all, p, n);
    if (r->want_all && r->all.len >= r->want_all)
        r->have_all = true;
}

static void rec_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    assert_true(n > 0);
    r->n_collect++;
    if (r->collector)
        r->collector(r, p, n);
    else
        evt_recorder_keep(r, p, n);
    if (r->close_in & EVT_CLOSE_IN_COLLECT)
        evc_chat_close(c);
}

/* found_terminator after rec_collect: the frame is what was collected (or, when a
 * custom collector handed it to the library, evc_chat_incoming).  It is taken out
 * of `cur` first, so a hook that makes more input arrive starts a new frame. */
static void rec_found(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    evt_bytes frame = r->cur;
    memset(&r->cur, 0, sizeof r->cur);
    size_t n = 0;
    const char *in = (r->collector && frame.len == 0) ? evc_chat_incoming(c, &n) : NULL;
    if (in)
        found_frame(r, c, in, n, in);
    else
        found_frame(r, c, frame.p ? frame.p : "", frame.len, NULL);
    evt_bytes_free(&frame);
}

/* found_terminator for the default collector: the frame is evc_chat_incoming. */
static void rec_found_incoming(evc_chat *c, void *data)
{
    size_t len = 12345;
    const char *p = evc_chat_incoming(c, &len);
    /* Nothing collected (an empty frame) is NULL, never a pointer with length 0. */
    assert_true((p == NULL) == (len == 0));
    found_frame(data, c, p ? p : "", len, p ? p : "");
}

static void rec_close(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_close++;
    note_nested(r);
    evt_bytes_add(&r->at_close, r->all.p ? r->all.p : "", r->all.len);
    if (r->on_close)
        r->on_close(r);
    if (!r->keep_open)
        evc_chat_close(c);
}

static void rec_error(evc_chat *c, int err, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_error++;
    r->last_err = err;
    if (r->on_error)
        r->on_error(r, err);
    if (!r->keep_open || (r->close_in & EVT_CLOSE_IN_ERROR))
        evc_chat_close(c);
}

static void rec_timeout(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_timeout++;
    if (r->close_in & EVT_CLOSE_IN_TIMEOUT)
        evc_chat_close(c);
}

static void rec_connect(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_connect++;
    if (r->close_in & EVT_CLOSE_IN_CONNECT)
        evc_chat_close(c);
}

static void rec_drained(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_drained++;
    note_nested(r);
    assert_int_equal(evc_chat_output_pending(c), 0);
    if (r->on_drained)
        r->on_drained(r);
}

static void rec_low_water(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_low_water++;
    note_nested(r);
    if (r->on_low_water)
        r->on_low_water(r);
}

static void rec_too_long(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    check_alive(r, c);
    r->n_too_long++;
    if (r->on_too_long)
        r->on_too_long(r);
}

static void rec_destroy(evc_chat *c, void *data)
{
    evt_recorder *r = data;
    assert_ptr_equal(c, r->chat);
    assert_false(r->destroyed);
    assert_true(evc_chat_closed(c));
    r->n_destroy++;
    r->destroyed = true;
}

const struct evc_chat_ops *evt_recorder_ops(evt_recorder *r, unsigned which)
{
    struct evc_chat_ops *o = &r->ops;
    memset(o, 0, sizeof *o);
    o->found_terminator = (which & EVT_REC_COLLECT) ? rec_found : rec_found_incoming;
    o->on_destroy = rec_destroy;
    if (which & EVT_REC_COLLECT)
        o->collect_incoming_data = rec_collect;
    if (which & EVT_REC_CLOSE)
        o->handle_close = rec_close;
    if (which & EVT_REC_ERROR)
        o->handle_error = rec_error;
    if (which & EVT_REC_TIMEOUT)
        o->handle_timeout = rec_timeout;
    if (which & EVT_REC_CONNECT)
        o->handle_connect = rec_connect;
    if (which & EVT_REC_DRAINED) {
        o->handle_drained = rec_drained;
        o->handle_low_water = rec_low_water;
    }
    if (which & EVT_REC_TOO_LONG)
        o->frame_too_long = rec_too_long;
    return o;
}

evc_chat *evt_recorder_new(evt_recorder *r, struct ev_loop *loop, int fd, unsigned which)
{
    r->loop = loop;
    r->chat = evc_chat_new(loop, fd, evt_recorder_ops(r, which), r);
    assert_non_null(r->chat);
    assert_ptr_equal(evc_chat_data(r->chat), r);
    return r->chat;
}

void evt_recorder_free(evt_recorder *r)
{
    for (int i = 0; i < r->n_frames; i++)
        free(r->frames[i]);
    r->n_frames = 0;
    evt_bytes_free(&r->cur);
    evt_bytes_free(&r->all);
    evt_bytes_free(&r->framed);
    evt_bytes_free(&r->at_close);
    assert_int_equal(r->late_calls, 0);
}

void evt_recorder_assert_frames(const evt_recorder *r, const char *const *want, int n)
{
    assert_int_equal(r->n_frames, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r->frame_len[i], strlen(want[i]));
        assert_memory_equal(r->frames[i], want[i], strlen(want[i]) + 1);
    }
}

/* ------------------------------------------------------------------ */
/* A loop and a pair                                                   */
/* ------------------------------------------------------------------ */

void evt_pair_open(evt_pair *p)
{
    p->loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    p->peer = fds[0];
    p->fd = fds[1];
    evt_set_nodelay(p->peer);
    evt_set_nonblock(p->peer);
}

evc_chat *evt_recorder_open(evt_recorder *r, evt_pair *p, unsigned which, const char *term)
{
    evt_recorder_new(r, p->loop, p->fd, which);
    if (term)
        assert_int_equal(evc_chat_set_terminator(r->chat, term), 0);
    return r->chat;
}

void evt_pair_close(evt_pair *p, evt_recorder *r)
{
    if (r->chat && !r->destroyed)
        evc_chat_close(r->chat);
    close(p->peer);
    evt_loop_finish(p->loop);
    assert_true(r->destroyed);
    evt_recorder_free(r);
}

void evt_pair_feed(evt_pair *p, const char *data, size_t len, const size_t *chunks,
                   size_t nchunks)
{
    evt_feeder f;
    evt_feeder_flood(&f, p->loop, p->peer, data, len, chunks, nchunks);
    assert_true(evt_run_until(p->loop, &f.done, 20.0));
    evt_feeder_stop(&f);
}

void evt_pair_drain_exact(evt_pair *p, evt_bytes *got, size_t n)
{
    char buf[65536];
    for (int spins = 0; got->len < n && spins < 20000; spins++) {
        ssize_t k = recv(p->peer, buf, sizeof buf, 0);
        if (k > 0)
            evt_bytes_add(got, buf, (size_t)k);
        else
            evt_run_for(p->loop, 0.001);
    }
    assert_int_equal(got->len, n);
}

void evt_pair_drain_to_eof(evt_pair *p, evt_bytes *got)
{
    char buf[65536];
    for (int spins = 0; spins < 20000; spins++) {
        ssize_t k = recv(p->peer, buf, sizeof buf, 0);
        if (k == 0)
            return;
        if (k > 0)
            evt_bytes_add(got, buf, (size_t)k);
        else
            evt_run_for(p->loop, 0.001);
    }
    fail_msg("no EOF from the chat");
}

void evt_random_lines(evt_bytes *out, size_t total, unsigned *seed)
{
    static const size_t edges[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    while (out->len < total) {
        unsigned r = (unsigned)rand_r(seed);
        size_t len = r % 2 ? edges[(r >> 1) % (sizeof edges / sizeof edges[0])] : (r >> 1) % 301;
        for (size_t i = 0; i < len; i++) {
            char ch = (char)('!' + (rand_r(seed) % 90));
            evt_bytes_add(out, &ch, 1);
        }
        evt_bytes_add(out, "\n", 1);
    }
}

void evt_count_release(void *counter)
{
    (*(int *)counter)++;
}
