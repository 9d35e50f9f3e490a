/*
 * Tests of the framing engine.  Every case is fed the way chat.c feeds it (held
 * bytes kept at the front of the next input) whole, byte by byte, split at every
 * offset and split at random, and must give the same events each way.  Every
 * input the scanner sees ends against a PROT_NONE page, so an over-read crashes.
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
#include <unistd.h>
#include <cmocka.h>

/* A string literal and its length (it may hold NUL bytes). */
#define S(lit) (lit), (sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* Small helpers: growable strings, a seeded PRNG                      */
/* ------------------------------------------------------------------ */

typedef struct str {
    char *p;
    size_t len;
    size_t cap;
} str;

static void str_add(str *s, const void *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->p = realloc(s->p, cap);
        assert_non_null(s->p);
        s->cap = cap;
    }
    if (n)
        memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_adds(str *s, const char *z)
{
    str_add(s, z, strlen(z));
}

static void str_free(str *s)
{
    free(s->p);
    memset(s, 0, sizeof(*s));
}

/* xorshift64*: a fixed seed makes every random split reproducible. */
static uint64_t rnd(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

static size_t rnd_below(uint64_t *st, size_t n)
{
    return n ? (size_t)(rnd(st) % n) : 0;
}

/* ------------------------------------------------------------------ */
/* The harness: chat.c's caller loop, recording events                 */
/* ------------------------------------------------------------------ */

/* What a case starts with. */
typedef struct term_spec {
    evc_terminator_kind kind;
    const char *bytes;
    size_t len;
    uint64_t count;
} term_spec;

/* Called on each FOUND with the frame's data; may change the terminator. */
typedef void (*found_hook)(evc_scanner *, const char *frame, size_t len);

typedef struct run {
    evc_scanner s;
    evt_guarded *g;
    found_hook hook;
    str events;     /* "DATA:<frame bytes>|" and "FOUND|" */
    str frame;      /* data of the current frame so far */
    size_t pending; /* undelivered (held) bytes, kept just before the guard page */
    uint64_t fed;
} run;

static void apply_spec(evc_scanner *s, const term_spec *t)
{
    switch (t->kind) {
    case EVC_TERM_BYTES:
        assert_int_equal(evc__scanner_set_bytes(s, t->bytes, t->len), 0);
        break;
    case EVC_TERM_COUNT:
        evc__scanner_set_count(s, t->count);
        break;
    case EVC_TERM_NONE:
    default:   /* the other kinds are tested in test_framing.c */
        evc__scanner_set_none(s);
        break;
    }
}

static void run_init(run *r, evt_guarded *g, const term_spec *t, found_hook hook)
{
    memset(r, 0, sizeof(*r));
    evc__scanner_init(&r->s);
    apply_spec(&r->s, t);
    r->g = g;
    r->hook = hook;
}

static void emit_data(run *r)
{
    if (r->frame.len == 0)
        return;
    str_adds(&r->events, "DATA:");
    str_add(&r->events, r->frame.p, r->frame.len);
    str_adds(&r->events, "|");
    r->frame.len = 0;
}

/* Feeds one chunk: appends it after the held bytes and runs the caller loop. */
static void run_feed(run *r, const char *chunk, size_t n)
{
    char *end = evt_guarded_end(r->g);
    assert_true(r->pending + n <= r->g->room);
    memmove(end - r->pending - n, end - r->pending, r->pending);
    if (n)
        memcpy(end - n, chunk, n);
    r->pending += n;
    r->fed += n;

    const char *p = end - r->pending;
    size_t len = r->pending;
    size_t calls = 0;
    while (len || evc__scanner_ready(&r->s)) {
        evc_scan_result res;
        bool ready = evc__scanner_ready(&r->s);
        evc__scan(&r->s, p, len, &res);
        assert_int_equal(res.error, 0);
        assert_true(res.start + res.data_len <= res.consumed);
        assert_true(res.consumed <= len);
        /* The loop can never spin: a found terminator consumes bytes, or was
         * a count of 0, which is found once. */
        assert_true(!res.found || res.consumed > 0 || ready);
        str_add(&r->frame, p + res.start, res.data_len);
        p += res.consumed;
        len -= res.consumed;
        if (res.found) {
            str frame = r->frame;
            emit_data(r);
            str_adds(&r->events, "FOUND|");
            if (r->hook)
                r->hook(&r->s, frame.p ? frame.p : "", frame.len);
            r->frame.len = 0;
        } else if (res.consumed == 0) {
            break;
        }
        /* Each pass either consumes a byte or stops. */
        assert_true(++calls <= r->pending + 1);
    }
    /* What is left is exactly what the scanner says it holds back. */
    assert_int_equal(len, r->s.held);
    r->pending = len;
}

/* At EOF the held-back bytes are data of the last frame. */
static void run_eof(run *r)
{
    assert_int_equal(r->s.held, r->pending);
    evc__scanner_end(&r->s);
    evc_scan_result res;
    evc__scan(&r->s, evt_guarded_end(r->g) - r->pending, r->pending, &res);
    assert_false(res.found);
    assert_int_equal(res.consumed, r->pending);
    assert_int_equal(r->s.held, 0);
    str_add(&r->frame, evt_guarded_end(r->g) - r->pending, res.data_len);
    r->pending = 0;
    emit_data(r);
}

static void run_free(run *r)
{
    evc__scanner_free(&r->s);
    str_free(&r->events);
    str_free(&r->frame);
}

/* Feeds input cut at the given offsets (ascending, may repeat) and returns the events. */
static void feed_cuts(evt_guarded *g, const term_spec *t, found_hook hook, const char *in, size_t len,
                      const size_t *cuts, size_t ncuts, str *events)
{
    run r;
    run_init(&r, g, t, hook);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t next = i < ncuts ? cuts[i] : len;
        run_feed(&r, in + at, next - at);
        at = next;
    }
    /* Every byte was examined exactly once, whatever the split.  (A hook changes
     * the terminator only inside found_terminator, when nothing is held, so no
     * byte is re-examined then either.) */
    assert_int_equal(r.s.examined, r.fed);
    run_eof(&r);
    *events = r.events;
    r.events = (str){0};
    run_free(&r);
}

