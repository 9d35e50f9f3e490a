/*
 * The framing engine: asynchat's handle_read loop and find_prefix_at_end,
 * without the rescanning, for every framing in evc_chat(3).
 *
 * A byte-string terminator is matched with Knuth-Morris-Pratt.  The KMP state
 * after the last examined byte is the length of the longest suffix of the
 * input that is a prefix of the terminator, which is exactly the number of
 * bytes that must be held back as "possibly the start of a terminator".  So
 * `held` is both what the caller keeps and the state to resume from: the next
 * call starts examining at input[held] in state held, and no byte is looked
 * at twice however the input is split.  In state 0 nothing is partially
 * matched, so the scan jumps to the next occurrence of the terminator's first
 * byte with memchr; one-byte terminators are the line cursor (scanner.h).
 *
 * The other kinds keep the same contract.  A set of delimiters runs one KMP
 * state per delimiter and holds back the longest partial match.  Counted kinds
 * (count-then-delimiter, length prefixes, netstrings) hold back an incomplete
 * header, whose value is accumulated as its bytes are examined, then count the
 * body down, then match their trailer byte by byte.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest netstring header: 20 digits cover any 64-bit length. */
#define NETSTRING_DIGITS 20

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
    s->config++;
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
    s->config++;
}

void evc__scanner_set_limit(evc_scanner *s, size_t max, bool limit_counts)
{
    s->limit = max ? max : SIZE_MAX;
    s->limit_counts = limit_counts;
    s->config++;
    if (s->frame_bytes > s->limit)
        s->frame_bytes = s->limit;   /* the next byte of this frame is over */
}

void evc__scanner_reset(evc_scanner *s)
{
    s->held = 0;
    s->clean = 0;
    s->frame_bytes = 0;
    s->config++;
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
    s->config++;
}

/* ------------------------------------------------------------------ */
/* Scanning                                                            */
/* ------------------------------------------------------------------ */

/* Whether the frame limit caps the current frame: always for delimited kinds,
 * and for counted ones (and no terminator) only when the library collects. */
static bool limited(const evc_scanner *s)
{
    switch (s->mode) {
    case EVC_SCAN_BYTE:
    case EVC_SCAN_KMP:
    case EVC_SCAN_CRLF_OR_LF:
    case EVC_SCAN_ANY:
        return true;
    default:
        return s->limit_counts;
    }
}

/* A piece of the frame: data at input[start], drop consumed bytes. */
static void piece(evc_scan_result *out, size_t start, size_t data_len, size_t consumed, bool found)
{
    out->start = start;
    out->data_len = data_len;
    out->consumed = consumed;
    out->found = found;
}

/* A protocol error: reported now and on every later call, until a setter. */
static void fail(evc_scanner *s, evc_scan_result *out, int err)
{
    piece(out, 0, 0, 0, false);
    out->error = err;
    s->error = err;
    s->frame_bytes = 0;
    s->mode = EVC_SCAN_FAILED;
    s->config++;
}

/* Everything is data: no terminator, a count already reached, or the end of input. */
static void scan_all(evc_scanner *s, size_t len, evc_scan_result *out)
{
    size_t seen = s->held + (s->clean <= len - s->held ? s->clean : 0);
    s->examined += len - seen;
    s->held = 0;
    s->clean = 0;
    piece(out, 0, len, len, false);
}

/* Counts down the body of a count terminator. */
static void scan_count(evc_scanner *s, size_t len, evc_scan_result *out)
{
    /* Compare in 64 bits: on a 32-bit size_t a count above 4 GiB must not wrap. */
    size_t n = (uint64_t)len < s->count ? len : (size_t)s->count;
    s->count -= n;
    s->examined += n;
    piece(out, 0, n, n, s->count == 0);
    if (s->count == 0)
        s->mode = EVC_SCAN_ALL;   /* reached: none until re-armed */
}

/* A one-byte delimiter, after the `clean` bytes evc__scan_lines already passed. */
static void scan_byte(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    size_t from = s->clean <= len ? s->clean : 0;
    const char *hit = memchr(in + from, (unsigned char)s->term[0], len - from);
    size_t n = hit ? (size_t)(hit - in) + 1 : len;
    s->examined += n - from;
    s->clean = 0;
    piece(out, 0, hit ? n - 1 + s->keep : len, n, hit != NULL);
}

/* Multi-byte terminator: KMP resumed from state `held` at input[held]. */
static void scan_kmp(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    const char *term = s->term;
    const size_t m = s->term_len;
    const size_t *fail_of = s->fail;
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
            q = fail_of[q - 1];
        if (c == term[q])
            q++;
        if (q == m) {
            s->examined += i - start;
            s->held = 0;
            piece(out, 0, s->keep ? i : i - m, i, true);
            return;
        }
    }
    /* The last q bytes are a terminator prefix: hold them back. */
    s->examined += i - start;
    s->held = q;
    piece(out, 0, len - q, len - q, false);
}

