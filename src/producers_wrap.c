/*
 * Stock producers after Medusa's producers.py: lines, composite, chunked,
 * globbing and hooked.  (The escaping producer is in producers_escape.c, the
 * compressed one in producers_compress.c.)
 *
 * A wrapper pulls the producer it wraps through evc_producer_more and keeps
 * three promises, whatever cap its caller gives (1 byte included):
 *
 *   - it never answers 0 before everything is out, so bytes it holds back
 *     (a chunk header that did not fit, say) are handed out on later calls;
 *   - EVC_NOT_YET from the wrapped producer is passed on only when nothing
 *     was written in this call, and nothing is lost: the next call asks the
 *     wrapped producer again;
 *   - a -errno from the wrapped producer is passed on after the bytes that came
 *     before it and is sticky: asked again, the wrapper answers the same error
 *     without asking the failed producer.
 *
 * A wrapper owns what it wraps once its constructor succeeded, frees a wrapped
 * producer as soon as it has finished (so a file producer's fd closes early)
 * and frees the rest in its on_destroy.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* more() answers at most SSIZE_MAX bytes, so a larger cap is treated as SSIZE_MAX. */
static size_t clamp_cap(size_t cap)
{
    return cap > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : cap;
}

/* Wraps state in a producer; frees nothing on failure (the caller unwinds). */
static evc_producer *wrap(const struct evc_producer_ops *ops, void *state)
{
    evc_producer *p = evc_producer_new(ops, state);
    if (!p)
        errno = ENOMEM;
    return p;
}

/* Copies what is left of [*off, len) into buf+*out, as much as cap allows. */
static void drain(const char *src, size_t len, size_t *off, char *buf, size_t cap, size_t *out)
{
    size_t n = len - *off;
    if (n > cap - *out)
        n = cap - *out;
    memcpy(buf + *out, src + *off, n);
    *off += n;
    *out += n;
}

/* ------------------------------------------------------------------ */
/* lines: each line followed by CRLF                                   */
/* ------------------------------------------------------------------ */

/* The lines are joined, CRLFs included, into one block at construction:
 * more() is then a plain copy at any cap. */
typedef struct lines_state {
    size_t len, pos;
    char text[];
} lines_state;

static ssize_t lines_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    lines_state *s = data;
    (void)p;
    size_t out = 0;
    drain(s->text, s->len, &s->pos, buf, clamp_cap(cap), &out);
    return (ssize_t)out;
}

static void free_state(evc_producer *p, void *data)
{
    (void)p;
    free(data);
}

static const struct evc_producer_ops lines_ops = {
    .more = lines_more,
    .on_destroy = free_state,
};

evc_producer *evc_lines_producer_new(const char *const *lines, size_t n)
{
    if (!lines && n > 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lines[i]) {
            errno = EINVAL;
            return NULL;
        }
        size_t len = strlen(lines[i]);
        if (len > SIZE_MAX - sizeof(lines_state) - 2 - total) {
            errno = ENOMEM;
            return NULL;
        }
        total += len + 2;
    }
    lines_state *s = malloc(sizeof *s + total);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->len = total;
    s->pos = 0;
    char *w = s->text;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(lines[i]);
        memcpy(w, lines[i], len);
        memcpy(w + len, "\r\n", 2);
        w += len + 2;
    }
    evc_producer *p = wrap(&lines_ops, s);
    if (!p)
        free(s);
    return p;
}

/* ------------------------------------------------------------------ */
/* composite: producers in order                                       */
/* ------------------------------------------------------------------ */

typedef struct composite_state {
    size_t n, next;     /* producers, and the first one not finished */
    int err;            /* sticky failure of producers[next] */
    evc_producer *producers[];
} composite_state;

/* Answers what the current producer answers; one that finishes is freed and
 * the next is asked in the same call, so 0 means all of them finished. */
static ssize_t composite_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    composite_state *s = data;
    (void)p;
    if (s->err)
        return s->err;
    while (s->next < s->n) {
        ssize_t r = evc_producer_more(s->producers[s->next], buf, clamp_cap(cap));
        if (r > 0 || r == EVC_NOT_YET)
            return r;
        if (r < 0) {
            s->err = (int)r;
            return r;
        }
        evc_producer_free(s->producers[s->next]);
        s->producers[s->next++] = NULL;
    }
    return 0;
}

static void composite_destroy(evc_producer *p, void *data)
{
    composite_state *s = data;
    (void)p;
    for (size_t i = s->next; i < s->n; i++)
        evc_producer_free(s->producers[i]);
    free(s);
}

static const struct evc_producer_ops composite_ops = {
    .more = composite_more,
    .on_destroy = composite_destroy,
};

