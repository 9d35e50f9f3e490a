/*
 * How the engine finds line ends: the line cursor (lines.h), with which the
 * chat finds one-byte terminators in what it has read.  (The read blocks the
 * chat reads into are tested with the buffer, tests/test_buf.c, and per loop
 * in tests/test_chat_forward.c.)
 *
 * The cursor must find exactly what repeated memchr finds, never read a byte
 * past the end of its input (inputs here end at a PROT_NONE guard page from
 * tests/support.h, so such a read crashes the test), and give the same
 * positions when it is stopped and a new one is started after the last
 * position (what the chat does when a callback changes the framing).
 */
#include "support.h"
#include "internal.h"
#include "lines.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The longest input a test places: the chat's whole read block. */
#define MAX_INPUT EVC_READ_BLOCK

/* Every occurrence of term in [p, end), by repeated memchr; returns how many went into want. */
static size_t memchr_positions(const char *p, const char *end, unsigned char term,
                               const char **want, size_t cap)
{
    size_t n = 0;
    for (const char *q = p; q < end && (q = memchr(q, term, (size_t)(end - q))) != NULL; q++) {
        assert_true(n < cap);
        want[n++] = q;
    }
    return n;
}

/* Asserts that the cursor over [p, p + n) yields what repeated memchr yields. */
static void assert_cursor_matches_memchr(const char *p, size_t n, unsigned char term)
{
    const char *end = p + n, *from = p;
    evc_line_cursor lc;
    evc__lines_init(&lc, p, end, term);
    size_t found = 0;
    for (;;) {
        const char *want = from < end ? memchr(from, term, (size_t)(end - from)) : NULL;
        const char *got = evc__lines_next(&lc);
        if (got != want)
            fail_msg("length %zu, term 0x%02x, after %zu hits: cursor at %td, memchr at %td", n,
                     term, found, got ? got - p : -1, want ? want - p : -1);
        if (!got)
            break;
        found++;
        from = got + 1;
    }
    /* Asking again after the end keeps answering NULL. */
    assert_null(evc__lines_next(&lc));
    assert_null(evc__lines_next(&lc));
}

/* n bytes, each term with density percent probability and otherwise random
 * (random bytes may also equal term; memchr is the judge either way). */
static void fill_random(char *buf, size_t n, unsigned char term, unsigned density, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)rand_r(seed);
        buf[i] = (char)(r % 100 < density ? term : (unsigned char)(r >> 8));
    }
}

/* Densities from none to all, with the sparse ones (long lines) well represented. */
static const unsigned densities[] = {0, 1, 2, 3, 5, 10, 25, 50, 90, 100};

/* ------------------------------------------------------------------ */
/* The cursor against memchr                                           */
/* ------------------------------------------------------------------ */

static void test_empty_and_no_terminator(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    assert_cursor_matches_memchr(evt_guarded_place(&g, "", 0), 0, '\n');
    char plain[300];
    memset(plain, 'x', sizeof plain);
    for (size_t n = 0; n <= sizeof plain; n++)
        assert_cursor_matches_memchr(evt_guarded_place(&g, plain, n), n, '\n');
    /* A terminator just past the end is not the cursor's to find. */
    char *p = evt_guarded_place(&g, plain, 200);
    p[199] = '\n';
    assert_cursor_matches_memchr(p, 199, '\n');
    evc_line_cursor lc;
    evc__lines_init(&lc, p, p + 199, '\n');
    assert_null(evc__lines_next(&lc));
    evt_guarded_free(&g);
}

static void test_terminator_at_every_position(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    char buf[201];
    for (size_t at = 0; at < sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        buf[at] = '\n';
        const char *p = evt_guarded_place(&g, buf, sizeof buf);
        evc_line_cursor lc;
        evc__lines_init(&lc, p, p + sizeof buf, '\n');
        assert_ptr_equal(evc__lines_next(&lc), p + at);
        assert_null(evc__lines_next(&lc));
        /* And as the last byte of a buffer of every shorter length. */
        p = evt_guarded_place(&g, buf, at + 1);
        evc__lines_init(&lc, p, p + at + 1, '\n');
        assert_ptr_equal(evc__lines_next(&lc), p + at);
        assert_null(evc__lines_next(&lc));
    }
    evt_guarded_free(&g);
}