/* A line ends at \n; a \r just before it goes with the delimiter, so a \r at
 * the end of the input is held back until the next byte decides. */
static void scan_crlf_or_lf(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    size_t from = s->held;
    const char *hit = memchr(in + from, '\n', len - from);
    if (hit) {
        size_t n = (size_t)(hit - in) + 1;
        size_t delim = n >= 2 && in[n - 2] == '\r' ? 2 : 1;
        s->examined += n - from;
        s->held = 0;
        piece(out, 0, s->keep ? n : n - delim, n, true);
        return;
    }
    s->examined += len - from;
    s->held = in[len - 1] == '\r';
    piece(out, 0, len - s->held, len - s->held, false);
}

/* A set of delimiters: one KMP state each; held back is the longest partial match. */
static void scan_any(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    size_t i = s->held;
    const size_t start = i;
    size_t held = s->held;
    while (i < len) {
        char c = in[i++];
        size_t best = SIZE_MAX;
        held = 0;
        for (size_t k = 0; k < s->any_n; k++) {
            const char *d = s->any_bytes + s->any_off[k];
            const size_t *f = s->any_fail + s->any_off[k];
            size_t q = s->any_state[k];
            while (q > 0 && c != d[q])
                q = f[q - 1];
            if (c == d[q])
                q++;
            s->any_state[k] = q;
            /* Of the matches that end here, the longest started first. */
            if (q == s->any_len[k] && (best == SIZE_MAX || q > s->any_len[best]))
                best = k;
            if (q > held)
                held = q;
        }
        if (best != SIZE_MAX) {
            size_t m = s->any_len[best];
            for (size_t k = 0; k < s->any_n; k++)
                s->any_state[k] = 0;
            s->examined += i - start;
            s->held = 0;
            s->any_matched = best;
            piece(out, 0, s->keep ? i : i - m, i, true);
            return;
        }
    }
    s->examined += i - start;
    s->held = held;
    piece(out, 0, len - held, len - held, false);
}

/* Matches the delimiter after a count-then body byte by byte, from state `held`
 * at input[from + held].  1 when it matched whole (ending at *end), 0 while
 * incomplete (the matched part held back), -EPROTO on a wrong byte.  The wrong
 * byte is not passed over, so a caller that hands out the body first meets it
 * again on the next call. */
static int match_trailer(evc_scanner *s, const char *in, size_t len, size_t from, size_t *end)
{
    size_t q = s->held;
    size_t i = from + q;
    int rc = 0;
    while (i < len && q < s->term_len) {
        if (in[i] != s->term[q]) {
            rc = -EPROTO;
            break;
        }
        i++;
        q++;
    }
    s->examined += i - from - s->held;
    s->held = q;
    *end = i;
    return rc < 0 ? rc : q == s->term_len;
}

/* n bytes, then exactly the delimiter. */
static void scan_count_then(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    size_t body = 0;
    if (s->phase == EVC_PHASE_BODY) {
        body = (uint64_t)len < s->count ? len : (size_t)s->count;
        s->count -= body;
        s->examined += body;
        if (s->count > 0) {
            piece(out, 0, body, body, false);
            return;
        }
        s->phase = EVC_PHASE_TRAILER;
        s->held = 0;
    }
    /* The delimiter starts at input[body], after any held part of it. */
    size_t end;
    int rc = match_trailer(s, in, len, body, &end);
    if (rc < 0 && body == 0) {
        fail(s, out, rc);
        return;
    }
    if (rc <= 0) {
        /* Incomplete, or wrong with body bytes before it: the body goes out
         * first, whatever the split, and the next call decides. */
        piece(out, 0, body, body, false);
        return;
    }
    s->held = 0;
    s->mode = EVC_SCAN_ALL;   /* reached: none until re-armed, as a count */
    piece(out, 0, s->keep ? end : body, end, true);
}

/* The length header of a prefix or netstring frame, from input[held].  Returns
 * the header's length once complete (the body's length in s->count), 0 while
 * incomplete (held back), or -EPROTO. */
