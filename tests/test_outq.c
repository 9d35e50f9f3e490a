/*
 * Tests of evc_outq, the push FIFO: strict order across copies, references,
 * producers and close markers; coalescing; consume at every offset; release
 * and on_destroy exactly once; lazy producers, EVC_NOT_YET, errors, direct
 * producers over a socketpair; byte accounting and the iovec limit; and user
 * code that clears or pushes from inside the queue's callbacks.
 */
#include "support.h"
#include "internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void count_release(void *arg)
{
    (*(int *)arg)++;
}

/* A scripted producer: hands out text `piece` bytes at a time, can stall
 * (EVC_NOT_YET), fail, clear its queue from inside more(), or write directly. */
typedef struct script {
    const char *text;
    size_t len, pos, piece;
    bool stalled;        /* answer EVC_NOT_YET */
    int fail;            /* answer this -errno once pos reaches fail_at */
    size_t fail_at;
    evc_outq *clear_q;   /* clear this queue inside more() */
    int asked, destroyed;
    size_t last_cap;
} script;

static ssize_t script_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    script *s = data;
    (void)p;
    s->asked++;
    s->last_cap = cap;
    assert_true(cap > 0);
    if (s->clear_q) {
        evc_outq *q = s->clear_q;
        s->clear_q = NULL;
        evc__outq_clear(q);
    }
    if (s->stalled)
        return EVC_NOT_YET;
    if (s->fail && s->pos >= s->fail_at)
        return s->fail;
    size_t n = s->len - s->pos;
    if (n > s->piece)
        n = s->piece;
    if (s->fail && n > s->fail_at - s->pos)
        n = s->fail_at - s->pos;
    if (n > cap)
        n = cap;
    memcpy(buf, s->text + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static void script_destroy(evc_producer *p, void *data)
{
    script *s = data;
    (void)p;
    s->destroyed++;
}

static const struct evc_producer_ops script_ops = {
    .more = script_more,
    .on_destroy = script_destroy,
};

static evc_producer *script_new(script *s, const char *text, size_t piece)
{
    s->text = text;
    s->len = strlen(text);
    s->piece = piece;
    evc_producer *p = evc_producer_new(&script_ops, s);
    assert_non_null(p);
    return p;
}

/* Gathers what the iovecs describe, up to limit bytes, into out; returns the count. */
static size_t gather(const struct iovec *iov, int niov, size_t limit, evt_bytes *out)
{
    size_t got = 0;
    for (int i = 0; i < niov && got < limit; i++) {
        size_t n = iov[i].iov_len;
        if (n > limit - got)
            n = limit - got;
        evt_bytes_add(out, iov[i].iov_base, n);
        got += n;
    }
    return got;
}

/* Drains the queue as a writer taking at most `step` bytes per write with at
 * most max_iov iovecs; returns the final state (everything else is written). */
static evc_outq_state drain(evc_outq *q, int max_iov, size_t step, evt_bytes *out)
{
    for (;;) {
        struct iovec iov[64];
        int niov = -1, err = 1;
        size_t nbytes = 99;
        evc_outq_state st = evc__outq_iov(q, iov, max_iov, &niov, &nbytes, &err);
        assert_true(niov >= 0 && niov <= max_iov);
        if (niov == 0) {
            assert_int_equal(nbytes, 0);
            if (st != EVC_OUTQ_MORE)
                return st;
            fail_msg("MORE with nothing described");
        }
        size_t sum = 0;
        for (int i = 0; i < niov; i++) {
            assert_true(iov[i].iov_len > 0);
            sum += iov[i].iov_len;
        }
        assert_int_equal(sum, nbytes);
        size_t took = gather(iov, niov, step, out);
        evc__outq_consume(q, took);
    }
}

/* ------------------------------------------------------------------ */
/* Order                                                               */
/* ------------------------------------------------------------------ */

static void test_fifo_order_across_kinds(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int released = 0;
    script a = {0}, b = {0};
    static const char ref1[] = "<ref one>";

    assert_int_equal(evc__outq_push_copy(&q, S("copy1;")), 0);
    assert_int_equal(evc__outq_push_ref(&q, S(ref1), count_release, &released), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&a, "[producer a, three at a time]", 3)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("copy2;")), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&b, "[b]", 100)), 0);
    assert_int_equal(evc__outq_push_ref(&q, S("<ref two>"), count_release, &released), 0);
    assert_int_equal(evc__outq_push_close(&q), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("after close")), 0);

    evt_bytes out = {0};
    assert_int_equal(drain(&q, 64, SIZE_MAX, &out), EVC_OUTQ_CLOSE);
    static const char want[] = "copy1;<ref one>[producer a, three at a time]copy2;[b]<ref two>";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.p, want, out.len);
    assert_int_equal(released, 2);
    assert_int_equal(a.destroyed, 1);
    assert_int_equal(b.destroyed, 1);
    assert_int_equal(q.bytes, strlen("after close"));

    /* The marker stays until popped; what follows it is still queued. */
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_CLOSE);
    evc__outq_pop_close(&q);
    out.len = 0;
    assert_int_equal(drain(&q, 64, SIZE_MAX, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(out.len, strlen("after close"));
    assert_true(evc__outq_empty(&q));
    assert_int_equal(q.bytes, 0);
    free(out.p);
}

static void test_close_marker_stops_filling_after_bytes(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    assert_int_equal(evc__outq_push_copy(&q, S("bye\r\n")), 0);
    assert_int_equal(evc__outq_push_close(&q), 0);
    struct iovec iov[8];
    int niov, err;
    size_t nbytes;
    /* The bytes in front are described first, then filling says why it stopped. */
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_CLOSE);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, 5);
    evc__outq_consume(&q, 5);
    assert_false(evc__outq_empty(&q));
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_CLOSE);
    assert_int_equal(niov, 0);
    evc__outq_pop_close(&q);
    assert_true(evc__outq_empty(&q));
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 0);
}

