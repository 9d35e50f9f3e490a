#!/bin/sh
# The shared library exports exactly the functions include/evchat.h declares
# with EVC_EXPORT, and exactly the checked-in list src/evchat.map: nothing
# internal leaks, nothing public is missing, and a name cannot appear or vanish
# from the binary interface without an edit to that list.  The Debian symbols
# file (in a git checkout) covers every version node of the list.  TAP output.
set -u
builddir=${EVC_BUILDDIR:-.}
srcdir=${EVC_SRCDIR:-.}
lib="$builddir/.libs/libevchat.so"
map="$srcdir/src/evchat.map"
echo "1..5"
if [ ! -f "$lib" ]; then
    for i in 1 2 3 4 5; do echo "ok $i # SKIP no shared library was built"; done
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "evc_chat_push@@EVCHAT_0.2" (a default version) or a bare name (no version script).
nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" { print $3 }' | sort -u > "$tmp/versioned"
sed 's/@.*//' "$tmp/versioned" | sort -u > "$tmp/exported"
sed -n 's/^EVC_EXPORT [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$srcdir/include/evchat.h" | sort -u > "$tmp/declared"
sed -n 's/^[[:space:]]*\(evc_[a-z0-9_]*\);.*/\1/p' "$map" | sort > "$tmp/listed"

# Prints "not ok N - what: names" or "ok N - ok_text" from a list of names.
verdict() {
    n=$1 what=$2 names=$3 ok_text=$4
    if [ -z "$names" ]; then echo "ok $n - $ok_text"
    else echo "not ok $n - $what: $names" | tr '\n' ' '; echo; fi
}
verdict 1 "exported but not public" "$(comm -23 "$tmp/exported" "$tmp/declared")" \
    "nothing but the public API is exported"
verdict 2 "public but not exported" "$(comm -13 "$tmp/exported" "$tmp/declared")" \
    "every public function is exported ($(wc -l < "$tmp/declared") functions)"
listed_diff=$( { comm -23 "$tmp/exported" "$tmp/listed" | sed 's/^/exported-not-listed:/'
                 comm -13 "$tmp/exported" "$tmp/listed" | sed 's/^/listed-not-exported:/'
                 sort "$tmp/listed" | uniq -d | sed 's/^/listed-twice:/'; } )
verdict 3 "the exports differ from src/evchat.map" "$listed_diff" \
    "the exports are exactly src/evchat.map's $(wc -l < "$tmp/listed") names"
# The version script tags each export with its node; a bare name means the
# library was linked without it (configure found no --version-script).
if ! grep -q '@' "$tmp/versioned"; then
    echo "ok 4 # SKIP the linker took no version script"
else
    nodes=$(sed -n 's/^\(EVCHAT_[0-9.]*\) *{.*/\1/p' "$map")
    unversioned=$(for v in $nodes; do printf '%s\n' "$v"; done |
        awk 'NR == FNR { node[$1] = 1; next }
             { split($0, p, "@+"); if (!(p[2] in node)) print $0 }' - "$tmp/versioned")
    verdict 4 "exported without a version node of src/evchat.map" "$unversioned" \
        "every export carries a version node of src/evchat.map"
fi

# debian/ is not in the release tarball, only in the repository.
symbols="$srcdir/debian/libevchat1.symbols"
if [ ! -f "$symbols" ]; then
    echo "ok 5 # SKIP no debian/libevchat1.symbols (not a git checkout)"
else
    uncovered=$(sed -n 's/^\(EVCHAT_[0-9.]*\) *{.*/\1/p' "$map" | while read -r node; do
        grep -q "^ (symver)$node " "$symbols" || echo "$node"
    done)
    verdict 5 "version nodes without a (symver) line in debian/libevchat1.symbols" "$uncovered" \
        "debian/libevchat1.symbols covers every version node"
fi
