/*
 * A chat's limits, over real loopback sockets and a real loop: a frame over
 * max_frame fails only its own chat (the kept terminator counts, the limit
 * may be lowered inside found_terminator), the high-water mark pauses reading
 * (also when crossed inside one callback, and lines held back at the mark are
 * still answered after EOF, and discarding the output from outside a callback
 * lets reading resume), a reader that never reads keeps memory bounded, and
 * the output limit refuses the push that would cross it.
 *
 * Every chat is a recording chat (tests/support.h) over one end of a TCP
 * pair.  Every test ends with the loop empty.
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

static void test_oversized_frame_fails_only_that_channel(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2], other[2];
    evt_tcp_pair(fds);
    evt_tcp_pair(other);
    evt_set_nonblock(other[0]);
    /* Even a handle_error that keeps the chat open cannot keep this one. */
    evt_recorder r = {.keep_open = true}, r2 = {.echo = true};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    evc_chat *c2 = evt_recorder_new(&r2, loop, other[1], EVT_REC_ALL);
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
    assert_true(evt_fd_readable(fds[0]));
    assert_true(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT) <= 0);

    /* The other channel on the loop goes on. */
    evt_sink s;
    evt_sink_start(&s, loop, other[0], 5);
    evt_send_all(other[0], S("ping\n"));
    evt_sink_wait(&s, 5);
    assert_memory_equal(s.got.p, "ping\n", 5);
    assert_int_equal(r2.n_error, 0);

    evt_sink_stop(&s);
    evc_chat_close(c2);
    close(fds[0]);
    close(other[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
    evt_recorder_free(&r2);
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
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    set_bufs(fds[0], 32768);
    set_bufs(fds[1], 32768);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {.echo = true};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
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
    evt_sink s;
    evt_sink_start(&s, loop, fds[0], text.len);
    evt_sink_wait(&s, text.len);
    assert_int_equal(s.got.len, text.len);
    assert_memory_equal(s.got.p, text.p, text.len);
    assert_int_equal((size_t)r.n_found, lines);
    if (r.max_pending > high + 64 * 1024)
        fail_msg("output grew to %zu bytes past a high-water mark of %zu", r.max_pending, high);

    ev_io_stop(loop, &f.w);
    evt_sink_stop(&s);
    evt_bytes_free(&text);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_output_limit(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    evc_chat_set_output_limit(c, 1000);
    char a[600], b[400], big[5000];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    memset(big, 'c', sizeof big);
    int released = 0;
    assert_int_equal(evc_chat_push(c, a, sizeof a), 0);
    assert_int_equal(evc_chat_push(c, a, sizeof a), -ENOBUFS);
    assert_int_equal(evc_chat_push_ref(c, a, sizeof a, evt_count_release, &released), -ENOBUFS);
    assert_int_equal(evc_chat_pushf(c, "%600d", 1), -ENOBUFS);
    assert_int_equal(evc_chat_push(c, b, sizeof b), 0);   /* exactly at the limit */
    assert_int_equal(evc_chat_push(c, "x", 1), -ENOBUFS);
    assert_int_equal(evc_chat_output_pending(c), 1000);
    assert_int_equal(released, 0);
    evc_chat_set_output_limit(c, 0);
    assert_int_equal(evc_chat_push(c, big, sizeof big), 0);

    evt_sink s;
    evt_sink_start(&s, loop, fds[0], 6000);
    evt_sink_wait(&s, 6000);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, 6000);
    assert_memory_equal(s.got.p, a, 600);
    assert_memory_equal(s.got.p + 600, b, 400);
    assert_memory_equal(s.got.p + 1000, big, 5000);
    assert_int_equal(evc_chat_output_pending(c), 0);

    evt_sink_stop(&s);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_discard_outside_callbacks_resumes_reading(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    set_bufs(fds[0], 32768);
    set_bufs(fds[1], 32768);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {.echo = true};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
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
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* max_frame counts a kept terminator: a line of max - strlen(term) bytes plus the
 * terminator is the longest frame; one byte more fails the chat.  Without keep the line
 * alone may be max bytes.  The same whether the line comes in one read (the line fast
 * path for "\n") or in small pieces (frames and terminators split across reads). */
static void max_keep_case(const char *term, unsigned ops, bool keep,
                          size_t chunk)
{
    enum { MAX = 10 };
    size_t tl = strlen(term);
    size_t fits = MAX - (keep ? tl : 0);
    evt_bytes msg = {0};
    for (size_t i = 0; i < fits; i++)
        evt_bytes_add(&msg, "f", 1);
    evt_bytes_adds(&msg, term);
    for (size_t i = 0; i <= fits; i++)
        evt_bytes_add(&msg, "g", 1);
    evt_bytes_adds(&msg, term);
    evt_bytes_adds(&msg, "never");
    evt_bytes_adds(&msg, term);

    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, keep);
    evc_chat_set_max_frame(c, MAX);
    evt_feeder f;
    evt_feeder_flood(&f, p.loop, p.peer, msg.p, msg.len, &chunk, 1);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    evt_feeder_stop(&f);
    evt_bytes want = {0};
    evt_bytes_add_frame(&want, msg.p, MAX);
    assert_string_equal(r.framed.p, want.p);
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void test_max_frame_counts_the_kept_terminator(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    const unsigned ops[] = {EVT_REC_ERROR, EVT_REC_COLLECT | EVT_REC_ERROR};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        for (size_t k = 0; k < ARRAY_LEN(ops); k++) {
            for (unsigned keep = 0; keep < 2; keep++) {
                max_keep_case(terms[t], ops[k], keep, 0);
                max_keep_case(terms[t], ops[k], keep, 1);
                max_keep_case(terms[t], ops[k], keep, 7);
            }
        }
    }
}

static void max_frame_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_max_frame(r->chat, 10);
}

static void test_max_frame_lowered_inside_found(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = max_frame_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    static const char msg[] = "first line, long\nshort\nthis one is too long\nnever\n";
    evt_send_all(p.peer, msg, sizeof msg - 1);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_string_equal(r.framed.p, "16:first line, long|5:short|");
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    evt_pair_close(&p, &r);
}

/* A line over the limit (a set one, or the default 1 MiB) fails its own channel; a
 * neighbour on the same loop goes on.  A line of exactly the default limit passes. */
static void test_oversized_line_fails_only_its_channel(void **state)
{
    (void)state;
    static const size_t limits[] = {1000, 70000, EVC_DEFAULT_MAX_FRAME};
    for (size_t k = 0; k < ARRAY_LEN(limits); k++) {
        bool is_default = limits[k] == EVC_DEFAULT_MAX_FRAME;
        evt_pair p;
        evt_pair_open(&p);
        evt_recorder bad = {0};
        evc_chat *c = evt_recorder_open(&bad, &p, EVT_REC_ERROR, "\n");
        if (!is_default)
            evc_chat_set_max_frame(c, limits[k]);
        int fds[2];
        evt_tcp_pair(fds);
        evt_recorder good = {0};
        good.loop = p.loop;
        evt_recorder_new(&good, p.loop, fds[1], EVT_REC_ERROR);
        assert_non_null(good.chat);
        evc_chat_set_terminator(good.chat, "\n");

        size_t n = is_default ? limits[k] + 1 : 2 * limits[k];
        char *line = malloc(n + 1);
        assert_non_null(line);
        memset(line, 'x', n);
        line[n] = '\n';
        evt_pair_feed(&p, "ok\n", 3, NULL, 0);
        evt_bytes want = {0};
        evt_bytes_add_frame(&want, "ok", 2);
        if (is_default) {
            /* The longest line the default allows, then one byte longer. */
            evt_pair_feed(&p, line + 1, n, NULL, 0);
            assert_true(evt_run_until_count(p.loop, &bad.n_found, 2, 10.0));
            evt_bytes_add_frame(&want, line + 1, n - 1);
        }
        evt_feeder f;
        evt_feeder_flood(&f, p.loop, p.peer, line, n + 1, NULL, 0);
        assert_true(evt_run_until(p.loop, &bad.destroyed, 10.0));
        evt_feeder_stop(&f);
        assert_int_equal(bad.last_err, -EMSGSIZE);
        assert_int_equal(bad.framed.len, want.len);
        assert_memory_equal(bad.framed.p, want.p, want.len);
        evt_bytes_free(&want);

        evt_send_all(fds[0], "still here\n", 11);
        assert_true(evt_run_until_count(p.loop, &good.n_found, 1, 5.0));
        assert_string_equal(good.framed.p, "10:still here|");
        evc_chat_close(good.chat);
        close(fds[0]);
        free(line);
        evt_pair_close(&p, &bad);
        assert_true(good.destroyed);
        evt_recorder_free(&good);
    }
}

static void limit_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    char buf[3000];
    memset(buf, 'L', sizeof buf);
    for (int i = 0; i < 4; i++)
        r->results[i] = evc_chat_push(r->chat, buf, sizeof buf);
    r->results[4] = evc_chat_push(r->chat, buf, 1000);
}

