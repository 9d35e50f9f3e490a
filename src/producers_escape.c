/*
 * The escaping producer (Medusa's escaping_producer): a wrapped producer's
 * bytes with every occurrence of `from` replaced by `to`, leftmost first and
 * without overlaps, as Python's str.replace does, whatever the piece edges.
 *
 * Its default is SMTP dot-stuffing (RFC 5321 4.5.2): a line of message text
 * that starts with '.' gets a second '.', i.e. "\r\n." becomes "\r\n..".  The
 * first line of the stream is a line too: DATA's text starts right after the
 * server's 354 reply, and a body that began ".\r\n" unstuffed would end the
 * message there.  Medusa matched only "\r\n." and so left that first '.'
 * alone; here the stream starts as if "\r\n" had just been seen.  Those two
 * bytes are "virtual": they count towards a match but are never written.
 * Bare CR and LF are passed unchanged (see evc_producer(3)).
 *
 * Matching is Knuth-Morris-Pratt.  The bytes of a partial match are always a
 * prefix of `from`, so the state is just its length (`matched`); nothing of the
 * input is kept across calls except the unread rest of the last piece.  Bytes
 * owed to the output that did not fit into the caller's cap wait in `owed`.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Bytes asked of the wrapped producer at a time. */
#define ESCAPE_IN_SIZE ((size_t)4096)

typedef struct escape_state {
    evc_producer *inner;     /* NULL once it finished */
    int err;                 /* sticky failure of inner */
    bool flushed;            /* inner finished and the partial match was written */
    char *from, *to;
    size_t from_len, to_len;
    size_t *fail;            /* KMP: fail[k] = longest proper border of from[0..k] */
    size_t matched;          /* length of the partial match of from */
    size_t virtual_left;     /* how many of the matched bytes were never in the input */
    size_t in_off, in_len;
    char *in;
    size_t owed_off, owed_len;
    char *owed;              /* room for from_len + to_len bytes */
} escape_state;

/* Writes bytes into buf while cap allows; the rest goes to `owed`, which the
 * caller guarantees is empty when emit starts writing there. */
static void emit(escape_state *s, const char *bytes, size_t n, char *buf, size_t cap, size_t *out)
{
    size_t fit = cap - *out < n ? cap - *out : n;
    memcpy(buf + *out, bytes, fit);
    *out += fit;
    if (fit < n) {
        assert(s->owed_len + n - fit <= s->from_len + s->to_len);
        memcpy(s->owed + s->owed_len, bytes + fit, n - fit);
        s->owed_len += n - fit;
    }
}

/* Writes the first n bytes of the partial match, skipping virtual ones. */
static void emit_matched(escape_state *s, size_t n, char *buf, size_t cap, size_t *out)
{
    size_t skip = s->virtual_left < n ? s->virtual_left : n;
    s->virtual_left -= skip;
    emit(s, s->from + skip, n - skip, buf, cap, out);
}

/* Feeds one input byte through the matcher. */
static void step(escape_state *s, char c, char *buf, size_t cap, size_t *out)
{
    size_t k = s->matched;
    while (k > 0 && s->from[k] != c)
        k = s->fail[k - 1];
    if (s->from[k] == c)
        k++;
    if (k == s->from_len) {
        /* A whole match: `to` replaces it; its virtual part stays unwritten.
         * Only the SMTP default has virtual bytes, and its `to` begins with them. */
        size_t skip = s->virtual_left;
        s->virtual_left = 0;
        emit(s, s->to + skip, s->to_len - skip, buf, cap, out);
        s->matched = 0;
        return;
    }
    /* The old match plus c, less the new match at its end, can no longer match. */
    size_t dropped = s->matched + 1 - k;
    if (dropped > s->matched) {
        emit_matched(s, s->matched, buf, cap, out);
        emit(s, &c, 1, buf, cap, out);
    } else {
        emit_matched(s, dropped, buf, cap, out);
    }
    s->matched = k;
    if (s->virtual_left > k)
        s->virtual_left = k;
}

/* Runs the unread input through the matcher until it is used up or buf is full.
 * With no partial match, a run without from[0] is copied in one go. */
