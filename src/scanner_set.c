/*
 * The framing engine's settings: the terminator kinds and their options, the
 * frame limit, kept delimiters, reset and end of input.  Every setter builds
 * what it needs completely before it changes anything, so a failed setter
 * leaves the engine as it was, and every change starts the match over and
 * stops a batch of lines in progress.  The scanning itself is scanner.c.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void evc__scanner_init(evc_scanner *s)
{
    memset(s, 0, sizeof(*s));
    s->kind = EVC_TERM_NONE;
    s->mode = EVC_SCAN_ALL;
    s->limit = SIZE_MAX;
}

/* Drops the byte-string terminator and the delimiter set, if any. */
static void drop_term(evc_scanner *s)
{
    if (s->term != s->term_small)
        free(s->term);
    if (s->fail != s->fail_small)
        free(s->fail);
    s->term = NULL;
    s->fail = NULL;
    s->term_len = 0;
    free(s->any_bytes);
    free(s->any_len);
    s->any_bytes = NULL;
    s->any_len = s->any_off = s->any_fail = s->any_state = NULL;
    s->any_n = 0;
}

/* What every setter does after the new terminator is in place: the match
 * state starts over and the line cursor no longer describes the input. */
static void restart(evc_scanner *s, evc_terminator_kind kind, evc_scan_mode mode)
{
    s->kind = kind;
    s->mode = mode;
    s->held = 0;
    s->clean = 0;
    s->phase = EVC_PHASE_HEADER;
    s->value = 0;
    s->in_batch = false;
    s->error = 0;
    s->at_eof = false;
}

void evc__scanner_free(evc_scanner *s)
{
    drop_term(s);
    restart(s, EVC_TERM_NONE, EVC_SCAN_ALL);
    s->count = 0;
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

/* Installs a copy of the delimiter (len >= 1) and its failure table.  The copy is
 * built completely before the old one goes: a failure leaves the scanner as it was,
 * and `bytes` may be the old terminator itself (from evc__scanner_get). */
static int install_term(evc_scanner *s, const void *bytes, size_t len)
{
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
        s->term_len = len;
        return 0;
    }
    if (len == SIZE_MAX || len > SIZE_MAX / sizeof(size_t))
        return -ENOMEM;
    char *term = malloc(len + 1);
    size_t *fail = calloc(len, sizeof(*fail));
    if (!term || !fail) {
        free(term);
        free(fail);
        return -ENOMEM;
    }
    memcpy(term, bytes, len);
    term[len] = '\0';
    build_fail(term, len, fail);
    drop_term(s);
    s->term = term;
    s->fail = fail;
    s->term_len = len;
    return 0;
}

int evc__scanner_set_bytes(evc_scanner *s, const void *bytes, size_t len)
{
    if (len == 0) {
        evc__scanner_set_none(s);
        return 0;
    }
    int rc = install_term(s, bytes, len);
    if (rc < 0)
        return rc;
    restart(s, EVC_TERM_BYTES, len == 1 ? EVC_SCAN_BYTE : EVC_SCAN_KMP);
    s->count = 0;
    return 0;
}

void evc__scanner_set_count(evc_scanner *s, uint64_t n)
{
    drop_term(s);
    restart(s, EVC_TERM_COUNT, EVC_SCAN_COUNT);
    s->count = n;
}

void evc__scanner_set_none(evc_scanner *s)
{
    drop_term(s);
    restart(s, EVC_TERM_NONE, EVC_SCAN_ALL);
    s->count = 0;
}

int evc__scanner_set_line(evc_scanner *s, evc_eol eol)
{
    static const char *const delim[] = {"\n", "\r\n", "\n", ""};
    static const size_t len[] = {1, 2, 1, 1};   /* NUL's delimiter is the string's own end */
    if ((unsigned)eol > EVC_EOL_NUL)
        return -EINVAL;
    int rc = install_term(s, delim[eol], len[eol]);
    if (rc < 0)
        return rc;
    restart(s, EVC_TERM_LINE, eol == EVC_EOL_CRLF ? EVC_SCAN_KMP
                              : eol == EVC_EOL_CRLF_OR_LF ? EVC_SCAN_CRLF_OR_LF : EVC_SCAN_BYTE);
    s->eol = eol;
    s->count = 0;
    return 0;
}

