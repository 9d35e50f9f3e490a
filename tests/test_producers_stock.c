/*
 * Tests of the stock wrapping producers: lines, composite, chunked, globbing,
 * hooked and escaping (whose matching is tested in detail in
 * test_producer_escaping.c).  First Medusa's own vectors (its test_producers.py),
 * then what a caller of a wrapper relies on: any cap works, down to 1 byte;
 * EVC_NOT_YET from the wrapped producer is passed on and nothing is lost;
 * a failure comes after the bytes before it and sticks; ownership of what is
 * wrapped; and the wrappers end to end through a chat over loopback.
 */
#include "producer_script.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

static const size_t BIG_CAP[] = {65536};

/* ------------------------------------------------------------------ */
/* Medusa's vectors                                                    */
/* ------------------------------------------------------------------ */

static void test_medusa_lines(void **state)
{
    (void)state;
    const char *lines[65];
    evt_bytes want = {0};
    for (size_t i = 0; i < 65; i++) {
        lines[i] = "a";
        evt_bytes_adds(&want, "a\r\n");
    }
    evc_producer *p = evc_lines_producer_new(lines, 65);
    assert_non_null(p);
    evt_assert_produces(p, want.p, want.len);
    /* The same a byte or a few at a time. */
    static const size_t tiny[] = {1, 2, 3};
    evt_bytes got = {0};
    p = evc_lines_producer_new(lines, 65);
    assert_non_null(p);
    assert_int_equal(evt_pull_all(p, tiny, 3, &got, NULL), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    evc_producer_free(p);
    evt_bytes_free(&got);
    evt_bytes_free(&want);

    /* Lines are copied; an empty line is just CRLF; no lines is finished at once. */
    char line[] = "x";
    const char *one[] = {line, "", "yz"};
    p = evc_lines_producer_new(one, 3);
    assert_non_null(p);
    line[0] = '!';
    evt_assert_produces(p, S("x\r\n\r\nyz\r\n"));
    p = evc_lines_producer_new(NULL, 0);
    assert_non_null(p);
    evt_assert_produces(p, "", 0);
    errno = 0;
    const char *with_null[] = {"a", NULL};
    assert_null(evc_lines_producer_new(with_null, 2));
    assert_int_equal(errno, EINVAL);
}

static void test_medusa_composite(void **state)
{
    (void)state;
    char a66[67];
    memset(a66, 'a', 66);
    const char *lines[65];
    evt_bytes want = {0};
    evt_bytes_add(&want, a66, 66);
    for (size_t i = 0; i < 65; i++) {
        lines[i] = "b";
        evt_bytes_adds(&want, "b\r\n");
    }
    evc_producer *list[2] = {evt_simple(a66, 66, 5), evc_lines_producer_new(lines, 65)};
    assert_non_null(list[1]);
    evc_producer *p = evc_composite_producer_new(list, 2);
    assert_non_null(p);
    evt_assert_produces(p, want.p, want.len);
    evt_bytes_free(&want);

    /* No producers: finished at once. */
    p = evc_composite_producer_new(NULL, 0);
    assert_non_null(p);
    evt_assert_produces(p, "", 0);
}

static void test_medusa_globbing(void **state)
{
    (void)state;
    size_t len;
    char *t = evt_medusa_test_string(&len);
    evc_producer *p = evc_globbing_producer_new(evt_simple(t, len, 5), 1024);
    assert_non_null(p);
    /* Medusa: 1024 <= len(p.more()), from 5-byte pieces. */
    char buf[65536];
    ssize_t r = evc_producer_more(p, buf, sizeof buf);
    assert_true(r >= 1024);
    assert_memory_equal(buf, t, (size_t)r);
    evc_producer_free(p);

    p = evc_globbing_producer_new(evt_simple(t, len, 5), 1024);
    assert_non_null(p);
    evt_assert_produces(p, t, len);
    free(t);
}

typedef struct hook_log {
    int calls;
    uint64_t total;
    int status;
    evc_producer *seen;
} hook_log;

static void log_hook(evc_producer *p, uint64_t total, int status, void *arg)
{
    hook_log *h = arg;
    h->calls++;
    h->total = total;
    h->status = status;
    h->seen = p;
}

static void test_medusa_hooked(void **state)
{
    (void)state;
    size_t len;
    char *t = evt_medusa_test_string(&len);
    hook_log h = {0};
    evc_producer *p = evc_hooked_producer_new(evt_simple(t, len, 5), log_hook, &h);
    assert_non_null(p);
    evt_bytes got = {0};
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.p, t, len);
    /* Told once, at the end, with the whole count. */
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.total, len);
    assert_int_equal(h.status, 0);
    assert_ptr_equal(h.seen, p);
    evc_producer_free(p);
    assert_int_equal(h.calls, 1);
    evt_bytes_free(&got);
    free(t);
}

