/* Tests of evc_buf: growth, compaction, consume, trim, append, failures that keep content,
 * block sources and referenced blocks. */
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

/* ------------------------------------------------------------------ */
/* Block sources and shared blocks                                     */
/* ------------------------------------------------------------------ */

/* A buffer with a source starts with one of the source's blocks, used to its
 * last byte, and gives it back when emptied: the next buffer gets the same one. */
static void test_source_block_is_reused(void **state)
{
    (void)state;
    evc_block_source src;
    evc__block_source_init(&src, 65536);
    evc_buf b;
    evc__buf_init(&b, &src);
    assert_int_equal(evc__buf_reserve(&b, 100), 0);
    assert_int_equal(b.cap, 65536);
    char *block = b.data;
    append_pattern(&b, 0, 65536);
    assert_ptr_equal(b.data, block);
    assert_pattern(&b, 0, 65536);
    assert_int_equal(src.nspare, 0);

    /* Trimmed empty, the block goes to the source, not to free(). */
    evc__buf_consume(&b, 65536);
    evc__buf_trim(&b);
    assert_null(b.data);
    assert_int_equal(src.nspare, 1);
    assert_ptr_equal(b.source, &src);

    evc_buf other;
    evc__buf_init(&other, &src);
    append_pattern(&other, 5, 10);
    assert_ptr_equal(other.data, block);
    assert_int_equal(src.nspare, 0);
    evc__buf_free(&other);
    assert_int_equal(src.nspare, 1);

    /* A buffer that outgrows the source's size starts in the spare and doubles
     * as any other; its big block is freed, not kept (ASan and valgrind see a
     * leak otherwise). */
    append_pattern(&b, 0, 65537);
    assert_int_equal(b.cap, 131072);
    assert_pattern(&b, 0, 65537);
    assert_int_equal(src.nspare, 0);
    evc__buf_free(&b);
    assert_int_equal(src.nspare, 0);
    evc__block_source_fini(&src);
    assert_int_equal(src.nspare, 0);
}

/* At most EVC_POOL_BLOCKS idle blocks are kept; the rest are freed, and the kept
 * ones come back last in, first out (the warmest first). */
static void test_source_keeps_a_few(void **state)
{
    (void)state;
    evc_block_source src;
    evc__block_source_init(&src, 8192);
    evc_buf bufs[EVC_POOL_BLOCKS + 3];
    char *blocks[EVC_ARRAY_LEN(bufs)];
    for (size_t i = 0; i < EVC_ARRAY_LEN(bufs); i++) {
        evc__buf_init(&bufs[i], &src);
        append_pattern(&bufs[i], i, 1);
        blocks[i] = bufs[i].data;
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(blocks[i], blocks[j]);
    }
    for (size_t i = 0; i < EVC_ARRAY_LEN(bufs); i++)
        evc__buf_free(&bufs[i]);
    assert_int_equal(src.nspare, EVC_POOL_BLOCKS);
    for (size_t i = 0; i < EVC_POOL_BLOCKS; i++) {
        append_pattern(&bufs[i], 0, 1);
        assert_ptr_equal(bufs[i].data, blocks[EVC_POOL_BLOCKS - 1 - i]);
    }
    /* The source is empty now: the next block is a new one. */
    append_pattern(&bufs[EVC_POOL_BLOCKS], 0, 8192);
    for (size_t i = 0; i < EVC_POOL_BLOCKS; i++)
        assert_ptr_not_equal(bufs[EVC_POOL_BLOCKS].data, bufs[i].data);
    for (size_t i = 0; i <= EVC_POOL_BLOCKS; i++)
        evc__buf_free(&bufs[i]);
    evc__block_source_fini(&src);
}

/* A referenced block is never written again by its buffer: not by a read into
 * its tail, not by compaction, growth or reuse after it empties.  The buffer
 * carries on in a fresh block, and the referenced bytes stay as they were until
 * the last reference is released; then the block goes back to the source. */
static void test_referenced_block_is_left_alone(void **state)
{
    (void)state;
    evc_block_source src;
    evc__block_source_init(&src, 4096);
    evc_buf b;
    evc__buf_init(&b, &src);
    append_pattern(&b, 0, 1000);
    char *first = b.data;
    assert_int_equal(evc__buf_refs(&b), 1);

    evc_block *ref = evc__buf_ref(&b, first + 100, 800);
    assert_non_null(ref);
    assert_int_equal(evc__buf_refs(&b), 2);

    /* Consumed to the last 100 bytes, then appended to: tail room is there,
     * but the buffer moves its rest to a fresh block instead of writing. */
    evc__buf_consume(&b, 900);
    append_pattern(&b, 1000, 50);
    assert_ptr_not_equal(b.data, first);
    assert_pattern(&b, 900, 150);
    assert_int_equal(evc__buf_refs(&b), 1);
    char *second = b.data;

    /* Emptied: the fresh block goes back to the source; the shared one does not. */
    evc__buf_consume(&b, 150);
    evc__buf_trim(&b);
    assert_int_equal(src.nspare, 1);

    /* The referenced bytes were never touched. */
    for (size_t i = 100; i < 900; i++)
        assert_int_equal(first[i], (char)('a' + i % 23));

    /* The next block is the spare, not the referenced one. */
    append_pattern(&b, 0, 10);
    assert_ptr_equal(b.data, second);

    /* A buffer that drops its reference first leaves the block to the others. */
    evc__buf_free(&b);
    assert_int_equal(src.nspare, 1);
    evc__block_release(ref);
    assert_int_equal(src.nspare, 2);
    evc__block_source_fini(&src);
}

/* Only bytes written into the buffer's current block can be referenced. */
static void test_ref_only_written_bytes(void **state)
{
    (void)state;
    evc_buf b = EVC_BUF_INIT;
    char outside[16] = {0};
    assert_null(evc__buf_ref(&b, outside, 1));
    append_pattern(&b, 0, 100);
    assert_null(evc__buf_ref(&b, outside, 1));
    assert_null(evc__buf_ref(&b, b.data + 50, 51));     /* runs past what was written */
    assert_null(evc__buf_ref(&b, b.data + 101, 0));
    assert_null(evc__buf_ref(&b, b.data - 1, 2));
    assert_int_equal(evc__buf_refs(&b), 1);

    /* Consumed bytes stay referencable (found_terminator's frame is consumed
     * before the callback runs), as long as the block has not moved. */
    evc__buf_consume(&b, 100);
    evc_block *r = evc__buf_ref(&b, b.data, 100);
    assert_non_null(r);
    assert_int_equal(evc__buf_refs(&b), 2);
    evc__block_release(r);

    /* Without a source, the last release frees the block. */
    r = evc__buf_ref(&b, b.data + 99, 1);
    assert_non_null(r);
    evc__buf_free(&b);
    assert_int_equal(evc__buf_refs(&b), 0);
    evc__block_release(r);
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
        cmocka_unit_test(test_source_block_is_reused),
        cmocka_unit_test(test_source_keeps_a_few),
        cmocka_unit_test(test_referenced_block_is_left_alone),
        cmocka_unit_test(test_ref_only_written_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