/* ------------------------------------------------------------------ */
/* Coalescing and the iovec limit                                      */
/* ------------------------------------------------------------------ */

static void test_small_pushes_coalesce(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    evt_bytes want = {0};
    char line[16];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(line, sizeof line, "%d\n", i);
        assert_int_equal(evc__outq_push_copy(&q, line, (size_t)n), 0);
        evt_bytes_add(&want, line, (size_t)n);
    }
    assert_int_equal(q.bytes, want.len);   /* 3890 bytes */

    struct iovec iov[64];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 64, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, want.len);
    assert_memory_equal(iov[0].iov_base, want.p, want.len);

    /* A push that overflows the tail chunk fills its room first: 3890 + 5000
     * bytes take two iovecs, not a third for the remainder. */
    char big[5000];
    memset(big, 'B', sizeof big);
    assert_int_equal(evc__outq_push_copy(&q, big, sizeof big), 0);
    evt_bytes_add(&want, big, sizeof big);
    assert_int_equal(evc__outq_iov(&q, iov, 64, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 2);
    assert_int_equal(nbytes, want.len);
    evt_bytes got = {0};
    gather(iov, niov, SIZE_MAX, &got);
    assert_memory_equal(got.p, want.p, want.len);

    /* An empty push queues nothing. */
    assert_int_equal(evc__outq_push_copy(&q, "", 0), 0);
    evc__outq_clear(&q);
    assert_int_equal(evc__outq_push_copy(&q, "", 0), 0);
    assert_true(evc__outq_empty(&q));
    free(want.p);
    free(got.p);
}

