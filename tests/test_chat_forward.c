/*
 * Tests of forwarding without a copy (evc_chat_push_incoming) and of the read
 * blocks it references: a chat streams what it reads back to its peer, or on
 * to another chat of its loop, by reference to its read blocks.
 *
 * Peers are plain non-blocking loopback sockets driven by an ev_io in the
 * test's loop: each sends a pseudo-random body (no short period, so a block
 * reused or moved under a queued reference shows as wrong bytes) and collects
 * what comes back, optionally only after a delay, so that references pile up
 * in the output queue while the chat keeps reading.  Every test ends by
 * closing everything and checking the loop is empty; ASan and valgrind check
 * that a block outlives neither its last reference nor the loop.
 */
#include "support.h"
#include "chat_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pieces at least this long are queued by reference (shorter ones are copied). */
#define BIG_PIECE 512

/* ------------------------------------------------------------------ */
/* The forwarding chat                                                 */
/* ------------------------------------------------------------------ */

typedef struct fwd {
    evc_chat *chat;
    evc_chat *to;             /* where collect forwards; NULL: back to its own peer */
    bool wrap;                /* push "<" before and ">" after each piece (copies) */
    bool discard_from;        /* discard_buffers on the source after each piece */
    size_t close_after;       /* close the source once this many bytes were collected */
    size_t collected, pieces, big_pieces, by_ref;
    int failures, last_rc;
    int destroyed;
} fwd;

static void fwd_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    fwd *f = data;
    evc_chat *to = f->to ? f->to : c;
    unsigned refs = evc__buf_refs(&c->in);
    if (f->wrap)
        assert_int_equal(evc_chat_push(to, "<", 1), 0);
    int rc = evc_chat_push_incoming(to, c, p, n);
    if (rc != 0) {
        f->failures++;
        f->last_rc = rc;
    }
    /* The proof that nothing was copied: the queue now holds one more reference
     * to the very block the bytes were read into. */
    if (n >= BIG_PIECE) {
        f->big_pieces++;
        if (evc__buf_refs(&c->in) == refs + 1)
            f->by_ref++;
    }
    if (f->wrap)
        assert_int_equal(evc_chat_push(to, ">", 1), 0);
    f->pieces++;
    f->collected += n;
    if (f->discard_from)
        evc_chat_discard_buffers(c);
    if (f->close_after && f->collected >= f->close_after)
        evc_chat_close(c);
}

static void fwd_destroy(evc_chat *c, void *data)
{
    fwd *f = data;
    (void)c;
    f->destroyed++;
}

static const struct evc_chat_ops fwd_ops = {
    .collect_incoming_data = fwd_collect,
    .on_destroy = fwd_destroy,
};

/* A chat that only writes what others queue on it. */
static const struct evc_chat_ops sink_ops = {.on_destroy = fwd_destroy};

/* Closes the chat if still open and runs the loop until it is destroyed. */
static void close_and_reap(struct ev_loop *loop, evc_chat *c, fwd *f)
{
    if (!f->destroyed)
        evc_chat_close(c);
    assert_true(evt_run_until_count(loop, &f->destroyed, 1, 5.));
}