static void test_medusa_chunked(void **state)
{
    (void)state;
    /* Medusa's footers=['FOOTER'] is the trailer line "FOOTER\r\n" here. */
    evc_producer *p = evc_chunked_producer_new(evt_simple(S("the quick brown fox"), 5),
                                               "FOOTER\r\n");
    assert_non_null(p);
    evt_assert_produces(p, S("5\r\nthe q\r\n5\r\nuick \r\n5\r\nbrown\r\n4\r\n fox\r\n"
                             "0\r\nFOOTER\r\n\r\n"));

    /* No trailers, and several. */
    p = evc_chunked_producer_new(evt_simple(S("the quick brown fox"), 5), NULL);
    assert_non_null(p);
    evt_assert_produces(p, S("5\r\nthe q\r\n5\r\nuick \r\n5\r\nbrown\r\n4\r\n fox\r\n0\r\n\r\n"));
    p = evc_chunked_producer_new(evt_simple(S("hi"), 0), "");
    assert_non_null(p);
    evt_assert_produces(p, S("2\r\nhi\r\n0\r\n\r\n"));
    p = evc_chunked_producer_new(evt_simple(S("hi"), 0), "Expires: never\r\nX-Sum: 42\r\n");
    assert_non_null(p);
    evt_assert_produces(p, S("2\r\nhi\r\n0\r\nExpires: never\r\nX-Sum: 42\r\n\r\n"));

    /* An empty body is just the last chunk. */
    p = evc_chunked_producer_new(evt_simple("", 0, 0), NULL);
    assert_non_null(p);
    evt_assert_produces(p, S("0\r\n\r\n"));

    /* Sizes are hex: a 4096-byte piece is "1000". */
    char *big = malloc(4096);
    assert_non_null(big);
    memset(big, 'z', 4096);
    p = evc_chunked_producer_new(evt_simple(big, 4096, 4096), NULL);
    assert_non_null(p);
    evt_bytes got = {0};
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
    assert_true(got.len == 6 + 4096 + 2 + 5);
    assert_memory_equal(got.p, "1000\r\nzz", 8);
    evc_producer_free(p);
    evt_bytes_free(&got);
    free(big);
}

static void test_chunked_trailers_validated(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "FOOTER",                /* no CRLF */
        "A: 1\r\n\r\n",          /* an empty line would end the message early */
        "\r\n",
        "A: 1\nB: 2\r\n",        /* bare LF */
        "A: 1\rB: 2\r\n",        /* bare CR */
        "A: 1\r\nB: 2",          /* last line unterminated */
    };
    evt_script s = {.text = "x", .len = 1};
    evc_producer *inner = evt_script_producer(&s);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        errno = 0;
        assert_null(evc_chunked_producer_new(inner, bad[i]));
        assert_int_equal(errno, EINVAL);
    }
    /* The caller still owns inner. */
    assert_int_equal(s.destroyed, 0);
    evc_producer_free(inner);
    assert_int_equal(s.destroyed, 1);
}

/* ------------------------------------------------------------------ */
/* Every kind, built over an inner producer                            */
/* ------------------------------------------------------------------ */

typedef enum kind {
    K_CHUNKED, K_COMPOSITE, K_GLOB, K_HOOKED, K_ESCAPE_SMTP, K_ESCAPE_GENERIC, K_COUNT
} kind;

static const char *const kind_name[] = {"chunked", "composite", "globbing", "hooked",
                                        "escaping smtp", "escaping generic"};