/* Short pushes, most of them into the queue's reserve: the one that would pass the limit
 * is refused to the byte, and one that exactly fills it is not. */
static void small_limit_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    static const char sixteen[] = "0123456789abcdef";
    for (int i = 0; i < 63; i++)
        r->results[i < 62 ? 0 : 1] |= evc_chat_push(r->chat, sixteen, 16);
    r->results[2] = evc_chat_push(r->chat, "01234567", 8);   /* 62 * 16 + 8 = 1000 */
    r->results[3] = evc_chat_push(r->chat, "!", 1);
    r->pending[0] = evc_chat_output_pending(r->chat);
}

static void test_output_limit_counts_pushes_inside_callbacks(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = small_limit_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evc_chat_set_output_limit(c, 1000);
    assert_int_equal(evc_chat_set_watermarks(c, 0, 0), 0);
    evt_send_all(p.peer, "x\n", 2);
    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 1000);
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], -ENOBUFS);
    assert_int_equal(r.results[2], 0);
    assert_int_equal(r.results[3], -ENOBUFS);
    assert_int_equal(r.pending[0], 1000);
    assert_memory_equal(got.p + 992, "01234567", 8);
    evt_run_for(p.loop, 0.02);
    char extra;
    assert_true(recv(p.peer, &extra, 1, 0) < 0);
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