static void test_every_byte_a_terminator(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    char buf[300];
    memset(buf, '\n', sizeof buf);
    for (size_t n = 0; n <= sizeof buf; n++) {
        const char *p = evt_guarded_place(&g, buf, n);
        evc_line_cursor lc;
        evc__lines_init(&lc, p, p + n, '\n');
        for (size_t i = 0; i < n; i++)
            assert_ptr_equal(evc__lines_next(&lc), p + i);
        assert_null(evc__lines_next(&lc));
    }
    evt_guarded_free(&g);
}

/* Pairs of terminators at the edges of the 16-byte lanes and 64-byte blocks. */
static void test_block_edges(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    static const size_t edges[] = {0,  1,  15, 16,  31,  32,  47,  48,  62,  63,
                                   64, 65, 126, 127, 128, 129, 191, 192, 255};
    char buf[256];
    for (size_t i = 0; i < EVC_ARRAY_LEN(edges); i++) {
        for (size_t j = i; j < EVC_ARRAY_LEN(edges); j++) {
            memset(buf, 'z', sizeof buf);
            buf[edges[i]] = '\n';
            buf[edges[j]] = '\n';
            /* Whole, and cut just after the second terminator and just before it. */
            assert_cursor_matches_memchr(evt_guarded_place(&g, buf, sizeof buf), sizeof buf, '\n');
            assert_cursor_matches_memchr(evt_guarded_place(&g, buf, edges[j] + 1), edges[j] + 1, '\n');
            assert_cursor_matches_memchr(evt_guarded_place(&g, buf, edges[j]), edges[j], '\n');
        }
    }
    /* 63, 64 and 65 exactly, then 127 and 128: a full block and the partial one after it. */
    static const size_t lens[] = {63, 64, 65, 127, 128, 129};
    for (size_t l = 0; l < EVC_ARRAY_LEN(lens); l++) {
        memset(buf, 'z', sizeof buf);
        buf[lens[l] - 1] = '\n';
        const char *p = evt_guarded_place(&g, buf, lens[l]);
        evc_line_cursor lc;
        evc__lines_init(&lc, p, p + lens[l], '\n');
        assert_ptr_equal(evc__lines_next(&lc), p + lens[l] - 1);
        assert_null(evc__lines_next(&lc));
    }
    evt_guarded_free(&g);
}

/* 0x00 and bytes above 0x7f as terminators: the comparison must not depend on char's sign. */
static void test_binary_terminators(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    static const unsigned char terms[] = {0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff};
    unsigned seed = 7;
    char buf[700];
    for (size_t t = 0; t < sizeof terms; t++) {
        for (size_t d = 0; d < EVC_ARRAY_LEN(densities); d++) {
            fill_random(buf, sizeof buf, terms[t], densities[d], &seed);
            for (size_t n = 0; n <= 200; n++)
                assert_cursor_matches_memchr(evt_guarded_place(&g, buf, n), n, terms[t]);
            for (size_t n = 201; n <= sizeof buf; n += 37)
                assert_cursor_matches_memchr(evt_guarded_place(&g, buf, n), n, terms[t]);
        }
        /* A byte that differs from the terminator only in its sign bit is not a terminator. */
        memset(buf, (char)(terms[t] ^ 0x80), sizeof buf);
        assert_cursor_matches_memchr(evt_guarded_place(&g, buf, 200), 200, terms[t]);
        evc_line_cursor lc;
        const char *p = evt_guarded_place(&g, buf, 200);
        evc__lines_init(&lc, p, p + 200, terms[t]);
        assert_null(evc__lines_next(&lc));
    }
    evt_guarded_free(&g);
}

/* Random inputs of every length up to 1000 at every start alignment 0..15 inside a
 * larger allocation, and ending at the guard page, over a range of densities. */
static void test_random_lengths_and_alignments(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    unsigned seed = 12345;
    char *big = malloc(1000 + 16 + 63);
    assert_non_null(big);
    /* Start from a 64-byte boundary so align really is the offset within a block. */
    char *base = (char *)(((uintptr_t)big + 63) & ~(uintptr_t)63);
    for (size_t n = 0; n <= 1000; n++) {
        unsigned density = densities[n % EVC_ARRAY_LEN(densities)];
        fill_random(base, 1000 + 16, '\n', density, &seed);
        for (size_t align = 0; align < 16; align++)
            assert_cursor_matches_memchr(base + align, n, '\n');
        assert_cursor_matches_memchr(evt_guarded_place(&g, base, n), n, '\n');
    }
    free(big);
    evt_guarded_free(&g);
}

