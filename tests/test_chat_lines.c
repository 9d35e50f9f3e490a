/*
 * Tests of the chat's line fast path and push window over real loopback
 * sockets: frames that keep their terminator, the fast path giving exactly the
 * frames the general rules give however the bytes arrive, every change a
 * found_terminator can make in the middle of a buffer full of lines, and
 * pushes from inside callbacks (counted, ordered, bounded) while they go
 * through the push window.
 *
 * The peer is the other end of a loopback TCP pair.  A feeder writes from the
 * loop in chunks of chosen sizes; the test reads replies from the peer while
 * running the loop.  Every test ends with the loop empty.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Frames as bytes                                                     */
/* ------------------------------------------------------------------ */

/* Appends one frame as "<len>:<bytes>|", so frame boundaries are part of the comparison. */
static void bytes_add_frame(evt_bytes *b, const char *p, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof head, "%zu:", n);
    evt_bytes_add(b, head, (size_t)h);
    evt_bytes_add(b, p, n);
    evt_bytes_add(b, "|", 1);
}

/* The frames a stream gives with a one-or-more-byte terminator (the leftmost match
 * first, as a reader going byte by byte finds it), as bytes_add_frame records them.
 * Returns how many. */
static int expected_frames(evt_bytes *out, const char *s, size_t n, const char *term, bool keep)
{
    size_t tl = strlen(term), start = 0;
    int frames = 0;
    for (size_t i = 0; i + tl <= n;) {
        if (memcmp(s + i, term, tl) == 0) {
            bytes_add_frame(out, s + start, i - start + (keep ? tl : 0));
            frames++;
            i += tl;
            start = i;
        } else {
            i++;
        }
    }
    return frames;
}

/* ------------------------------------------------------------------ */
/* A recording chat                                                    */
/* ------------------------------------------------------------------ */

typedef struct rec rec;
struct rec {
    evc_chat *chat;
    struct ev_loop *loop;
    evt_bytes frames;           /* every frame, bytes_add_frame'd */
    evt_bytes cur;              /* user collector: the frame so far */
    int n_found, n_error, last_err, n_destroy, late_calls;
    bool destroyed;
    size_t bytes_in;        /* bytes of all frames */
    /* Called with each frame after it is recorded. */
    void (*hook)(rec *, const char *frame, size_t len);
    int hook_arg;
    int results[16];        /* push results a hook records */
    size_t pending[4];      /* output_pending values a hook records */
    size_t max_pending;
    evc_chat *other;        /* a second chat a hook pushes to */
};

static void found_frame(rec *r, evc_chat *c, const char *p, size_t n)
{
    if (r->destroyed || evc_chat_closed(c))
        r->late_calls++;
    r->n_found++;
    r->bytes_in += n;
    bytes_add_frame(&r->frames, p, n);
    size_t pend = evc_chat_output_pending(c);
    if (pend > r->max_pending)
        r->max_pending = pend;
    if (r->hook)
        r->hook(r, p, n);
}

static void rec_found_incoming(evc_chat *c, void *data)
{
    size_t n;
    const char *p = evc_chat_incoming(c, &n);
    assert_true((p == NULL) == (n == 0));
    found_frame(data, c, p ? p : "", n);
}

static void rec_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    rec *r = data;
    (void)c;
    evt_bytes_add(&r->cur, p, n);
}

static void rec_found_collected(evc_chat *c, void *data)
{
    rec *r = data;
    evt_bytes frame = r->cur;
    memset(&r->cur, 0, sizeof r->cur);
    found_frame(r, c, frame.p ? frame.p : "", frame.len);
    evt_bytes_free(&frame);
}

static void rec_error(evc_chat *c, int err, void *data)
{
    rec *r = data;
    r->n_error++;
    r->last_err = err;
    evc_chat_close(c);
}

static void rec_destroy(evc_chat *c, void *data)
{
    rec *r = data;
    (void)c;
    r->n_destroy++;
    r->destroyed = true;
}

/* The default collector (the line fast path's case). */
static const struct evc_chat_ops incoming_ops = {
    .found_terminator = rec_found_incoming,
    .handle_error = rec_error,
    .on_destroy = rec_destroy,
};

/* A user collector (always the general path). */
static const struct evc_chat_ops collect_ops = {
    .collect_incoming_data = rec_collect,
    .found_terminator = rec_found_collected,
    .handle_error = rec_error,
    .on_destroy = rec_destroy,
};

/* ------------------------------------------------------------------ */
/* Plumbing: a loop, a pair, a feeder, a drain                         */
/* ------------------------------------------------------------------ */

typedef struct pair {
    struct ev_loop *loop;
    int peer;       /* the test's end */
    int fd;         /* the chat's end (owned by the chat once made) */
} pair;