static void assert_same_events(const str *got, const char *want, size_t want_len, const char *how)
{
    if (got->len != want_len || memcmp(got->p ? got->p : "", want, want_len) != 0)
        fail_msg("%s: got \"%.*s\", want \"%.*s\"", how, (int)got->len, got->p ? got->p : "",
                 (int)want_len, want);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The core check: the input fed whole, byte by byte, in two pieces at every
 * offset, and in random pieces, gives exactly the expected events.
 */
static void check_splits(const term_spec *t, found_hook hook, const char *in, size_t len,
                         const char *want, size_t want_len, uint64_t seed, int random_rounds)
{
    evt_guarded g;
    evt_guarded_init(&g, len + 1);
    size_t *cuts = calloc(len + 1, sizeof(*cuts));
    assert_non_null(cuts);
    str ev;

    feed_cuts(&g, t, hook, in, len, NULL, 0, &ev);
    assert_same_events(&ev, want, want_len, "whole");
    str_free(&ev);

    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    feed_cuts(&g, t, hook, in, len, cuts, len, &ev);
    assert_same_events(&ev, want, want_len, "byte by byte");
    str_free(&ev);

    for (size_t at = 0; at <= len; at++) {
        feed_cuts(&g, t, hook, in, len, &at, 1, &ev);
        char how[64];
        snprintf(how, sizeof(how), "split at %zu", at);
        assert_same_events(&ev, want, want_len, how);
        str_free(&ev);
    }

    uint64_t st = seed;
    for (int round = 0; round < random_rounds; round++) {
        size_t n = rnd_below(&st, len + 1);
        for (size_t i = 0; i < n; i++)
            cuts[i] = rnd_below(&st, len + 1);
        qsort(cuts, n, sizeof(*cuts), cmp_size);
        feed_cuts(&g, t, hook, in, len, cuts, n, &ev);
        char how[64];
        snprintf(how, sizeof(how), "random split round %d", round);
        assert_same_events(&ev, want, want_len, how);
        str_free(&ev);
    }
    free(cuts);
    evt_guarded_free(&g);
}

static void check_case(const term_spec *t, found_hook hook, const char *in, size_t len,
                       const char *want, size_t want_len)
{
    check_splits(t, hook, in, len, want, want_len, 0x9e3779b97f4a7c15ULL ^ len, 50);
}

/* Events of a byte-string terminator found the obvious way (memmem from the start). */
static void reference_events(const char *term, size_t tlen, const char *in, size_t len, str *ev)
{
    memset(ev, 0, sizeof(*ev));
    str_add(ev, "", 0);
    size_t at = 0;
    for (;;) {
        const char *hit = memmem(in + at, len - at, term, tlen);
        if (!hit)
            break;
        size_t dlen = (size_t)(hit - (in + at));
        if (dlen) {
            str_adds(ev, "DATA:");
            str_add(ev, in + at, dlen);
            str_adds(ev, "|");
        }
        str_adds(ev, "FOUND|");
        at += dlen + tlen;
    }
    if (at < len) {
        str_adds(ev, "DATA:");
        str_add(ev, in + at, len - at);
        str_adds(ev, "|");
    }
}

/* A byte-string case, checked against the hand-written events and the reference. */
static void check_bytes(const char *term, size_t tlen, const char *in, size_t len, const char *want)
{
    str ref;
    reference_events(term, tlen, in, len, &ref);
    assert_same_events(&ref, want, strlen(want), "reference");
    str_free(&ref);
    term_spec t = {EVC_TERM_BYTES, term, tlen, 0};
    check_case(&t, NULL, in, len, want, strlen(want));
}

/* ------------------------------------------------------------------ */
/* Byte-string terminators                                             */
/* ------------------------------------------------------------------ */

static void test_newline(void **state)
{
    (void)state;
    check_bytes(S("\n"), S("hello world\nsecond line\n\nlast"),
                "DATA:hello world|FOUND|DATA:second line|FOUND|FOUND|DATA:last|");
}

static void test_crlf(void **state)
{
    (void)state;
    check_bytes(S("\r\n"), S("hello\r\nworld\r\n\r\nx\ry\r\r\r"),
                "DATA:hello|FOUND|DATA:world|FOUND|FOUND|DATA:x\ry\r\r\r|");
    /* asynchat's line tests: the same line many times. */
    check_bytes(S("\r\n"), S("hello world\r\nhello world\r\nhello world\r\n"),
                "DATA:hello world|FOUND|DATA:hello world|FOUND|DATA:hello world|FOUND|");
}

static void test_qqq(void **state)
{
    (void)state;
    check_bytes(S("qqq"), S("hello worldqqqaqqbqqqcqqqqd"),
                "DATA:hello world|FOUND|DATA:aqqb|FOUND|DATA:c|FOUND|DATA:qd|");
}

static void test_crlfcrlf(void **state)
{
    (void)state;
    check_bytes(S("\r\n\r\n"), S("GET / HTTP/1.0\r\nHost: x\r\n\r\nbody\r\n\r\r\n\r\n\r\n\r"),
                "DATA:GET / HTTP/1.0\r\nHost: x|FOUND|DATA:body\r\n\r|FOUND|DATA:\r\n\r|");
}

static void test_64_byte_boundary(void **state)
{
    (void)state;
    /* A multipart-style boundary: 64 bytes, and parts that hold long prefixes of it. */
    char boundary[65];
    memcpy(boundary, "\r\n--", 4);
    for (int i = 4; i < 64; i++)
        boundary[i] = "0123456789abcdef"[i % 16];
    boundary[64] = '\0';

    str in = {0}, want = {0};
    str_adds(&in, "preamble");
    str_add(&in, boundary, 64);
    str_adds(&in, "part one ");
    str_add(&in, boundary, 63);           /* all but the last byte */
    str_adds(&in, "X");
    str_add(&in, boundary, 64);
    str_add(&in, boundary, 40);           /* held back at the end, then flushed */

    str_adds(&want, "DATA:preamble|FOUND|DATA:part one ");
    str_add(&want, boundary, 63);
    str_adds(&want, "X|FOUND|DATA:");
    str_add(&want, boundary, 40);
    str_adds(&want, "|");
    check_bytes(boundary, 64, in.p, in.len, want.p);
    str_free(&in);
    str_free(&want);
}

static void test_one_byte_binary(void **state)
{
    (void)state;
    check_bytes(S("\0"), S("a\0bc\0\0d"), "DATA:a|FOUND|DATA:bc|FOUND|FOUND|DATA:d|");
    check_bytes(S("\xff"), S("\xff\xfe\xff"), "FOUND|DATA:\xfe|FOUND|");
}

static void test_self_overlapping(void **state)
{
    (void)state;
    check_bytes(S("aab"), S("aaaabxaabaaaaa"), "DATA:aa|FOUND|DATA:x|FOUND|DATA:aaaaa|");
    check_bytes(S("aaaa"), S("aaaaaaaaaXaaa"), "FOUND|FOUND|DATA:aXaaa|");
    check_bytes(S("abab"), S("abababxabab"), "FOUND|DATA:abx|FOUND|");
    check_bytes(S("abab"), S("abababab"), "FOUND|FOUND|");
    check_bytes(S("\r\n\r\n"), S("\r\n\r\r\n\r\r\n\r\n"), "DATA:\r\n\r\r\n\r|FOUND|");
    check_bytes(S("abcabd"), S("abcabcabdabcab"), "DATA:abc|FOUND|DATA:abcab|");
}

static void test_empty_frames(void **state)
{
    (void)state;
    check_bytes(S("\r\n"), S("\r\n\r\nabc\r\n"), "FOUND|FOUND|DATA:abc|FOUND|");
    check_bytes(S("qqq"), S("qqq"), "FOUND|");
    check_bytes(S("\r\n"), S(""), "");
}

/* ------------------------------------------------------------------ */
/* Count and none                                                      */
/* ------------------------------------------------------------------ */

static void test_count_one(void **state)
{
    (void)state;
    term_spec t = {EVC_TERM_COUNT, NULL, 0, 1};
    /* Once the count is reached it is 0, which behaves like none. */
    check_case(&t, NULL, S("abc"), S("DATA:a|FOUND|DATA:bc|"));
}

static void test_count_six_then_none(void **state)
{
    (void)state;
    /* asynchat's numeric terminator test: one found_terminator, then everything collected. */
    term_spec t = {EVC_TERM_COUNT, NULL, 0, 6};
    check_case(&t, NULL, S("hello world, I'm not dead yet!\n"),
               S("DATA:hello |FOUND|DATA:world, I'm not dead yet!\n|"));
}

/* Unlike asynchat (where 0 means none), a count of 0 is an empty frame, found at
 * once: a "Content-Length: 0" must not swallow the connection. */
static void test_count_zero_is_an_empty_frame(void **state)
{
    (void)state;
    term_spec t = {EVC_TERM_COUNT, NULL, 0, 0};
    check_case(&t, NULL, S("abc\r\ndef"), S("FOUND|DATA:abc\r\ndef|"));
}

static void test_none(void **state)
{
    (void)state;
    term_spec t = {EVC_TERM_NONE, NULL, 0, 0};
    check_case(&t, NULL, S("hello world\r\n\r\nqqq\0x"), S("DATA:hello world\r\n\r\nqqq\0x|"));
    check_case(&t, NULL, S(""), S(""));
}

static void test_count_above_2_32(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, 1000);
    char chunk[1000];
    memset(chunk, 'z', sizeof(chunk));
    const char *in = evt_guarded_place(&g, chunk, sizeof(chunk));

    /* Counts whose low 32 bits are small or zero: truncation would end the frame early. */
    const uint64_t counts[] = {(1ULL << 32) + 5, 1ULL << 32, UINT64_MAX};
    for (size_t k = 0; k < EVC_ARRAY_LEN(counts); k++) {
        evc_scanner s;
        evc__scanner_init(&s);
        evc__scanner_set_count(&s, counts[k]);
        uint64_t left = counts[k];
        for (int i = 0; i < 3; i++) {
            evc_scan_result r;
            evc__scan(&s, in, sizeof(chunk), &r);
            assert_int_equal(r.data_len, sizeof(chunk));
            assert_int_equal(r.consumed, sizeof(chunk));
            assert_false(r.found);
            left -= sizeof(chunk);
            evc_terminator t = evc__scanner_get(&s);
            assert_int_equal(t.kind, EVC_TERM_COUNT);
            assert_true(t.count == left);
        }
        evc__scanner_free(&s);
    }

    /* Near the end of a big count: the last bytes end the frame exactly. */
    evc_scanner s;
    evc__scanner_init(&s);
    evc__scanner_set_count(&s, (1ULL << 32) + 5);
    s.count = 7;   /* as if 2^32 - 2 bytes had gone by */
    evc_scan_result r;
    evc__scan(&s, in, sizeof(chunk), &r);
    assert_int_equal(r.data_len, 7);
    assert_int_equal(r.consumed, 7);
    assert_true(r.found);
    assert_true(evc__scanner_get(&s).count == 0);
    evc__scanner_free(&s);
    evt_guarded_free(&g);
}

