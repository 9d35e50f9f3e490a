/*
 * The line cursor: every occurrence of a one-byte terminator in a buffer, in
 * order, for the engine's line fast path (evc__scan_lines in scanner.h).  Part of the
 * framing engine: pure, no I/O.
 *
 * memchr finds one byte and returns; for short lines most of its work is
 * setting up and taking down a vector search.  The cursor instead compares a
 * whole 64-byte block at once and keeps the matches as a bit mask, so the
 * block is loaded once however many lines end in it, and each line then costs
 * a count-trailing-zeros.  The last (partial) block is searched with memchr,
 * so no byte past the end is ever read.  Without SSE2 it is memchr throughout.
 * Never installed.
 */
#ifndef EVC_LINES_H
#define EVC_LINES_H

#include <stddef.h>
#include <stdint.h>
#include <assert.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct evc_line_cursor {
    const char *next;     /* the first byte not yet loaded into mask */
    const char *end;
    const char *base;     /* the block mask describes */
    uint64_t mask;        /* bit i: base[i] is a terminator not yet returned */
    int term;
} evc_line_cursor;

/* Starts a cursor over [p, end) looking for the byte term. */
static inline void evc__lines_init(evc_line_cursor *lc, const char *p, const char *end,
                                   unsigned char term)
{
    lc->next = p;
    lc->end = end;
    lc->base = p;
    lc->mask = 0;
    lc->term = term;
}

#ifdef __SSE2__
/* The terminators in the 64 bytes at p, as a bit mask. */
static inline uint64_t evc__lines_block(const char *p, __m128i t)
{
    uint64_t m0 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), t));
    uint64_t m1 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), t));
    uint64_t m2 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), t));
    uint64_t m3 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), t));
    return m0 | m1 << 16 | m2 << 32 | m3 << 48;
}
#endif

/* The next terminator after the last one returned, or NULL when there is none. */
static inline const char *evc__lines_next(evc_line_cursor *lc)
{
#ifdef __SSE2__
    if (lc->mask == 0) {
        const __m128i t = _mm_set1_epi8((char)lc->term);
        while (lc->mask == 0 && lc->end - lc->next >= 64) {
            lc->base = lc->next;
            lc->next += 64;
            lc->mask = evc__lines_block(lc->base, t);
        }
    }
    if (lc->mask) {
        const char *hit = lc->base + __builtin_ctzll(lc->mask);
        lc->mask &= lc->mask - 1;
        return hit;
    }
#endif
    /* An empty rest may start at NULL (a buffer without a block): memchr must not see it. */
    if (lc->next == lc->end)
        return NULL;
    /* A non-empty rest lies in a block (a buffer's content is never at NULL);
     * said here so that static analysis, which cannot see that, knows it. */
    assert(lc->next != NULL);
    const char *found = memchr(lc->next, lc->term, (size_t)(lc->end - lc->next));
    lc->next = found ? found + 1 : lc->end;
    return found;
}

#endif /* EVC_LINES_H */