/* A chat of loop over a new loopback connection; *peer_fd gets the other end. */
static evc_chat *chat_pair(struct ev_loop *loop, const struct evc_chat_ops *ops, fwd *f,
                           int *peer_fd)
{
    int fds[2];
    evt_tcp_pair(fds);
    *peer_fd = fds[0];
    f->chat = evc_chat_new(loop, fds[1], ops, f);
    assert_non_null(f->chat);
    return f->chat;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

#define BODY (1u << 20)

/* A body streamed back to its own peer arrives intact, in order, across many
 * reads, each big piece queued by reference; the peer reads late, so several
 * referenced blocks wait in the queue while the chat goes on reading. */
static void test_echo_by_reference(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *body = evt_random_body(BODY, 1);
    fwd f = {0};
    int pfd;
    evc_chat *c = chat_pair(loop, &fwd_ops, &f, &pfd);
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, BODY, BODY, 0.2);
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);

    assert_int_equal(f.failures, 0);
    assert_int_equal(f.collected, BODY);
    assert_true(f.pieces >= BODY / 65536);
    assert_true(f.big_pieces > 0);
    assert_int_equal(f.by_ref, f.big_pieces);
    assert_int_equal(p.got.len, BODY);
    assert_memory_equal(p.got.p, body, BODY);

    /* Written and drained, the chat holds no block, and its blocks went back to
     * the loop's source (which keeps a few). */
    assert_null(c->in.data);
    evc_block_source *src = evc__registry_blocks(evc__dispatcher_entry(c->disp));
    assert_true(src->nspare >= 1);
    assert_int_equal(evc_chat_output_pending(c), 0);

    close_and_reap(loop, c, &f);
    evt_peer_stop(&p);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* References keep their place in the FIFO among copies pushed around them. */
static void test_fifo_with_copies(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 300000;
    char *body = evt_random_body(len, 2);
    fwd f = {.wrap = true};
    int pfd;
    evc_chat *c = chat_pair(loop, &fwd_ops, &f, &pfd);
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, len, SIZE_MAX, 0.05);
    p.shut_when_sent = true;
    /* The chat closes after answering the peer's EOF; the peer reads to EOF. */
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);

    assert_int_equal(f.failures, 0);
    assert_int_equal(f.collected, len);
    assert_int_equal(p.got.len, len + 2 * f.pieces);
    /* "<piece>" after "<piece>": the pieces, unwrapped, are the body. */
    size_t at = 0, pieces = 0;
    for (size_t i = 0; i < p.got.len;) {
        assert_int_equal(p.got.p[i], '<');
        const char *end = memchr(p.got.p + i + 1, '>', p.got.len - i - 1);
        assert_non_null(end);
        size_t n = (size_t)(end - (p.got.p + i + 1));
        assert_true(at + n <= len);
        assert_memory_equal(p.got.p + i + 1, body + at, n);
        at += n;
        pieces++;
        i += n + 2;
    }
    assert_int_equal(at, len);
    assert_int_equal(pieces, f.pieces);
    assert_true(f.by_ref > 0);

    close_and_reap(loop, c, &f);
    evt_peer_stop(&p);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* A proxy: chat a forwards what it reads to chat b.  a's peer sends the body
 * and shuts down, so a closes and is destroyed while b's queue still holds
 * references to a's blocks (b's peer starts reading only later).  b still
 * writes every byte intact. */
