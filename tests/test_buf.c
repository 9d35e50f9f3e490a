/* Tests of evc_buf: growth, compaction, consume, trim, append, and failures that keep content. */
#include "internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Appends n bytes of a position-dependent pattern starting at pattern offset at. */
static void append_pattern(evc_buf *b, size_t at, size_t n)
{
    char chunk[1000];
    while (n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = (char)('a' + (at + i) % 23);
        assert_int_equal(evc__buf_append(b, chunk, k), 0);
        at += k;
        n -= k;
    }
}

/* Asserts the content is the pattern from offset at, len bytes. */
static void assert_pattern(const evc_buf *b, size_t at, size_t len)
{
    assert_int_equal(b->len, len);
    const char *p = evc__buf_head(b);
    for (size_t i = 0; i < len; i++) {
        if (p[i] != (char)('a' + (at + i) % 23))
            fail_msg("content differs at byte %zu", i);
    }
}

static void test_empty_owns_nothing(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    size_t avail = 99;
    assert_null(evc__buf_head(&b));
    assert_null(evc__buf_tail(&b, &avail));
    assert_int_equal(avail, 0);
    assert_int_equal(evc__buf_append(&b, "x", 0), 0);
    assert_null(b.data);
    evc__buf_trim(&b);
    evc__buf_free(&b);
    assert_null(b.data);
}

static void test_growth_starts_at_4k_and_doubles(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    assert_int_equal(evc__buf_reserve(&b, 1), 0);
    assert_int_equal(b.cap, 4096);
    append_pattern(&b, 0, 4096);
    assert_int_equal(b.cap, 4096);
    append_pattern(&b, 4096, 1);
    assert_int_equal(b.cap, 8192);
    append_pattern(&b, 4097, 8192 - 4097);
    assert_int_equal(b.cap, 8192);
    append_pattern(&b, 8192, 10);
    assert_int_equal(b.cap, 16384);
    /* A large request jumps straight to the power of two that holds it. */
    assert_int_equal(evc__buf_reserve(&b, 100000), 0);
    assert_int_equal(b.cap, 131072);
    assert_true(b.cap - b.off - b.len >= 100000);
    assert_pattern(&b, 0, 8202);
    evc__buf_free(&b);
}

static void test_tail_and_commit(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    assert_int_equal(evc__buf_reserve(&b, 10), 0);
    size_t avail;
    char *t = evc__buf_tail(&b, &avail);
    assert_non_null(t);
    assert_int_equal(avail, 4096);
    memcpy(t, "hello", 5);
    evc__buf_commit(&b, 5);
    assert_int_equal(b.len, 5);
    assert_memory_equal(evc__buf_head(&b), "hello", 5);
    t = evc__buf_tail(&b, &avail);
    assert_ptr_equal(t, b.data + 5);
    assert_int_equal(avail, 4091);
    /* Reserving what is already free changes nothing. */
    char *before = b.data;
    assert_int_equal(evc__buf_reserve(&b, 4091), 0);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.cap, 4096);
    evc__buf_free(&b);
}

static void test_consume_to_empty_resets_offset(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 100);
    evc__buf_consume(&b, 30);
    assert_int_equal(b.off, 30);
    assert_pattern(&b, 30, 70);
    evc__buf_consume(&b, 70);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    /* The whole block is writable again without moving anything. */
    size_t avail;
    evc__buf_tail(&b, &avail);
    assert_int_equal(avail, b.cap);
    evc__buf_free(&b);
}

static void test_compaction_keeps_content_and_block(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 4000);
    evc__buf_consume(&b, 3900);         /* 100 bytes left at offset 3900 */
    char *block = b.data;
    assert_int_equal(evc__buf_reserve(&b, 2000), 0);
    /* Moving 100 bytes frees enough: same block, content at the front. */
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, 4096);
    assert_int_equal(b.off, 0);
    assert_pattern(&b, 3900, 100);
    evc__buf_free(&b);
}

static void test_no_compaction_of_large_content(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    /* 3000 bytes of content behind a 1000-byte consumed prefix: moving them
     * would cost more than the prefix paid for, so the block grows instead. */
    append_pattern(&b, 0, 4000);
    evc__buf_consume(&b, 1000);
    assert_int_equal(evc__buf_reserve(&b, 500), 0);
    assert_int_equal(b.cap, 8192);
    assert_int_equal(b.off, 0);        /* growing moves only the content */
    assert_pattern(&b, 1000, 3000);
    evc__buf_free(&b);
}

static void test_append_large(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    size_t n = 3 * 1024 * 1024 + 17;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 23);
    assert_int_equal(evc__buf_append(&b, "", 0), 0);
    assert_int_equal(evc__buf_append(&b, big, n), 0);
    assert_pattern(&b, 0, n);
    assert_int_equal(b.cap, 4u * 1024 * 1024);
    /* Interleaved consume and append keep the stream intact. */
    evc__buf_consume(&b, n - 5);
    assert_int_equal(evc__buf_append(&b, big + 5, 1000), 0);
    assert_int_equal(b.len, 1005);
    assert_memory_equal(evc__buf_head(&b), big + n - 5, 5);
    assert_memory_equal(evc__buf_head(&b) + 5, big + 5, 1000);
    free(big);
    evc__buf_free(&b);
}

static void test_append_from_own_content(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 4096);       /* full: the next append must grow */
    assert_int_equal(evc__buf_append(&b, evc__buf_head(&b) + 10, 100), 0);
    assert_int_equal(b.len, 4196);
    const char *p = evc__buf_head(&b);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(p[4096 + i], (char)('a' + (10 + i) % 23));
    evc__buf_free(&b);
}

