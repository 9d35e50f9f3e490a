/*
 * Tests of the escaping producer's matching: SMTP dot-stuffing (the stream's
 * start counts as a line start) at every split of the input and at cap 1,
 * Medusa's vector for a custom pattern, a pattern that overlaps itself, and
 * a replacement longer than the caps it is handed out in.  The shared rules
 * of wrappers (EVC_NOT_YET, failures, ownership) are in test_producers_stock.c.
 */
#include "producer_script.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

static const size_t BIG_CAP[] = {65536};

static void test_medusa_escaping(void **state)
{
    (void)state;
    evc_producer *p = evc_escaping_producer_new(evt_simple(S("the quick brown fox"), 5), " ", "_");
    assert_non_null(p);
    evt_assert_produces(p, S("the_quick_brown_fox"));
}

typedef struct smtp_case {
    const char *in, *out;
} smtp_case;

static void test_smtp_dot_stuffing(void **state)
{
    (void)state;
    static const smtp_case cases[] = {
        {"", ""},
        {".", ".."},
        {".\r\n", "..\r\n"},
        {"..", "..."},
        {"a.b", "a.b"},
        {"\r\n.", "\r\n.."},
        {"line\r\n.\r\nnext", "line\r\n..\r\nnext"},
        {"x\r\n..y", "x\r\n...y"},
        {"\r\n\r\n.", "\r\n\r\n.."},
        {"\r\r\n.", "\r\r\n.."},
        {"\n.", "\n."},                  /* bare LF: not a line end in SMTP */
        {"\r.", "\r."},
        {"ends with\r\n", "ends with\r\n"},
        {"ends with\r", "ends with\r"},
        {"a\r\n.b\r\n.c\r\n.", "a\r\n..b\r\n..c\r\n.."},
    };
    static const size_t caps_1[] = {1};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len = strlen(cases[i].in);
        /* Every piece size (so every split point), at cap 1 and at a big cap. */
        for (size_t piece = 1; piece <= len + 1; piece++) {
            for (int c = 0; c < 2; c++) {
                evc_producer *p = evc_escaping_producer_new(evt_simple(cases[i].in, len, piece),
                                                            NULL, NULL);
                assert_non_null(p);
                evt_bytes got = {0};
                assert_int_equal(evt_pull_all(p, c ? BIG_CAP : caps_1, 1, &got, NULL), 0);
                if (got.len != strlen(cases[i].out) ||
                    (got.len > 0 && memcmp(got.p, cases[i].out, got.len) != 0))
                    fail_msg("case %zu, piece %zu: wrong stuffing", i, piece);
                evc_producer_free(p);
                evt_bytes_free(&got);
            }
        }
    }
}

/* A pattern that overlaps itself needs the matcher's fallback. */
static void test_escaping_self_overlapping_pattern(void **state)
{
    (void)state;
    static const char in[] = "aaab aab aaaab ab";
    evt_bytes want = {0};
    evt_replace_all(S(in), "aab", "<X>", false, &want);
    assert_int_equal(want.len, strlen("a<X> <X> aa<X> ab"));
    assert_memory_equal(want.p, "a<X> <X> aa<X> ab", want.len);
    for (size_t piece = 1; piece < sizeof in; piece++) {
        evc_producer *p = evc_escaping_producer_new(evt_simple(S(in), piece), "aab", "<X>");
        assert_non_null(p);
        evt_assert_produces(p, want.p, want.len);
    }
    evt_bytes_free(&want);
}

/* A replacement much longer than the caps is handed out over many calls. */
static void test_long_replacement_at_tiny_caps(void **state)
{
    (void)state;
    char to[301];
    for (size_t i = 0; i < 300; i++)
        to[i] = (char)('A' + i % 26);
    to[300] = '\0';
    static const char in[] = "x#y##z#";
    evt_bytes want = {0};
    evt_replace_all(S(in), "#", to, false, &want);
    static const size_t caps[] = {1, 2, 3, 7};
    for (size_t c = 0; c < ARRAY_LEN(caps); c++) {
        evc_producer *p = evc_escaping_producer_new(evt_simple(S(in), 2), "#", to);
        assert_non_null(p);
        evt_bytes got = {0};
        assert_int_equal(evt_pull_all(p, &caps[c], 1, &got, NULL), 0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.p, want.p, want.len);
        evc_producer_free(p);
        evt_bytes_free(&got);
    }
    evt_bytes_free(&want);
}

/* An empty replacement deletes. */
static void test_empty_replacement_deletes(void **state)
{
    (void)state;
    evc_producer *p = evc_escaping_producer_new(evt_simple(S("a\r\nb\r\n"), 1), "\r", "");
    assert_non_null(p);
    evt_assert_produces(p, S("a\nb\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_medusa_escaping),
        cmocka_unit_test(test_smtp_dot_stuffing),
        cmocka_unit_test(test_escaping_self_overlapping_pattern),
        cmocka_unit_test(test_long_replacement_at_tiny_caps),
        cmocka_unit_test(test_empty_replacement_deletes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