static long read_header(evc_scanner *s, const char *in, size_t len)
{
    size_t i = s->held;
    const size_t start = i;
    if (s->mode == EVC_SCAN_PREFIX) {
        for (; i < len && i < s->width; i++) {
            uint64_t b = (unsigned char)in[i];
            s->value = s->big_endian ? s->value << 8 | b : s->value | b << (8 * i);
        }
        s->examined += i - start;
        s->held = i;
        if (i < s->width)
            return 0;
    } else {
        for (;;) {
            if (i == len) {
                s->examined += i - start;
                s->held = i;
                return 0;
            }
            char c = in[i++];
            if (c == ':' && i > 1)
                break;
            /* Digits only, no leading zero but "0:" itself, and no 64-bit overflow. */
            if (c < '0' || c > '9' || i > NETSTRING_DIGITS || (i == 2 && in[0] == '0') ||
                s->value > (UINT64_MAX - 9) / 10)
                return -EPROTO;
            s->value = s->value * 10 + (uint64_t)(c - '0');
        }
        s->examined += i - start;
    }
    if (s->max && s->value > s->max)
        return -EPROTO;
    s->count = s->value;
    s->value = 0;
    s->held = 0;
    s->phase = EVC_PHASE_BODY;
    return (long)i;
}

/* Length-prefixed frames and netstrings: header, body, (netstring) ",". */
static void scan_prefixed(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    size_t skip = 0;
    if (s->phase == EVC_PHASE_HEADER) {
        long h = read_header(s, in, len);
        if (h < 0) {
            fail(s, out, (int)h);
            return;
        }
        if (h == 0) {
            piece(out, 0, 0, 0, false);
            return;
        }
        skip = (size_t)h;
        if (s->limit_counts && s->count > s->limit) {
            fail(s, out, -EMSGSIZE);
            return;
        }
    }
    size_t body = 0;
    if (s->phase == EVC_PHASE_BODY) {
        size_t avail = len - skip;
        body = (uint64_t)avail < s->count ? avail : (size_t)s->count;
        s->count -= body;
        s->examined += body;
        if (s->count > 0) {
            piece(out, skip, body, skip + body, false);
            return;
        }
        if (s->mode == EVC_SCAN_PREFIX) {
            s->phase = EVC_PHASE_HEADER;
            piece(out, skip, body, skip + body, true);
            return;
        }
        s->phase = EVC_PHASE_TRAILER;
        s->held = 0;
    }
    /* The netstring's ",": a one-byte trailer right after the body.  A wrong
     * byte after body bytes handed out here is met again by the next call, so
     * the body goes out before the error whatever the split. */
    if (skip + body == len || (in[skip + body] != ',' && skip + body > 0)) {
        piece(out, skip, body, skip + body, false);
        return;
    }
    if (in[skip + body] != ',') {
        fail(s, out, -EPROTO);
        return;
    }
    s->examined++;
    s->phase = EVC_PHASE_HEADER;
    piece(out, skip, body, skip + body + 1, true);
}

/* The general case of evc__scan, after the frame limit is known to allow more. */
static void scan_mode(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    switch (s->mode) {
    case EVC_SCAN_BYTE:
        scan_byte(s, in, len, out);
        return;
    case EVC_SCAN_KMP:
        scan_kmp(s, in, len, out);
        return;
    case EVC_SCAN_CRLF_OR_LF:
        scan_crlf_or_lf(s, in, len, out);
        return;
    case EVC_SCAN_ANY:
        scan_any(s, in, len, out);
        return;
    case EVC_SCAN_COUNT:
        scan_count(s, len, out);
        return;
    case EVC_SCAN_COUNT_THEN:
        scan_count_then(s, in, len, out);
        return;
    case EVC_SCAN_PREFIX:
    case EVC_SCAN_NETSTRING:
        scan_prefixed(s, in, len, out);
        return;
    case EVC_SCAN_ALL:
    case EVC_SCAN_FAILED:
    default:
        scan_all(s, len, out);
        return;
    }
}

evc_scan_result evc__scan_step(evc_scanner *s, const char *in, size_t len)
{
    evc_scan_result result;
    evc_scan_result *out = &result;
    piece(out, 0, 0, 0, false);
    out->error = 0;
    if (s->mode == EVC_SCAN_FAILED) {
        out->error = s->error;
        return result;
    }
    if (s->mode == EVC_SCAN_COUNT && s->count == 0) {
        /* A count of 0: an empty frame, without waiting for input. */
        s->mode = EVC_SCAN_ALL;
        out->found = true;
        s->frame_bytes = 0;
        return result;
    }
    if (len == 0)
        return result;

    /* The input must start with the bytes held back last time.  If a caller
     * dropped them anyway, start over rather than read past the input. */
    assert(s->held <= len);
    if (s->held > len)
        s->held = 0;

    if (s->at_eof) {
        /* No delimiter can complete now: what is held is data. */
        scan_all(s, len, out);
    } else {
        scan_mode(s, in, len, out);
        if (out->error)
            return result;
    }
    if (limited(s)) {
        size_t room = s->limit - s->frame_bytes;
        if (out->data_len > room) {
            /* Undo nothing: the caller stops here, and so does the framing. */
            fail(s, out, -EMSGSIZE);
            return result;
        }
    }
    s->frame_bytes = out->found ? 0 : s->frame_bytes + out->data_len;
    return result;
}