evc_producer *evc_composite_producer_new(evc_producer *const *producers, size_t n)
{
    if (!producers && n > 0) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!producers[i]) {
            errno = EINVAL;
            return NULL;
        }
    }
    if (n > (SIZE_MAX - sizeof(composite_state)) / sizeof(evc_producer *)) {
        errno = ENOMEM;
        return NULL;
    }
    composite_state *s = malloc(sizeof *s + n * sizeof(evc_producer *));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->n = n;
    s->next = 0;
    s->err = 0;
    if (n > 0)
        memcpy(s->producers, producers, n * sizeof(evc_producer *));
    evc_producer *p = wrap(&composite_ops, s);
    if (!p)
        free(s);   /* not composite_destroy: the caller keeps the producers */
    return p;
}

/* ------------------------------------------------------------------ */
/* chunked: HTTP/1.1 chunked transfer coding                           */
/* ------------------------------------------------------------------ */

/* Longest chunk header: 16 hex digits for a 64-bit size, then CRLF. */
#define CHUNK_HEADER_MAX 18
/* Caps below this are served from `frame`, a chunk encoded in the state and
 * handed out over several calls; at or above it a chunk is encoded in place. */
#define CHUNK_FRAME_SIZE ((size_t)256)

typedef enum chunked_phase {
    CHUNKED_BODY,       /* passing inner's pieces as chunks */
    CHUNKED_LAST,       /* inner finished: handing out `last` */
    CHUNKED_DONE
} chunked_phase;

typedef struct chunked_state {
    evc_producer *inner;     /* NULL once it finished */
    int err;                 /* sticky failure of inner */
    chunked_phase phase;
    size_t frame_off, frame_len;
    char frame[CHUNK_FRAME_SIZE];
    size_t last_off, last_len;
    char last[];             /* "0\r\n", the trailers, "\r\n" */
} chunked_state;

static size_t hex_digits(size_t v)
{
    size_t n = 1;
    while (v >>= 4)
        n++;
    return n;
}

/*
 * Asks inner for one piece and encodes it as a chunk at dst (room bytes).  The
 * piece is read to where the longest header room could need would end, then
 * moved down to sit right after its actual header, so a chunk is one copy by
 * inner plus one memmove.  Returns the chunk's length, or what inner answered
 * (0, EVC_NOT_YET, -errno).
 */
static ssize_t encode_chunk(chunked_state *s, char *dst, size_t room)
{
    size_t head_room = hex_digits(room) + 2;
    assert(room > head_room + 2);
    ssize_t r = evc_producer_more(s->inner, dst + head_room, room - head_room - 2);
    if (r <= 0)
        return r;
    size_t n = (size_t)r;
    assert(n <= room - head_room - 2);
    size_t digits = hex_digits(n);
    if (digits + 2 < head_room)
        memmove(dst + digits + 2, dst + head_room, n);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = digits, v = n; i-- > 0; v >>= 4)
        dst[i] = hex[v & 15];
    memcpy(dst + digits, "\r\n", 2);
    memcpy(dst + digits + 2 + n, "\r\n", 2);
    return (ssize_t)(digits + 2 + n + 2);
}

static ssize_t chunked_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    chunked_state *s = data;
    char *out_buf = buf;
    (void)p;
    cap = clamp_cap(cap);
    size_t out = 0;
    drain(s->frame, s->frame_len, &s->frame_off, out_buf, cap, &out);
    if (s->phase == CHUNKED_BODY) {
        /* inner is asked only by a call that has written nothing yet. */
        if (out > 0)
            return (ssize_t)out;
        if (s->err)
            return s->err;
        ssize_t r;
        if (cap >= CHUNK_FRAME_SIZE) {
            r = encode_chunk(s, out_buf, cap);
            if (r > 0)
                return r;
        } else {
            r = encode_chunk(s, s->frame, sizeof s->frame);
            if (r > 0) {
                s->frame_off = 0;
                s->frame_len = (size_t)r;
                drain(s->frame, s->frame_len, &s->frame_off, out_buf, cap, &out);
                return (ssize_t)out;
            }
        }
        if (r < 0) {
            if (r != EVC_NOT_YET)
                s->err = (int)r;
            return r;
        }
        evc_producer_free(s->inner);
        s->inner = NULL;
        s->phase = CHUNKED_LAST;
    }
    if (s->phase == CHUNKED_LAST) {
        drain(s->last, s->last_len, &s->last_off, out_buf, cap, &out);
        if (s->last_off == s->last_len)
            s->phase = CHUNKED_DONE;
    }
    return (ssize_t)out;
}

static void chunked_destroy(evc_producer *p, void *data)
{
    chunked_state *s = data;
    (void)p;
    evc_producer_free(s->inner);
    free(s);
}

static const struct evc_producer_ops chunked_ops = {
    .more = chunked_more,
    .on_destroy = chunked_destroy,
};

/* Trailer text is whole header lines: each non-empty, ending in CRLF, with no
 * other CR or LF.  An empty line inside would end the message early, and a bare
 * CR or LF is read as a line end by some peers: both would let a trailer value
 * smuggle text into the stream. */
static bool valid_trailers(const char *t)
{
    size_t line_len = 0;
    for (; *t; t++) {
        if (*t == '\r') {
            if (t[1] != '\n' || line_len == 0)
                return false;
            t++;
            line_len = 0;
        } else if (*t == '\n') {
            return false;
        } else {
            line_len++;
        }
    }
    return line_len == 0;
}

