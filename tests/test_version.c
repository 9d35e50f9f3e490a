/* Tests of the release version: evc_version() at run time, the EVC_VERSION_*
 * macros at compile time and configure's version all name the same release. */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void test_evc_version_matches_the_header_macros(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", EVC_VERSION_MAJOR, EVC_VERSION_MINOR, EVC_VERSION_PATCH);
    assert_non_null(evc_version());
    assert_string_equal(evc_version(), want);
}

/* configure.ac sets the version once; the header and the package must agree. */
static void test_the_macros_are_configures_version(void **state)
{
    (void)state;
    char macros[64];
    snprintf(macros, sizeof macros, "%d.%d.%d", EVC_VERSION_MAJOR, EVC_VERSION_MINOR, EVC_VERSION_PATCH);
    assert_string_equal(macros, PACKAGE_VERSION);
}

/* A caller may keep the pointer: it is the same static text on every call. */
static void test_evc_version_is_static_text(void **state)
{
    (void)state;
    assert_ptr_equal(evc_version(), evc_version());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evc_version_matches_the_header_macros),
        cmocka_unit_test(test_the_macros_are_configures_version),
        cmocka_unit_test(test_evc_version_is_static_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
