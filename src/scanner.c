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
 * body down, then match their trailer byte by byte.  The settings (setters,
 * reset, end of input) are scanner_set.c; the inline line path is scanner.h.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest netstring header: 20 digits cover any 64-bit length. */
#define NETSTRING_DIGITS 20

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
    s->in_batch = false;
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