int evc__scanner_set_any(evc_scanner *s, const char *const *delims, const size_t *lens, size_t n)
{
    if (!delims || !lens || n == 0 || n > EVC_SCANNER_MAX_ANY)
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!delims[i] || lens[i] == 0 || lens[i] > SIZE_MAX / 4 - total)
            return -EINVAL;
        total += lens[i];
    }
    /* One block of sizes: lengths, offsets and states (n each), then the
     * failure tables (total); and one block of the delimiters' bytes. */
    size_t *sizes = calloc(3 * n + total, sizeof(size_t));
    char *bytes = malloc(total);
    if (!sizes || !bytes) {
        free(sizes);
        free(bytes);
        return -ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        sizes[i] = lens[i];
        sizes[n + i] = at;
        memcpy(bytes + at, delims[i], lens[i]);
        build_fail(bytes + at, lens[i], sizes + 3 * n + at);
        at += lens[i];
    }
    drop_term(s);
    s->any_bytes = bytes;
    s->any_len = sizes;
    s->any_off = sizes + n;
    s->any_state = sizes + 2 * n;
    s->any_fail = sizes + 3 * n;
    s->any_n = n;
    s->any_matched = 0;
    restart(s, EVC_TERM_ANY, EVC_SCAN_ANY);
    s->count = 0;
    return 0;
}

int evc__scanner_set_count_then(evc_scanner *s, uint64_t n, const void *delim, size_t len)
{
    if (!delim || len == 0)
        return -EINVAL;
    int rc = install_term(s, delim, len);
    if (rc < 0)
        return rc;
    restart(s, EVC_TERM_COUNT_THEN, EVC_SCAN_COUNT_THEN);
    s->count = n;
    s->phase = EVC_PHASE_BODY;
    return 0;
}

int evc__scanner_set_prefix(evc_scanner *s, unsigned width, bool big_endian, uint64_t max)
{
    if (width != 1 && width != 2 && width != 4 && width != 8)
        return -EINVAL;
    drop_term(s);
    restart(s, EVC_TERM_PREFIX, EVC_SCAN_PREFIX);
    s->width = (unsigned char)width;
    s->big_endian = big_endian;
    s->max = max;
    s->count = 0;
    return 0;
}

int evc__scanner_set_netstring(evc_scanner *s, uint64_t max)
{
    drop_term(s);
    restart(s, EVC_TERM_NETSTRING, EVC_SCAN_NETSTRING);
    s->max = max;
    s->count = 0;
    return 0;
}

evc_terminator evc__scanner_get(const evc_scanner *s)
{
    evc_terminator t;
    memset(&t, 0, sizeof t);
    t.kind = s->kind;
    switch (s->kind) {
    case EVC_TERM_LINE:
        t.eol = s->eol;
        t.bytes = s->term;   /* and its delimiter */
        t.len = s->term_len;
        break;
    case EVC_TERM_BYTES:
        t.bytes = s->term;
        t.len = s->term_len;
        break;
    case EVC_TERM_COUNT:
        t.count = s->count;
        break;
    case EVC_TERM_COUNT_THEN:
        t.bytes = s->term;
        t.len = s->term_len;
        t.count = s->phase == EVC_PHASE_BODY ? s->count : 0;
        break;
    case EVC_TERM_ANY:
        t.n = s->any_n;
        break;
    case EVC_TERM_PREFIX:
        t.width = s->width;
        t.big_endian = s->big_endian;
        t.max = s->max;
        break;
    case EVC_TERM_NETSTRING:
        t.max = s->max;
        break;
    case EVC_TERM_NONE:
    default:
        break;
    }
    return t;
}

void evc__scanner_set_keep(evc_scanner *s, bool keep)
{
    s->keep = keep;
    s->in_batch = false;
}

void evc__scanner_set_limit(evc_scanner *s, size_t max, bool limit_counts)
{
    s->limit = max ? max : SIZE_MAX;
    s->limit_counts = limit_counts;
    s->in_batch = false;
    if (s->frame_bytes > s->limit)
        s->frame_bytes = s->limit;   /* the next byte of this frame is over */
}

void evc__scanner_reset(evc_scanner *s)
{
    s->held = 0;
    s->clean = 0;
    s->frame_bytes = 0;
    s->in_batch = false;
    s->epoch++;
    s->at_eof = false;
    for (size_t i = 0; i < s->any_n; i++)
        s->any_state[i] = 0;
    if (s->mode == EVC_SCAN_PREFIX || s->mode == EVC_SCAN_NETSTRING) {
        s->phase = EVC_PHASE_HEADER;
        s->value = 0;
        s->count = 0;
    } else if (s->mode == EVC_SCAN_COUNT_THEN && s->phase == EVC_PHASE_TRAILER) {
        s->phase = EVC_PHASE_BODY;   /* the delimiter matched so far went with the input */
        s->count = 0;
    }
}

void evc__scanner_end(evc_scanner *s)
{
    s->at_eof = true;
    s->in_batch = false;
}

