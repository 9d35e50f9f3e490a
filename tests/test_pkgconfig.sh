#!/bin/sh
# A program that uses evchat and runs the loop itself (as every user does) must
# build with nothing but what `pkg-config --cflags --libs evchat` prints.  The
# evchat.pc of the build tree is pointed at the tree's header and library.  TAP output.
set -u
builddir=${EVC_BUILDDIR:-.}
srcdir=${EVC_SRCDIR:-.}
echo "1..2"
if [ ! -f "$builddir/.libs/libevchat.so" ] || ! command -v pkg-config >/dev/null 2>&1; then
    echo "ok 1 # SKIP no shared library or no pkg-config"
    echo "ok 2 # SKIP no shared library or no pkg-config"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PKG_CONFIG_PATH="$builddir"
libs=$(pkg-config --libs evchat)
case " $libs " in
*" -lev "*) echo "ok 1 - pkg-config --libs evchat names libev ($libs)" ;;
*) echo "not ok 1 - pkg-config --libs evchat lacks -lev: $libs" ;;
esac
cat > "$tmp/consumer.c" <<'PROG'
#include <ev.h>
#include <evchat.h>
int main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    evc_server *s = evc_server_new(loop, "127.0.0.1:0", 0, NULL, NULL);
    if (s)
        evc_server_close(s);
    ev_run(loop, EVRUN_NOWAIT);
    return 0;
}
PROG
flags=$(pkg-config --define-variable=includedir="$srcdir/include" \
                   --define-variable=libdir="$builddir/.libs" --cflags --libs evchat)
# Installed, evchat_version.h sits beside evchat.h; in a build tree apart from
# the source tree configure wrote it to the build tree's include/.
if ${CC:-cc} -o "$tmp/consumer" "$tmp/consumer.c" $flags -I"$builddir/include" 2> "$tmp/err"; then
    echo "ok 2 - a consumer links with pkg-config's flags alone"
else
    echo "not ok 2 - a consumer does not link with: $flags"
    sed 's/^/# /' "$tmp/err"
fi
