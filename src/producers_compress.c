/*
 * The compressed producer (Medusa's compressed_producer): a wrapped producer's
 * bytes through zlib's deflate.  Compression is a job a well-kept library does
 * better than a hand-written one, so zlib does all of it; this file only moves
 * bytes between the wrapped producer, the z_stream and the caller's buffer.
 *
 * The format is chosen with deflateInit2's windowBits: 15 for the zlib format
 * (RFC 1950, what compress2 and Python's zlib.compress write, and what Medusa
 * sends), 15 + 16 for gzip (RFC 1952), -15 for raw deflate (RFC 1951).  The
 * memory level and strategy are zlib's defaults, so at levels 1-9 the output
 * is byte for byte what a one-shot deflate of the whole input at the same
 * level writes: with Z_NO_FLUSH zlib's compressed output does not depend on
 * how its input was split.  Level 0 only stores, and zlib cuts stored blocks
 * where input and output space happened to end: valid, but not identical.
 *
 * For that reason nothing is flushed when the wrapped producer answers
 * EVC_NOT_YET: bytes it handed out may wait inside zlib until more follow or
 * it finishes.  (A sync flush would make them sendable at once, at the price
 * of output that depends on timing.)
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

/* Bytes asked of the wrapped producer at a time. */
#define COMPRESS_IN_SIZE ((size_t)16384)

typedef struct compress_state {
    evc_producer *inner;     /* NULL once it finished */
    int err;                 /* sticky failure (of inner, or of zlib) */
    bool ended;              /* deflate answered Z_STREAM_END: everything is out */
    z_stream z;
    unsigned char in[COMPRESS_IN_SIZE];
} compress_state;

/*
 * Runs deflate into buf until buf is full, the stream ended, or deflate needs
 * input; only then is inner asked, and only by a call that has nothing to hand
 * out yet (deflate keeps most input to itself until a block is complete).
 */
static ssize_t compress_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    compress_state *s = data;
    (void)p;
    if (s->err)
        return s->err;
    if (s->ended)
        return 0;
    /* avail_out is a uInt; a larger cap is simply used in part. */
    if (cap > UINT_MAX)
        cap = UINT_MAX;
    if (cap > (size_t)SSIZE_MAX)
        cap = (size_t)SSIZE_MAX;
    s->z.next_out = buf;
    s->z.avail_out = (uInt)cap;
    for (;;) {
        int zr = deflate(&s->z, s->inner ? Z_NO_FLUSH : Z_FINISH);
        size_t out = cap - s->z.avail_out;
        if (zr == Z_STREAM_END) {
            s->ended = true;
            return (ssize_t)out;
        }
        /* Z_BUF_ERROR only says no progress was possible: not an error. */
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            s->err = -EIO;
            return out > 0 ? (ssize_t)out : s->err;
        }
        if (s->z.avail_out == 0 || out > 0)
            return (ssize_t)out;
        /* Finishing with room left always ends the stream; 0 here would read
         * as "finished" with the stream cut short. */
        if (!s->inner) {
            s->err = -EIO;
            return s->err;
        }
        /* deflate took all the input and wrote nothing: feed it. */
        ssize_t r = evc_producer_more(s->inner, s->in, sizeof s->in);
        if (r > 0) {
            s->z.next_in = s->in;
            s->z.avail_in = (uInt)r;
        } else if (r == 0) {
            evc_producer_free(s->inner);
            s->inner = NULL;
        } else {
            if (r != EVC_NOT_YET)
                s->err = (int)r;
            return r;
        }
    }
}

static void compress_destroy(evc_producer *p, void *data)
{
    compress_state *s = data;
    (void)p;
    evc_producer_free(s->inner);
    deflateEnd(&s->z);
    free(s);
}

static const struct evc_producer_ops compress_ops = {
    .more = compress_more,
    .on_destroy = compress_destroy,
};

evc_producer *evc_compressed_producer_new(evc_producer *inner, int level,
                                          evc_compress_format format)
{
    int window_bits;
    switch (format) {
    case EVC_COMPRESS_ZLIB: window_bits = MAX_WBITS; break;
    case EVC_COMPRESS_GZIP: window_bits = MAX_WBITS + 16; break;
    case EVC_COMPRESS_RAW: window_bits = -MAX_WBITS; break;
    default: window_bits = 0; break;
    }
    if (!inner || window_bits == 0 || level < Z_DEFAULT_COMPRESSION || level > Z_BEST_COMPRESSION) {
        errno = EINVAL;
        return NULL;
    }
    compress_state *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    /* 8 is zlib's default memory level (what deflateInit and compress2 use). */
    int zr = deflateInit2(&s->z, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
        free(s);
        errno = zr == Z_MEM_ERROR ? ENOMEM : EINVAL;
        return NULL;
    }
    evc_producer *p = evc_producer_new(&compress_ops, s);
    if (!p) {
        deflateEnd(&s->z);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->inner = inner;
    return p;
}
