/*
 * Every framing of the engine against a naive oracle, under every split.
 *
 * Each case is a terminator (line styles, delimiter sets, count-then-delimiter
 * in a RESP-like exchange, length prefixes, netstrings), with and without kept
 * delimiters, and an input.  The oracle frames the whole input the obvious way
 * (memcmp at every position, headers parsed in one go).  The engine is fed the
 * input whole, byte by byte, split at every offset and at random offsets, the
 * way chat.c feeds it (held bytes kept at the front of the next input, which
 * ends against a PROT_NONE page), and must give the oracle's events each time
 * and examine every byte it passes over exactly once.
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

#define S(lit) (lit), (sizeof(lit) - 1)
#define MAX_INPUT 4096

/* ------------------------------------------------------------------ */
/* Events: "D<bytes>|" per frame's data, "F<n>|" per frame end (n: the   */
/* delimiter a set matched, else 0), "E<errno>|" for an error.          */
/* ------------------------------------------------------------------ */

typedef struct ev {
    char p[4 * MAX_INPUT];
    size_t len;
} ev;

static void ev_add(ev *e, const void *p, size_t n)
{
    assert_true(e->len + n <= sizeof e->p);
    memcpy(e->p + e->len, p, n);
    e->len += n;
}

static void ev_data(ev *e, const char *p, size_t n)
{
    if (n == 0)
        return;
    ev_add(e, "D", 1);
    ev_add(e, p, n);
    ev_add(e, "|", 1);
}

static void ev_found(ev *e, size_t which)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "F%zu|", which);
    ev_add(e, buf, (size_t)n);
}