static void test_failures_keep_content(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 5000);
    evc__buf_consume(&b, 7);
    evc_buf before = b;
    /* Sizes no allocator can give fail up front, without touching the buffer. */
    assert_int_equal(evc__buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_int_equal(evc__buf_reserve(&b, (size_t)PTRDIFF_MAX), -ENOMEM);
    assert_int_equal(evc__buf_append(&b, "x", SIZE_MAX), -ENOMEM);
    assert_memory_equal(&b, &before, sizeof(b));
    assert_pattern(&b, 7, 4993);
    evc__buf_free(&b);
}

static void test_clear_keeps_block(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 300);
    evc__buf_consume(&b, 10);
    char *block = b.data;
    evc__buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, 4096);
    evc__buf_free(&b);
}

static void test_trim_frees_when_empty(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 10);
    evc__buf_consume(&b, 10);
    evc__buf_trim(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    /* And the buffer works again afterwards. */
    append_pattern(&b, 0, 5);
    assert_pattern(&b, 0, 5);
    evc__buf_free(&b);
}

static void test_trim_shrinks_oversized_block(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    append_pattern(&b, 0, 1 << 20);
    assert_int_equal(b.cap, 1 << 20);
    evc__buf_consume(&b, (1 << 20) - 100);
    evc__buf_trim(&b);
    assert_int_equal(b.cap, 4096);
    assert_int_equal(b.off, 0);
    assert_pattern(&b, (1 << 20) - 100, 100);

    /* A block at most four times what the content needs is left alone. */
    append_pattern(&b, (1 << 20), 5000);   /* 5100 bytes in 8 KiB */
    char *block = b.data;
    size_t cap = b.cap;
    evc__buf_trim(&b);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, cap);

    /* 6000 bytes (needing 8 KiB) in 64 KiB: shrinks to 8 KiB, content intact;
     * 10 KiB (needing 16 KiB) in 64 KiB is exactly four times: kept. */
    evc__buf_free(&b);
    append_pattern(&b, 0, 65536);
    evc__buf_consume(&b, 65536 - 10240);
    evc__buf_trim(&b);
    assert_int_equal(b.cap, 65536);
    evc__buf_consume(&b, 10240 - 6000);
    evc__buf_trim(&b);
    assert_int_equal(b.cap, 8192);
    assert_pattern(&b, 65536 - 6000, 6000);
    evc__buf_free(&b);
}

/* A block handed to an empty buffer is used in place: no allocation while the
 * content fits, and it grows like any other block when it does not. */
static void test_adopt_uses_the_block(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    const size_t cap = 65536;
    char *block = malloc(cap);
    assert_non_null(block);
    evc__buf_adopt(&b, block, cap);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);

    /* Reserving what the block has, then writing through the tail, stays in it. */
    assert_int_equal(evc__buf_reserve(&b, cap), 0);
    assert_ptr_equal(b.data, block);
    size_t avail;
    char *t = evc__buf_tail(&b, &avail);
    assert_ptr_equal(t, block);
    assert_int_equal(avail, cap);
    memcpy(t, "line\n", 5);
    evc__buf_commit(&b, 5);
    assert_memory_equal(evc__buf_head(&b), "line\n", 5);
    evc__buf_consume(&b, 5);

    /* Appends that fit fill it to the last byte without moving it. */
    append_pattern(&b, 0, cap);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, cap);
    assert_pattern(&b, 0, cap);

    /* One byte more: it grows (doubling), and the content comes along. */
    append_pattern(&b, cap, 1);
    assert_int_equal(b.cap, 2 * cap);
    assert_pattern(&b, 0, cap + 1);
    evc__buf_free(&b);
}

/* Detach takes the block from an empty buffer and leaves it as if new; the
 * buffer works again afterwards, and a blockless buffer gives NULL. */
static void test_detach_returns_the_block(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    assert_null(evc__buf_detach(&b));
    assert_null(b.data);
    assert_int_equal(b.cap, 0);

    /* A block the buffer made itself, emptied by consume. */
    append_pattern(&b, 0, 100);
    char *own = b.data;
    size_t own_cap = b.cap;
    evc__buf_consume(&b, 100);
    assert_ptr_equal(evc__buf_detach(&b), own);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_null(evc__buf_detach(&b));
    size_t avail = 99;
    assert_null(evc__buf_tail(&b, &avail));
    assert_int_equal(avail, 0);

    /* The detached block is the caller's: adopt it again (the pool's round trip). */
    evc__buf_adopt(&b, own, own_cap);
    append_pattern(&b, 7, 50);
    assert_ptr_equal(b.data, own);
    assert_pattern(&b, 7, 50);
    evc__buf_clear(&b);
    assert_ptr_equal(evc__buf_detach(&b), own);
    free(own);

    /* Without a block the buffer allocates its own again, as a new one would. */
    append_pattern(&b, 3, 10);
    assert_non_null(b.data);
    assert_int_equal(b.cap, 4096);
    assert_pattern(&b, 3, 10);
    evc__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_owns_nothing),
        cmocka_unit_test(test_growth_starts_at_4k_and_doubles),
        cmocka_unit_test(test_tail_and_commit),
        cmocka_unit_test(test_consume_to_empty_resets_offset),
        cmocka_unit_test(test_compaction_keeps_content_and_block),
        cmocka_unit_test(test_no_compaction_of_large_content),
        cmocka_unit_test(test_append_large),
        cmocka_unit_test(test_append_from_own_content),
        cmocka_unit_test(test_failures_keep_content),
        cmocka_unit_test(test_clear_keeps_block),
        cmocka_unit_test(test_trim_frees_when_empty),
        cmocka_unit_test(test_trim_shrinks_oversized_block),
        cmocka_unit_test(test_adopt_uses_the_block),
        cmocka_unit_test(test_detach_returns_the_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
