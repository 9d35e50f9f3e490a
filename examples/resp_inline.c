/*
 * Inline commands, the form of a request people type into nc or telnet:
 * "SET greeting \"hello world\"\r\n".  The quoting rules are redis' own (its
 * sdssplitargs), so that what works against redis works here.
 */
#include "resp_inline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The escape after a backslash inside double quotes; *used is how many bytes it took. */
static char unescape(const char *p, const char *end, size_t *used)
{
    *used = 1;
    if (p[0] == 'x' && end - p >= 3 && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
        *used = 3;
        return (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
    }
    switch (p[0]) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return p[0];
    }
}

int resp_split_inline(const char *p, size_t len, resp_word_fn *add, void *data)
{
    const char *end = p + len;
    char *word = malloc(len + 1);   /* no word is longer than the line */
    if (!word)
        return -ENOMEM;
    int rc = 0;
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        size_t n = 0;
        char quote = 0;
        for (; p < end; p++) {
            if (!quote && is_space(*p))
                break;
            if (!quote && (*p == '"' || *p == '\'') && n == 0) {
                quote = *p;
            } else if (quote && *p == quote) {
                if (p + 1 < end && !is_space(p[1])) {
                    rc = -EINVAL;   /* "foo"bar: redis refuses it too */
                    goto out;
                }
                p++;
                break;
            } else if (quote == '"' && *p == '\\' && p + 1 < end) {
                size_t used;
                word[n++] = unescape(p + 1, end, &used);
                p += used;
            } else if (quote == '\'' && *p == '\\' && p + 1 < end && p[1] == '\'') {
                word[n++] = '\'';
                p++;
            } else {
                word[n++] = *p;
            }
            if (quote && p + 1 == end) {
                rc = -EINVAL;   /* the line ended inside the quotes */
                goto out;
            }
        }
        if (add(word, n, data) < 0) {
            rc = -ENOMEM;
            goto out;
        }
    }
out:
    free(word);
    return rc;
}
