/*
 * The framing engine: asynchat's handle_read loop and find_prefix_at_end,
 * without the rescanning.
 *
 * A byte-string terminator is matched with Knuth-Morris-Pratt.  The KMP state
 * after the last examined byte is the length of the longest suffix of the
 * input that is a prefix of the terminator, which is exactly the number of
 * bytes that must be held back as "possibly the start of a terminator".  So
 * `held` is both what the caller keeps and the state to resume from: the next
 * call starts examining at input[held] in state held, and no byte is looked
 * at twice however the input is split.  In state 0 nothing is partially
 * matched, so the scan jumps to the next occurrence of the terminator's first
 * byte with memchr; one-byte terminators are a single memchr.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void evc__scanner_init(evc_scanner *s)
{
    memset(s, 0, sizeof(*s));
    s->kind = EVC_TERM_NONE;
}

/* Drops the byte-string terminator, if any. */
static void drop_term(evc_scanner *s)
{
    if (s->term != s->term_small)
        free(s->term);
    if (s->fail != s->fail_small)
        free(s->fail);
    s->term = NULL;
    s->fail = NULL;
    s->term_len = 0;
}

void evc__scanner_free(evc_scanner *s)
{
    drop_term(s);
    s->kind = EVC_TERM_NONE;
    s->count = 0;
    s->held = 0;
}

/*
 * fail[k] is the length of the longest proper prefix of term[0..k] that is also
 * a suffix of it: after a mismatch in state k+1, the match can continue from
 * state fail[k] without looking at earlier input again.
 */
static void build_fail(const char *term, size_t len, size_t *fail)
{
    fail[0] = 0;
    size_t k = 0;
    for (size_t i = 1; i < len; i++) {
        while (k > 0 && term[i] != term[k])
            k = fail[k - 1];
        if (term[i] == term[k])
            k++;
        fail[i] = k;
    }
}

int evc__scanner_set_bytes(evc_scanner *s, const void *bytes, size_t len)
{
    if (len == 0) {
        evc__scanner_set_none(s);
        return 0;
    }
    /* Build the new terminator completely before dropping the old one: a failure
     * must leave the scanner unchanged, and `bytes` may be the old terminator
     * itself (from evc__scanner_get). */
    if (len <= EVC_SCANNER_INLINE) {
        /* Short terminators (every common one) live in the scanner itself. */
        char copy[EVC_SCANNER_INLINE];
        memcpy(copy, bytes, len);
        drop_term(s);
        memcpy(s->term_small, copy, len);
        s->term_small[len] = '\0';
        s->fail = NULL;
        if (len > 1) {
            build_fail(s->term_small, len, s->fail_small);
            s->fail = s->fail_small;
        }
        s->term = s->term_small;
        goto set;
    }
    if (len == SIZE_MAX)
        return -ENOMEM;
    char *term = malloc(len + 1);
    size_t *fail = NULL;
    if (!term)
        return -ENOMEM;
    if (len > 1) {
        fail = calloc(len, sizeof(*fail));
        if (!fail) {
            free(term);
            return -ENOMEM;
        }
    }
    memcpy(term, bytes, len);
    term[len] = '\0';
    if (fail)
        build_fail(term, len, fail);

    drop_term(s);
    s->term = term;
    s->fail = fail;
set:
    s->kind = EVC_TERM_BYTES;
    s->term_len = len;
    s->count = 0;
    s->held = 0;
    return 0;
}

void evc__scanner_set_count(evc_scanner *s, uint64_t n)
{
    /* A count of 0 is kept as a count (as asynchat keeps the terminator 0), and
     * behaves like none. */
    drop_term(s);
    s->kind = EVC_TERM_COUNT;
    s->count = n;
    s->held = 0;
}

void evc__scanner_set_none(evc_scanner *s)
{
    drop_term(s);
    s->kind = EVC_TERM_NONE;
    s->count = 0;
    s->held = 0;
}

evc_terminator evc__scanner_get(const evc_scanner *s)
{
    evc_terminator t = {.kind = s->kind, .bytes = NULL, .len = 0, .count = 0};
    if (s->kind == EVC_TERM_BYTES) {
        t.bytes = s->term;
        t.len = s->term_len;
    } else if (s->kind == EVC_TERM_COUNT) {
        t.count = s->count;
    }
    return t;
}

/* Everything is data: no terminator, or a count that already reached zero. */
static void scan_all(evc_scanner *s, size_t len, evc_scan_result *out)
{
    s->examined += len;
    out->data_len = len;
    out->consumed = len;
}

static void scan_count(evc_scanner *s, size_t len, evc_scan_result *out)
{
    /* Compare in 64 bits: on a 32-bit size_t a count above 4 GiB must not wrap. */
    size_t n = (uint64_t)len < s->count ? len : (size_t)s->count;
    s->count -= n;
    s->examined += n;
    out->data_len = n;
    out->consumed = n;
    out->found = s->count == 0;
}

/* One-byte terminator: never anything to hold back. */
static void scan_byte(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    const char *hit = memchr(in, (unsigned char)s->term[0], len);
    if (!hit) {
        s->examined += len;
        out->data_len = len;
        out->consumed = len;
        return;
    }
    size_t end = (size_t)(hit - in) + 1;
    s->examined += end;
    out->data_len = end - 1;
    out->consumed = end;
    out->found = true;
}

/* Multi-byte terminator: KMP resumed from state `held` at input[held]. */
static void scan_kmp(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    const char *term = s->term;
    const size_t m = s->term_len;
    const size_t *fail = s->fail;
    size_t q = s->held;   /* terminator bytes matched so far */
    size_t i = s->held;   /* next input byte to examine */
    const size_t start = i;

    while (i < len) {
        if (q == 0) {
            /* Nothing partially matched: skip to the next possible start. */
            const char *hit = memchr(in + i, (unsigned char)term[0], len - i);
            if (!hit) {
                i = len;
                break;
            }
            i = (size_t)(hit - in) + 1;
            q = 1;      /* m >= 2, so one byte is never a whole match */
            continue;
        }
        char c = in[i++];
        while (q > 0 && c != term[q])
            q = fail[q - 1];
        if (c == term[q])
            q++;
        if (q == m) {
            s->examined += i - start;
            s->held = 0;
            out->data_len = i - m;
            out->consumed = i;
            out->found = true;
            return;
        }
    }
    /* The last q bytes are a terminator prefix: hold them back. */
    s->examined += i - start;
    s->held = q;
    out->data_len = len - q;
    out->consumed = len - q;
}

void evc__scan(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    out->data_len = 0;
    out->consumed = 0;
    out->found = false;
    if (len == 0)
        return;

    /* The input must start with the bytes held back last time.  If a caller
     * dropped them anyway, start over rather than read past the input. */
    assert(s->held <= len);
    if (s->held > len)
        s->held = 0;

    switch (s->kind) {
    case EVC_TERM_BYTES:
        if (s->term_len == 1)
            scan_byte(s, in, len, out);
        else
            scan_kmp(s, in, len, out);
        return;
    case EVC_TERM_COUNT:
        if (s->count > 0) {
            scan_count(s, len, out);
            return;
        }
        scan_all(s, len, out);
        return;
    case EVC_TERM_NONE:
    default:
        scan_all(s, len, out);
        return;
    }
}

size_t evc__scanner_flush_held(evc_scanner *s)
{
    size_t held = s->held;
    s->held = 0;
    return held;
}