static void test_source_closes_before_its_blocks_are_written(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 600000;
    char *body = evt_random_body(len, 3);
    fwd fa = {0}, fb = {0};
    int pa, pb;
    (void)chat_pair(loop, &fwd_ops, &fa, &pa);
    evc_chat *b = chat_pair(loop, &sink_ops, &fb, &pb);
    fa.to = b;
    /* b must not stop a: no high-water mark while the test piles references up. */
    assert_int_equal(evc_chat_set_watermarks(b, 0, 0), 0);
    evt_small_buffer(evc_dispatcher_fd(evc_chat_dispatcher(b)), SO_SNDBUF, 32768);
    evt_small_buffer(pb, SO_RCVBUF, 32768);
    evt_peer sa, sb;
    evt_peer_start(&sa, loop, pa, body, len, 0, 0.);
    sa.shut_when_sent = true;
    evt_peer_start(&sb, loop, pb, NULL, 0, len, 3600.);

    evt_run_peers(loop, (evt_peer *[]){&sa}, 1);
    assert_true(evt_run_until_count(loop, &fa.destroyed, 1, 5.));
    assert_int_equal(fa.failures, 0);
    assert_int_equal(fa.collected, len);
    assert_true(fa.by_ref > 0);
    /* a is gone; b's queue holds what the socket did not take. */
    assert_true(evc_chat_output_pending(b) > 0);

    ev_timer_stop(loop, &sb.start_reading);
    sb.reading = true;
    evt_peer_update(&sb);
    evt_run_peers(loop, (evt_peer *[]){&sb}, 1);
    assert_int_equal(sb.got.len, len);
    assert_memory_equal(sb.got.p, body, len);

    close_and_reap(loop, b, &fb);
    evt_peer_stop(&sa);
    evt_peer_stop(&sb);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* The source discards its buffers right after each forward: what was queued
 * stays intact (the block is left to the queue), and what it reads next goes
 * to a fresh block. */
static void test_discard_on_the_source(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 500000;
    char *body = evt_random_body(len, 4);
    fwd fa = {.discard_from = true}, fb = {0};
    int pa, pb;
    evc_chat *a = chat_pair(loop, &fwd_ops, &fa, &pa);
    evc_chat *b = chat_pair(loop, &sink_ops, &fb, &pb);
    fa.to = b;
    evt_peer sa, sb;
    evt_peer_start(&sa, loop, pa, body, len, 0, 0.);
    evt_peer_start(&sb, loop, pb, NULL, 0, len, 0.1);
    evt_run_peers(loop, (evt_peer *[]){&sa, &sb}, 2);

    assert_int_equal(fa.failures, 0);
    assert_true(fa.by_ref > 0);
    assert_int_equal(sb.got.len, len);
    assert_memory_equal(sb.got.p, body, len);

    close_and_reap(loop, a, &fa);
    close_and_reap(loop, b, &fb);
    evt_peer_stop(&sa);
    evt_peer_stop(&sb);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* The chat the bytes were queued on discards its output: the references are
 * released at once (the source's block is its own again), and later forwards
 * go on normally. */
static int discards_left;

static void discard_to_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    fwd *f = data;
    unsigned refs = evc__buf_refs(&c->in);
    int rc = evc_chat_push_incoming(f->to, c, p, n);
    assert_int_equal(rc, 0);
    if (n >= BIG_PIECE)
        assert_int_equal(evc__buf_refs(&c->in), refs + 1);
    f->collected += n;
    if (discards_left > 0 && n >= BIG_PIECE) {
        discards_left--;
        evc_chat_discard_buffers(f->to);
        assert_int_equal(evc_chat_output_pending(f->to), 0);
        assert_int_equal(evc__buf_refs(&c->in), refs);
        f->pieces++;        /* pieces dropped */
    }
}

static void test_discard_on_the_destination(void **state)
{
    (void)state;
    static const struct evc_chat_ops ops = {
        .collect_incoming_data = discard_to_collect,
        .on_destroy = fwd_destroy,
    };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 200000;
    char *body = evt_random_body(len, 5);
    fwd fa = {0}, fb = {0};
    int pa, pb;
    (void)chat_pair(loop, &ops, &fa, &pa);
    evc_chat *b = chat_pair(loop, &sink_ops, &fb, &pb);
    fa.to = b;
    discards_left = 1;
    evt_peer sa, sb;
    evt_peer_start(&sa, loop, pa, body, len, 0, 0.);
    sa.shut_when_sent = true;
    evt_peer_start(&sb, loop, pb, NULL, 0, SIZE_MAX, 0.);
    evt_run_peers(loop, (evt_peer *[]){&sa}, 1);
    assert_true(evt_run_until_count(loop, &fa.destroyed, 1, 5.));
    assert_int_equal(fa.pieces, 1);
    evc_chat_close_when_done(b);
    evt_run_peers(loop, (evt_peer *[]){&sb}, 1);

    /* What b wrote is the body with what its queue held at the discard missing:
     * a head of the body, then the rest of it, each intact. */
    assert_true(sb.got.len < len);
    size_t head = 0;
    while (head < sb.got.len && sb.got.p[head] == body[head])
        head++;
    size_t tail = sb.got.len - head;
    assert_memory_equal(sb.got.p + head, body + len - tail, tail);
    assert_int_equal(fa.collected, len);

    assert_true(evt_run_until_count(loop, &fb.destroyed, 1, 5.));
    evt_peer_stop(&sa);
    evt_peer_stop(&sb);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until the chat collected n bytes (at most 10 s). */
static void run_until_collected(struct ev_loop *loop, const fwd *f, size_t n)
{
    ev_timer guard;
    ev_timer_init(&guard, tick, 0.01, 0.01);
    ev_timer_start(loop, &guard);
    double deadline = ev_time() + 10.;
    while (f->collected < n && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    assert_int_equal(f->collected, n);
}

/* The destination closes with references queued: they are released with its
 * queue, and the source goes on reading into its blocks, now echoing. */
static void test_destination_closes_with_references_queued(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 400000, half = len / 2;
    char *body = evt_random_body(len, 6);
    fwd fa = {0}, fb = {0};
    int pa, pb;
    evc_chat *a = chat_pair(loop, &fwd_ops, &fa, &pa);
    evc_chat *b = chat_pair(loop, &sink_ops, &fb, &pb);
    fa.to = b;
    assert_int_equal(evc_chat_set_watermarks(b, 0, 0), 0);
    evt_small_buffer(evc_dispatcher_fd(evc_chat_dispatcher(b)), SO_SNDBUF, 4096);
    evt_small_buffer(pb, SO_RCVBUF, 4096);
    evt_peer sa;
    evt_peer_start(&sa, loop, pa, body, half, 0, 0.);
    run_until_collected(loop, &fa, half);
    assert_true(fa.by_ref > 0);
    assert_true(evc_chat_output_pending(b) > 0);

    close_and_reap(loop, b, &fb);
    fa.to = NULL;
    sa.out_len = len;
    sa.want = len - half;
    sa.reading = true;
    evt_peer_update(&sa);
    evt_run_peers(loop, (evt_peer *[]){&sa}, 1);
    assert_int_equal(fa.failures, 0);
    assert_int_equal(sa.got.len, len - half);
    assert_memory_equal(sa.got.p, body + half, len - half);

    close_and_reap(loop, a, &fa);
    evt_peer_stop(&sa);
    close(pb);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* The loop's last chat closes, in its own callback, with its blocks queued and
 * its input block in use: they go back to the loop's source in its on_destroy,
 * before the loop's entry (and the source with it) goes away. */
static void test_last_chat_closes_with_blocks_queued(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const size_t len = 300000;
    char *body = evt_random_body(len, 11);
    fwd f = {.close_after = 100000};
    int pfd;
    evc_chat *c = chat_pair(loop, &fwd_ops, &f, &pfd);
    evt_small_buffer(evc_dispatcher_fd(evc_chat_dispatcher(c)), SO_SNDBUF, 4096);
    evt_small_buffer(pfd, SO_RCVBUF, 4096);
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, len, 0, 3600.);
    assert_true(evt_run_until_count(loop, &f.destroyed, 1, 10.));
    assert_true(f.by_ref > 0);
    assert_int_equal(f.failures, 0);
    evt_peer_stop(&p);
    (void)c;
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* What may be forwarded, and what is copied. */
static struct {
    int outside, other_loop, closed_to, short_run, short_refs, rest;
    bool checked;
    evc_chat *foreign, *doomed;
} edge;

static void edge_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    (void)data;
    if (edge.checked || n < 20) {
        assert_int_equal(evc_chat_push_incoming(c, c, p, n), 0);
        return;
    }
    edge.checked = true;
    static const char elsewhere[BIG_PIECE * 2];
    edge.outside = evc_chat_push_incoming(c, c, elsewhere, sizeof elsewhere);
    edge.other_loop = evc_chat_push_incoming(edge.foreign, c, p, n);
    evc_chat_close(edge.doomed);
    edge.closed_to = evc_chat_push_incoming(edge.doomed, c, p, n);
    unsigned refs = evc__buf_refs(&c->in);
    edge.short_run = evc_chat_push_incoming(c, c, p, 10);
    edge.short_refs = (int)(evc__buf_refs(&c->in) - refs);
    edge.rest = evc_chat_push_incoming(c, c, p + 10, n - 10);
}

static void test_edges(void **state)
{
    (void)state;
    static const struct evc_chat_ops ops = {.collect_incoming_data = edge_collect,
                                            .on_destroy = fwd_destroy};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ev_loop *loop2 = ev_loop_new(EVFLAG_AUTO);
    memset(&edge, 0, sizeof edge);
    fwd f = {0}, g = {0}, h = {0};
    int pfd, qfd, dfd;
    evc_chat *c = chat_pair(loop, &ops, &f, &pfd);
    evc_chat *other = chat_pair(loop2, &sink_ops, &g, &qfd);
    edge.foreign = other;
    edge.doomed = chat_pair(loop, &sink_ops, &h, &dfd);
    const size_t len = 4000;
    char *body = evt_random_body(len, 7);
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, len, len, 0.);
    p.chunk = len;
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);

    assert_int_equal(edge.outside, -EINVAL);
    assert_int_equal(edge.other_loop, -EXDEV);
    assert_int_equal(edge.closed_to, -EPIPE);
    assert_int_equal(edge.short_run, 0);
    assert_int_equal(edge.short_refs, 0);     /* copied */
    assert_int_equal(edge.rest, 0);
    assert_int_equal(h.destroyed, 1);
    assert_memory_equal(p.got.p, body, len);

    /* NULLs are refused. */
    assert_int_equal(evc_chat_push_incoming(NULL, c, body, 1), -EINVAL);
    assert_int_equal(evc_chat_push_incoming(c, NULL, body, 1), -EINVAL);
    assert_int_equal(evc_chat_push_incoming(c, c, NULL, 0), -EINVAL);

    close_and_reap(loop, c, &f);
    close_and_reap(loop2, other, &g);
    evt_peer_stop(&p);
    close(qfd);
    close(dfd);
    evt_assert_loop_empty(loop);
    evt_assert_loop_empty(loop2);
    ev_loop_destroy(loop);
    ev_loop_destroy(loop2);
    free(body);
}

/* In the middle of a read, bytes in the block past what the read brought are
 * not input: refused, never sent. */
static int past_end_rc;
static bool past_end_checked;

static void past_end_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    (void)data;
    if (!past_end_checked) {
        past_end_checked = true;
        past_end_rc = evc_chat_push_incoming(c, c, p, n + BIG_PIECE);
    }
    assert_int_equal(evc_chat_push_incoming(c, c, p, n), 0);
}

static void test_bytes_past_the_read_are_refused(void **state)
{
    (void)state;
    static const struct evc_chat_ops ops = {.collect_incoming_data = past_end_collect,
                                            .on_destroy = fwd_destroy};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    fwd f = {0};
    int pfd;
    evc_chat *c = chat_pair(loop, &ops, &f, &pfd);
    char *body = evt_random_body(1000, 8);
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, 1000, 1000, 0.);
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);
    assert_true(past_end_checked);
    assert_int_equal(past_end_rc, -EINVAL);
    assert_memory_equal(p.got.p, body, 1000);
    close_and_reap(loop, c, &f);
    evt_peer_stop(&p);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* With the default collector, found_terminator's frame is forwarded: by
 * reference when it sat whole in one read, copied when the library had
 * assembled it from several reads.  Both arrive intact. */