static void test_count_reached_stays_zero(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, 16);
    const char *in = evt_guarded_place(&g, "abcdef", 6);
    evc_scanner s;
    evc__scanner_init(&s);
    evc__scanner_set_count(&s, 6);
    evc_scan_result r;
    evc__scan(&s, in, 6, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 6);
    evc_terminator t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_true(t.count == 0);
    /* Found once: afterwards the same bytes are plain data. */
    evc__scan(&s, in, 6, &r);
    assert_false(r.found);
    assert_int_equal(r.data_len, 6);
    evc__scanner_free(&s);
    evt_guarded_free(&g);
}

/* ------------------------------------------------------------------ */
/* Terminator changed inside found_terminator: "line, then N bytes"    */
/* ------------------------------------------------------------------ */

static void line_then_body(evc_scanner *s, const char *frame, size_t len)
{
    if (s->kind == EVC_TERM_BYTES) {
        unsigned n = 0;
        char line[32];
        assert_true(len < sizeof(line));
        memcpy(line, frame, len);
        line[len] = '\0';
        if (sscanf(line, "LEN %u", &n) == 1 && n > 0)
            evc__scanner_set_count(s, n);
    } else {
        assert_int_equal(evc__scanner_set_bytes(s, "\r\n", 2), 0);
    }
}