static void transform(escape_state *s, char *buf, size_t cap, size_t *out)
{
    while (s->in_off < s->in_len && *out < cap && s->owed_len == 0) {
        if (s->matched == 0) {
            const char *rest = s->in + s->in_off;
            size_t avail = s->in_len - s->in_off;
            const char *hit = memchr(rest, (unsigned char)s->from[0], avail);
            size_t run = hit ? (size_t)(hit - rest) : avail;
            if (run > cap - *out)
                run = cap - *out;
            memcpy(buf + *out, rest, run);
            *out += run;
            s->in_off += run;
            if (s->in_off == s->in_len || *out == cap)
                break;
        }
        step(s, s->in[s->in_off++], buf, cap, out);
    }
}

static ssize_t escape_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    escape_state *s = data;
    char *out_buf = buf;
    (void)p;
    if (cap > (size_t)SSIZE_MAX)
        cap = (size_t)SSIZE_MAX;
    size_t out = 0;
    /* Bytes owed from an earlier call go first. */
    size_t n = s->owed_len - s->owed_off < cap ? s->owed_len - s->owed_off : cap;
    memcpy(out_buf, s->owed + s->owed_off, n);
    out += n;
    s->owed_off += n;
    if (s->owed_off < s->owed_len)
        return (ssize_t)out;
    s->owed_off = s->owed_len = 0;

    for (;;) {
        transform(s, out_buf, cap, &out);
        if (out == cap || s->owed_len > 0 || s->in_off < s->in_len)
            return (ssize_t)out;
        /* The input is used up.  A partial match may hide everything read so
         * far, so inner is asked again until something can be handed out. */
        if (out > 0)
            return (ssize_t)out;
        if (s->err)
            return s->err;
        if (!s->inner) {
            if (!s->flushed) {
                s->flushed = true;
                emit_matched(s, s->matched, out_buf, cap, &out);
                s->matched = 0;
            }
            return (ssize_t)out;
        }
        ssize_t r = evc_producer_more(s->inner, s->in, ESCAPE_IN_SIZE);
        if (r > 0) {
            s->in_off = 0;
            s->in_len = (size_t)r;
            continue;
        }
        if (r == 0) {
            evc_producer_free(s->inner);
            s->inner = NULL;
            continue;
        }
        if (r != EVC_NOT_YET)
            s->err = (int)r;
        return r;
    }
}

static void escape_destroy(evc_producer *p, void *data)
{
    escape_state *s = data;
    (void)p;
    evc_producer_free(s->inner);
    free(s->from);
    free(s->to);
    free(s->fail);
    free(s->in);
    free(s->owed);
    free(s);
}

static const struct evc_producer_ops escape_ops = {
    .more = escape_more,
    .on_destroy = escape_destroy,
};

/* The KMP failure table of from. */
static void build_fail(const char *from, size_t len, size_t *fail)
{
    fail[0] = 0;
    size_t k = 0;
    for (size_t i = 1; i < len; i++) {
        while (k > 0 && from[i] != from[k])
            k = fail[k - 1];
        if (from[i] == from[k])
            k++;
        fail[i] = k;
    }
}

evc_producer *evc_escaping_producer_new(evc_producer *inner, const char *from, const char *to)
{
    size_t virtual_bytes = 0;
    if (!from) {
        if (to) {
            errno = EINVAL;
            return NULL;
        }
        from = "\r\n.";
        to = "\r\n..";
        virtual_bytes = 2;
    }
    if (!inner || !to || from[0] == '\0') {
        errno = EINVAL;
        return NULL;
    }
    escape_state *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->from_len = strlen(from);
    s->to_len = strlen(to);
    s->from = strdup(from);
    s->to = strdup(to);
    s->fail = malloc(s->from_len * sizeof *s->fail);
    s->in = malloc(ESCAPE_IN_SIZE);
    s->owed = malloc(s->from_len + s->to_len);
    evc_producer *p = NULL;
    if (s->from && s->to && s->fail && s->in && s->owed)
        p = evc_producer_new(&escape_ops, s);
    if (!p) {
        s->inner = NULL;   /* the caller keeps inner */
        escape_destroy(NULL, s);
        errno = ENOMEM;
        return NULL;
    }
    build_fail(s->from, s->from_len, s->fail);
    s->matched = s->virtual_left = virtual_bytes;
    s->inner = inner;
    return p;
}
