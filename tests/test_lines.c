/*
 * Tests of the line cursor (lines.h), which the chat's line fast path uses to
 * find one-byte terminators, and of the per-loop pool of read blocks the chat
 * reads into (registry.c).
 *
 * The cursor must find exactly what repeated memchr finds, never read a byte
 * past the end of its input (inputs here end at a PROT_NONE guard page), and
 * give the same positions when it is stopped and a new one is started after
 * the last position (what the chat does when a callback changes the framing).
 */
#include "support.h"
#include "internal.h"
#include "lines.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Two pages, the second PROT_NONE: a buffer placed to end at the boundary. */
typedef struct guarded {
    char *map;
    size_t page;
} guarded;

static void guarded_init(guarded *g)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect(g->map + g->page, g->page, PROT_NONE), 0);
}

/* A copy of n bytes that ends right at the guard page. */
static char *guarded_place(guarded *g, const char *bytes, size_t n)
{
    assert_true(n <= g->page);
    char *p = g->map + g->page - n;
    memcpy(p, bytes, n);
    return p;
}

static void guarded_free(guarded *g)
{
    munmap(g->map, 2 * g->page);
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
}

static void fill_random(char *buf, size_t n, unsigned char term, unsigned density, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)rand_r(seed);
        buf[i] = (char)(r % 100 < density ? term : (unsigned char)(r >> 8));
    }
}

static void test_empty_and_no_terminator(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    assert_cursor_matches_memchr(guarded_place(&g, "", 0), 0, '\n');
    char plain[300];
    memset(plain, 'x', sizeof plain);
    for (size_t n = 0; n <= sizeof plain; n++)
        assert_cursor_matches_memchr(guarded_place(&g, plain, n), n, '\n');
    guarded_free(&g);
}

static void test_terminator_at_every_position(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    char buf[201];
    for (size_t at = 0; at < sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        buf[at] = '\n';
        assert_cursor_matches_memchr(guarded_place(&g, buf, sizeof buf), sizeof buf, '\n');
        /* And as the last byte of a buffer of every shorter length. */
        assert_cursor_matches_memchr(guarded_place(&g, buf, at + 1), at + 1, '\n');
    }
    guarded_free(&g);
}

static void test_every_byte_a_terminator(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    char buf[300];
    memset(buf, '\n', sizeof buf);
    const char *p = guarded_place(&g, buf, sizeof buf);
    evc_line_cursor lc;
    evc__lines_init(&lc, p, p + sizeof buf, '\n');
    for (size_t i = 0; i < sizeof buf; i++)
        assert_ptr_equal(evc__lines_next(&lc), p + i);
    assert_null(evc__lines_next(&lc));
    guarded_free(&g);
}

static void test_block_edges(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    static const size_t edges[] = {0, 15, 16, 31, 32, 47, 48, 62, 63, 64, 65, 126, 127, 128, 129, 191, 192};
    char buf[256];
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (size_t j = i; j < sizeof edges / sizeof edges[0]; j++) {
            memset(buf, 'z', sizeof buf);
            buf[edges[i]] = '\n';
            buf[edges[j]] = '\n';
            assert_cursor_matches_memchr(guarded_place(&g, buf, sizeof buf), sizeof buf, '\n');
        }
    }
    guarded_free(&g);
}

/* 0x00 and bytes above 0x7f as terminators: the comparison must not depend on char's sign. */
static void test_binary_terminators(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    static const unsigned char terms[] = {0x00, 0x7f, 0x80, 0xfe, 0xff};
    unsigned seed = 7;
    char buf[700];
    for (size_t t = 0; t < sizeof terms; t++) {
        for (unsigned density = 0; density <= 100; density += 25) {
            fill_random(buf, sizeof buf, terms[t], density, &seed);
            for (size_t n = 0; n <= sizeof buf; n += 37)
                assert_cursor_matches_memchr(guarded_place(&g, buf, n), n, terms[t]);
        }
    }
    guarded_free(&g);
}