static void pair_open(pair *p)
{
    p->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(p->loop);
    int fds[2];
    evt_tcp_pair(fds);
    p->peer = fds[0];
    p->fd = fds[1];
    int on = 1;
    assert_int_equal(setsockopt(p->peer, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), 0);
    int fl = fcntl(p->peer, F_GETFL);
    assert_int_equal(fcntl(p->peer, F_SETFL, fl | O_NONBLOCK), 0);
}

static evc_chat *rec_open(rec *r, pair *p, const struct evc_chat_ops *ops, const char *term)
{
    r->loop = p->loop;
    r->chat = evc_chat_new(p->loop, p->fd, ops, r);
    assert_non_null(r->chat);
    if (term)
        assert_int_equal(evc_chat_set_terminator(r->chat, term), 0);
    return r->chat;
}

static void pair_close(pair *p, rec *r)
{
    if (r->chat && !r->destroyed)
        evc_chat_close(r->chat);
    close(p->peer);
    evt_assert_loop_empty(p->loop);
    ev_loop_destroy(p->loop);
    assert_int_equal(r->late_calls, 0);
    assert_true(r->destroyed);
    evt_bytes_free(&r->frames);
    evt_bytes_free(&r->cur);
}

/* Writes data from the loop, chunk sizes drawn from chunks[] in turn (0: all that fits). */
typedef struct feeder {
    ev_io w;
    const char *data;
    size_t len, pos;
    const size_t *chunks;
    size_t nchunks, next;
    bool done;
} feeder;

static void feeder_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    feeder *f = (feeder *)w;
    (void)revents;
    size_t want = f->nchunks ? f->chunks[f->next++ % f->nchunks] : 0;
    size_t left = f->len - f->pos;
    if (want == 0 || want > left)
        want = left;
    ssize_t n = send(w->fd, f->data + f->pos, want, MSG_NOSIGNAL);
    if (n > 0)
        f->pos += (size_t)n;
    else if (errno != EAGAIN)
        f->pos = f->len;   /* the chat closed (a test that fails it on purpose): stop */
    if (f->pos == f->len) {
        f->done = true;
        ev_io_stop(loop, w);
    }
}

static void feeder_start(feeder *f, pair *p, const char *data, size_t len, const size_t *chunks,
                         size_t nchunks)
{
    memset(f, 0, sizeof *f);
    f->data = data;
    f->len = len;
    f->chunks = chunks;
    f->nchunks = nchunks;
    f->done = len == 0;
    ev_io_init(&f->w, feeder_cb, p->peer, EV_WRITE);
    if (!f->done)
        ev_io_start(p->loop, &f->w);
}

/* Sends everything from the loop in the given chunk sizes, and runs until it is all sent. */
static void feed(pair *p, const char *data, size_t len, const size_t *chunks, size_t nchunks)
{
    feeder f;
    feeder_start(&f, p, data, len, chunks, nchunks);
    assert_true(evt_run_until(p->loop, &f.done, 20.0));
    ev_io_stop(p->loop, &f.w);
}

/* Reads exactly n bytes from the peer while running the loop; NUL-terminates. */
static void drain_exact(pair *p, evt_bytes *got, size_t n)
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

/* Reads from the peer until EOF while running the loop. */
static void drain_to_eof(pair *p, evt_bytes *got)
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

/* ------------------------------------------------------------------ */
/* Frames that keep their terminator                                   */
/* ------------------------------------------------------------------ */

static void keep_case(const char *term, const struct evc_chat_ops *ops, size_t chunk)
{
    evt_bytes msg = {0};
    const char *words[] = {"alpha", "", "b", "a somewhat longer line than the others", ""};
    for (size_t i = 0; i < ARRAY_LEN(words); i++) {
        evt_bytes_add(&msg, words[i], strlen(words[i]));
        evt_bytes_add(&msg, term, strlen(term));
    }
    pair p;
    pair_open(&p);
    rec r = {0};
    evc_chat *c = rec_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, true);
    feed(&p, msg.p, msg.len, &chunk, 1);
    assert_true(evt_run_until_count(p.loop, &r.n_found, (int)ARRAY_LEN(words), 5.0));

    evt_bytes want = {0};
    expected_frames(&want, msg.p, msg.len, term, true);
    assert_string_equal(r.frames.p, want.p);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void test_keep_terminator_default_collector(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        keep_case(terms[t], &incoming_ops, 1);
        keep_case(terms[t], &incoming_ops, 0);
    }
}

static void test_keep_terminator_user_collector(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        keep_case(terms[t], &collect_ops, 1);
        keep_case(terms[t], &collect_ops, 0);
    }
}

/* After the first frame keep is turned off, after the third on again: the frames
 * already buffered behind each change follow it. */
static void keep_toggle_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_keep_terminator(r->chat, false);
    else if (r->n_found == 3)
        evc_chat_set_keep_terminator(r->chat, true);
}