/* The wrapper of kind k over inner (owned on success). */
static evc_producer *wrap_kind(kind k, evc_producer *inner, hook_log *h)
{
    evc_producer *p = NULL;
    switch (k) {
    case K_CHUNKED: p = evc_chunked_producer_new(inner, "T: 1\r\n"); break;
    case K_COMPOSITE: {
        /* inner between two empty producers: finishing ones are skipped. */
        evc_producer *list[3] = {evt_simple("", 0, 0), inner, evt_simple("", 0, 0)};
        p = evc_composite_producer_new(list, 3);
        break;
    }
    case K_GLOB: p = evc_globbing_producer_new(inner, 100); break;
    case K_HOOKED: p = evc_hooked_producer_new(inner, log_hook, h); break;
    case K_ESCAPE_SMTP: p = evc_escaping_producer_new(inner, NULL, NULL); break;
    case K_ESCAPE_GENERIC: p = evc_escaping_producer_new(inner, "\r\n\r\n.", "<EOH>"); break;
    default: break;
    }
    assert_non_null(p);
    return p;
}

/* Checks out is kind k's transformation of text[0..len); for chunked, complete
 * says whether the last chunk and trailers must be there. */
static void check_output(kind k, const char *text, size_t len, const evt_bytes *out, bool complete)
{
    evt_bytes want = {0}, body = {0}, trailers = {0};
    switch (k) {
    case K_CHUNKED:
        if (complete) {
            assert_true(evt_chunked_decode(out->p, out->len, &body, &trailers));
            assert_int_equal(trailers.len, 6);
            assert_memory_equal(trailers.p, "T: 1\r\n", 6);
        } else {
            /* A cut stream: whole chunks only, and no last chunk. */
            evt_bytes with_end = {0};
            evt_bytes_add(&with_end, out->p, out->len);
            evt_bytes_adds(&with_end, "0\r\n\r\n");
            assert_true(evt_chunked_decode(with_end.p, with_end.len, &body, &trailers));
            evt_bytes_free(&with_end);
        }
        assert_int_equal(body.len, len);
        if (len)
            assert_memory_equal(body.p, text, len);
        break;
    case K_ESCAPE_SMTP:
    case K_ESCAPE_GENERIC:
        if (k == K_ESCAPE_SMTP)
            evt_replace_all(text, len, "\r\n.", "\r\n..", true, &want);
        else
            evt_replace_all(text, len, "\r\n\r\n.", "<EOH>", false, &want);
        if (complete) {
            assert_int_equal(out->len, want.len);
        } else {
            /* Bytes of a partial match may be held back when the inner fails. */
            assert_true(out->len <= want.len && out->len + 5 >= want.len);
        }
        if (out->len)
            assert_memory_equal(out->p, want.p, out->len);
        break;
    default:
        assert_int_equal(out->len, len);
        if (len)
            assert_memory_equal(out->p, text, len);
        break;
    }
    evt_bytes_free(&want);
    evt_bytes_free(&body);
    evt_bytes_free(&trailers);
}

/* ------------------------------------------------------------------ */
/* Tiny caps                                                           */
/* ------------------------------------------------------------------ */

static void test_tiny_caps_change_nothing(void **state)
{
    (void)state;
    char *text = evt_dotty_text(700, 7);
    static const size_t caps_1[] = {1}, caps_2[] = {2}, caps_3[] = {3};
    static const size_t caps_rising[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 19, 23};
    static const size_t caps_edge[] = {255, 256, 257, 1, 300};
    static const struct { const size_t *caps; size_t n; } sets[] = {
        {caps_1, 1}, {caps_2, 1}, {caps_3, 1},
        {caps_rising, ARRAY_LEN(caps_rising)}, {caps_edge, ARRAY_LEN(caps_edge)},
    };
    for (kind k = 0; k < K_COUNT; k++) {
        /* The same inner pieces (of 7) at every cap: the output must not change. */
        hook_log h = {0};
        evt_bytes ref = {0};
        evc_producer *p = wrap_kind(k, evt_simple(text, 700, 7), &h);
        assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &ref, NULL), 0);
        evc_producer_free(p);
        check_output(k, text, 700, &ref, true);
        for (size_t i = 0; i < ARRAY_LEN(sets); i++) {
            evt_bytes got = {0};
            p = wrap_kind(k, evt_simple(text, 700, 7), &h);
            assert_int_equal(evt_pull_all(p, sets[i].caps, sets[i].n, &got, NULL), 0);
            evc_producer_free(p);
            if (got.len != ref.len || memcmp(got.p, ref.p, ref.len) != 0)
                fail_msg("%s: cap set %zu changed the output", kind_name[k], i);
            evt_bytes_free(&got);
        }
        evt_bytes_free(&ref);
    }
    free(text);
}