static void test_iov_max_respected(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int released = 0;
    static const char *parts[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    evt_bytes want = {0};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(evc__outq_push_ref(&q, parts[i], strlen(parts[i]), count_release, &released), 0);
        evt_bytes_add(&want, parts[i], strlen(parts[i]));
    }
    for (int max = 1; max <= 6; max++) {
        struct iovec iov[8];
        memset(iov, 0xa5, sizeof iov);
        int niov, err;
        size_t nbytes;
        evc_outq_state st = evc__outq_iov(&q, iov, max, &niov, &nbytes, &err);
        int expect = max < 5 ? max : 5;
        assert_int_equal(niov, expect);
        assert_int_equal(st, max < 5 ? EVC_OUTQ_MORE : EVC_OUTQ_EMPTY);
        /* Entries past max are untouched. */
        for (int i = max; i < 8; i++)
            assert_int_equal(((unsigned char *)&iov[i])[0], 0xa5);
    }
    /* Zero iovecs: nothing described, more follows. */
    struct iovec none[1];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, none, 0, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(niov, 0);

    evt_bytes out = {0};
    assert_int_equal(drain(&q, 2, SIZE_MAX, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.p, want.p, want.len);
    assert_int_equal(released, 5);
    free(want.p);
    free(out.p);
}

/* ------------------------------------------------------------------ */
/* Consume at every offset                                             */
/* ------------------------------------------------------------------ */

typedef struct mixed {
    evc_outq q;
    int released;
    script p1, p2;
    evt_bytes want;
} mixed;

static char big_text[9000];
static const char p1_text[] = "producer-one hands this out seven bytes at a time";
static const char p2_text[] = "p2!";

static void add_copy(mixed *m, const char *str, size_t n)
{
    assert_int_equal(evc__outq_push_copy(&m->q, str, n), 0);
    evt_bytes_add(&m->want, str, n);
}

static void add_ref(mixed *m, const char *str, size_t n)
{
    assert_int_equal(evc__outq_push_ref(&m->q, str, n, count_release, &m->released), 0);
    evt_bytes_add(&m->want, str, n);
}

/* A queue with every kind, including an empty reference and a big copy. */
static void mixed_build(mixed *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < sizeof big_text - 1; i++)
        big_text[i] = (char)('A' + i % 26);
    add_copy(m, S("hello "));
    add_ref(m, S("by-ref "));
    add_copy(m, S("world"));
    assert_int_equal(evc__outq_push_producer(&m->q, script_new(&m->p1, p1_text, 7)), 0);
    evt_bytes_add(&m->want, S(p1_text));
    add_ref(m, "", 0);
    add_copy(m, big_text, sizeof big_text - 1);
    assert_int_equal(evc__outq_push_producer(&m->q, script_new(&m->p2, p2_text, 1)), 0);
    evt_bytes_add(&m->want, S(p2_text));
    add_ref(m, S("<end>"));
}

static void test_consume_at_every_offset(void **state)
{
    (void)state;
    mixed m;
    mixed_build(&m);
    size_t total = m.want.len;
    evc__outq_clear(&m.q);
    free(m.want.p);

    /* Writes of every size from 1 byte to everything at once, through few and many iovecs. */
    for (size_t step = 1; step <= total; step += (step < 64 ? 1 : 97)) {
        for (int max_iov = 1; max_iov <= 64; max_iov *= 4) {
            mixed_build(&m);
            evt_bytes out = {0};
            assert_int_equal(drain(&m.q, max_iov, step, &out), EVC_OUTQ_EMPTY);
            assert_int_equal(out.len, m.want.len);
            if (memcmp(out.p, m.want.p, out.len) != 0)
                fail_msg("stream differs with writes of %zu bytes, %d iovecs", step, max_iov);
            assert_int_equal(m.released, 3);
            assert_int_equal(m.p1.destroyed, 1);
            assert_int_equal(m.p2.destroyed, 1);
            assert_int_equal(m.q.bytes, 0);
            assert_true(evc__outq_empty(&m.q));
            free(out.p);
            free(m.want.p);
        }
    }

    /* Cut after the first write at every offset, then clear: everything is
     * released or destroyed exactly once, wherever the cut fell. */
    for (size_t cut = 0; cut <= total; cut++) {
        mixed_build(&m);
        evt_bytes out = {0};
        size_t done = 0;
        while (done < cut) {
            struct iovec iov[64];
            int niov, err;
            size_t nbytes;
            evc__outq_iov(&m.q, iov, 64, &niov, &nbytes, &err);
            assert_true(niov > 0);
            size_t took = gather(iov, niov, cut - done, &out);
            evc__outq_consume(&m.q, took);
            done += took;
        }
        assert_memory_equal(out.p ? out.p : "", m.want.p, cut);
        evc__outq_clear(&m.q);
        assert_int_equal(m.released, 3);
        assert_int_equal(m.p1.destroyed, 1);
        assert_int_equal(m.p2.destroyed, 1);
        assert_int_equal(m.q.bytes, 0);
        free(out.p);
        free(m.want.p);
    }
}