static void test_keep_toggled_applies_to_buffered_lines(void **state)
{
    (void)state;
    const struct evc_chat_ops *const ops[] = {&incoming_ops, &collect_ops};
    for (size_t k = 0; k < ARRAY_LEN(ops); k++) {
        pair p;
        pair_open(&p);
        rec r = {.hook = keep_toggle_hook};
        evc_chat *c = rec_open(&r, &p, ops[k], "\n");
        evc_chat_set_keep_terminator(c, true);
        evt_send_all(p.peer, "one\ntwo\nthree\nfour\n\n", 20);
        assert_true(evt_run_until_count(p.loop, &r.n_found, 5, 5.0));
        assert_string_equal(r.frames.p, "4:one\n|3:two|5:three|5:four\n|1:\n|");
        pair_close(&p, &r);
    }
}

/* A count terminator has no terminator bytes: keep changes nothing. */
static void count_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_terminator_count(r->chat, 5);
    else if (r->n_found == 2)
        evc_chat_set_terminator(r->chat, "\n");
}

static void test_keep_with_count_terminator(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = count_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    evc_chat_set_keep_terminator(c, true);
    evt_send_all(p.peer, "LEN 5\nhelloafter\n", 17);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));
    assert_string_equal(r.frames.p, "6:LEN 5\n|5:hello|6:after\n|");
    pair_close(&p, &r);
}

/* Random bytes over the terminator's own letters (so partial and overlapping matches
 * are common), sent in random chunks down to single bytes: with either collector and
 * keep on or off, the frames are the leftmost-match split of what was sent. */