/* Random inputs of every length up to 1000 at every alignment, ending at the guard page
 * (so the alignment is the length's) and starting at an offset inside a larger buffer. */
static void test_random_lengths_and_alignments(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    unsigned seed = 12345;
    char buf[1016];
    for (size_t n = 0; n <= 1000; n++) {
        fill_random(buf, sizeof buf, '\n', 1 + (unsigned)(n % 40), &seed);
        assert_cursor_matches_memchr(guarded_place(&g, buf, n), n, '\n');
        size_t align = n % 16;
        assert_cursor_matches_memchr(buf + align, n, '\n');
    }
    guarded_free(&g);
}

/* The chat stops a cursor when a callback changes the framing and starts a new
 * one after the last line it delivered: the two together find every position once. */
static void test_stop_and_restart_finds_the_same(void **state)
{
    (void)state;
    guarded g;
    guarded_init(&g);
    unsigned seed = 99;
    char buf[600];
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)rand_r(&seed) % sizeof buf;
        fill_random(buf, n, '\n', 5, &seed);
        const char *p = guarded_place(&g, buf, n), *end = p + n;
        size_t stop_after = (size_t)rand_r(&seed) % 8;

        const char *want[600];
        size_t nwant = 0;
        for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
            want[nwant++] = q;

        size_t got = 0;
        evc_line_cursor lc;
        evc__lines_init(&lc, p, end, '\n');
        const char *hit, *resume = p;
        while (got < stop_after && (hit = evc__lines_next(&lc)) != NULL) {
            assert_ptr_equal(hit, want[got++]);
            resume = hit + 1;
        }
        evc__lines_init(&lc, resume, end, '\n');
        while ((hit = evc__lines_next(&lc)) != NULL) {
            assert_true(got < nwant);
            assert_ptr_equal(hit, want[got++]);
        }
        assert_int_equal(got, nwant);
    }
    guarded_free(&g);
}

/* ------------------------------------------------------------------ */
/* The per-loop pool of read blocks                                    */
/* ------------------------------------------------------------------ */

static const struct evc_dispatcher_ops no_ops;

static void test_pool_reuses_blocks_and_keeps_a_few(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    evc_dispatcher *d = evc_dispatcher_new(loop, &no_ops, NULL);
    assert_non_null(d);
    evc_loop_entry *e = evc__dispatcher_entry(d);
    assert_non_null(e);

    /* A block is usable to its last byte. */
    char *block = evc__registry_block_take(e);
    assert_non_null(block);
    memset(block, 0xa5, EVC_READ_BLOCK);

    /* Given back, it is the next one taken: busy channels share warm blocks. */
    evc__registry_block_give(e, block);
    assert_ptr_equal(evc__registry_block_take(e), block);

    /* More than EVC_POOL_BLOCKS given back: the rest are freed (ASan and valgrind
     * see a leak otherwise), and the kept ones come back last in, first out. */
    char *blocks[EVC_POOL_BLOCKS + 3];
    blocks[0] = block;
    for (size_t i = 1; i < EVC_POOL_BLOCKS + 3; i++) {
        blocks[i] = evc__registry_block_take(e);
        assert_non_null(blocks[i]);
    }
    for (size_t i = 0; i < EVC_POOL_BLOCKS + 3; i++)
        evc__registry_block_give(e, blocks[i]);
    for (size_t i = 0; i < EVC_POOL_BLOCKS; i++)
        assert_ptr_equal(evc__registry_block_take(e), blocks[EVC_POOL_BLOCKS - 1 - i]);
    /* Those taken are returned, so the entry frees them with the loop's last dispatcher. */
    for (size_t i = 0; i < EVC_POOL_BLOCKS; i++)
        evc__registry_block_give(e, blocks[i]);

    evc_dispatcher_close(d);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
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
        cmocka_unit_test(test_stop_and_restart_finds_the_same),
        cmocka_unit_test(test_pool_reuses_blocks_and_keeps_a_few),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