/* ------------------------------------------------------------------ */
/* References                                                          */
/* ------------------------------------------------------------------ */

static void test_release_once_when_written(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int released = 0;
    assert_int_equal(evc__outq_push_ref(&q, S("0123456789"), count_release, &released), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("tail")), 0);
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err);
    assert_int_equal(nbytes, 14);
    evc__outq_consume(&q, 9);
    assert_int_equal(released, 0);   /* one byte still unsent */
    evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err);
    assert_int_equal(niov, 2);
    assert_int_equal(iov[0].iov_len, 1);
    assert_memory_equal(iov[0].iov_base, "9", 1);
    evc__outq_consume(&q, 1);
    assert_int_equal(released, 1);
    evc__outq_consume(&q, 4);
    evc__outq_clear(&q);
    assert_int_equal(released, 1);

    /* A NULL release is allowed. */
    assert_int_equal(evc__outq_push_ref(&q, S("x"), NULL, NULL), 0);
    evc__outq_consume(&q, 1);
    assert_true(evc__outq_empty(&q));
}

static void test_release_once_on_clear(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int r1 = 0, r2 = 0, r3 = 0;
    assert_int_equal(evc__outq_push_ref(&q, S("first"), count_release, &r1), 0);
    assert_int_equal(evc__outq_push_ref(&q, S("second"), count_release, &r2), 0);
    assert_int_equal(evc__outq_push_ref(&q, "", 0, count_release, &r3), 0);
    evc__outq_consume(&q, 2);
    evc__outq_clear(&q);
    assert_int_equal(r1, 1);
    assert_int_equal(r2, 1);
    assert_int_equal(r3, 1);
    assert_true(evc__outq_empty(&q));
    assert_int_equal(q.bytes, 0);
    evc__outq_clear(&q);
    assert_int_equal(r1 + r2 + r3, 3);
}

static void test_empty_ref_released_in_order(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int r0 = 0;
    /* Behind unsent bytes, an empty reference waits for them. */
    assert_int_equal(evc__outq_push_copy(&q, S("abc")), 0);
    assert_int_equal(evc__outq_push_ref(&q, "", 0, count_release, &r0), 0);
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 1);
    assert_int_equal(r0, 0);
    evc__outq_consume(&q, 2);
    assert_int_equal(r0, 0);
    evc__outq_consume(&q, 1);
    assert_int_equal(r0, 1);
    assert_true(evc__outq_empty(&q));

    /* At the front, it is released by the next fill, which then reports empty
     * (an empty queue must not look like pending output). */
    assert_int_equal(evc__outq_push_ref(&q, "", 0, count_release, &r0), 0);
    assert_false(evc__outq_empty(&q));
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 0);
    assert_int_equal(r0, 2);
    assert_true(evc__outq_empty(&q));
}

/* release() pushes more: the new bytes go after everything already queued. */
typedef struct repush {
    evc_outq *q;
    int calls;
} repush;

