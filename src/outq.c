/*
 * evc_outq: the push FIFO (asynchat's producer_fifo and initiate_send).
 *
 * The queue is a singly linked list of chunks, written from the head:
 *
 *   COPY      bytes the queue owns.  Small pushes are appended to the tail copy
 *             chunk while it has room, so a burst of replies costs one chunk and
 *             one iovec rather than one of each per push.
 *   REF       the caller's bytes; release(arg) runs exactly once, when the last
 *             byte was written or when the chunk is discarded.
 *   PRODUCER  a producer and its staging block.  more() is asked only when the
 *             producer is reached while filling iovecs (producers are lazy), and
 *             only when its staging is empty, so a partial write is finished from
 *             the staging without asking again.  A producer with send_to_fd is
 *             "direct": filling stops in front of it and the caller lets it write
 *             into the fd itself.
 *   CLOSE     close_when_done: filling stops in front of it.
 *
 * Data chunks keep the bytes [off, len) still to send; producer chunks keep
 * their staging the same way.  `bytes` is the sum of len - off over all chunks.
 *
 * The reserve.  While a copy chunk is the tail, the queue's `room` pointer is
 * where its bytes end: the inline append (evc__outq_append, or reserve and
 * commit) moves only `room` and `bytes`, so the tail chunk's own `len` is
 * brought up to date (sync_tail) by every function here that reads it.
 * `room_end` is recomputed (refresh_room) whenever `bytes` grows or the tail
 * changes; when `bytes` shrinks a stale `room_end` only under-states the room.
 *
 * User code (more(), send_to_fd(), release() and on_destroy()) may call back
 * into the channel, which may push (appending to the tail, harmless) or clear
 * the queue.  Two rules keep that safe: a chunk is unlinked before its
 * release() or on_destroy() runs, and a producer chunk is marked busy around
 * more() and send_to_fd(); clear() leaves a busy chunk to its caller
 * (`orphaned`), which frees it after the call returns.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Smallest copy chunk: many small pushes share one. */
#define COPY_CHUNK_MIN ((size_t)4096)
/* The copy chunk a push into an empty queue gets: a one-reply exchange (a
 * request, a short answer, a close) stays within the allocator's fast small
 * sizes instead of paying for a 4 KiB block. */
#define COPY_CHUNK_FIRST ((size_t)256)
/* A producer's staging block, filled by more(). */
#define STAGE_SIZE ((size_t)16384)
/* more() is asked again to top up staging only while at least this much is free,
 * so producers are not handed a few stray bytes of room. */
#define STAGE_TOPUP_MIN ((size_t)1024)

typedef enum chunk_kind {
    CHUNK_COPY,
    CHUNK_REF,
    CHUNK_PRODUCER,
    CHUNK_CLOSE
} chunk_kind;

struct evc_chunk {
    evc_chunk *next;
    chunk_kind kind;
    bool busy;        /* a user call on this chunk's producer is on the stack */
    bool orphaned;    /* clear() ran meanwhile: the busy caller frees the chunk */
    bool done;        /* PRODUCER: more() answered 0; staging may still hold bytes */
    int err;          /* PRODUCER: the -errno more() answered, reported from now on */
    size_t off;       /* first unsent byte */
    size_t len;       /* end of the bytes (COPY: of the filled part) */
    size_t cap;       /* COPY: room in copy[]; PRODUCER: staging size */
    const char *bytes; /* COPY: copy; REF: the caller's bytes; PRODUCER: stage or NULL */
    char *stage;      /* PRODUCER: staging block, allocated when first reached */
    evc_producer *producer;
    void (*release)(void *);
    void *arg;
    char copy[];      /* COPY: the bytes */
};

/* Pull outcomes beyond "bytes staged or producer done". */
typedef enum pull_result {
    PULL_OK,          /* staged bytes, or done, or nothing */
    PULL_NOT_YET,     /* more() answered EVC_NOT_YET */
    PULL_ORPHANED     /* the queue was cleared during more() */
} pull_result;

static bool is_direct(const evc_chunk *c)
{
    return c->kind == CHUNK_PRODUCER && c->producer->ops->send_to_fd != NULL;
}

