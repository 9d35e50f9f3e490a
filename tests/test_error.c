/* Tests of evc_strerror: every code a caller can be handed gets a name, never NULL. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* Asserts evc_strerror(err) is a non-empty string and returns it. */
static const char *name_of(int err)
{
    const char *text = evc_strerror(err);
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    return text;
}

static void test_negative_errno_is_named_like_strerror(void **state)
{
    (void)state;
    static const int codes[] = {ENOENT, EINVAL, ENOMEM, ECONNRESET, EPIPE, EADDRINUSE,
                                ENOSPC, EMSGSIZE, ENOBUFS, EAFNOSUPPORT};
    for (size_t i = 0; i < EVC_ARRAY_LEN(codes); i++) {
        char want[256];
        snprintf(want, sizeof want, "%s", strerror(codes[i]));
        assert_string_equal(name_of(-codes[i]), want);
    }
}

static void test_positive_errno_is_the_same_name(void **state)
{
    (void)state;
    char negative[256];
    snprintf(negative, sizeof negative, "%s", name_of(-ECONNREFUSED));
    assert_string_equal(name_of(ECONNREFUSED), negative);
}

static void test_distinct_codes_have_distinct_names(void **state)
{
    (void)state;
    char a[256];
    snprintf(a, sizeof a, "%s", name_of(-ENOENT));
    assert_string_not_equal(name_of(-EINVAL), a);
}

static void test_not_yet_has_its_own_name(void **state)
{
    (void)state;
    const char *text = name_of(EVC_NOT_YET);
    /* Not the libc text for an errno that happens to equal 10001. */
    assert_non_null(strstr(text, "EVC_NOT_YET"));
}

static void test_zero_is_success(void **state)
{
    (void)state;
    assert_string_equal(name_of(0), "success");
}

static void test_unknown_codes_are_named_without_crashing(void **state)
{
    (void)state;
    name_of(-99999);
    name_of(99999);
    name_of(INT_MAX);
    name_of(INT_MIN);
    name_of(INT_MIN + 1);
    name_of(EVC_NOT_YET - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negative_errno_is_named_like_strerror),
        cmocka_unit_test(test_positive_errno_is_the_same_name),
        cmocka_unit_test(test_distinct_codes_have_distinct_names),
        cmocka_unit_test(test_not_yet_has_its_own_name),
        cmocka_unit_test(test_zero_is_success),
        cmocka_unit_test(test_unknown_codes_are_named_without_crashing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