static void test_line_then_n_bytes(void **state)
{
    (void)state;
    term_spec t = {EVC_TERM_BYTES, "\r\n", 2, 0};
    check_case(&t, line_then_body, S("LEN 5\r\nhelloLEN 2\r\nhi"),
               S("DATA:LEN 5|FOUND|DATA:hello|FOUND|DATA:LEN 2|FOUND|DATA:hi|FOUND|"));
    /* A body that contains the line terminator, an empty body, and a last line. */
    check_case(&t, line_then_body, S("LEN 4\r\n\r\n\r\nLEN 0\r\nOK\r\nLEN 3\r\nab"),
               S("DATA:LEN 4|FOUND|DATA:\r\n\r\n|FOUND|DATA:LEN 0|FOUND|DATA:OK|FOUND|"
                 "DATA:LEN 3|FOUND|DATA:ab|"));
}

/* Switches between "\r\n\r\n" headers and "\n" lines on every frame. */
static void alternate(evc_scanner *s, const char *frame, size_t len)
{
    (void)frame;
    (void)len;
    if (s->term_len == 4)
        assert_int_equal(evc__scanner_set_bytes(s, "\n", 1), 0);
    else
        assert_int_equal(evc__scanner_set_bytes(s, "\r\n\r\n", 4), 0);
}

