#!/bin/sh
# Usage: man-links.sh HEADER PAGE.3...
# Prints "NAME PAGE" for every public name of HEADER (each EVC_EXPORT function,
# each struct, typedef and enum named evc_*): PAGE is the man page whose SYNOPSIS
# names it, or "-" when none does.  The build makes a ".so" link page from each
# line (so `man evc_chat_push` opens evc_chat(3)); tests/test_manpages.sh fails
# on a "-".  A function's page is the one whose SYNOPSIS shows "name(", a type's
# the one whose SYNOPSIS mentions it; when several do, the page whose own name
# is the longest prefix of the name wins, then the first page given.
set -eu
header=$1
shift

# The public names, "f name" for functions and "t name" for types.
names=$(awk '
    /^EVC_EXPORT/ { line = $0; sub(/\(.*/, "", line); n = split(line, w, /[ *]+/); print "f " w[n]; next }
    /^typedef struct evc_[a-z0-9_]+ evc_[a-z0-9_]+;/ { sub(/;.*/, ""); print "t " $4; next }
    /^(typedef )?(struct|enum) evc_[a-z0-9_]+ *\{/ { for (i = 1; i <= NF; i++) if ($i ~ /^evc_/) print "t " $i; next }
    /^\} *evc_[a-z0-9_]+;/ { sub(/^\} */, ""); sub(/;.*/, ""); print "t " $0; next }
    /^typedef .*\(\*evc_[a-z0-9_]+\)/ { s = $0; sub(/^[^(]*\(\*/, "", s); sub(/\).*/, "", s); print "t " s; next }
' "$header" | sort -u -k2,2)

# Every page's SYNOPSIS as one line of text, "PAGE<TAB>text", roff quotes dropped.
synopses=$(for page in "$@"; do
    printf '%s\t' "$(basename "$page" .3)"
    awk '/^\.SH/ { in_synopsis = ($2 == "SYNOPSIS"); next }
         in_synopsis { gsub(/"/, ""); gsub(/\\f[BIRP]/, ""); printf "%s ", $0 }' "$page"
    echo
done)

printf '%s\n' "$names" | while read -r kind name; do
    [ -n "$name" ] || continue
    if [ "$kind" = f ]; then pattern="(^|[^a-z0-9_])$name *\\("
    else pattern="(^|[^a-z0-9_])$name([^a-z0-9_]|\$)"; fi
    page=$(printf '%s\n' "$synopses" | awk -F '\t' -v name="$name" -v pattern="$pattern" '
        $1 == name { best = $1; exact = 1 }
        !exact && $2 ~ pattern {
            score = (index(name, $1 "_") == 1) ? length($1) : 0
            if (best == "" || score > best_score) { best = $1; best_score = score }
        }
        END { print (best == "" ? "-" : best) }')
    printf '%s %s\n' "$name" "$page"
done
