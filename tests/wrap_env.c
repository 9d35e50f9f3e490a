/*
 * Fault injection for a whole program (an example server linked with the
 * wrappers, tests/echo_server_faulty): EVW_ACCEPT4="ERRNO:N" in the
 * environment makes the program's first N accept4 calls fail with errno
 * ERRNO (a number), as if the kernel had a bad moment, before main runs.
 */
#include "wrap.h"

#include <stdlib.h>

static void arm_from_environment(void) __attribute__((constructor));

static void arm_from_environment(void)
{
    const char *spec = getenv("EVW_ACCEPT4");
    if (!spec)
        return;
    char *end;
    long err = strtol(spec, &end, 10);
    unsigned long n = *end == ':' ? strtoul(end + 1, NULL, 10) : 1;
    if (err > 0 && n > 0)
        evw_fail_next(EVW_ACCEPT4, -1, (int)err, n);
}