/* ------------------------------------------------------------------ */
/* EVC_NOT_YET interleavings                                           */
/* ------------------------------------------------------------------ */

static void test_not_yet_loses_nothing(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 120; seed++) {
        uint32_t rng = seed * 2654435761u;
        size_t len = evt_rand(&rng) % 3000;
        char *text = evt_dotty_text(len, seed);
        size_t caps[6];
        for (size_t i = 0; i < ARRAY_LEN(caps); i++)
            caps[i] = 1 + (evt_rand(&rng) % 3 == 0 ? evt_rand(&rng) % 600 : evt_rand(&rng) % 9);
        for (kind k = 0; k < K_COUNT; k++) {
            evt_script s = {.text = text, .len = len, .piece = 1 + evt_rand(&rng) % 64,
                            .seed = seed + 1000u * k, .not_yet_pct = 40};
            hook_log h = {0};
            evc_producer *p = wrap_kind(k, evt_script_producer(&s), &h);
            evt_bytes got = {0};
            int not_yets = 0;
            assert_int_equal(evt_pull_all(p, caps, ARRAY_LEN(caps), &got, &not_yets), 0);
            /* Every NOT_YET of the inner is either passed on or absorbed by a call
             * that already had bytes; never more than the inner gave. */
            assert_true(not_yets <= s.not_yets);
            assert_int_equal(s.calls_after_end, 0);
            assert_int_equal(s.destroyed, 1);      /* freed as soon as it finished */
            check_output(k, text, len, &got, true);
            if (k == K_HOOKED) {
                assert_int_equal(h.calls, 1);
                assert_int_equal(h.total, len);
                assert_int_equal(h.status, 0);
            }
            evc_producer_free(p);
            assert_int_equal(s.destroyed, 1);
            evt_bytes_free(&got);
        }
        free(text);
    }
}

/* With nothing but NOT_YET from the inner, each wrapper answers NOT_YET. */
static void test_not_yet_passed_on(void **state)
{
    (void)state;
    for (kind k = 0; k < K_COUNT; k++) {
        evt_script s = {.text = "abc", .len = 3, .seed = 1, .not_yet_pct = 100};
        hook_log h = {0};
        evc_producer *p = wrap_kind(k, evt_script_producer(&s), &h);
        char buf[512];
        for (int i = 0; i < 3; i++)
            assert_int_equal(evc_producer_more(p, buf, sizeof buf), EVC_NOT_YET);
        assert_int_equal(evc_producer_more(p, buf, 1), EVC_NOT_YET);
        /* The inner was really asked each time (no wrapper polls on its own). */
        assert_int_equal(s.not_yets, 4);
        /* Once it has bytes again, they come. */
        s.not_yet_pct = 0;
        evt_bytes got = {0};
        assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
        check_output(k, "abc", 3, &got, true);
        evc_producer_free(p);
        evt_bytes_free(&got);
    }
}

/* ------------------------------------------------------------------ */
/* Failures and ownership                                              */
/* ------------------------------------------------------------------ */

