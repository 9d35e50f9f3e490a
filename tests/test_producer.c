/*
 * Tests of the producer interface and the simple producer: asynchat's
 * simple_producer handing out buffer_size pieces (8, as CPython's
 * test_asynchat uses), the more() contract through evc_producer_more, and
 * on_destroy exactly once.
 */
#include "evchat.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

static void test_simple_hands_out_buffer_size_pieces(void **state)
{
    (void)state;
    static const char data[] = "hello world\nI'm not dead yet!\n";   /* 30 bytes */
    evc_producer *p = evc_simple_producer_new(S(data), 8);
    assert_non_null(p);
    char buf[64];
    size_t got = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(evc_producer_more(p, buf, sizeof buf), 8);
        assert_memory_equal(buf, data + got, 8);
        got += 8;
    }
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 6);
    assert_memory_equal(buf, data + got, 6);
    /* Done, and stays done. */
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    evc_producer_free(p);
}

static void test_simple_default_piece_is_512(void **state)
{
    (void)state;
    size_t len = 1300;
    char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7);
    evc_producer *p = evc_simple_producer_new(data, len, 0);
    assert_non_null(p);
    char buf[4096];
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 512);
    assert_memory_equal(buf, data, 512);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 512);
    assert_memory_equal(buf, data + 512, 512);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 276);
    assert_memory_equal(buf, data + 1024, 276);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    evc_producer_free(p);
    free(data);
}

static void test_simple_respects_cap_and_copies(void **state)
{
    (void)state;
    char data[] = "0123456789";
    evc_producer *p = evc_simple_producer_new(data, 10, 100);
    assert_non_null(p);
    /* The producer owns a copy: changing the caller's bytes changes nothing. */
    memset(data, 'x', 10);
    char buf[16];
    assert_int_equal(evc_producer_more(p, buf, 3), 3);
    assert_memory_equal(buf, "012", 3);
    assert_int_equal(evc_producer_more(p, buf, 1), 1);
    assert_memory_equal(buf, "3", 1);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 6);
    assert_memory_equal(buf, "456789", 6);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    evc_producer_free(p);
}

static void test_simple_empty_is_done_at_once(void **state)
{
    (void)state;
    char buf[8];
    evc_producer *p = evc_simple_producer_new("", 0, 8);
    assert_non_null(p);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    evc_producer_free(p);
    p = evc_simple_producer_new(NULL, 0, 0);
    assert_non_null(p);
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 0);
    evc_producer_free(p);

    errno = 0;
    assert_null(evc_simple_producer_new(NULL, 5, 8));
    assert_int_equal(errno, EINVAL);
}

/* A custom producer that records how it is called. */
typedef struct counted {
    int more_calls, destroyed;
    evc_producer *seen;
    size_t seen_cap;
    ssize_t answer;
} counted;

static ssize_t counted_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    counted *c = data;
    c->more_calls++;
    c->seen = p;
    c->seen_cap = cap;
    if (c->answer > 0)
        memset(buf, 'z', (size_t)c->answer);
    return c->answer;
}

static void counted_destroy(evc_producer *p, void *data)
{
    counted *c = data;
    c->destroyed++;
    c->seen = p;
}

static const struct evc_producer_ops counted_ops = {
    .more = counted_more,
    .on_destroy = counted_destroy,
};

static void test_new_requires_more(void **state)
{
    (void)state;
    errno = 0;
    assert_null(evc_producer_new(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    static const struct evc_producer_ops no_more = {.on_destroy = counted_destroy};
    counted c = {0};
    errno = 0;
    assert_null(evc_producer_new(&no_more, &c));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(c.destroyed, 0);
}

static void test_free_runs_on_destroy_once(void **state)
{
    (void)state;
    counted c = {0};
    evc_producer *p = evc_producer_new(&counted_ops, &c);
    assert_non_null(p);
    assert_int_equal(c.destroyed, 0);
    evc_producer_free(p);
    assert_int_equal(c.destroyed, 1);
    assert_ptr_equal(c.seen, p);
    assert_int_equal(c.more_calls, 0);   /* freeing never asks for bytes */

    evc_producer_free(NULL);             /* a no-op */

    /* on_destroy may be NULL. */
    static const struct evc_producer_ops only_more = {.more = counted_more};
    p = evc_producer_new(&only_more, &c);
    assert_non_null(p);
    evc_producer_free(p);
    assert_int_equal(c.destroyed, 1);
}

static void test_more_contract(void **state)
{
    (void)state;
    counted c = {0};
    evc_producer *p = evc_producer_new(&counted_ops, &c);
    assert_non_null(p);
    char buf[32];

    /* What more() answers is what the caller gets: bytes, NOT_YET, -errno, 0. */
    c.answer = 5;
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 5);
    assert_ptr_equal(c.seen, p);
    assert_int_equal(c.seen_cap, sizeof buf);
    assert_memory_equal(buf, "zzzzz", 5);
    c.answer = EVC_NOT_YET;
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), EVC_NOT_YET);
    c.answer = -EIO;
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), -EIO);
    c.answer = 0;
    assert_int_equal(evc_producer_more(p, buf, 7), 0);
    assert_int_equal(c.seen_cap, 7);
    assert_int_equal(c.more_calls, 4);

    /* No room, no buffer or no producer: refused without asking, since a
     * producer with no room could only answer 0, which means "finished". */
    assert_int_equal(evc_producer_more(p, buf, 0), -EINVAL);
    assert_int_equal(evc_producer_more(p, NULL, 8), -EINVAL);
    assert_int_equal(evc_producer_more(NULL, buf, 8), -EINVAL);
    assert_int_equal(c.more_calls, 4);
    evc_producer_free(p);
    assert_int_equal(c.destroyed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_hands_out_buffer_size_pieces),
        cmocka_unit_test(test_simple_default_piece_is_512),
        cmocka_unit_test(test_simple_respects_cap_and_copies),
        cmocka_unit_test(test_simple_empty_is_done_at_once),
        cmocka_unit_test(test_new_requires_more),
        cmocka_unit_test(test_free_runs_on_destroy_once),
        cmocka_unit_test(test_more_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