static void test_alternating_terminators(void **state)
{
    (void)state;
    term_spec t = {EVC_TERM_BYTES, "\r\n\r\n", 4, 0};
    check_case(&t, alternate, S("a\r\nb\r\n\r\nline\n\r\n\r\nx\r\n\r"),
               S("DATA:a\r\nb|FOUND|DATA:line|FOUND|FOUND|DATA:x\r|FOUND|DATA:\r|"));
}

/* ------------------------------------------------------------------ */
/* Held-back prefixes (asynchat's find_prefix_at_end), one call each   */
/* ------------------------------------------------------------------ */

static void test_held_prefix(void **state)
{
    (void)state;
    static const struct {
        const char *in, *term;
        size_t held, data;
        bool found;
    } cases[] = {
        {"qwerty\r", "\r\n", 1, 6, false},
        {"qwertydkjf", "\r\n", 0, 10, false},
        {"qwerty\r\n", "\r\n", 0, 6, true},
        {"qwerty\r\nmore\r", "\r\n", 0, 6, true},   /* stops at the first terminator */
        {"\r", "\r\n", 1, 0, false},
        {"qwertyqq", "qqq", 2, 6, false},
        {"qwertyq", "qqq", 1, 6, false},
        {"abc\r\n\r", "\r\n\r\n", 3, 3, false},
        {"x\r\n\r\r", "\r\n\r\n", 1, 4, false},
        {"aaaa", "aab", 2, 2, false},
        {"aba", "abab", 3, 0, false},
        {"abcab", "abab", 2, 3, false},
        {"abcd", "abcde", 4, 0, false},
        {"\n", "\n", 0, 0, true},
    };
    evt_guarded g;
    evt_guarded_init(&g, 64);
    for (size_t i = 0; i < EVC_ARRAY_LEN(cases); i++) {
        size_t len = strlen(cases[i].in);
        const char *in = evt_guarded_place(&g, cases[i].in, len);
        evc_scanner s;
        evc__scanner_init(&s);
        assert_int_equal(evc__scanner_set_bytes(&s, cases[i].term, strlen(cases[i].term)), 0);
        evc_scan_result r;
        evc__scan(&s, in, len, &r);
        if (r.found != cases[i].found || r.data_len != cases[i].data || s.held != cases[i].held)
            fail_msg("case %zu: found %d data %zu held %zu", i, r.found, r.data_len, s.held);
        if (r.found)
            assert_int_equal(r.consumed, r.data_len + strlen(cases[i].term));
        else
            assert_int_equal(r.consumed, len - s.held);
        /* Examined up to the end of the terminator, or everything. */
        assert_int_equal(s.examined, r.found ? r.consumed : len);
        evc__scanner_free(&s);
    }
    evt_guarded_free(&g);
}