evc_producer *evc_chunked_producer_new(evc_producer *inner, const char *trailers)
{
    if (!inner || (trailers && !valid_trailers(trailers))) {
        errno = EINVAL;
        return NULL;
    }
    size_t tlen = trailers ? strlen(trailers) : 0;
    if (tlen > SIZE_MAX - sizeof(chunked_state) - 5) {
        errno = ENOMEM;
        return NULL;
    }
    chunked_state *s = malloc(sizeof *s + tlen + 5);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->inner = inner;
    s->err = 0;
    s->phase = CHUNKED_BODY;
    s->frame_off = s->frame_len = 0;
    memcpy(s->last, "0\r\n", 3);
    if (tlen > 0)
        memcpy(s->last + 3, trailers, tlen);
    memcpy(s->last + 3 + tlen, "\r\n", 2);
    s->last_off = 0;
    s->last_len = tlen + 5;
    evc_producer *p = wrap(&chunked_ops, s);
    if (!p)
        free(s);
    return p;
}

/* ------------------------------------------------------------------ */
/* globbing: fewer, larger pieces                                      */
/* ------------------------------------------------------------------ */

#define GLOB_DEFAULT_MIN ((size_t)1 << 16)

typedef struct glob_state {
    evc_producer *inner;     /* NULL once it finished */
    size_t min;
    int err;                 /* sticky failure of inner */
} glob_state;

/*
 * Gathers inner's pieces straight into buf until min bytes (or the whole cap)
 * are there.  Bytes already gathered are handed out when inner pauses: holding
 * them until it resumes could delay them without bound.
 */
static ssize_t glob_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    glob_state *s = data;
    char *out_buf = buf;
    (void)p;
    if (s->err)
        return s->err;
    cap = clamp_cap(cap);
    size_t target = s->min < cap ? s->min : cap;
    size_t out = 0;
    while (s->inner && out < target) {
        ssize_t r = evc_producer_more(s->inner, out_buf + out, cap - out);
        if (r > 0) {
            out += (size_t)r;
            continue;
        }
        if (r == 0) {
            evc_producer_free(s->inner);
            s->inner = NULL;
            break;
        }
        if (r != EVC_NOT_YET)
            s->err = (int)r;
        return out > 0 ? (ssize_t)out : r;
    }
    return (ssize_t)out;
}

static void glob_destroy(evc_producer *p, void *data)
{
    glob_state *s = data;
    (void)p;
    evc_producer_free(s->inner);
    free(s);
}

static const struct evc_producer_ops glob_ops = {
    .more = glob_more,
    .on_destroy = glob_destroy,
};

evc_producer *evc_globbing_producer_new(evc_producer *inner, size_t min_size)
{
    if (!inner) {
        errno = EINVAL;
        return NULL;
    }
    glob_state *s = malloc(sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->inner = inner;
    s->min = min_size ? min_size : GLOB_DEFAULT_MIN;
    s->err = 0;
    evc_producer *p = wrap(&glob_ops, s);
    if (!p)
        free(s);
    return p;
}

/* ------------------------------------------------------------------ */
/* hooked: a callback with the byte total                              */
/* ------------------------------------------------------------------ */

typedef struct hooked_state {
    evc_producer *inner;     /* NULL once it finished or failed */
    evc_producer_hook hook;
    void *arg;
    uint64_t total;
    bool told;               /* the hook has run (it runs once) */
    int status;              /* what inner ended with: 0 or -errno */
} hooked_state;

static void tell(evc_producer *p, hooked_state *s, int status)
{
    s->told = true;
    s->status = status;
    evc_producer_free(s->inner);
    s->inner = NULL;
    /* Last: the hook may call into the chat, which may discard this producer;
     * the queue frees it only after more() returns. */
    if (s->hook)
        s->hook(p, s->total, status, s->arg);
}

static ssize_t hooked_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    hooked_state *s = data;
    if (!s->inner)
        return s->status;
    ssize_t r = evc_producer_more(s->inner, buf, clamp_cap(cap));
    if (r > 0)
        s->total += (uint64_t)r;
    else if (r != EVC_NOT_YET)
        tell(p, s, (int)r);
    return r;
}

static void hooked_destroy(evc_producer *p, void *data)
{
    hooked_state *s = data;
    if (!s->told)
        tell(p, s, -ECANCELED);
    free(s);
}

static const struct evc_producer_ops hooked_ops = {
    .more = hooked_more,
    .on_destroy = hooked_destroy,
};

evc_producer *evc_hooked_producer_new(evc_producer *inner, evc_producer_hook hook, void *arg)
{
    if (!inner || !hook) {
        errno = EINVAL;
        return NULL;
    }
    hooked_state *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->inner = inner;
    s->hook = hook;
    s->arg = arg;
    evc_producer *p = wrap(&hooked_ops, s);
    if (!p)
        free(s);
    return p;
}