static struct {
    int frames, by_ref, copied, failures;
} frames;

static void frame_found(evc_chat *c, void *data)
{
    (void)data;
    size_t n;
    const char *frame = evc_chat_incoming(c, &n);
    unsigned refs = evc__buf_refs(&c->in);
    if (evc_chat_push_incoming(c, c, frame, n) != 0)
        frames.failures++;
    if (evc__buf_refs(&c->in) == refs + 1)
        frames.by_ref++;
    else
        frames.copied++;
    frames.frames++;
    evc_chat_push(c, "\n", 1);
}

static void test_frames_from_the_default_collector(void **state)
{
    (void)state;
    static const struct evc_chat_ops ops = {.found_terminator = frame_found,
                                            .on_destroy = fwd_destroy};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    memset(&frames, 0, sizeof frames);
    fwd f = {0};
    int pfd;
    evc_chat *c = chat_pair(loop, &ops, &f, &pfd);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    /* Frames of 1000 bytes: the first half sent 700 bytes at a time, waiting
     * for each to be echoed (so they span reads), the second half at once (so
     * they sit whole in a read). */
    const size_t nframes = 40, flen = 1000, total = nframes * (flen + 1);
    char *body = evt_random_body(total, 9);
    for (size_t i = 0; i < nframes; i++)
        body[i * (flen + 1) + flen] = '\n';
    evt_peer p;
    evt_peer_start(&p, loop, pfd, body, 0, 0, 0.);
    for (size_t at = 0; at < total / 2; at += 700) {
        p.out_len = at + 700;
        p.want = p.out_len - p.out_len % (flen + 1);
        evt_peer_update(&p);
        evt_run_peers(loop, (evt_peer *[]){&p}, 1);
        evt_run_for(loop, 0.002);
    }
    assert_true(frames.copied > 0);
    p.out_len = total;
    p.want = total;
    p.chunk = total;
    evt_peer_update(&p);
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);
    assert_int_equal(frames.failures, 0);
    assert_int_equal(frames.frames, (int)nframes);
    assert_memory_equal(p.got.p, body, total);
    assert_true(frames.by_ref > 0);

    close_and_reap(loop, c, &f);
    evt_peer_stop(&p);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    free(body);
}