/* A whole read block, as the chat hands the cursor, at each density. */
static void test_whole_read_block(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    unsigned seed = 4242;
    char *buf = malloc(MAX_INPUT);
    assert_non_null(buf);
    for (size_t d = 0; d < EVC_ARRAY_LEN(densities); d++) {
        fill_random(buf, MAX_INPUT, '\n', densities[d], &seed);
        assert_cursor_matches_memchr(evt_guarded_place(&g, buf, MAX_INPUT), MAX_INPUT, '\n');
        assert_cursor_matches_memchr(evt_guarded_place(&g, buf, MAX_INPUT - 1), MAX_INPUT - 1, '\n');
    }
    free(buf);
    evt_guarded_free(&g);
}

/* ------------------------------------------------------------------ */
/* Cursors that start late or are restarted                            */
/* ------------------------------------------------------------------ */

/* A cursor started k bytes into the input finds exactly the positions from k on,
 * and one over the first k bytes finds the rest: together, every position once. */
static void test_started_after_some_bytes(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    unsigned seed = 31337;
    char buf[300];
    const char *want[300];
    for (size_t d = 0; d < EVC_ARRAY_LEN(densities); d++) {
        fill_random(buf, sizeof buf, '\n', densities[d], &seed);
        const char *p = evt_guarded_place(&g, buf, sizeof buf), *end = p + sizeof buf;
        size_t nwant = memchr_positions(p, end, '\n', want, EVC_ARRAY_LEN(want));
        for (size_t k = 0; k <= sizeof buf; k++) {
            size_t got = 0;
            const char *hit;
            evc_line_cursor lc;
            evc__lines_init(&lc, p, p + k, '\n');
            while ((hit = evc__lines_next(&lc)) != NULL) {
                assert_true(got < nwant);
                assert_ptr_equal(hit, want[got++]);
            }
            evc__lines_init(&lc, p + k, end, '\n');
            while ((hit = evc__lines_next(&lc)) != NULL) {
                assert_true(got < nwant);
                assert_ptr_equal(hit, want[got++]);
            }
            assert_int_equal(got, nwant);
        }
    }
    evt_guarded_free(&g);
}

/* The chat stops a cursor when a callback changes the framing and starts a new
 * one after the last line it delivered: the two together find every position once,
 * wherever the stop falls (including mid-block with lines left in the mask). */
static void test_stop_and_restart_finds_the_same(void **state)
{
    (void)state;
    evt_guarded g;
    evt_guarded_init(&g, MAX_INPUT);
    unsigned seed = 99;
    char buf[600];
    const char *want[600];
    for (int round = 0; round < 60; round++) {
        size_t n = (size_t)rand_r(&seed) % (sizeof buf + 1);
        fill_random(buf, n, '\n', densities[round % EVC_ARRAY_LEN(densities)], &seed);
        const char *p = evt_guarded_place(&g, buf, n), *end = p + n;
        size_t nwant = memchr_positions(p, end, '\n', want, EVC_ARRAY_LEN(want));

        for (size_t stop_after = 0; stop_after <= nwant; stop_after++) {
            size_t got = 0;
            evc_line_cursor lc;
            evc__lines_init(&lc, p, end, '\n');
            const char *hit, *resume = p;
            while (got < stop_after && (hit = evc__lines_next(&lc)) != NULL) {
                assert_ptr_equal(hit, want[got++]);
                resume = hit + 1;
            }
            assert_int_equal(got, stop_after);
            evc__lines_init(&lc, resume, end, '\n');
            while ((hit = evc__lines_next(&lc)) != NULL) {
                assert_true(got < nwant);
                assert_ptr_equal(hit, want[got++]);
            }
            assert_int_equal(got, nwant);
        }
    }
    evt_guarded_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_no_terminator),
        cmocka_unit_test(test_terminator_at_every_position),
        cmocka_unit_test(test_every_byte_a_terminator),
        cmocka_unit_test(test_block_edges),
        cmocka_unit_test(test_binary_terminators),
        cmocka_unit_test(test_random_lengths_and_alignments),
        cmocka_unit_test(test_whole_read_block),
        cmocka_unit_test(test_started_after_some_bytes),
        cmocka_unit_test(test_stop_and_restart_finds_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