static void multibyte_case(const char *term, const struct evc_chat_ops *ops, bool keep,
                           unsigned seed)
{
    const char *alphabet = term;
    size_t na = strlen(term);
    evt_bytes msg = {0};
    for (int i = 0; i < 3000; i++) {
        unsigned x = (unsigned)rand_r(&seed);
        char ch = x % 8 == 0 ? 'x' : alphabet[(x >> 3) % na];
        evt_bytes_add(&msg, &ch, 1);
    }
    evt_bytes_adds(&msg, term);
    size_t chunks[32];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 2 ? 3 : 200);

    evt_bytes want = {0};
    int frames = expected_frames(&want, msg.p, msg.len, term, keep);
    pair p;
    pair_open(&p);
    rec r = {0};
    evc_chat *c = rec_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, keep);
    feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, frames, 5.0));
    assert_int_equal(r.frames.len, want.len);
    assert_memory_equal(r.frames.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void test_keep_multibyte_terminators_in_random_splits(void **state)
{
    (void)state;
    static const char *const terms[] = {"\r\n", "abcd", "aab", "abab"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        for (unsigned keep = 0; keep < 2; keep++) {
            multibyte_case(terms[t], &incoming_ops, keep, 11 + (unsigned)t);
            multibyte_case(terms[t], &collect_ops, keep, 21 + (unsigned)t);
        }
    }
}

/* max_frame counts a kept terminator: a line of max - strlen(term) bytes plus the
 * terminator is the longest frame; one byte more fails the chat.  Without keep the line
 * alone may be max bytes.  The same whether the line comes in one read (the line fast
 * path for "\n") or in small pieces (frames and terminators split across reads). */
static void max_keep_case(const char *term, const struct evc_chat_ops *ops, bool keep,
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

    pair p;
    pair_open(&p);
    rec r = {0};
    evc_chat *c = rec_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, keep);
    evc_chat_set_max_frame(c, MAX);
    feeder f;
    feeder_start(&f, &p, msg.p, msg.len, &chunk, 1);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    ev_io_stop(p.loop, &f.w);
    evt_bytes want = {0};
    bytes_add_frame(&want, msg.p, MAX);
    assert_string_equal(r.frames.p, want.p);
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void test_max_frame_counts_the_kept_terminator(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    const struct evc_chat_ops *const ops[] = {&incoming_ops, &collect_ops};
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

/* ------------------------------------------------------------------ */
/* The fast path gives what the rules give, however the bytes arrive   */
/* ------------------------------------------------------------------ */

/* Random lines, many of them at the lengths where copies and blocks change (16, 32, 64, 128). */
static void random_lines(evt_bytes *out, size_t total, unsigned *seed)
{
    static const size_t edges[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    while (out->len < total) {
        unsigned r = (unsigned)rand_r(seed);
        size_t len = r % 2 ? edges[(r >> 1) % ARRAY_LEN(edges)] : (r >> 1) % 301;
        for (size_t i = 0; i < len; i++) {
            char ch = (char)('!' + (rand_r(seed) % 90));
            evt_bytes_add(out, &ch, 1);
        }
        evt_bytes_add(out, "\n", 1);
    }
}

static void fast_path_case(bool keep, const struct evc_chat_ops *ops, unsigned seed, size_t total)
{
    evt_bytes msg = {0};
    random_lines(&msg, total, &seed);
    size_t chunks[64];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 4 == 0 ? 5 : 700);

    pair p;
    pair_open(&p);
    rec r = {0};
    evc_chat *c = rec_open(&r, &p, ops, "\n");
    evc_chat_set_keep_terminator(c, keep);
    evt_bytes want = {0};
    expected_frames(&want, msg.p, msg.len, "\n", keep);
    int lines = 0;
    for (size_t i = 0; i < msg.len; i++)
        lines += msg.p[i] == '\n';

    feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, lines, 10.0));
    assert_int_equal(r.frames.len, want.len);
    assert_memory_equal(r.frames.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void test_fast_path_equals_split_on_newline(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 4; seed++) {
        fast_path_case(false, &incoming_ops, seed, 40000);
        fast_path_case(true, &incoming_ops, seed, 40000);
    }
    /* The general path (a user collector) agrees on the same inputs. */
    fast_path_case(false, &collect_ops, 3, 40000);
    fast_path_case(true, &collect_ops, 3, 40000);
}

/* Much more than one read's worth sent at once: lines straddle reads and read blocks. */
static void test_fast_path_large_burst(void **state)
{
    (void)state;
    fast_path_case(false, &incoming_ops, 77, 600000);
    fast_path_case(true, &incoming_ops, 78, 600000);
}

/* ------------------------------------------------------------------ */
/* Changes made inside found_terminator with many lines buffered       */
/* ------------------------------------------------------------------ */

/* memcache-style: "LEN n" lines, then n bytes, then lines again. */
static void len_hook(rec *r, const char *frame, size_t len)
{
    unsigned n;
    char text[32] = "";   /* a frame is not NUL-terminated */
    if (len < sizeof text)
        memcpy(text, frame, len);
    if (len > 4 && memcmp(frame, "LEN ", 4) == 0 && sscanf(text + 4, "%u", &n) == 1)
        evc_chat_set_terminator_count(r->chat, n);
    else if (evc_chat_get_terminator(r->chat).kind == EVC_TERM_COUNT)
        evc_chat_set_terminator(r->chat, "\n");
}

static void test_count_set_inside_found_applies_to_buffered_bytes(void **state)
{
    (void)state;
    static const char msg[] = "LEN 5\nhe\nloa\nLEN 3\nxyzb\n\n";
    pair p;
    pair_open(&p);
    rec r = {.hook = len_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    evt_send_all(p.peer, msg, sizeof msg - 1);   /* one write: everything is buffered */
    assert_true(evt_run_until_count(p.loop, &r.n_found, 7, 5.0));
    evt_run_for(p.loop, 0.01);
    assert_string_equal(r.frames.p, "5:LEN 5|5:he\nlo|1:a|5:LEN 3|3:xyz|1:b|0:|");
    pair_close(&p, &r);
}

/* The same protocol at length: records of "LEN n" lines and n-byte payloads (which
 * hold newlines) between plain lines, in random chunks, so the switches between the
 * line fast path and the count fall anywhere relative to reads. */
static void memcache_case(bool keep, unsigned seed)
{
    evt_bytes msg = {0}, want = {0};
    int frames = 0;
    while (msg.len < 60000) {
        unsigned x = (unsigned)rand_r(&seed);
        char line[32];
        if (x % 3 == 0) {
            size_t n = 1 + (x >> 2) % 2000;
            int h = snprintf(line, sizeof line, "LEN %zu\n", n);
            evt_bytes_add(&msg, line, (size_t)h);
            bytes_add_frame(&want, line, (size_t)h - (keep ? 0 : 1));
            size_t at = msg.len;
            for (size_t i = 0; i < n; i++) {
                char ch = rand_r(&seed) % 5 == 0 ? '\n' : (char)('a' + rand_r(&seed) % 26);
                evt_bytes_add(&msg, &ch, 1);
            }
            bytes_add_frame(&want, msg.p + at, n);   /* a count keeps nothing */
            frames += 2;
        } else {
            size_t n = (x >> 2) % 70;
            for (size_t i = 0; i < n; i++)
                line[i % sizeof line] = (char)('a' + i % 26);
            size_t at = msg.len;
            for (size_t i = 0; i < n; i++)
                evt_bytes_add(&msg, &line[i % sizeof line], 1);
            evt_bytes_add(&msg, "\n", 1);
            bytes_add_frame(&want, msg.p + at, n + (keep ? 1 : 0));
            frames++;
        }
    }
    size_t chunks[40];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 5 == 0 ? 9 : 3000);

    pair p;
    pair_open(&p);
    rec r = {.hook = len_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    evc_chat_set_keep_terminator(c, keep);
    feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, frames, 5.0));
    assert_int_equal(r.frames.len, want.len);
    assert_memory_equal(r.frames.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void test_count_and_lines_interleaved_in_random_chunks(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 3; seed++) {
        memcache_case(false, seed);
        memcache_case(true, 100 + seed);
    }
}

static void crlf_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 2)
        evc_chat_set_terminator(r->chat, "\r\n");
}

