/* evc_version: the release of the library a program runs with.  The EVC_VERSION_*
 * macros a program sees are those of the header it was compiled against; this is
 * the answer of the shared library actually loaded, so the two can be compared. */
#include "internal.h"

#define STRINGIFY(x) #x
#define VERSION_TEXT(major, minor, patch) STRINGIFY(major) "." STRINGIFY(minor) "." STRINGIFY(patch)

const char *evc_version(void)
{
    return VERSION_TEXT(EVC_VERSION_MAJOR, EVC_VERSION_MINOR, EVC_VERSION_PATCH);
}
