#!/bin/sh
# The shared library exports exactly the functions include/evchat.h declares
# with EVC_EXPORT: nothing internal leaks, nothing public is missing.  TAP output.
set -u
builddir=${EVC_BUILDDIR:-.}
srcdir=${EVC_SRCDIR:-.}
lib="$builddir/.libs/libevchat.so"
echo "1..2"
if [ ! -f "$lib" ]; then
    echo "ok 1 # SKIP no shared library was built"
    echo "ok 2 # SKIP no shared library was built"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" { print $3 }' | sort -u > "$tmp/exported"
sed -n 's/^EVC_EXPORT [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$srcdir/include/evchat.h" | sort -u > "$tmp/declared"
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -z "$extra" ]; then echo "ok 1 - nothing but the public API is exported"
else echo "not ok 1 - exported but not public: $extra" | tr '\n' ' '; echo; fi
if [ -z "$missing" ]; then echo "ok 2 - every public function is exported ($(wc -l < "$tmp/declared") functions)"
else echo "not ok 2 - public but not exported: $missing" | tr '\n' ' '; echo; fi
