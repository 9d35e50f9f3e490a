/*
 * Producers: the interface (asynchat's producer protocol: more() until it
 * answers nothing) and the simple producer (asynchat.simple_producer).
 *
 * A producer is an ops table plus the caller's data.  The library owns a
 * producer once a push of it succeeded and frees it (on_destroy first) when
 * more() answers 0, when the queue is discarded, or when the channel closes.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* asynchat.simple_producer's default buffer_size. */
#define SIMPLE_DEFAULT_PIECE ((size_t)512)

evc_producer *evc_producer_new(const struct evc_producer_ops *ops, void *data)
{
    if (!ops || !ops->more) {
        errno = EINVAL;
        return NULL;
    }
    evc_producer *p = malloc(sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->ops = ops;
    p->data = data;
    p->chat = NULL;
    return p;
}

void evc_producer_free(evc_producer *p)
{
    if (!p)
        return;
    if (p->ops->on_destroy)
        p->ops->on_destroy(p, p->data);
    free(p);
}

evc_chat *evc_producer_chat(const evc_producer *p)
{
    return p ? p->chat : NULL;
}

ssize_t evc_producer_more(evc_producer *p, void *buf, size_t cap)
{
    /* cap 0 could only be answered with 0, which means "finished": refuse it. */
    if (!p || !buf || cap == 0)
        return -EINVAL;
    return p->ops->more(p, buf, cap, p->data);
}

/* ------------------------------------------------------------------ */
/* simple producer                                                     */
/* ------------------------------------------------------------------ */

typedef struct simple_state {
    size_t len;      /* bytes in all */
    size_t pos;      /* bytes handed out */
    size_t piece;    /* at most this many per more() */
    char bytes[];
} simple_state;

static ssize_t simple_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    simple_state *s = data;
    (void)p;
    size_t n = s->len - s->pos;
    if (n > s->piece)
        n = s->piece;
    if (n > cap)
        n = cap;
    memcpy(buf, s->bytes + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static void simple_destroy(evc_producer *p, void *data)
{
    (void)p;
    free(data);
}

static const struct evc_producer_ops simple_ops = {
    .more = simple_more,
    .on_destroy = simple_destroy,
};

evc_producer *evc_simple_producer_new(const void *bytes, size_t len, size_t buffer_size)
{
    if (!bytes && len > 0) {
        errno = EINVAL;
        return NULL;
    }
    if (len > SIZE_MAX - sizeof(simple_state)) {
        errno = ENOMEM;
        return NULL;
    }
    simple_state *s = malloc(sizeof *s + len);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->len = len;
    s->pos = 0;
    s->piece = buffer_size ? buffer_size : SIMPLE_DEFAULT_PIECE;
    /* A piece past SSIZE_MAX could not be returned from more(). */
    if (s->piece > (size_t)SSIZE_MAX)
        s->piece = (size_t)SSIZE_MAX;
    if (len > 0)
        memcpy(s->bytes, bytes, len);
    evc_producer *p = evc_producer_new(&simple_ops, s);
    if (!p) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}
