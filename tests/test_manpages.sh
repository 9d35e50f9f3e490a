#!/bin/sh
# Every public name has a man page: each EVC_EXPORT function and each public
# struct, typedef and enum of include/evchat.h is named by the SYNOPSIS of a page
# in doc/, the build made a link page for it, every page's NAME mentions evchat
# (so `apropos evchat` lists it), every page renders without warnings, and
# evchat(7) points to every section-3 page.  TAP output.
set -u
builddir=${EVC_BUILDDIR:-.}
srcdir=${EVC_SRCDIR:-.}
header="$srcdir/include/evchat.h"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..6"

# Prints "not ok N - what: names" or "ok N - ok_text" from a list of names.
verdict() {
    n=$1 what=$2 names=$3 ok_text=$4
    if [ -z "$names" ]; then echo "ok $n - $ok_text"
    else echo "not ok $n - $what: $names" | tr '\n' ' '; echo; fi
}

sh "$srcdir/doc/man-links.sh" "$header" "$srcdir"/doc/*.3 > "$tmp/links"
sed -n 's/^EVC_EXPORT [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$header" | sort -u > "$tmp/functions"
awk '{ print $1 }' "$tmp/links" | sort -u > "$tmp/names"
comm -13 "$tmp/functions" "$tmp/names" > "$tmp/types"
awk '$2 == "-" { print $1 }' "$tmp/links" | sort > "$tmp/undocumented"

verdict 1 "functions no SYNOPSIS names" "$(comm -12 "$tmp/functions" "$tmp/undocumented")" \
    "every EVC_EXPORT function has a page ($(wc -l < "$tmp/functions") functions)"
verdict 2 "types no SYNOPSIS names" "$(comm -12 "$tmp/types" "$tmp/undocumented")" \
    "every public type has a page ($(tr '\n' ' ' < "$tmp/types"))"

# The link pages the build made: one per documented name that is not a page's
# own name, each pointing at a page that exists.
if [ ! -f "$builddir/doc/man-links.stamp" ]; then
    echo "ok 3 # SKIP the link pages were not built"
else
    bad=$(awk '$2 != "-" && $1 != $2 { print $1, $2 }' "$tmp/links" | while read -r name page; do
        link="$builddir/doc/links/$name.3"
        if [ "$(cat "$link" 2>/dev/null)" != ".so man3/$page.3" ]; then echo "$name"
        elif [ ! -f "$srcdir/doc/$page.3" ]; then echo "$name->$page"; fi
    done)
    verdict 3 "link pages missing or wrong" "$bad" "every public name has a link page to its page"
fi

noname=$(for page in "$srcdir"/doc/*.3 "$srcdir"/doc/*.7; do
    awk '/^\.SH/ { in_name = ($2 == "NAME"); next } in_name' "$page" | grep -q evchat ||
        basename "$page"
done)
verdict 4 "pages whose NAME does not mention evchat" "$noname" "every page's NAME mentions evchat"

if ! command -v man >/dev/null 2>&1; then
    echo "ok 5 # SKIP no man"
else
    warned=$(for page in "$srcdir"/doc/*.3 "$srcdir"/doc/*.7; do
        out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$out" ] || echo "$(basename "$page"): $out"
    done)
    verdict 5 "man --warnings complains" "$warned" "every page renders without warnings"
fi

unlisted=$(for page in "$srcdir"/doc/*.3; do
    name=$(basename "$page" .3)
    grep -q "^\.BR $name (3)" "$srcdir/doc/evchat.7" || echo "$name"
done)
verdict 6 "section-3 pages evchat(7) does not name" "$unlisted" "evchat(7) points to every section-3 page"