static void test_terminator_changed_to_crlf_inside_found(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = crlf_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    static const char msg[] = "a\nb\nc\nd\r\ne\r\n";
    evt_send_all(p.peer, msg, sizeof msg - 1);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 4, 5.0));
    evt_run_for(p.loop, 0.01);
    assert_string_equal(r.frames.p, "1:a|1:b|3:c\nd|1:e|");
    pair_close(&p, &r);
}

static void discard_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 3) {
        /* Output pushed before the discard (into the push window) goes with it. */
        r->results[0] = evc_chat_push(r->chat, "dropped", 7);
        evc_chat_discard_buffers(r->chat);
        r->results[1] = evc_chat_push(r->chat, "kept\n", 5);
    }
}

static void test_discard_inside_found_drops_the_rest(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = discard_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    evt_send_all(p.peer, "1\n2\n3\n4\n5\n6\n", 12);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));
    evt_run_for(p.loop, 0.05);
    assert_string_equal(r.frames.p, "1:1|1:2|1:3|");
    /* The chat goes on with what comes next. */
    evt_send_all(p.peer, "7\n", 2);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 4, 5.0));
    assert_string_equal(r.frames.p, "1:1|1:2|1:3|1:7|");
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);
    evt_bytes got = {0};
    drain_exact(&p, &got, 5);
    assert_string_equal(got.p, "kept\n");
    evt_run_for(p.loop, 0.02);
    char extra;
    assert_true(recv(p.peer, &extra, 1, 0) < 0);
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

static void close_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 2)
        evc_chat_close(r->chat);
}

static void test_close_inside_found_stops_at_once(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = close_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    evt_send_all(p.peer, "1\n2\n3\n4\n5\n6\n", 12);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.n_found, 2);
    pair_close(&p, &r);
}

static void close_all_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1) {
        /* The first push opens the push window; the close must shut it too. */
        r->results[1] = evc_chat_push(r->chat, "early", 5);
        evc_close_all(r->loop);
        r->results[0] = evc_chat_push(r->chat, "late", 4);
        r->results[2] = evc_chat_push(r->chat, "", 0);
    }
}

static void test_close_all_inside_found_stops_and_refuses_pushes(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = close_all_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    evt_send_all(p.peer, "1\n2\n3\n", 6);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.n_found, 1);
    assert_int_equal(r.results[1], 0);
    assert_int_equal(r.results[0], -EPIPE);
    assert_int_equal(r.results[2], -EPIPE);
    pair_close(&p, &r);
}

static void max_frame_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_max_frame(r->chat, 10);
}

static void test_max_frame_lowered_inside_found(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = max_frame_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    static const char msg[] = "first line, long\nshort\nthis one is too long\nnever\n";
    evt_send_all(p.peer, msg, sizeof msg - 1);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_string_equal(r.frames.p, "16:first line, long|5:short|");
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    pair_close(&p, &r);
}

/* A line over the limit (a set one, or the default 1 MiB) fails its own channel; a
 * neighbour on the same loop goes on.  A line of exactly the default limit passes. */
static void test_oversized_line_fails_only_its_channel(void **state)
{
    (void)state;
    static const size_t limits[] = {1000, 70000, EVC_DEFAULT_MAX_FRAME};
    for (size_t k = 0; k < ARRAY_LEN(limits); k++) {
        bool is_default = limits[k] == EVC_DEFAULT_MAX_FRAME;
        pair p;
        pair_open(&p);
        rec bad = {0};
        evc_chat *c = rec_open(&bad, &p, &incoming_ops, "\n");
        if (!is_default)
            evc_chat_set_max_frame(c, limits[k]);
        int fds[2];
        evt_tcp_pair(fds);
        rec good = {0};
        good.loop = p.loop;
        good.chat = evc_chat_new(p.loop, fds[1], &incoming_ops, &good);
        assert_non_null(good.chat);
        evc_chat_set_terminator(good.chat, "\n");

        size_t n = is_default ? limits[k] + 1 : 2 * limits[k];
        char *line = malloc(n + 1);
        assert_non_null(line);
        memset(line, 'x', n);
        line[n] = '\n';
        feed(&p, "ok\n", 3, NULL, 0);
        evt_bytes want = {0};
        bytes_add_frame(&want, "ok", 2);
        if (is_default) {
            /* The longest line the default allows, then one byte longer. */
            feed(&p, line + 1, n, NULL, 0);
            assert_true(evt_run_until_count(p.loop, &bad.n_found, 2, 10.0));
            bytes_add_frame(&want, line + 1, n - 1);
        }
        feeder f;
        feeder_start(&f, &p, line, n + 1, NULL, 0);
        assert_true(evt_run_until(p.loop, &bad.destroyed, 10.0));
        ev_io_stop(p.loop, &f.w);
        assert_int_equal(bad.last_err, -EMSGSIZE);
        assert_int_equal(bad.frames.len, want.len);
        assert_memory_equal(bad.frames.p, want.p, want.len);
        evt_bytes_free(&want);

        evt_send_all(fds[0], "still here\n", 11);
        assert_true(evt_run_until_count(p.loop, &good.n_found, 1, 5.0));
        assert_string_equal(good.frames.p, "10:still here|");
        evc_chat_close(good.chat);
        close(fds[0]);
        free(line);
        pair_close(&p, &bad);
        assert_true(good.destroyed);
        evt_bytes_free(&good.frames);
    }
}

