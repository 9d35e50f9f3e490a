/*
 * smtp_sink's message collector: the bytes after DATA's 354, in whatever pieces
 * the chat hands them over, dot-unstuffed as they come and kept only while the
 * message fits its size limit, so an oversized message costs no memory.
 */
#ifndef EVC_EXAMPLE_SMTP_BODY_H
#define EVC_EXAMPLE_SMTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct smtp_body {
    char *p;                  /* p[0, len): the message so far; NULL once over the limit */
    size_t len, cap;
    uint64_t size;            /* bytes seen, dot-unstuffed, kept or not */
    uint64_t limit;           /* the most bytes kept */
    bool line_start;          /* the next byte starts a line: nothing seen yet, or after CRLF */
    char last;                /* the last byte seen (a CR before a LF may be in an earlier piece) */
} smtp_body;

/* Frees what b holds and makes it an empty message that keeps up to limit bytes.
 * A zeroed smtp_body may be reset. */
void smtp_body_reset(smtp_body *b, uint64_t limit);
/* Adds message bytes: a '.' that starts a line is the client's dot-stuffing and is
 * dropped.  0, or -ENOMEM. */
int smtp_body_take(smtp_body *b, const char *p, size_t n);
/* Whether the message outgrew the limit (then nothing of it is kept). */
bool smtp_body_too_big(const smtp_body *b);

#endif