/* The block source belongs to the loop, not to a chat: it outlives all but the
 * loop's last dispatcher, and another loop has its own. */
static void test_block_source_is_per_loop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ev_loop *loop2 = ev_loop_new(EVFLAG_AUTO);
    fwd fa = {0}, fb = {0}, fc = {0};
    int pa, pb, pc;
    evc_chat *a = chat_pair(loop, &fwd_ops, &fa, &pa);
    evc_chat *b = chat_pair(loop, &sink_ops, &fb, &pb);
    evc_chat *c = chat_pair(loop2, &sink_ops, &fc, &pc);
    evc_block_source *src = evc__registry_blocks(evc__dispatcher_entry(a->disp));
    assert_ptr_equal(src, evc__registry_blocks(evc__dispatcher_entry(b->disp)));
    assert_ptr_not_equal(src, evc__registry_blocks(evc__dispatcher_entry(c->disp)));
    assert_int_equal(src->block_size, EVC_READ_BLOCK);

    /* a echoes something: its block goes back to the source... */
    char *body = evt_random_body(5000, 10);
    evt_peer p;
    evt_peer_start(&p, loop, pa, body, 5000, 5000, 0.);
    evt_run_peers(loop, (evt_peer *[]){&p}, 1);
    assert_int_equal(src->nspare, 1);
    evc_block *spare = src->spare[0];
    /* ...and stays there once a is gone, for b. */
    close_and_reap(loop, a, &fa);
    assert_int_equal(src->nspare, 1);
    assert_ptr_equal(src->spare[0], spare);

    /* The last dispatcher of each loop takes its source with it (no leak). */
    close_and_reap(loop, b, &fb);
    close_and_reap(loop2, c, &fc);
    evt_peer_stop(&p);
    close(pb);
    close(pc);
    evt_assert_loop_empty(loop);
    evt_assert_loop_empty(loop2);
    ev_loop_destroy(loop);
    ev_loop_destroy(loop2);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_by_reference),
        cmocka_unit_test(test_fifo_with_copies),
        cmocka_unit_test(test_source_closes_before_its_blocks_are_written),
        cmocka_unit_test(test_discard_on_the_source),
        cmocka_unit_test(test_discard_on_the_destination),
        cmocka_unit_test(test_destination_closes_with_references_queued),
        cmocka_unit_test(test_last_chat_closes_with_blocks_queued),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_bytes_past_the_read_are_refused),
        cmocka_unit_test(test_frames_from_the_default_collector),
        cmocka_unit_test(test_block_source_is_per_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