/* ------------------------------------------------------------------ */
/* Pushes from inside callbacks (the push window)                      */
/* ------------------------------------------------------------------ */

static void triple_echo_hook(rec *r, const char *frame, size_t len)
{
    size_t before = evc_chat_output_pending(r->chat);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evc_chat_push(r->chat, frame, len), 0);
    size_t after = evc_chat_output_pending(r->chat);
    if (after - before != 3 * len)
        r->results[0]++;   /* counted as a failure below */
}

static void test_pending_counts_pushes_inside_callback(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = triple_echo_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    evc_chat_set_keep_terminator(c, true);
    evt_bytes msg = {0};
    unsigned seed = 5;
    random_lines(&msg, 20000, &seed);
    int lines = 0;
    for (size_t i = 0; i < msg.len; i++)
        lines += msg.p[i] == '\n';
    evt_send_all(p.peer, msg.p, msg.len);
    evt_bytes got = {0};
    drain_exact(&p, &got, 3 * msg.len);
    assert_int_equal(r.n_found, lines);
    assert_int_equal(r.results[0], 0);
    /* Each line comes back three times, in order. */
    size_t at = 0, from = 0;
    for (size_t i = 0; i < msg.len; i++) {
        if (msg.p[i] != '\n')
            continue;
        size_t n = i + 1 - from;
        for (int k = 0; k < 3; k++) {
            assert_memory_equal(got.p + at, msg.p + from, n);
            at += n;
        }
        from = i + 1;
    }
    assert_int_equal(evc_chat_output_pending(c), 0);
    evt_bytes_free(&got);
    evt_bytes_free(&msg);
    pair_close(&p, &r);
}

static void release_count(void *arg)
{
    (*(int *)arg)++;
}

static void flavours_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    evc_chat *c = r->chat;
    r->results[0] = evc_chat_push(c, "a", 1);
    r->results[1] = evc_chat_push_ref(c, "bb", 2, release_count, &r->results[6]);
    r->results[2] = evc_chat_pushf(c, "c%d", 42);
    evc_producer *prod = evc_simple_producer_new("ddddd", 5, 2);
    assert_non_null(prod);
    r->results[3] = evc_chat_push_with_producer(c, prod);
    r->results[4] = evc_chat_push(c, "eeeeeeeeeeeeeeeeeeee", 20);
    evc_chat_close_when_done(c);
    r->results[5] = evc_chat_push(c, "x", 1);
}

static void test_push_flavours_keep_fifo_order_inside_callback(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = flavours_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    evt_send_all(p.peer, "go\n", 3);
    evt_bytes got = {0};
    drain_to_eof(&p, &got);
    assert_string_equal(got.p, "abbc42ddddd" "eeeeeeeeee" "eeeeeeeeee");
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.results[i], 0);
    assert_int_equal(r.results[5], -EPIPE);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.results[6], 1);   /* the ref's release ran once */
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

static void sizes_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4096};
    char buf[4096];
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        for (size_t k = 0; k < sizes[i]; k++)
            buf[k] = (char)('A' + (i + k) % 26);
        r->results[i] = evc_chat_push(r->chat, buf, sizes[i]);
    }
}

static void test_pushes_of_every_size_arrive_intact(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4096};
    pair p;
    pair_open(&p);
    rec r = {.hook = sizes_hook};
    rec_open(&r, &p, &incoming_ops, "\n");
    /* Twice: the first line's pushes start the chunks, the second's land in open windows. */
    evt_send_all(p.peer, "1\n2\n", 4);
    evt_bytes want = {0};
    for (int twice = 0; twice < 2; twice++) {
        for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
            for (size_t k = 0; k < sizes[i]; k++) {
                char ch = (char)('A' + (i + k) % 26);
                evt_bytes_add(&want, &ch, 1);
            }
        }
    }
    evt_bytes got = {0};
    drain_exact(&p, &got, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        assert_int_equal(r.results[i], 0);
    evt_bytes_free(&got);
    evt_bytes_free(&want);
    pair_close(&p, &r);
}

static void limit_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    char buf[3000];
    memset(buf, 'L', sizeof buf);
    for (int i = 0; i < 4; i++)
        r->results[i] = evc_chat_push(r->chat, buf, sizeof buf);
    r->results[4] = evc_chat_push(r->chat, buf, 1000);
}

/* Short pushes, most of them into the push window: the one that would pass the limit
 * is refused to the byte, and one that exactly fills it is not. */