static void test_inner_failure_after_its_bytes_and_sticky(void **state)
{
    (void)state;
    char *text = evt_dotty_text(500, 3);
    static const size_t caps_1[] = {1}, caps_mixed[] = {3, 70, 1, 512};
    for (kind k = 0; k < K_COUNT; k++) {
        for (int c = 0; c < 3; c++) {
            evt_script s = {.text = text, .len = 500, .piece = 9, .fail_at = 200,
                            .fail_err = -EIO};
            if (c == 2) {
                s.seed = 77;
                s.not_yet_pct = 30;
            }
            hook_log h = {0};
            evc_producer *p = wrap_kind(k, evt_script_producer(&s), &h);
            evt_bytes got = {0};
            const size_t *caps = c == 0 ? caps_1 : c == 1 ? caps_mixed : BIG_CAP;
            size_t ncaps = c == 0 ? 1 : c == 1 ? ARRAY_LEN(caps_mixed) : 1;
            /* evt_pull_all also checks that asking again gives -EIO again. */
            assert_int_equal(evt_pull_all(p, caps, ncaps, &got, NULL), -EIO);
            /* ... without asking the failed producer again. */
            assert_int_equal(s.calls_after_end, 0);
            check_output(k, text, 200, &got, false);
            if (k == K_HOOKED) {
                assert_int_equal(h.calls, 1);
                assert_int_equal(h.total, 200);
                assert_int_equal(h.status, -EIO);
            }
            evc_producer_free(p);
            assert_int_equal(s.destroyed, 1);
            if (k == K_HOOKED)
                assert_int_equal(h.calls, 1);
            evt_bytes_free(&got);
        }
    }
    free(text);
}

static void test_ownership(void **state)
{
    (void)state;
    /* A wrapper freed unfinished frees what it wraps, once. */
    for (kind k = 0; k < K_COUNT; k++) {
        evt_script s = {.text = "hello\r\n.world", .len = 13, .piece = 2};
        hook_log h = {0};
        evc_producer *p = wrap_kind(k, evt_script_producer(&s), &h);
        char buf[4];
        assert_true(evc_producer_more(p, buf, 1) > 0);
        assert_int_equal(s.destroyed, 0);
        evc_producer_free(p);
        assert_int_equal(s.destroyed, 1);
        if (k == K_HOOKED) {
            assert_int_equal(h.calls, 1);
            assert_int_equal(h.status, -ECANCELED);
        }
    }

    /* A failed constructor leaves the producer(s) to the caller. */
    evt_script s = {.text = "x", .len = 1};
    evc_producer *inner = evt_script_producer(&s);
    errno = 0;
    assert_null(evc_chunked_producer_new(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_globbing_producer_new(NULL, 10));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_hooked_producer_new(inner, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_escaping_producer_new(inner, "", "x"));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_escaping_producer_new(inner, "a", NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_escaping_producer_new(inner, NULL, "x"));
    assert_int_equal(errno, EINVAL);
    evc_producer *list[2] = {inner, NULL};
    errno = 0;
    assert_null(evc_composite_producer_new(list, 2));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(s.destroyed, 0);
    evc_producer_free(inner);
    assert_int_equal(s.destroyed, 1);
}

/* A composite frees each producer as it finishes, not at the end. */
static void test_composite_frees_each_as_it_finishes(void **state)
{
    (void)state;
    evt_script a = {.text = "ab", .len = 2}, b = {.text = "cd", .len = 2};
    evc_producer *list[2] = {evt_script_producer(&a), evt_script_producer(&b)};
    evc_producer *p = evc_composite_producer_new(list, 2);
    assert_non_null(p);
    char buf[8];
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 2);
    assert_memory_equal(buf, "ab", 2);
    assert_int_equal(a.destroyed, 0);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 2);
    assert_memory_equal(buf, "cd", 2);
    assert_int_equal(a.destroyed, 1);
    assert_int_equal(b.destroyed, 0);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    assert_int_equal(b.destroyed, 1);
    assert_int_equal(a.calls_after_end + b.calls_after_end, 0);
    evc_producer_free(p);
    assert_int_equal(a.destroyed + b.destroyed, 2);
}

/* ------------------------------------------------------------------ */
/* Globbing in detail                                     */
/* ------------------------------------------------------------------ */