static void release_and_push(void *arg)
{
    repush *r = arg;
    r->calls++;
    assert_int_equal(evc__outq_push_copy(r->q, S("+again")), 0);
}

static void test_release_may_push(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    repush r = {.q = &q};
    assert_int_equal(evc__outq_push_ref(&q, S("ref"), release_and_push, &r), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("-copy")), 0);
    evt_bytes out = {0};
    assert_int_equal(drain(&q, 8, SIZE_MAX, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(r.calls, 1);
    assert_int_equal(out.len, strlen("ref-copy+again"));
    assert_memory_equal(out.p, "ref-copy+again", out.len);
    free(out.p);
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */
/* ------------------------------------------------------------------ */

static void test_producer_is_lazy(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    script p = {0}, behind = {0};
    assert_int_equal(evc__outq_push_copy(&q, S("head")), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&p, "lazy", 100)), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&behind, "behind", 100)), 0);
    assert_int_equal(p.asked, 0);
    assert_int_equal(q.bytes, 4);   /* producers count only what they handed out */

    /* Not asked while bytes queued in front of it are unwritten, however many
     * iovecs are free: more() runs only at the head of the queue. */
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, 4);
    assert_int_equal(p.asked, 0);
    evc__outq_consume(&q, 3);
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(p.asked, 0);   /* one byte of "head" is still unwritten */
    evc__outq_consume(&q, 1);

    /* At the head: asked until it answers 0 ("la", "zy", done), and described;
     * the producer behind it waits for those bytes in turn. */
    p.piece = 2;
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(p.asked, 3);
    assert_int_equal(behind.asked, 0);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, strlen("lazy"));
    assert_int_equal(q.bytes, nbytes);

    /* A partial write is finished from staging without asking again. */
    evc__outq_consume(&q, 1);
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(p.asked, 3);
    assert_int_equal(behind.asked, 0);
    assert_int_equal(iov[0].iov_len, 3);
    assert_memory_equal(iov[0].iov_base, "azy", 3);
    evc__outq_consume(&q, nbytes);
    assert_int_equal(p.destroyed, 1);
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(nbytes, strlen("behind"));
    evc__outq_consume(&q, nbytes);
    assert_int_equal(behind.destroyed, 1);
    assert_true(evc__outq_empty(&q));
}