static evc_chunk *chunk_new(chunk_kind kind, size_t copy_cap)
{
    evc_chunk *c = malloc(sizeof *c + copy_cap);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->cap = copy_cap;
    if (kind == CHUNK_COPY)
        c->bytes = c->copy;
    return c;
}

/* Brings the tail copy chunk's len up to what the inline append filled. */
static void sync_tail(evc_outq *q)
{
    if (q->room)
        q->tail->len = (size_t)(q->room - q->tail->copy);
}

/* Cuts the reserve to the tail chunk's free room and to the append limit. */
static void refresh_room(evc_outq *q)
{
    if (!q->room)
        return;
    evc_chunk *t = q->tail;
    size_t free_room = t->cap - (size_t)(q->room - t->copy);
    size_t allowed = q->bytes < q->append_limit ? q->append_limit - q->bytes : 0;
    q->room_end = q->room + (free_room < allowed ? free_room : allowed);
}

/* Makes t the tail; the reserve follows it when it is a copy chunk. */
static void set_tail(evc_outq *q, evc_chunk *t)
{
    sync_tail(q);
    q->tail = t;
    if (t && t->kind == CHUNK_COPY) {
        q->room = t->copy + t->len;
        refresh_room(q);
    } else {
        q->room = q->room_end = NULL;
    }
}

void evc__outq_set_append_limit(evc_outq *q, size_t limit)
{
    q->append_limit = limit;
    refresh_room(q);
}

static void append_chunk(evc_outq *q, evc_chunk *c)
{
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    set_tail(q, c);
}

/* Frees an unlinked chunk, running its release() or its producer's on_destroy. */
static void destroy_chunk(evc_chunk *c)
{
    switch (c->kind) {
    case CHUNK_REF:
        if (c->release)
            c->release(c->arg);
        break;
    case CHUNK_PRODUCER:
        free(c->stage);
        evc_producer_free(c->producer);
        break;
    case CHUNK_COPY:
    case CHUNK_CLOSE:
        break;
    }
    free(c);
}

/* Unlinks the head chunk and destroys it (user code may run). */
static void drop_head(evc_outq *q)
{
    evc_chunk *c = q->head;
    assert(c != NULL);
    q->head = c->next;
    if (!q->head)
        set_tail(q, NULL);
    q->bytes -= c->len - c->off;
    if (c->kind == CHUNK_REF)
        q->ref_bytes -= c->len - c->off;
    destroy_chunk(c);
}

/* True when nothing of the chunk remains to send or report. */
static bool exhausted(const evc_chunk *c)
{
    switch (c->kind) {
    case CHUNK_COPY:
    case CHUNK_REF:
        return c->off == c->len;
    case CHUNK_PRODUCER:
        return c->done && c->off == c->len;
    case CHUNK_CLOSE:
        break;
    }
    return false;
}

int evc__outq_push_copy(evc_outq *q, const void *bytes, size_t len)
{
    if (len == 0)
        return 0;
    sync_tail(q);
    const char *src = bytes;
    evc_chunk *t = q->tail;
    if (t && t == q->head && t->kind == CHUNK_COPY && t->cap < COPY_CHUNK_MIN &&
        len > t->cap - t->len && len <= COPY_CHUNK_MIN - t->len) {
        /* The small first chunk outgrew its room: grow it to a full chunk rather
         * than add a second, so a burst still goes out as one iovec.  Being the
         * only chunk, nothing links to it but the queue. */
        evc_chunk *g = realloc(t, sizeof *t + COPY_CHUNK_MIN);
        if (!g)
            return -ENOMEM;
        g->cap = COPY_CHUNK_MIN;
        g->bytes = g->copy;
        q->head = g;
        q->room = NULL;   /* pointed into the block realloc may have moved */
        set_tail(q, g);
        t = g;
    }
    size_t room = (t && t->kind == CHUNK_COPY) ? t->cap - t->len : 0;
    size_t first = room < len ? room : len;
    size_t rest = len - first;

    /* Allocate before touching the tail so a failure leaves the queue as it was. */
    evc_chunk *c = NULL;
    if (rest > 0) {
        size_t min = q->head ? COPY_CHUNK_MIN : COPY_CHUNK_FIRST;
        c = chunk_new(CHUNK_COPY, rest > min ? rest : min);
        if (!c)
            return -ENOMEM;
    }
    if (first > 0) {
        memcpy(t->copy + t->len, src, first);
        t->len += first;
        q->room = t->copy + t->len;
    }
    q->bytes += len;
    if (c) {
        memcpy(c->copy, src + first, rest);
        c->len = rest;
        append_chunk(q, c);
    }
    refresh_room(q);
    return 0;
}

