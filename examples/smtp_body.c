/* smtp_sink's message collector: see smtp_body.h. */
#include "smtp_body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void smtp_body_reset(smtp_body *b, uint64_t limit)
{
    free(b->p);
    *b = (smtp_body){.limit = limit, .line_start = true};
}

bool smtp_body_too_big(const smtp_body *b)
{
    return b->size > b->limit;
}

/* Keeps bytes while the message fits the limit; past it only counts them. */
static int keep(smtp_body *b, const char *p, size_t n)
{
    b->size += n;
    if (smtp_body_too_big(b)) {
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
        return 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown)
            return -ENOMEM;
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int smtp_body_take(smtp_body *b, const char *p, size_t n)
{
    /* RFC 5321 4.5.2: lines end at CRLF, and the client doubled every '.' that
     * starts one.  A run up to and including the next LF is copied at once. */
    while (n > 0) {
        if (b->line_start && *p == '.') {
            b->line_start = false;
            b->last = '.';
            p++, n--;
            continue;
        }
        const char *lf = memchr(p, '\n', n);
        size_t run = lf ? (size_t)(lf - p) + 1 : n;
        int rc = keep(b, p, run);
        if (rc < 0)
            return rc;
        char before_lf = run >= 2 ? p[run - 2] : b->last;
        b->line_start = lf && before_lf == '\r';
        b->last = p[run - 1];
        p += run;
        n -= run;
    }
    return 0;
}