static void test_flush_held_at_eof(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, 64);
    evc_scanner s;
    evc__scanner_init(&s);
    assert_int_equal(evc__scanner_set_bytes(&s, "\r\n", 2), 0);
    const char *in = evt_guarded_place(&g, "abc\r", 4);
    evc_scan_result r;
    evc__scan(&s, in, 4, &r);
    assert_int_equal(r.data_len, 3);
    assert_int_equal(r.consumed, 3);
    assert_int_equal(s.held, 1);
    /* Only the held byte is left; scanning it again without more input decides nothing. */
    evc__scan(&s, in + 3, 1, &r);
    assert_int_equal(r.consumed, 0);
    assert_false(r.found);
    /* At EOF the held byte is data. */
    evc__scanner_end(&s);
    evc__scan(&s, in + 3, 1, &r);
    assert_false(r.found);
    assert_int_equal(r.data_len, 1);
    assert_int_equal(r.consumed, 1);
    assert_int_equal(s.held, 0);
    /* A new terminator starts fresh. */
    assert_int_equal(evc__scanner_set_bytes(&s, "\r\n", 2), 0);
    in = evt_guarded_place(&g, "\r\n", 2);
    evc__scan(&s, in, 2, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 0);
    assert_int_equal(r.consumed, 2);
    evc__scanner_free(&s);
    evt_guarded_free(&g);

    /* Through the harness: the held bytes end the last frame's data. */
    term_spec t = {EVC_TERM_BYTES, "\r\n\r\n", 4, 0};
    check_case(&t, NULL, S("abc\r\n\r"), S("DATA:abc\r\n\r|"));
}

static void test_set_resets_held(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, 64);
    evc_scanner s;
    evc__scanner_init(&s);
    assert_int_equal(evc__scanner_set_bytes(&s, "\r\n\r\n", 4), 0);
    const char *in = evt_guarded_place(&g, "ab\r\n\r", 5);
    evc_scan_result r;
    evc__scan(&s, in, 5, &r);
    assert_int_equal(r.data_len, 2);
    assert_int_equal(s.held, 3);

    /* The held bytes are scanned again under the new terminator. */
    assert_int_equal(evc__scanner_set_bytes(&s, "\n", 1), 0);
    assert_int_equal(s.held, 0);
    in = evt_guarded_place(&g, "\r\n\rX", 4);
    evc__scan(&s, in, 4, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 1);
    assert_int_equal(r.consumed, 2);

    /* Count and none reset it too. */
    assert_int_equal(evc__scanner_set_bytes(&s, "qqq", 3), 0);
    in = evt_guarded_place(&g, "aqq", 3);
    evc__scan(&s, in, 3, &r);
    assert_int_equal(s.held, 2);
    evc__scanner_set_count(&s, 2);
    assert_int_equal(s.held, 0);
    evc__scan(&s, in + 1, 2, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 2);
    assert_int_equal(evc__scanner_set_bytes(&s, "qqq", 3), 0);
    evc__scan(&s, in, 3, &r);
    assert_int_equal(s.held, 2);
    evc__scanner_set_none(&s);
    assert_int_equal(s.held, 0);
    evc__scanner_free(&s);
    evt_guarded_free(&g);
}