int evc__outq_push_ref(evc_outq *q, const void *bytes, size_t len, void (*release)(void *), void *arg)
{
    evc_chunk *c = chunk_new(CHUNK_REF, 0);
    if (!c)
        return -ENOMEM;
    c->bytes = bytes;
    c->len = len;
    c->release = release;
    c->arg = arg;
    q->bytes += len;
    q->ref_bytes += len;
    append_chunk(q, c);
    return 0;
}

int evc__outq_push_producer(evc_outq *q, evc_producer *p)
{
    assert(p != NULL && p->ops != NULL && p->ops->more != NULL);
    evc_chunk *c = chunk_new(CHUNK_PRODUCER, 0);
    if (!c)
        return -ENOMEM;
    c->producer = p;
    append_chunk(q, c);
    return 0;
}

int evc__outq_push_close(evc_outq *q)
{
    evc_chunk *c = chunk_new(CHUNK_CLOSE, 0);
    if (!c)
        return -ENOMEM;
    append_chunk(q, c);
    return 0;
}

/*
 * Asks a reached producer with empty staging for bytes, topping the staging up
 * while more() keeps answering bytes and room is left.  Sets done or err on the
 * chunk as the producer answers.
 */
static pull_result pull(evc_outq *q, evc_chunk *c)
{
    assert(c->off == c->len && !c->done && c->err == 0);
    if (!c->stage) {
        char *stage = malloc(STAGE_SIZE);
        if (!stage) {
            c->err = -ENOMEM;
            return PULL_OK;
        }
        c->cap = STAGE_SIZE;
        c->bytes = stage;
        c->stage = stage;   /* the chunk's from now on: destroy_chunk frees it */
    }
    c->off = c->len = 0;
    evc_producer *p = c->producer;
    while (c->cap - c->len >= (c->len == 0 ? 1 : STAGE_TOPUP_MIN)) {
        c->busy = true;
        ssize_t r = p->ops->more(p, c->stage + c->len, c->cap - c->len, p->data);
        c->busy = false;
        if (c->orphaned)
            return PULL_ORPHANED;
        if (r > 0) {
            /* A producer that wrote past cap has already corrupted memory. */
            assert((size_t)r <= c->cap - c->len);
            c->len += (size_t)r;
            q->bytes += (size_t)r;
            refresh_room(q);
            continue;
        }
        if (r == 0) {
            c->done = true;
            return PULL_OK;
        }
        if (r == EVC_NOT_YET)
            return PULL_NOT_YET;
        c->err = (int)r;
        return PULL_OK;
    }
    return PULL_OK;
}

/*
 * gcc's analyzer (12) reports the staging block pull() allocates as leaked on
 * the way back here.  It is not: the chunk holds it (c->stage) until
 * destroy_chunk, on every path, the orphaned one included.  The analyzer loses
 * the pointer because pull() calls the producer's more(), an unknown function
 * that it assumes may overwrite any memory it cannot see the bounds of.
 */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