static void test_output_limit_refuses_the_crossing_push(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = limit_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evc_chat_set_output_limit(c, 10000);
    assert_int_equal(evc_chat_set_watermarks(c, 0, 0), 0);
    evt_send_all(p.peer, "x\n", 2);
    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 10000);
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);
    assert_int_equal(r.results[2], 0);
    assert_int_equal(r.results[3], -ENOBUFS);
    assert_int_equal(r.results[4], 0);
    evt_run_for(p.loop, 0.02);
    char extra;
    assert_true(recv(p.peer, &extra, 1, 0) < 0);   /* nothing more than the 10000 */
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

static void big_reply_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    char buf[1000];
    memset(buf, 'a' + r->n_found % 26, sizeof buf);
    assert_int_equal(evc_chat_push(r->chat, buf, sizeof buf), 0);
}

/* A peer that does not read: pushes from callbacks stop the reading at the high-water
 * mark, the queue stays bounded, and everything flows once the peer reads. */
static void test_high_water_inside_callbacks_pauses_reading(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    int small = 32768;   /* small enough to fill, big enough for no zero-window stalls */
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    evt_recorder r = {.on_frame = big_reply_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    assert_int_equal(evc_chat_set_watermarks(c, 8000, 20000), 0);

    enum { LINES = 2000 };
    static char msg[2 * LINES];
    for (int i = 0; i < LINES; i++)
        msg[2 * i] = 'q', msg[2 * i + 1] = '\n';
    /* One line per send, so reads are small and the pause shows between them. */
    static const size_t one_line = 2;
    evt_feeder f;
    evt_feeder_flood(&f, p.loop, p.peer, msg, sizeof msg, &one_line, 1);
    evt_run_for(p.loop, 0.3);
    /* Reading paused well before every line was answered, with the queue bounded:
     * no callback starts above the mark, so it is passed by at most one reply. */
    assert_true(r.n_found < LINES / 2);
    assert_true(r.max_pending <= 20000);
    assert_true(evc_chat_output_pending(c) <= 20000 + 1000);

    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, (size_t)LINES * 1000);
    assert_int_equal(r.n_found, LINES);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(got.p[(size_t)i * 1000 + 999], 'a' + (i + 1) % 26);
    evt_feeder_stop(&f);
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

/* Pushes crossing the high-water mark inside one callback: the callback's pushes all
 * queue, the chat then reads and delivers nothing more while the peer does not read,
 * and it answers the lines sent meanwhile once the peer drains. */
static void flood_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found > 1) {
        r->results[1] |= evc_chat_push(r->chat, "ok\n", 3);
        return;
    }
    char buf[4096];
    for (int i = 0; i < 100; i++) {
        memset(buf, 'A' + i % 26, sizeof buf);
        r->results[0] |= evc_chat_push(r->chat, buf, sizeof buf);
    }
    r->pending[0] = evc_chat_output_pending(r->chat);
}