static void small_limit_hook(rec *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    static const char sixteen[] = "0123456789abcdef";
    for (int i = 0; i < 63; i++)
        r->results[i < 62 ? 0 : 1] |= evc_chat_push(r->chat, sixteen, 16);
    r->results[2] = evc_chat_push(r->chat, "01234567", 8);   /* 62 * 16 + 8 = 1000 */
    r->results[3] = evc_chat_push(r->chat, "!", 1);
    r->pending[0] = evc_chat_output_pending(r->chat);
}

static void test_output_limit_counts_window_pushes(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = small_limit_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    evc_chat_set_output_limit(c, 1000);
    assert_int_equal(evc_chat_set_watermarks(c, 0, 0), 0);
    evt_send_all(p.peer, "x\n", 2);
    evt_bytes got = {0};
    drain_exact(&p, &got, 1000);
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
    pair_close(&p, &r);
}

static void test_output_limit_refuses_the_crossing_push(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = limit_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    evc_chat_set_output_limit(c, 10000);
    assert_int_equal(evc_chat_set_watermarks(c, 0, 0), 0);
    evt_send_all(p.peer, "x\n", 2);
    evt_bytes got = {0};
    drain_exact(&p, &got, 10000);
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);
    assert_int_equal(r.results[2], 0);
    assert_int_equal(r.results[3], -ENOBUFS);
    assert_int_equal(r.results[4], 0);
    evt_run_for(p.loop, 0.02);
    char extra;
    assert_true(recv(p.peer, &extra, 1, 0) < 0);   /* nothing more than the 10000 */
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