static void test_unfinished_producer_holds_back_what_follows(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    /* More than one staging block: the producer's later bytes must come
     * before the copy behind it. */
    static char text[40001];
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = (char)('a' + i % 26);
    script p = {0};
    assert_int_equal(evc__outq_push_producer(&q, script_new(&p, text, 5000)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("AFTER")), 0);
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(niov, 1);
    assert_true(nbytes < sizeof text - 1);
    evt_bytes out = {0};
    assert_int_equal(drain(&q, 4, 3000, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(out.len, sizeof text - 1 + 5);
    assert_memory_equal(out.p, text, sizeof text - 1);
    assert_memory_equal(out.p + sizeof text - 1, "AFTER", 5);
    assert_int_equal(p.destroyed, 1);
    free(out.p);
}

static void test_producer_done_at_once_is_removed(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    script empty = {0}, mid = {0};
    assert_int_equal(evc__outq_push_producer(&q, script_new(&empty, "", 10)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("x")), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&mid, "", 10)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("y")), 0);
    struct iovec iov[4];
    int niov, err;
    size_t nbytes;
    /* Done at the front: freed by the fill.  Further back: asked only once the
     * bytes before it are written, then freed by the next fill. */
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(empty.destroyed, 1);
    assert_int_equal(mid.asked, 0);
    assert_int_equal(niov, 1);
    evc__outq_consume(&q, 1);
    assert_int_equal(evc__outq_iov(&q, iov, 4, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(mid.asked, 1);
    assert_int_equal(mid.destroyed, 1);
    assert_int_equal(niov, 1);
    evc__outq_consume(&q, 1);
    assert_true(evc__outq_empty(&q));
    assert_int_equal(empty.destroyed + mid.destroyed, 2);
}

static void test_not_yet_stops_and_resumes(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    script slow = {0}, behind = {0};
    assert_int_equal(evc__outq_push_copy(&q, S("before;")), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&slow, "slow;", 100)), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&behind, "behind", 100)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S(";after")), 0);
    slow.stalled = true;

    struct iovec iov[8];
    int niov, err;
    size_t nbytes;
    /* The bytes before the stalled producer go out first; nothing after it does. */
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, 7);
    assert_int_equal(slow.asked, 0);
    evc__outq_consume(&q, nbytes);
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_NOT_YET);
    assert_int_equal(niov, 0);
    assert_int_equal(behind.asked, 0);
    assert_int_equal(slow.destroyed, 0);
    assert_int_equal(q.bytes, strlen(";after"));

    slow.stalled = false;
    evt_bytes out = {0};
    assert_int_equal(drain(&q, 8, SIZE_MAX, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(out.len, strlen("slow;behind;after"));
    assert_memory_equal(out.p, "slow;behind;after", out.len);
    assert_int_equal(slow.destroyed, 1);
    assert_int_equal(behind.destroyed, 1);
    free(out.p);
}

static void test_producer_error_reported(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    script bad = {0};
    assert_int_equal(evc__outq_push_copy(&q, S("ok;")), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&bad, "partial then boom", 4)), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("never")), 0);
    bad.fail = -EIO;
    bad.fail_at = 7;

    /* What the producer handed out before failing is described with the error. */
    struct iovec iov[8];
    int niov, err = 0;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(nbytes, 3);
    evc__outq_consume(&q, nbytes);
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_ERROR);
    assert_int_equal(err, -EIO);
    assert_int_equal(niov, 1);
    assert_int_equal(nbytes, 7);
    assert_memory_equal(iov[0].iov_base, "partial", 7);
    evc__outq_consume(&q, nbytes);

    /* The error stays: reported again without asking the producer again. */
    int asked = bad.asked;
    err = 0;
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_ERROR);
    assert_int_equal(err, -EIO);
    assert_int_equal(niov, 0);
    assert_int_equal(bad.asked, asked);
    assert_int_equal(bad.destroyed, 0);
    evc__outq_clear(&q);
    assert_int_equal(bad.destroyed, 1);
}

static void test_clear_inside_more(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int released = 0;
    script p = {0}, later = {0};
    assert_int_equal(evc__outq_push_ref(&q, S("described"), count_release, &released), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&p, "clears", 100)), 0);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&later, "later", 100)), 0);
    p.clear_q = &q;
    /* The producer's more() clears the queue (a channel closing itself): the
     * fill describes nothing, and everything is released or destroyed once. */
    struct iovec iov[8];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(nbytes, strlen("described"));
    evc__outq_consume(&q, nbytes);
    assert_int_equal(released, 1);
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_EMPTY);
    assert_int_equal(niov, 0);
    assert_int_equal(nbytes, 0);
    assert_int_equal(p.destroyed, 1);
    assert_int_equal(later.destroyed, 1);
    assert_int_equal(later.asked, 0);
    assert_true(evc__outq_empty(&q));
    assert_int_equal(q.bytes, 0);
}

/* ------------------------------------------------------------------ */
/* Direct producers                                                    */
/* ------------------------------------------------------------------ */

typedef struct direct {
    const char *text;
    size_t len, pos;
    int more_calls, sends, destroyed;
    bool full_once;      /* answer -EAGAIN once */
} direct;

static ssize_t direct_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    direct *d = data;
    (void)p;
    (void)buf;
    (void)cap;
    d->more_calls++;
    return -EINVAL;
}