evc_outq_state evc__outq_iov(evc_outq *q, struct iovec *iov, int max, int *niov, size_t *nbytes,
                             int *err)
{
    assert(max >= 0);
restart:
    sync_tail(q);
    *niov = 0;
    *nbytes = 0;
    *err = 0;
    for (evc_chunk *c = q->head; c; c = c->next) {
        if (c->kind == CHUNK_CLOSE)
            return EVC_OUTQ_CLOSE;
        if (is_direct(c) && !q->direct_off)
            return EVC_OUTQ_DIRECT;

        pull_result pr = PULL_OK;
        if (c->kind == CHUNK_PRODUCER && c->off == c->len && !c->done && c->err == 0) {
            /* more() runs only at the head of the queue, as the producer protocol
             * promises: what it does (a clock read, a log line, a shutdown) must
             * follow everything queued in front of it reaching the kernel. */
            if (*niov > 0 || c != q->head)
                return EVC_OUTQ_MORE;
            pr = pull(q, c);
            if (pr == PULL_ORPHANED) {
                /* The queue was cleared under us: what we described is gone. */
                destroy_chunk(c);
                goto restart;
            }
            sync_tail(q);   /* more() may have pushed behind us */
        }

        if (c->off == c->len) {
            if (c->kind == CHUNK_PRODUCER && c->err != 0) {
                *err = c->err;
                return EVC_OUTQ_ERROR;
            }
            if (pr == PULL_NOT_YET)
                return EVC_OUTQ_NOT_YET;
            /* pull() always asks at least once, so an empty unfinished
             * producer has answered NOT_YET or an error, handled above. */
            assert(exhausted(c));
            /* Finished chunks at the front go now; further back, consume drops
             * them once everything before them is written. */
            if (*niov == 0) {
                assert(c == q->head);
                drop_head(q);
                goto restart;
            }
            continue;
        }

        if (*niov == max)
            return EVC_OUTQ_MORE;
        iov[*niov].iov_base = (void *)(c->bytes + c->off);
        iov[*niov].iov_len = c->len - c->off;
        *nbytes += c->len - c->off;
        (*niov)++;

        if (c->kind == CHUNK_PRODUCER) {
            if (c->err != 0) {
                *err = c->err;
                return EVC_OUTQ_ERROR;
            }
            if (pr == PULL_NOT_YET)
                return EVC_OUTQ_NOT_YET;
            /* The producer's later bytes come before anything behind it. */
            if (!c->done)
                return EVC_OUTQ_MORE;
        }
    }
    return EVC_OUTQ_EMPTY;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#pragma GCC diagnostic pop
#endif

void evc__outq_consume(evc_outq *q, size_t n)
{
    assert(n <= q->bytes);
    sync_tail(q);
    /* First unlink what is finished, then run release()/on_destroy(): user code
     * that pushes or clears then sees a queue that is already consistent. */
    evc_chunk *done = NULL, **done_tail = &done;
    while (q->head) {
        evc_chunk *c = q->head;
        if (c->kind == CHUNK_CLOSE)
            break;
        size_t avail = c->len - c->off;
        size_t take = avail < n ? avail : n;
        c->off += take;
        q->bytes -= take;
        if (c->kind == CHUNK_REF)
            q->ref_bytes -= take;
        n -= take;
        if (!exhausted(c))
            break;      /* partly written, or a producer asked again at the next fill */
        q->head = c->next;
        if (!q->head)
            set_tail(q, NULL);
        c->next = NULL;
        *done_tail = c;
        done_tail = &c->next;
    }
    /* Bytes written past the front chunks would mean the caller lied about n. */
    assert(n == 0);
    refresh_room(q);
    while (done) {
        evc_chunk *next = done->next;
        destroy_chunk(done);
        done = next;
    }
}

ssize_t evc__outq_send_direct(evc_outq *q, int fd, size_t max)
{
    evc_chunk *c = q->head;
    assert(c != NULL && is_direct(c));
    evc_producer *p = c->producer;
    c->busy = true;
    ssize_t r = p->ops->send_to_fd(p, fd, max, p->data);
    c->busy = false;
    if (c->orphaned) {
        destroy_chunk(c);
        return r;
    }
    if (r == 0)
        drop_head(q);
    return r;
}

void evc__outq_pop_close(evc_outq *q)
{
    assert(q->head != NULL && q->head->kind == CHUNK_CLOSE);
    drop_head(q);
}

void evc__outq_clear(evc_outq *q)
{
    /* Detach first: release() and on_destroy() may push into the queue again. */
    evc_chunk *c = q->head;
    q->head = NULL;
    set_tail(q, NULL);
    q->bytes = 0;
    q->ref_bytes = 0;
    while (c) {
        evc_chunk *next = c->next;
        if (c->busy)
            c->orphaned = true;
        else
            destroy_chunk(c);
        c = next;
    }
}
