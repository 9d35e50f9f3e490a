/* evc_strerror: names an error code.  The library never prints; this lets users do it. */
#include "internal.h"

#include <string.h>

const char *evc_strerror(int err)
{
    if (err == EVC_NOT_YET)
        return "producer has nothing yet (EVC_NOT_YET)";
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
    /* strerror's text for unknown codes is "Unknown error N"; that is a fine name.
     * strerrordesc_np would be thread-safe but is glibc-only and newer than we want. */
    const char *text = strerror(err);
    return text ? text : "unknown error";
}