static void test_get_and_set(void **state)
{
    (void)state;
    evc_scanner s;
    evc__scanner_init(&s);
    evc_terminator t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_NONE);

    assert_int_equal(evc__scanner_set_bytes(&s, "\r\n\r\n", 4), 0);
    t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 4);
    assert_memory_equal(t.bytes, "\r\n\r\n", 4);

    /* Setting the terminator from its own bytes (they are freed by the set). */
    assert_int_equal(evc__scanner_set_bytes(&s, t.bytes + 2, 2), 0);
    t = evc__scanner_get(&s);
    assert_int_equal(t.len, 2);
    assert_memory_equal(t.bytes, "\r\n", 2);

    /* Length 0 means none. */
    assert_int_equal(evc__scanner_set_bytes(&s, "", 0), 0);
    t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_NONE);
    assert_null(t.bytes);

    /* An explicit count of 0 is shown as a count of 0 (asynchat keeps 0 too). */
    evc__scanner_set_count(&s, 0);
    t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_true(t.count == 0);

    evc__scanner_set_count(&s, 42);
    t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_true(t.count == 42);
    assert_null(t.bytes);

    /* An impossible size fails and leaves the terminator as it was. */
    assert_int_equal(evc__scanner_set_bytes(&s, "x", SIZE_MAX), -ENOMEM);
    t = evc__scanner_get(&s);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_true(t.count == 42);

    /* An empty input decides nothing. */
    evc_scan_result r = {.data_len = 1, .consumed = 1, .found = true};
    evc__scan(&s, "", 0, &r);
    assert_int_equal(r.data_len, 0);
    assert_int_equal(r.consumed, 0);
    assert_false(r.found);
    evc__scanner_free(&s);
    evc__scanner_free(&s);   /* idempotent */
}

/* ------------------------------------------------------------------ */
/* Linearity                                                           */
/* ------------------------------------------------------------------ */

/* Random terminators over small alphabets (many partial matches), random inputs
 * and random splits: the events match memmem's, and every byte is examined once. */
static void test_random_against_reference(void **state)
{
    (void)state;
    static const char *const alphabets[] = {"ab", "a", "\r\n", "abc", "\r\nx"};
    uint64_t st = 0x1234567887654321ULL;
    char term[9], in[301];
    for (int round = 0; round < 1500; round++) {
        const char *alpha = alphabets[rnd_below(&st, EVC_ARRAY_LEN(alphabets))];
        size_t na = strlen(alpha);
        size_t tlen = 1 + rnd_below(&st, 8);
        size_t len = rnd_below(&st, sizeof(in));
        for (size_t i = 0; i < tlen; i++)
            term[i] = alpha[rnd_below(&st, na)];
        for (size_t i = 0; i < len; i++)
            in[i] = alpha[rnd_below(&st, na)];
        str ref;
        reference_events(term, tlen, in, len, &ref);
        term_spec t = {EVC_TERM_BYTES, term, tlen, 0};
        /* All splits for a few; random splits for the rest, to keep the run short. */
        if (round % 50 == 0)
            check_splits(&t, NULL, in, len, ref.p, ref.len, rnd(&st), 5);
        else {
            evt_guarded g;
            evt_guarded_init(&g, len + 1);
            size_t cuts[8];
            size_t n = rnd_below(&st, EVC_ARRAY_LEN(cuts) + 1);
            for (size_t i = 0; i < n; i++)
                cuts[i] = rnd_below(&st, len + 1);
            qsort(cuts, n, sizeof(*cuts), cmp_size);
            str ev;
            feed_cuts(&g, &t, NULL, in, len, cuts, n, &ev);
            assert_same_events(&ev, ref.p, ref.len, "random");
            str_free(&ev);
            evt_guarded_free(&g);
        }
        str_free(&ref);
    }
}