static void test_globbing_coalesces(void **state)
{
    (void)state;
    size_t len;
    char *t = evt_medusa_test_string(&len);
    /* From 5-byte pieces, every answer but the last is at least min_size. */
    evc_producer *p = evc_globbing_producer_new(evt_simple(t, len, 5), 1000);
    assert_non_null(p);
    char buf[4096];
    size_t total = 0;
    int answers = 0;
    ssize_t r;
    while ((r = evc_producer_more(p, buf, sizeof buf)) > 0) {
        assert_memory_equal(buf, t + total, (size_t)r);
        total += (size_t)r;
        answers++;
        if (total < len)
            assert_true(r >= 1000);
    }
    assert_int_equal(r, 0);
    assert_int_equal(total, len);
    assert_true(answers <= 17);
    evc_producer_free(p);

    /* A pause hands out what was gathered so far, not nothing. */
    evt_script s = {.text = t, .len = len, .piece = 5, .seed = 9, .not_yet_pct = 10};
    p = evc_globbing_producer_new(evt_script_producer(&s), 1000);
    assert_non_null(p);
    r = evc_producer_more(p, buf, sizeof buf);
    assert_true(r > 0 || r == EVC_NOT_YET);
    evc_producer_free(p);
    free(t);
}

/* ------------------------------------------------------------------ */
/* Through a chat                                                      */
/* ------------------------------------------------------------------ */

static void test_wrappers_through_a_chat(void **state)
{
    (void)state;
    size_t len = 200000;
    char *text = evt_dotty_text(len, 5);

    /* chunked over globbing over a producer that pauses at random. */
    evt_script s = {.text = text, .len = len, .piece = 300, .seed = 4, .not_yet_pct = 20};
    evc_producer *glob = evc_globbing_producer_new(evt_script_producer(&s), 8192);
    assert_non_null(glob);
    evc_producer *p = evc_chunked_producer_new(glob, "T: 1\r\n");
    assert_non_null(p);
    evt_bytes got = {0};
    evt_chat_round_trip(p, &got);
    check_output(K_CHUNKED, text, len, &got, true);
    assert_true(s.not_yets > 0);
    assert_int_equal(s.destroyed, 1);
    evt_bytes_reset(&got);

    /* A composite of lines, SMTP-escaped text and a hooked producer, then the
     * end-of-data line. */
    hook_log h = {0};
    const char *lines[] = {"MAIL FROM:<a@b>", "DATA"};
    evt_script s2 = {.text = text, .len = len, .piece = 77, .seed = 8, .not_yet_pct = 30};
    evc_producer *list[4] = {
        evc_lines_producer_new(lines, 2),
        evc_escaping_producer_new(evt_script_producer(&s2), NULL, NULL),
        evc_hooked_producer_new(evt_simple(S("\r\n.\r\n"), 1), log_hook, &h),
        evc_lines_producer_new((const char *const[]){"QUIT"}, 1),
    };
    for (size_t i = 0; i < ARRAY_LEN(list); i++)
        assert_non_null(list[i]);
    p = evc_composite_producer_new(list, ARRAY_LEN(list));
    assert_non_null(p);
    evt_chat_round_trip(p, &got);
    evt_bytes want = {0};
    evt_bytes_adds(&want, "MAIL FROM:<a@b>\r\nDATA\r\n");
    evt_replace_all(text, len, "\r\n.", "\r\n..", true, &want);
    evt_bytes_adds(&want, "\r\n.\r\nQUIT\r\n");
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.total, 5);
    assert_int_equal(h.status, 0);
    assert_int_equal(s2.destroyed, 1);

    evt_bytes_free(&want);
    evt_bytes_free(&got);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_medusa_lines),
        cmocka_unit_test(test_medusa_composite),
        cmocka_unit_test(test_medusa_globbing),
        cmocka_unit_test(test_medusa_hooked),
        cmocka_unit_test(test_medusa_chunked),
        cmocka_unit_test(test_chunked_trailers_validated),
        cmocka_unit_test(test_tiny_caps_change_nothing),
        cmocka_unit_test(test_not_yet_loses_nothing),
        cmocka_unit_test(test_not_yet_passed_on),
        cmocka_unit_test(test_inner_failure_after_its_bytes_and_sticky),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_composite_frees_each_as_it_finishes),
        cmocka_unit_test(test_globbing_coalesces),
        cmocka_unit_test(test_wrappers_through_a_chat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
