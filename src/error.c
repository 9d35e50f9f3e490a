/* evc_strerror: names an error code.  The library never prints; this lets users do it. */
#include "internal.h"

#include <limits.h>
#include <string.h>

const char *evc_strerror(int err)
{
    if (err == EVC_NOT_YET)
        return "producer has nothing yet (EVC_NOT_YET)";
    /* -INT_MIN is not an int; no errno is anywhere near it anyway. */
    if (err == INT_MIN)
        return "unknown error";
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
#if defined(__GLIBC__)
    /* GNU strerror_r returns libc's constant text for a known code and writes
     * only unknown ones into our scratch buffer.  Unlike strerror it is
     * thread-safe, and it never leaves a per-thread "Unknown error N"
     * allocation behind (which valgrind reports at exit). */
    char scratch[64];
    const char *text = strerror_r(err, scratch, sizeof scratch);
    return text && text != scratch ? text : "unknown error";
#else
    const char *text = strerror(err);
    return text ? text : "unknown error";
#endif
}