static void ev_error(ev *e, int err)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "E%d|", err);
    ev_add(e, buf, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */
/* ------------------------------------------------------------------ */

typedef enum framing {
    F_LINE,      /* eol */
    F_ANY,       /* delims */
    F_RESP,      /* CRLF lines; "$<n>" arms count_then(n, "\r\n") for one frame */
    F_PREFIX,    /* width, big_endian, max */
    F_NETSTRING  /* max */
} framing;

typedef struct spec {
    framing kind;
    bool keep;
    evc_eol eol;
    const char *const *delims;
    const size_t *lens;
    size_t n;
    unsigned width;
    bool big_endian;
    uint64_t max;
} spec;

static void apply(evc_scanner *s, const spec *t)
{
    evc__scanner_set_keep(s, t->keep);
    switch (t->kind) {
    case F_LINE:
        assert_int_equal(evc__scanner_set_line(s, t->eol), 0);
        break;
    case F_ANY:
        assert_int_equal(evc__scanner_set_any(s, t->delims, t->lens, t->n), 0);
        break;
    case F_RESP:
        assert_int_equal(evc__scanner_set_line(s, EVC_EOL_CRLF), 0);
        break;
    case F_PREFIX:
        assert_int_equal(evc__scanner_set_prefix(s, t->width, t->big_endian, t->max), 0);
        break;
    case F_NETSTRING:
        assert_int_equal(evc__scanner_set_netstring(s, t->max), 0);
        break;
    }
}

/* "$<n>" as a RESP bulk header, or -1. */
static long bulk_len(const char *p, size_t n)
{
    if (n < 2 || p[0] != '$' || n > 8)
        return -1;
    long v = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* ------------------------------------------------------------------ */
/* The oracle                                                          */
/* ------------------------------------------------------------------ */


/* The earliest delimiter ending at or after `from`: its end and which one
 * (longest wins a tie), or false. */
static bool first_delim(const spec *t, const char *in, size_t len, size_t from, size_t *end,
                        size_t *which, size_t *dlen)
{
    static const char *const eol_d[] = {"\n", "\r\n", "\n", ""};
    static const size_t eol_l[] = {1, 2, 1, 1};
    for (size_t e = from + 1; e <= len; e++) {
        bool hit = false;
        size_t best = 0, best_len = 0;
        size_t n = t->kind == F_ANY ? t->n : 1;
        for (size_t k = 0; k < n; k++) {
            const char *d = t->kind == F_ANY ? t->delims[k] : eol_d[t->kind == F_RESP ? 1 : t->eol];
            size_t l = t->kind == F_ANY ? t->lens[k] : eol_l[t->kind == F_RESP ? 1 : t->eol];
            if (l <= e - from && memcmp(in + e - l, d, l) == 0 && (!hit || l > best_len)) {
                hit = true;
                best = k;
                best_len = l;
            }
        }
        if (hit) {
            *end = e;
            *which = best;
            *dlen = best_len;
            /* CRLF-or-LF: a \r before the \n goes with the delimiter. */
            if (t->kind == F_LINE && t->eol == EVC_EOL_CRLF_OR_LF && e - from >= 2 &&
                in[e - 2] == '\r')
                *dlen = 2;
            return true;
        }
    }
    return false;
}

static void oracle(const spec *t, const char *in, size_t len, ev *out)
{
    out->len = 0;
    size_t i = 0;
    long bulk = -1;   /* F_RESP: the armed count_then */
    while (i < len) {
        if (t->kind == F_RESP && bulk >= 0) {
            size_t n = (size_t)bulk;
            bulk = -1;
            if (len - i < n) {
                ev_data(out, in + i, len - i);
                return;
            }
            size_t j = i + n, q = 0;
            while (q < 2 && j + q < len && in[j + q] == "\r\n"[q])
                q++;
            if (q < 2 && j + q < len) {
                ev_data(out, in + i, n);
                ev_error(out, -EPROTO);
                return;
            }
            if (q < 2) {   /* EOF in the delimiter: its start is data then */
                ev_data(out, in + i, len - i);
                return;
            }
            ev_data(out, in + i, t->keep ? n + 2 : n);
            ev_found(out, 0);
            i = j + 2;
            continue;
        }
        if (t->kind == F_PREFIX) {
            if (len - i < t->width) {
                ev_data(out, in + i, len - i);
                return;
            }
            uint64_t v = 0;
            for (unsigned k = 0; k < t->width; k++) {
                uint64_t b = (unsigned char)in[i + k];
                v = t->big_endian ? v << 8 | b : v | b << (8 * k);
            }
            if (t->max && v > t->max) {
                ev_error(out, -EPROTO);
                return;
            }
            i += t->width;
            if (len - i < v) {
                ev_data(out, in + i, len - i);
                return;
            }
            ev_data(out, in + i, (size_t)v);
            ev_found(out, 0);
            i += (size_t)v;
            continue;
        }
        if (t->kind == F_NETSTRING) {
            size_t j = i;
            uint64_t v = 0;
            while (j < len && in[j] >= '0' && in[j] <= '9' && j - i < 20) {
                if ((j > i && in[i] == '0') || v > (UINT64_MAX - 9) / 10) {
                    ev_error(out, -EPROTO);
                    return;
                }
                v = v * 10 + (uint64_t)(in[j] - '0');
                j++;
            }
            if (j == len) {
                ev_data(out, in + i, len - i);
                return;
            }
            if (in[j] != ':' || j == i || (t->max && v > t->max)) {
                ev_error(out, -EPROTO);
                return;
            }
            j++;
            if (len - j < v) {
                ev_data(out, in + j, len - j);
                return;
            }
            ev_data(out, in + j, (size_t)v);
            j += (size_t)v;
            if (j == len)
                return;
            if (in[j] != ',') {
                ev_error(out, -EPROTO);
                return;
            }
            ev_found(out, 0);
            i = j + 1;
            continue;
        }
        size_t end, which, dlen;
        if (!first_delim(t, in, len, i, &end, &which, &dlen)) {
            ev_data(out, in + i, len - i);
            return;
        }
        ev_data(out, in + i, t->keep ? end - i : end - i - dlen);
        ev_found(out, t->kind == F_ANY ? which : 0);
        if (t->kind == F_RESP)
            bulk = bulk_len(in + i, end - i - dlen);
        i = end;
    }
}

/* ------------------------------------------------------------------ */
/* The engine, fed as chat.c feeds it                                  */
/* ------------------------------------------------------------------ */

typedef struct run {
    evc_scanner s;
    const spec *t;
    char *end;        /* the guard page */
    size_t pending;   /* held bytes just before it */
    uint64_t passed;  /* bytes consumed */
    char frame[MAX_INPUT + 8];
    size_t frame_len;
    ev out;
    bool failed;
} run;

static void flush_frame(run *r)
{
    ev_data(&r->out, r->frame, r->frame_len);
    r->frame_len = 0;
}

/* The line fast path's deliver: records a whole frame as chat.c delivers it. */
static bool deliver_whole(void *ctx, const char *frame, size_t n, size_t consumed)
{
    run *r = ctx;
    assert_int_equal(r->frame_len, 0);
    assert_true(n <= consumed);
    ev_data(&r->out, frame, n);
    ev_found(&r->out, 0);
    r->passed += consumed;
    return true;
}

static void feed(run *r, const char *chunk, size_t n)
{
    if (r->failed)
        return;
    memmove(r->end - r->pending - n, r->end - r->pending, r->pending);
    memcpy(r->end - n, chunk, n);
    r->pending += n;
    const char *p = r->end - r->pending;
    size_t len = r->pending;
    while (len || evc__scanner_ready(&r->s)) {
        if (r->frame_len == 0 && evc__scan_lines_apply(&r->s)) {
            size_t passed = evc__scan_lines(&r->s, p, len, deliver_whole, r);
            p += passed;
            len -= passed;
            if (passed > 0)
                continue;
        }
        evc_scan_result res;
        res = evc__scan_step(&r->s, p, len);
        if (res.error) {
            assert_int_equal(res.consumed, 0);
            flush_frame(r);
            ev_error(&r->out, res.error);
            r->failed = true;
            return;
        }
        assert_true(res.start + res.data_len <= res.consumed);
        assert_true(res.consumed <= len);
        memcpy(r->frame + r->frame_len, p + res.start, res.data_len);
        r->frame_len += res.data_len;
        p += res.consumed;
        len -= res.consumed;
        r->passed += res.consumed;
        if (res.found) {
            flush_frame(r);
            ev_found(&r->out, r->t->kind == F_ANY ? evc__scanner_matched(&r->s) : 0);
        } else if (res.consumed == 0) {
            break;
        }
    }
    /* What is left is exactly what the engine holds back. */
    assert_int_equal(len, r->s.held);
    r->pending = len;
}

/* The RESP case: found_terminator re-arms from the frame just found. */
static void feed_resp(run *r, const char *chunk, size_t n);

static void run_cuts(const spec *t, char *end, const char *in, size_t len, const size_t *cuts,
                     size_t ncuts, ev *out)
{
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    evc__scanner_init(&r->s);
    apply(&r->s, t);
    r->t = t;
    r->end = end;
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (t->kind == F_RESP)
            feed_resp(r, in + from, to - from);
        else
            feed(r, in + from, to - from);
        from = to;
    }
    if (!r->failed) {
        /* At EOF the held bytes are data. */
        evc__scanner_end(&r->s);
        evc_scan_result res;
        evc__scan(&r->s, r->end - r->pending, r->pending, &res);
        assert_false(res.found);
        assert_int_equal(res.consumed, r->pending);
        memcpy(r->frame + r->frame_len, r->end - r->pending, res.data_len);
        r->frame_len += res.data_len;
        r->passed += res.consumed;
        flush_frame(r);
        /* Every byte passed over was examined once, however the input was cut. */
        assert_int_equal(r->s.examined, r->passed);
    }
    *out = r->out;
    evc__scanner_free(&r->s);
    free(r);
}

static void feed_resp(run *r, const char *chunk, size_t n)
{
    if (r->failed)
        return;
    memmove(r->end - r->pending - n, r->end - r->pending, r->pending);
    memcpy(r->end - n, chunk, n);
    r->pending += n;
    const char *p = r->end - r->pending;
    size_t len = r->pending;
    while (len) {
        evc_scan_result res;
        res = evc__scan_step(&r->s, p, len);
        if (res.error) {
            flush_frame(r);
            ev_error(&r->out, res.error);
            r->failed = true;
            return;
        }
        memcpy(r->frame + r->frame_len, p + res.start, res.data_len);
        r->frame_len += res.data_len;
        p += res.consumed;
        len -= res.consumed;
        r->passed += res.consumed;
        if (res.found) {
            evc_terminator cur = evc__scanner_get(&r->s);
            long bulk = -1;
            if (cur.kind == EVC_TERM_LINE)
                bulk = bulk_len(r->frame, r->frame_len - (r->t->keep ? 2 : 0));
            flush_frame(r);
            ev_found(&r->out, 0);
            /* found_terminator: a bulk header arms one count_then frame, after
             * which (and after any other frame) lines come again. */
            if (bulk >= 0)
                assert_int_equal(evc__scanner_set_count_then(&r->s, (uint64_t)bulk, "\r\n", 2), 0);
            else
                assert_int_equal(evc__scanner_set_line(&r->s, EVC_EOL_CRLF), 0);
        } else if (res.consumed == 0) {
            break;
        }
    }
    assert_int_equal(len, r->s.held);
    r->pending = len;
}

static uint64_t rnd(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void assert_same(const ev *got, const ev *want, const char *how)
{
    if (got->len != want->len || memcmp(got->p, want->p, got->len) != 0)
        fail_msg("%s: got \"%.*s\", want \"%.*s\"", how, (int)got->len, got->p, (int)want->len,
                 want->p);
}

/* The oracle's events, checked against a hand-written expectation, then the
 * engine's under every split. */
static void check(const spec *t, const char *in, size_t len, const char *want, size_t want_len)
{
    assert_true(len <= MAX_INPUT);
    static ev expect, got;
    oracle(t, in, len, &expect);
    if (want) {
        ev hand;
        hand.len = want_len;
        memcpy(hand.p, want, want_len);
        assert_same(&expect, &hand, "oracle");
    }
    evt_guarded g;
    evt_guarded_init(&g, len + 1);
    char *end = evt_guarded_end(&g);
    size_t *cuts = calloc(len + 1, sizeof *cuts);
    assert_non_null(cuts);

    run_cuts(t, end, in, len, NULL, 0, &got);
    assert_same(&got, &expect, "whole");
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    run_cuts(t, end, in, len, cuts, len, &got);
    assert_same(&got, &expect, "byte by byte");
    for (size_t c = 0; c <= len; c++) {
        run_cuts(t, end, in, len, &c, 1, &got);
        char how[48];
        snprintf(how, sizeof how, "split at %zu", c);
        assert_same(&got, &expect, how);
    }
    uint64_t st = 0x9e3779b97f4a7c15ULL ^ len;
    for (int round = 0; round < 40; round++) {
        size_t n = (size_t)(rnd(&st) % (len + 1));
        for (size_t i = 0; i < n; i++)
            cuts[i] = (size_t)(rnd(&st) % (len + 1));
        qsort(cuts, n, sizeof *cuts, cmp_size);
        run_cuts(t, end, in, len, cuts, n, &got);
        assert_same(&got, &expect, "random split");
    }
    free(cuts);
    evt_guarded_free(&g);
}

#define CHECK(t, in, want) check((t), S(in), (want), sizeof(want) - 1)
#define CHECK_ORACLE(t, in, len) check((t), (in), (len), NULL, 0)

/* Random inputs over a small alphabet (many partial matches), oracle only. */
static void check_random(const spec *t, const char *alphabet, uint64_t seed, int inputs)
{
    char in[160];
    size_t an = strlen(alphabet);
    uint64_t st = seed;
    for (int k = 0; k < inputs; k++) {
        size_t len = (size_t)(rnd(&st) % sizeof in);
        for (size_t i = 0; i < len; i++)
            in[i] = alphabet[rnd(&st) % an];
        CHECK_ORACLE(t, in, len);
    }
}

/* ------------------------------------------------------------------ */
/* Line styles                                                         */
/* ------------------------------------------------------------------ */

static void test_lf(void **state)
{
    (void)state;
    spec t = {.kind = F_LINE, .eol = EVC_EOL_LF};
    CHECK(&t, "GET / HTTP/1.1\r\nHost: x\n\nrest", "DGET / HTTP/1.1\r|F0|DHost: x|F0|F0|Drest|");
    t.keep = true;
    CHECK(&t, "a\nb\n\nc", "Da\n|F0|Db\n|F0|D\n|F0|Dc|");
}

static void test_crlf_strict(void **state)
{
    (void)state;
    spec t = {.kind = F_LINE, .eol = EVC_EOL_CRLF};
    CHECK(&t, "a\r\nb\nc\r\r\n\r\n", "Da|F0|Db\nc\r|F0|F0|");
    t.keep = true;
    CHECK(&t, "a\r\nb", "Da\r\n|F0|Db|");
}

/* A bare-LF HTTP request must not hang: a line ends at \n, a \r before it is dropped. */
static void test_crlf_or_lf(void **state)
{
    (void)state;
    spec t = {.kind = F_LINE, .eol = EVC_EOL_CRLF_OR_LF};
    CHECK(&t, "GET / HTTP/1.1\nHost: x\r\n\n\r\nz\r\rq\r",
          "DGET / HTTP/1.1|F0|DHost: x|F0|F0|F0|Dz\r\rq\r|");
    CHECK(&t, "\r\n\r\r\n", "F0|D\r|F0|");
    t.keep = true;
    CHECK(&t, "a\r\nb\nc", "Da\r\n|F0|Db\n|F0|Dc|");
    check_random(&t, "\r\na", 11, 30);
}

static void test_nul(void **state)
{
    (void)state;
    spec t = {.kind = F_LINE, .eol = EVC_EOL_NUL};
    CHECK(&t, "ab\0\0c\nd\0e", "Dab|F0|F0|Dc\nd|F0|De|");
    t.keep = true;
    CHECK(&t, "ab\0c", "Dab\0|F0|Dc|");
}

/* ------------------------------------------------------------------ */
/* Delimiter sets                                                      */
/* ------------------------------------------------------------------ */

static void test_any_earliest_wins(void **state)
{
    (void)state;
    static const char *const d[] = {"\n", "\r\n", ";;"};
    static const size_t l[] = {1, 2, 2};
    spec t = {.kind = F_ANY, .delims = d, .lens = l, .n = 3};
    /* "\r\n" and "\n" end at the same byte: the longer one started first. */
    CHECK(&t, "a\r\nb;;c\nd;e", "Da|F1|Db|F2|Dc|F0|Dd;e|");
    t.keep = true;
    CHECK(&t, "a;;;b\r\n", "Da;;|F2|D;b\r\n|F1|");
}

static void test_any_overlapping(void **state)
{
    (void)state;
    static const char *const d[] = {"abcd", "bc", "aab", "aaab"};
    static const size_t l[] = {4, 2, 3, 4};
    spec t = {.kind = F_ANY, .delims = d, .lens = l, .n = 4};
    /* "bc" ends before "abcd" can: the earliest end wins. */
    CHECK(&t, "xabcdy", "Dxa|F1|Ddy|");
    /* "aab" and "aaab" both end at the b: the longer one. */
    CHECK(&t, "xaaabz", "Dx|F3|Dz|");
    check_random(&t, "abcd", 21, 40);
}

static void test_any_rejects_bad_sets(void **state)
{
    (void)state;
    evc_scanner s;
    evc__scanner_init(&s);
    static const char *const d[] = {"a", ""};
    static const size_t l[] = {1, 0};
    assert_int_equal(evc__scanner_set_any(&s, d, l, 0), -EINVAL);
    assert_int_equal(evc__scanner_set_any(&s, d, l, 2), -EINVAL);   /* an empty delimiter */
    assert_int_equal(evc__scanner_set_any(&s, d, l, EVC_SCANNER_MAX_ANY + 1), -EINVAL);
    assert_int_equal(evc__scanner_get(&s).kind, EVC_TERM_NONE);     /* unchanged */
    assert_int_equal(evc__scanner_set_any(&s, d, l, 1), 0);
    evc_terminator g = evc__scanner_get(&s);
    assert_int_equal(g.kind, EVC_TERM_ANY);
    assert_int_equal(g.n, 1);
    evc__scanner_free(&s);
}

/* ------------------------------------------------------------------ */
/* Count, then a delimiter (RESP bulk strings)                         */
/* ------------------------------------------------------------------ */

static void test_count_then(void **state)
{
    (void)state;
    spec t = {.kind = F_RESP};
    CHECK(&t, "$5\r\nhe\r\no\r\n$0\r\n\r\n+OK\r\n",
          "D$5|F0|Dhe\r\no|F0|D$0|F0|F0|D+OK|F0|");
    t.keep = true;
    CHECK(&t, "$2\r\nab\r\nx", "D$2\r\n|F0|Dab\r\n|F0|Dx|");
}

/* A missing delimiter after the count is a protocol error; the body still
 * goes out first, however the input is split. */
static void test_count_then_missing_delimiter(void **state)
{
    (void)state;
    spec t = {.kind = F_RESP};
    CHECK(&t, "$3\r\nabcXY\r\n", "D$3|F0|Dabc|E-71|");
    CHECK(&t, "$3\r\nabc\rX", "D$3|F0|Dabc|E-71|");
    CHECK(&t, "$0\r\nX", "D$0|F0|E-71|");
    check_random(&t, "$1\r\n", 31, 40);
}

/* ------------------------------------------------------------------ */
/* Length prefixes and netstrings                                      */
/* ------------------------------------------------------------------ */

static void test_prefix_widths(void **state)
{
    (void)state;
    spec t = {.kind = F_PREFIX, .width = 1};
    CHECK(&t, "\x03" "abc\x00\x01" "z\x05" "ab", "Dabc|F0|F0|Dz|F0|Dab|");
    t.width = 2;
    t.big_endian = true;
    CHECK(&t, "\x00\x02" "hi\x00\x00\x01", "Dhi|F0|F0|D\x01|");
    t.big_endian = false;
    CHECK(&t, "\x02\x00" "hi", "Dhi|F0|");
    t.width = 4;
    t.big_endian = true;
    CHECK(&t, "\x00\x00\x00\x01" "x\x00\x00\x00\x00", "Dx|F0|F0|");
    t.width = 8;
    t.big_endian = false;
    CHECK(&t, "\x02\x00\x00\x00\x00\x00\x00\x00" "ok", "Dok|F0|");
    t.width = 1;
    check_random(&t, "\x01\x02\x00" "ab", 41, 30);
}

static void test_prefix_over_max(void **state)
{
    (void)state;
    spec t = {.kind = F_PREFIX, .width = 2, .big_endian = true, .max = 4};
    CHECK(&t, "\x00\x04" "abcd\x00\x05" "abcde", "Dabcd|F0|E-71|");
    evc_scanner s;
    evc__scanner_init(&s);
    assert_int_equal(evc__scanner_set_prefix(&s, 3, true, 0), -EINVAL);
    assert_int_equal(evc__scanner_set_prefix(&s, 0, true, 0), -EINVAL);
    evc__scanner_free(&s);
}

static void test_netstring(void **state)
{
    (void)state;
    spec t = {.kind = F_NETSTRING};
    CHECK(&t, "12:hello world!,0:,3:a,b,", "Dhello world!|F0|F0|Da,b|F0|");
    CHECK(&t, "5:abc", "Dabc|");
    check_random(&t, "1:a,0", 51, 40);
}

static void test_netstring_malformed(void **state)
{
    (void)state;
    spec t = {.kind = F_NETSTRING};
    CHECK(&t, "3:abc,x:", "Dabc|F0|E-71|");       /* not a digit */
    CHECK(&t, ":abc,", "E-71|");                   /* no length */
    CHECK(&t, "01:a,", "E-71|");                   /* a leading zero */
    CHECK(&t, "2:ab;", "Dab|E-71|");               /* no comma */
    CHECK(&t, "99999999999999999999999:", "E-71|"); /* too long a length */
    t.max = 3;
    CHECK(&t, "3:abc,4:abcd,", "Dabc|F0|E-71|");
}

/* A reset (discard_buffers) while a header or a delimiter is half read: the
 * frames after it are what a fresh engine finds. */
static void test_reset_mid_frame(void **state)
{
    (void)state;
    evc_scanner s;
    evc__scanner_init(&s);
    evc_scan_result r;
    assert_int_equal(evc__scanner_set_netstring(&s, 0), 0);
    evc__scan(&s, "12", 2, &r);
    assert_int_equal(s.held, 2);
    unsigned epoch = evc__scanner_epoch(&s);
    evc__scanner_reset(&s);
    assert_true(evc__scanner_epoch(&s) != epoch);
    evc__scan(&s, "1:x,", 4, &r);
    assert_true(r.found);
    assert_int_equal(r.start, 2);
    assert_int_equal(r.data_len, 1);

    assert_int_equal(evc__scanner_set_count_then(&s, 1, "\r\n", 2), 0);
    evc__scan(&s, "a\r", 2, &r);
    assert_int_equal(r.data_len, 1);
    assert_int_equal(s.held, 1);
    evc__scanner_reset(&s);
    evc__scan(&s, "\r\n", 2, &r);   /* the delimiter, fresh */
    assert_true(r.found);
    assert_int_equal(r.data_len, 0);

    static const char *const d[] = {"abc", "xy"};
    static const size_t l[] = {3, 2};
    assert_int_equal(evc__scanner_set_any(&s, d, l, 2), 0);
    evc__scan(&s, "zab", 3, &r);
    assert_int_equal(s.held, 2);
    evc__scanner_reset(&s);
    evc__scan(&s, "cxy", 3, &r);   /* "c" is data, not the end of "abc" */
    assert_true(r.found);
    assert_int_equal(r.data_len, 1);
    assert_int_equal(evc__scanner_matched(&s), 1);
    evc__scanner_free(&s);
}

/* The frame limit: delimited frames always, counted ones when the library collects. */
static void test_limit(void **state)
{
    (void)state;
    evc_scanner s;
    evc__scanner_init(&s);
    evc_scan_result r;
    evc__scanner_set_limit(&s, 4, false);
    assert_int_equal(evc__scanner_set_line(&s, EVC_EOL_LF), 0);
    r = evc__scan_step(&s, "abcd\nabcde\n", 11);
    assert_true(r.found);
    assert_int_equal(r.data_len, 4);
    r = evc__scan_step(&s, "abcde\n", 6);
    assert_int_equal(r.error, -EMSGSIZE);
    assert_int_equal(r.consumed, 0);
    r = evc__scan_step(&s, "abcde\n", 6);   /* and it stays failed */
    assert_int_equal(r.error, -EMSGSIZE);

    /* A count the user streams is never capped ... */
    evc__scanner_set_count(&s, 10);
    evc__scan(&s, "0123456789", 10, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 10);
    /* ... one the library collects is. */
    evc__scanner_set_limit(&s, 4, true);
    evc__scanner_set_count(&s, 10);
    evc__scan(&s, "0123456789", 10, &r);
    assert_int_equal(r.error, -EMSGSIZE);
    assert_int_equal(evc__scanner_set_prefix(&s, 1, true, 0), 0);
    evc__scan(&s, "\x05", 1, &r);
    assert_int_equal(r.error, -EMSGSIZE);
    evc__scanner_free(&s);
}

/* A count of 0 is an empty frame, found without input. */
static void test_count_zero(void **state)
{
    (void)state;
    evc_scanner s;
    evc__scanner_init(&s);
    evc__scanner_set_count(&s, 0);
    assert_true(evc__scanner_ready(&s));
    evc_scan_result r;
    evc__scan(&s, NULL, 0, &r);
    assert_true(r.found);
    assert_int_equal(r.data_len, 0);
    assert_int_equal(r.consumed, 0);
    assert_false(evc__scanner_ready(&s));
    /* Then, as any reached count, everything is data. */
    evc__scan(&s, "abc", 3, &r);
    assert_false(r.found);
    assert_int_equal(r.data_len, 3);
    evc__scanner_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lf),
        cmocka_unit_test(test_crlf_strict),
        cmocka_unit_test(test_crlf_or_lf),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_any_earliest_wins),
        cmocka_unit_test(test_any_overlapping),
        cmocka_unit_test(test_any_rejects_bad_sets),
        cmocka_unit_test(test_count_then),
        cmocka_unit_test(test_count_then_missing_delimiter),
        cmocka_unit_test(test_prefix_widths),
        cmocka_unit_test(test_prefix_over_max),
        cmocka_unit_test(test_netstring),
        cmocka_unit_test(test_netstring_malformed),
        cmocka_unit_test(test_reset_mid_frame),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_count_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