static ssize_t direct_send(evc_producer *p, int fd, size_t max, void *data)
{
    direct *d = data;
    (void)p;
    d->sends++;
    if (d->full_once) {
        d->full_once = false;
        return -EAGAIN;
    }
    size_t n = d->len - d->pos;
    if (n == 0)
        return 0;
    if (n > max)
        n = max;
    ssize_t w = write(fd, d->text + d->pos, n);
    if (w < 0)
        return -errno;
    d->pos += (size_t)w;
    return w;
}

static void direct_destroy(evc_producer *p, void *data)
{
    direct *d = data;
    (void)p;
    d->destroyed++;
}

static const struct evc_producer_ops direct_ops = {
    .more = direct_more,
    .on_destroy = direct_destroy,
    .send_to_fd = direct_send,
};

static void test_direct_producer_over_socketpair(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evc_outq q = EVC_OUTQ_INIT;
    direct d = {.text = "DIRECT-BODY-0123456789", .full_once = true};
    d.len = strlen(d.text);
    evc_producer *p = evc_producer_new(&direct_ops, &d);
    assert_non_null(p);
    assert_int_equal(evc__outq_push_copy(&q, S("header\n")), 0);
    assert_int_equal(evc__outq_push_producer(&q, p), 0);
    assert_int_equal(evc__outq_push_copy(&q, S("\ntrailer")), 0);

    struct iovec iov[8];
    int niov, err;
    size_t nbytes;
    /* Filling stops in front of the direct producer, after the header. */
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_DIRECT);
    assert_int_equal(niov, 1);
    ssize_t w = evc__io_writev(sv[0], true, iov, niov);
    assert_int_equal(w, (ssize_t)nbytes);
    evc__outq_consume(&q, (size_t)w);

    /* At the head: the caller lets it write, in pieces, until it answers 0. */
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_DIRECT);
    assert_int_equal(niov, 0);
    assert_int_equal(evc__outq_send_direct(&q, sv[0], 5), -EAGAIN);   /* full: nothing lost */
    ssize_t n;
    size_t sent = 0;
    while ((n = evc__outq_send_direct(&q, sv[0], 5)) > 0) {
        assert_true(n <= 5);
        sent += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(sent, d.len);
    assert_int_equal(d.destroyed, 1);
    assert_int_equal(d.more_calls, 0);

    evt_bytes out = {0};
    assert_int_equal(drain(&q, 8, SIZE_MAX, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(evc__io_writev(sv[0], true, &(struct iovec){out.p, out.len}, 1), (ssize_t)out.len);
    close(sv[0]);

    char got[128];
    size_t have = 0;
    while ((n = read(sv[1], got + have, sizeof got - have)) > 0)
        have += (size_t)n;
    static const char want[] = "header\nDIRECT-BODY-0123456789\ntrailer";
    assert_int_equal(have, strlen(want));
    assert_memory_equal(got, want, have);
    close(sv[1]);
    free(out.p);
}

static void test_direct_producer_destroyed_by_clear(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    direct d = {.text = "x", .len = 1};
    assert_int_equal(evc__outq_push_producer(&q, evc_producer_new(&direct_ops, &d)), 0);
    struct iovec iov[2];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 2, &niov, &nbytes, &err), EVC_OUTQ_DIRECT);
    assert_int_equal(q.bytes, 0);
    evc__outq_clear(&q);
    assert_int_equal(d.destroyed, 1);
    assert_int_equal(d.sends, 0);
}

/* ------------------------------------------------------------------ */
/* Accounting                                                          */
/* ------------------------------------------------------------------ */

/* The reserve: pushes written straight into the tail copy chunk are counted at
 * once, never past the append limit, and only while a copy chunk is the tail. */