/* Feeds a big input in chunks (held bytes in front) and counts frames and data. */
static void big_feed(const char *term, size_t tlen, const char *in, size_t len, size_t chunk,
                     size_t *frames, size_t *data, uint64_t *examined)
{
    evc_scanner s;
    evc__scanner_init(&s);
    assert_int_equal(evc__scanner_set_bytes(&s, term, tlen), 0);
    *frames = 0;
    *data = 0;
    size_t start = 0;   /* first undelivered byte */
    size_t avail = 0;   /* bytes available so far */
    while (avail < len) {
        avail = avail + chunk < len ? avail + chunk : len;
        while (start < avail) {
            evc_scan_result r;
            evc__scan(&s, in + start, avail - start, &r);
            *data += r.data_len;
            start += r.consumed;
            if (r.found)
                (*frames)++;
            else if (r.consumed == 0)
                break;
        }
    }
    evc__scanner_end(&s);
    evc_scan_result r;
    evc__scan(&s, in + start, len - start, &r);
    *data += r.data_len;
    *examined = s.examined;
    evc__scanner_free(&s);
}

/* Non-overlapping matches from the left, the obvious way.  (Not memmem: ASan's
 * memmem checks the whole haystack on every call, which is quadratic here.) */
static size_t count_matches(const char *term, size_t tlen, const char *in, size_t len)
{
    size_t n = 0;
    for (size_t at = 0; at + tlen <= len;) {
        if (memcmp(in + at, term, tlen) == 0) {
            n++;
            at += tlen;
        } else {
            at++;
        }
    }
    return n;
}

static void test_adversarial_linear(void **state)
{
    (void)state;
    const size_t len = 8u << 20;
    evt_guarded g;
    evt_guarded_init(&g, len);
    char *in = evt_guarded_end(&g) - len;

    /* 8 MiB of 'a' against "aaaaaaab": a partial match of 7 at every byte. */
    memset(in, 'a', len);
    static const size_t chunks[] = {8u << 20, 4096, 7, 1};
    for (size_t k = 0; k < EVC_ARRAY_LEN(chunks); k++) {
        size_t frames, data;
        uint64_t examined;
        /* Byte by byte, the last 1 MiB is enough (and keeps valgrind quick). */
        size_t n = chunks[k] == 1 ? (1u << 20) : len;
        big_feed("aaaaaaab", 8, in + len - n, n, chunks[k], &frames, &data, &examined);
        assert_int_equal(frames, 0);
        assert_int_equal(data, n);
        assert_true(examined == n);
    }

    /* "\r\n\r\r\n" repeated against "\r\n\r\n": overlapping near-misses. */
    static const char unit[] = "\r\n\r\r\n";
    for (size_t i = 0; i < len; i++)
        in[i] = unit[i % 5];
    size_t want = count_matches("\r\n\r\n", 4, in, len);
    assert_true(want > 0);
    for (size_t k = 0; k < 3; k++) {
        size_t frames, data;
        uint64_t examined;
        big_feed("\r\n\r\n", 4, in, len, chunks[k], &frames, &data, &examined);
        assert_int_equal(frames, want);
        assert_int_equal(data, len - 4 * want);
        assert_true(examined == len);
    }
    evt_guarded_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newline),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_qqq),
        cmocka_unit_test(test_crlfcrlf),
        cmocka_unit_test(test_64_byte_boundary),
        cmocka_unit_test(test_one_byte_binary),
        cmocka_unit_test(test_self_overlapping),
        cmocka_unit_test(test_empty_frames),
        cmocka_unit_test(test_count_one),
        cmocka_unit_test(test_count_six_then_none),
        cmocka_unit_test(test_count_zero_is_an_empty_frame),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_count_above_2_32),
        cmocka_unit_test(test_count_reached_stays_zero),
        cmocka_unit_test(test_line_then_n_bytes),
        cmocka_unit_test(test_alternating_terminators),
        cmocka_unit_test(test_held_prefix),
        cmocka_unit_test(test_flush_held_at_eof),
        cmocka_unit_test(test_set_resets_held),
        cmocka_unit_test(test_get_and_set),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_adversarial_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