static void big_reply_hook(rec *r, const char *frame, size_t len)
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
    pair p;
    pair_open(&p);
    int small = 32768;   /* small enough to fill, big enough for no zero-window stalls */
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    rec r = {.hook = big_reply_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
    assert_int_equal(evc_chat_set_watermarks(c, 8000, 20000), 0);

    enum { LINES = 2000 };
    static char msg[2 * LINES];
    for (int i = 0; i < LINES; i++)
        msg[2 * i] = 'q', msg[2 * i + 1] = '\n';
    /* One line per send, so reads are small and the pause shows between them. */
    static const size_t one_line = 2;
    feeder f;
    feeder_start(&f, &p, msg, sizeof msg, &one_line, 1);
    evt_run_for(p.loop, 0.3);
    /* Reading paused well before every line was answered, with the queue bounded:
     * no callback starts above the mark, so it is passed by at most one reply. */
    assert_true(r.n_found < LINES / 2);
    assert_true(r.max_pending <= 20000);
    assert_true(evc_chat_output_pending(c) <= 20000 + 1000);

    evt_bytes got = {0};
    drain_exact(&p, &got, (size_t)LINES * 1000);
    assert_int_equal(r.n_found, LINES);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(got.p[(size_t)i * 1000 + 999], 'a' + (i + 1) % 26);
    ev_io_stop(p.loop, &f.w);
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

/* The peer sends many lines and shuts its side without reading: every line held back
 * at the mark is still answered, in order (reading is paused, so the EOF is seen only
 * after them), and then the chat closes by itself once the replies are written. */
static void test_lines_held_at_the_mark_are_answered_after_eof(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    int small = 32768;
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    rec r = {.hook = big_reply_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
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
    drain_to_eof(&p, &got);
    assert_int_equal(got.len, (size_t)LINES * 1000);
    assert_int_equal(r.n_found, LINES);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(got.p[(size_t)i * 1000], 'a' + (i + 1) % 26);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

/* Pushes crossing the high-water mark inside one callback: the callback's pushes all
 * queue, the chat then reads and delivers nothing more while the peer does not read,
 * and it answers the lines sent meanwhile once the peer drains. */
static void flood_hook(rec *r, const char *frame, size_t len)
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
    pair p;
    pair_open(&p);
    int small = 32768;
    assert_int_equal(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    rec r = {.hook = flood_hook};
    evc_chat *c = rec_open(&r, &p, &incoming_ops, "\n");
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
    drain_exact(&p, &got, 100 * 4096 + 3 * 3);
    for (int i = 0; i < 100; i++)
        assert_int_equal(got.p[(size_t)i * 4096 + 4095], 'A' + i % 26);
    assert_memory_equal(got.p + 100 * 4096, "ok\nok\nok\n", 9);
    assert_int_equal(r.n_found, 4);
    assert_int_equal(r.results[1], 0);
    evt_bytes_free(&got);
    pair_close(&p, &r);
}

/* Pushes from outside the chat's own callbacks (a timer, another chat's callback) are
 * counted at once and written before the loop sleeps. */
typedef struct timer_push {
    ev_timer w;
    evc_chat *chat;
    size_t pending;
    int rc;
    bool fired;
} timer_push;

static void timer_push_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    timer_push *t = (timer_push *)w;
    (void)loop, (void)revents;
    static const size_t sizes[] = {1, 16, 17, 64, 65, 4096};
    char buf[4096];
    size_t total = 0;
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        memset(buf, '0' + (int)i, sizes[i]);
        t->rc |= evc_chat_push(t->chat, buf, sizes[i]);
        total += sizes[i];
    }
    t->rc |= evc_chat_pushf(t->chat, "<%d>", 7);
    total += 3;
    t->pending = evc_chat_output_pending(t->chat) == total ? total : 0;
    t->fired = true;
}

static void relay_hook(rec *r, const char *frame, size_t len)
{
    /* A push into this chat first opens its own window; the relay must not land in it. */
    r->results[0] |= evc_chat_push(r->chat, "+", 1);
    r->results[1] |= evc_chat_push(r->other, frame, len);
    r->results[1] |= evc_chat_push(r->other, "\n", 1);
}

static void test_pushes_from_outside_callbacks_are_written(void **state)
{
    (void)state;
    pair p;
    pair_open(&p);
    rec r = {.hook = relay_hook};
    rec_open(&r, &p, &incoming_ops, "\n");

    /* A second chat on the same loop, written to only from the first one's callbacks
     * and from a timer. */
    int fds[2];
    evt_tcp_pair(fds);
    rec other = {.loop = p.loop};
    other.chat = evc_chat_new(p.loop, fds[1], &incoming_ops, &other);
    assert_non_null(other.chat);
    r.other = other.chat;

    timer_push t = {.chat = other.chat};
    ev_timer_init(&t.w, timer_push_cb, 0.01, 0.0);
    ev_timer_start(p.loop, &t.w);
    assert_true(evt_run_until(p.loop, &t.fired, 5.0));
    assert_int_equal(t.rc, 0);
    assert_int_equal(t.pending, 1 + 16 + 17 + 64 + 65 + 4096 + 3);

    evt_send_all(p.peer, "one\ntwo\nthree\n", 14);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));

    evt_bytes want = {0};
    static const size_t sizes[] = {1, 16, 17, 64, 65, 4096};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        for (size_t k = 0; k < sizes[i]; k++)
            evt_bytes_add(&want, &(char){(char)('0' + i)}, 1);
    evt_bytes_adds(&want, "<7>one\ntwo\nthree\n");
    evt_bytes got = {0};
    char buf[8192];
    for (int spins = 0; got.len < want.len && spins < 5000; spins++) {
        ssize_t k = recv(fds[0], buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0)
            evt_bytes_add(&got, buf, (size_t)k);
        else
            evt_run_for(p.loop, 0.001);
    }
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    evt_bytes reply = {0};
    drain_exact(&p, &reply, 3);
    assert_memory_equal(reply.p, "+++", 3);
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);

    evc_chat_close(other.chat);
    close(fds[0]);
    evt_bytes_free(&got);
    evt_bytes_free(&want);
    evt_bytes_free(&reply);
    pair_close(&p, &r);
    assert_true(other.destroyed);
    evt_bytes_free(&other.frames);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_terminator_default_collector),
        cmocka_unit_test(test_keep_terminator_user_collector),
        cmocka_unit_test(test_keep_toggled_applies_to_buffered_lines),
        cmocka_unit_test(test_keep_with_count_terminator),
        cmocka_unit_test(test_keep_multibyte_terminators_in_random_splits),
        cmocka_unit_test(test_max_frame_counts_the_kept_terminator),
        cmocka_unit_test(test_fast_path_equals_split_on_newline),
        cmocka_unit_test(test_fast_path_large_burst),
        cmocka_unit_test(test_count_set_inside_found_applies_to_buffered_bytes),
        cmocka_unit_test(test_count_and_lines_interleaved_in_random_chunks),
        cmocka_unit_test(test_terminator_changed_to_crlf_inside_found),
        cmocka_unit_test(test_discard_inside_found_drops_the_rest),
        cmocka_unit_test(test_close_inside_found_stops_at_once),
        cmocka_unit_test(test_close_all_inside_found_stops_and_refuses_pushes),
        cmocka_unit_test(test_max_frame_lowered_inside_found),
        cmocka_unit_test(test_oversized_line_fails_only_its_channel),
        cmocka_unit_test(test_pending_counts_pushes_inside_callback),
        cmocka_unit_test(test_push_flavours_keep_fifo_order_inside_callback),
        cmocka_unit_test(test_pushes_of_every_size_arrive_intact),
        cmocka_unit_test(test_output_limit_refuses_the_crossing_push),
        cmocka_unit_test(test_output_limit_counts_window_pushes),
        cmocka_unit_test(test_high_water_inside_callbacks_pauses_reading),
        cmocka_unit_test(test_high_water_crossed_inside_one_callback),
        cmocka_unit_test(test_lines_held_at_the_mark_are_answered_after_eof),
        cmocka_unit_test(test_pushes_from_outside_callbacks_are_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