static void test_reserve_commit_counts_at_once(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    size_t avail = 99;
    assert_null(evc__outq_reserve(&q, &avail));
    assert_int_equal(avail, 0);
    assert_int_equal(evc__outq_push_copy(&q, S("ab")), 0);
    evc__outq_set_append_limit(&q, 5);
    char *room = evc__outq_reserve(&q, &avail);
    assert_non_null(room);
    assert_int_equal(avail, 3);
    memcpy(room, "cde", 3);
    evc__outq_commit(&q, 3);
    assert_int_equal(q.bytes, 5);
    assert_false(evc__outq_append(&q, S("x")));
    assert_int_equal(q.bytes, 5);
    evc__outq_set_append_limit(&q, SIZE_MAX);
    assert_true(evc__outq_append(&q, S("f")));
    assert_false(evc__outq_append(&q, "", 0));
    assert_int_equal(q.bytes, 6);

    /* Behind a reference the tail is not a copy chunk: no reserve. */
    int released = 0;
    assert_int_equal(evc__outq_push_ref(&q, S("gh"), count_release, &released), 0);
    assert_null(evc__outq_reserve(&q, &avail));
    assert_int_equal(avail, 0);
    assert_int_equal(q.bytes, 8);
    assert_int_equal(evc__outq_push_copy(&q, S("i")), 0);
    assert_true(evc__outq_append(&q, S("j")));
    assert_int_equal(q.bytes, 10);

    evt_bytes out = {0};
    assert_int_equal(drain(&q, 8, 3, &out), EVC_OUTQ_EMPTY);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.p, "abcdefghij", 10);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(released, 1);
    free(out.p);
}

static void test_bytes_accounting(void **state)
{
    (void)state;
    evc_outq q = EVC_OUTQ_INIT;
    int released = 0;
    script p = {0};
    assert_int_equal(q.bytes, 0);
    assert_int_equal(evc__outq_push_copy(&q, S("12345")), 0);
    assert_int_equal(q.bytes, 5);
    assert_int_equal(evc__outq_push_ref(&q, S("678"), count_release, &released), 0);
    assert_int_equal(q.bytes, 8);
    assert_int_equal(evc__outq_push_producer(&q, script_new(&p, "producer", 3)), 0);
    assert_int_equal(q.bytes, 8);   /* nothing handed out yet */
    assert_int_equal(evc__outq_push_close(&q), 0);
    assert_int_equal(q.bytes, 8);

    struct iovec iov[8];
    int niov, err;
    size_t nbytes;
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_MORE);
    assert_int_equal(nbytes, 8);
    evc__outq_consume(&q, 6);
    assert_int_equal(q.bytes, 2);
    assert_int_equal(released, 0);
    evc__outq_consume(&q, 2);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(released, 1);
    assert_int_equal(evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err), EVC_OUTQ_CLOSE);
    assert_int_equal(q.bytes, 8);   /* staging counts */
    assert_int_equal(nbytes, 8);
    evc__outq_consume(&q, 2);
    assert_int_equal(q.bytes, 6);
    evc__outq_clear(&q);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(p.destroyed, 1);
    assert_true(evc__outq_empty(&q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order_across_kinds),
        cmocka_unit_test(test_close_marker_stops_filling_after_bytes),
        cmocka_unit_test(test_small_pushes_coalesce),
        cmocka_unit_test(test_iov_max_respected),
        cmocka_unit_test(test_consume_at_every_offset),
        cmocka_unit_test(test_release_once_when_written),
        cmocka_unit_test(test_release_once_on_clear),
        cmocka_unit_test(test_empty_ref_released_in_order),
        cmocka_unit_test(test_release_may_push),
        cmocka_unit_test(test_producer_is_lazy),
        cmocka_unit_test(test_unfinished_producer_holds_back_what_follows),
        cmocka_unit_test(test_producer_done_at_once_is_removed),
        cmocka_unit_test(test_not_yet_stops_and_resumes),
        cmocka_unit_test(test_producer_error_reported),
        cmocka_unit_test(test_clear_inside_more),
        cmocka_unit_test(test_direct_producer_over_socketpair),
        cmocka_unit_test(test_direct_producer_destroyed_by_clear),
        cmocka_unit_test(test_bytes_accounting),
        cmocka_unit_test(test_reserve_commit_counts_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