static void test_high_water_crossed_inside_one_callback(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    int small = 32768;
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    evt_recorder r = {.on_frame = flood_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    assert_int_equal(evc_chat_set_watermarks(c, 8000, 20000), 0);

    evt_send_all(p.peer, "go\n", 3);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 1, 5.0));
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.pending[0], 100 * 4096);
    /* More than the mark is still queued (the kernel took what it could). */
    assert_true(evc_chat_output_pending(c) > 20000);
    evt_send_all(p.peer, "a\nb\nc\n", 6);
    evt_run_for(p.loop, 0.1);
    assert_int_equal(r.n_found, 1);

    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 100 * 4096 + 3 * 3);
    for (int i = 0; i < 100; i++)
        assert_int_equal(got.p[(size_t)i * 4096 + 4095], 'A' + i % 26);
    assert_memory_equal(got.p + 100 * 4096, "ok\nok\nok\n", 9);
    assert_int_equal(r.n_found, 4);
    assert_int_equal(r.results[1], 0);
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

/* The peer sends many lines and shuts its side without reading: every line held back
 * at the mark is still answered, in order (reading is paused, so the EOF is seen only
 * after them), and then the chat closes by itself once the replies are written. */
static void test_lines_held_at_the_mark_are_answered_after_eof(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    int small = 32768;
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    evt_recorder r = {.on_frame = big_reply_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    assert_int_equal(evc_chat_set_watermarks(c, 8000, 20000), 0);
    enum { LINES = 500 };
    static char msg[2 * LINES];
    for (int i = 0; i < LINES; i++)
        msg[2 * i] = 'q', msg[2 * i + 1] = '\n';
    evt_send_all(p.peer, msg, sizeof msg);
    evt_run_for(p.loop, 0.05);
    assert_true(r.n_found < LINES);
    assert_int_equal(shutdown(p.peer, SHUT_WR), 0);
    evt_run_for(p.loop, 0.05);

    evt_bytes got = {0};
    evt_pair_drain_to_eof(&p, &got);
    assert_int_equal(got.len, (size_t)LINES * 1000);
    assert_int_equal(r.n_found, LINES);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(got.p[(size_t)i * 1000], 'a' + (i + 1) % 26);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oversized_frame_fails_only_that_channel),
        cmocka_unit_test(test_reader_that_never_reads_bounds_memory),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_discard_outside_callbacks_resumes_reading),
        cmocka_unit_test(test_max_frame_counts_the_kept_terminator),
        cmocka_unit_test(test_max_frame_lowered_inside_found),
        cmocka_unit_test(test_oversized_line_fails_only_its_channel),
        cmocka_unit_test(test_output_limit_counts_pushes_inside_callbacks),
        cmocka_unit_test(test_output_limit_refuses_the_crossing_push),
        cmocka_unit_test(test_high_water_inside_callbacks_pauses_reading),
        cmocka_unit_test(test_high_water_crossed_inside_one_callback),
        cmocka_unit_test(test_lines_held_at_the_mark_are_answered_after_eof),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
