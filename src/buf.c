/*
 * evc_buf: a growable byte buffer with a read offset (asynchat's ac_in_buffer).
 *
 * The content is data[off, off+len) of a cap-byte block.  Readers consume from
 * the front by moving `off`; writers reserve room at the tail, write into it
 * and commit.  Every failure leaves the content exactly as it was.
 *
 * Blocks are reference-counted.  The buffer holds one reference to its block;
 * evc__buf_ref hands out more, so bytes the buffer delivered can be queued for
 * output by reference instead of copied (evc_chat_push_incoming).  A block
 * someone else references is never written, compacted, reallocated or reused
 * by the buffer: when the buffer needs room it moves its unconsumed rest to a
 * fresh block and drops its reference, and the block is freed (or goes back to
 * its source) when the last reference is released.  Counts are plain integers:
 * a block is touched only from the thread of the loop its buffer belongs to.
 *
 * Block sources.  A buffer may be given a block source (after h2o's buffer
 * prototype): the size of the block it starts with, and a few spare blocks of
 * that size.  The chat's input buffers use their loop's source with 64 KiB
 * blocks.  A chat reads into a 64 KiB block and, once everything read was
 * delivered, has no use for it until its next read, so an idle channel holds
 * no input memory.  Freeing and allocating that block on every read made
 * glibc trim and regrow the top of the heap (brk and fresh pages) in some heap
 * layouts, three times slower in the echo benchmark.  So the blocks go back to
 * the source instead: a loop's busy channels share a few warm blocks, and at
 * most EVC_POOL_BLOCKS idle ones are kept.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The first block, and the smallest block trim shrinks to. */
#define BUF_MIN_CAP ((size_t)4096)
/* trim shrinks a block that is more than this many times what the content needs. */
#define BUF_SHRINK_FACTOR 4

struct evc_block {
    evc_block_source *source;  /* where the block goes when its last reference is
                                * released, if it has the source's size; NULL: freed */
    size_t cap;                /* bytes in bytes[] */
    unsigned refs;             /* the buffer's own (while it uses the block) + handed out */
    _Alignas(16) char bytes[];
};

/* Free bytes after the content. */
static size_t tail_room(const evc_buf *b)
{
    return b->cap - b->off - b->len;
}

static bool block_shared(const evc_buf *b)
{
    return b->block && b->block->refs > 1;
}

/*
 * The block size for `need` bytes: BUF_MIN_CAP doubled until it fits (sizes
 * stay powers of two, which allocators like), or exactly `need` when doubling
 * would pass PTRDIFF_MAX.
 */
static size_t block_size_for(size_t need, size_t start)
{
    size_t cap = start < BUF_MIN_CAP ? BUF_MIN_CAP : start;
    while (cap < need) {
        if (cap > (size_t)PTRDIFF_MAX / 2)
            return need;
        cap *= 2;
    }
    return cap;
}

/* A block of cap bytes holding one reference: a spare of the source when it
 * has one of that size, else a new one.  NULL when out of memory. */
static evc_block *block_get(evc_block_source *src, size_t cap)
{
    if (src && cap == src->block_size && src->nspare > 0) {
        evc_block *blk = src->spare[--src->nspare];
        blk->refs = 1;
        return blk;
    }
    if (cap > (size_t)PTRDIFF_MAX - sizeof(evc_block))
        return NULL;
    evc_block *blk = malloc(sizeof *blk + cap);
    if (!blk)
        return NULL;
    blk->source = src;
    blk->cap = cap;
    blk->refs = 1;
    return blk;
}

void evc__block_release(void *block)
{
    evc_block *blk = block;
    assert(blk->refs > 0);
    if (--blk->refs > 0)
        return;
    evc_block_source *src = blk->source;
    if (src && blk->cap == src->block_size && src->nspare < EVC_POOL_BLOCKS) {
        src->spare[src->nspare++] = blk;
        return;
    }
    free(blk);
}

void evc__block_source_init(evc_block_source *src, size_t block_size)
{
    src->block_size = block_size;
    src->nspare = 0;
}

void evc__block_source_fini(evc_block_source *src)
{
    while (src->nspare > 0)
        free(src->spare[--src->nspare]);
}

/* Makes blk (or nothing) the buffer's block, which must be empty of content. */
static void use_block(evc_buf *b, evc_block *blk)
{
    b->block = blk;
    b->data = blk ? blk->bytes : NULL;
    b->cap = blk ? blk->cap : 0;
    b->off = 0;
    b->written = 0;
}

/* The size of a fresh block for `need` bytes: the source's block size when that
 * is enough and no smaller than `start` (so spare blocks are reused, and a
 * growing buffer still doubles), else powers of two from `start`. */
static size_t fresh_size(const evc_buf *b, size_t need, size_t start)
{
    if (b->source && need <= b->source->block_size && start <= b->source->block_size)
        return b->source->block_size;
    return block_size_for(need, start);
}

/* Moves the content to the front of a fresh block of new_cap bytes (>= len) and
 * drops the buffer's reference to the old one, which others may still hold. */
static int move_to_new_block(evc_buf *b, size_t new_cap)
{
    evc_block *blk = block_get(b->source, new_cap);
    if (!blk)
        return -ENOMEM;
    if (b->len > 0)
        memcpy(blk->bytes, b->data + b->off, b->len);
    evc_block *old = b->block;
    size_t len = b->len;
    use_block(b, blk);
    b->len = len;
    b->written = len;
    if (old)
        evc__block_release(old);
    return 0;
}

int evc__buf_reserve(evc_buf *b, size_t min_free)
{
    bool shared = block_shared(b);
    if (!shared && tail_room(b) >= min_free)
        return 0;

    /* No allocator hands out more than PTRDIFF_MAX bytes; refusing early also
     * keeps the size arithmetic below free of overflow. */
    if (min_free > (size_t)PTRDIFF_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + min_free;

    /* Bytes of a shared block may be waiting in someone's output queue: leave
     * the block to them and carry on in a fresh one. */
    if (shared)
        return move_to_new_block(b, fresh_size(b, need, BUF_MIN_CAP));

    /*
     * Compacting (moving the content to the front of the block) is preferred to
     * growing when it frees enough room, but only when the content is no larger
     * than the consumed prefix it overwrites.  Like hiredis, which discards its
     * consumed prefix only past a threshold, this keeps memmove from running on
     * every read of a nearly full buffer: each byte moved is paid for by a byte
     * consumed since the last move, so the total copying stays linear in the
     * bytes that went through the buffer.
     */
    if (b->cap >= need && b->len <= b->off) {
        /* An empty buffer may have no block at all, and memmove wants valid
         * pointers even for 0 bytes. */
        if (b->len > 0) {
            /* Content always lies in a block; said for static analysis,
             * which cannot see it. */
            assert(b->data != NULL);
            memmove(b->data, b->data + b->off, b->len);
        }
        b->off = 0;
        return 0;
    }

    /* Growing copies only the content (not the consumed prefix) into the new
     * block, so a grown buffer is also compacted.  Doubling keeps the number of
     * copies logarithmic in the final size. */
    size_t new_cap = fresh_size(b, need, b->cap <= (size_t)PTRDIFF_MAX / 2 ? b->cap * 2 : b->cap);
    bool spare_fits = b->source && new_cap == b->source->block_size;
    if (b->off == 0 && b->block && !spare_fits) {
        if (new_cap > (size_t)PTRDIFF_MAX - sizeof(evc_block))
            return -ENOMEM;
        evc_block *blk = realloc(b->block, sizeof *blk + new_cap);
        if (!blk)
            return -ENOMEM;
        blk->cap = new_cap;
        b->block = blk;
        b->data = blk->bytes;
        b->cap = new_cap;
        return 0;
    }
    return move_to_new_block(b, new_cap);
}

char *evc__buf_tail(evc_buf *b, size_t *avail)
{
    if (!b->data) {
        *avail = 0;
        return NULL;
    }
    /* Only reserve makes a shared block the buffer's own again. */
    assert(!block_shared(b));
    *avail = tail_room(b);
    return b->data + b->off + b->len;
}

/* Notes that the content's end has been written. */
static void note_written(evc_buf *b)
{
    if (b->off + b->len > b->written)
        b->written = b->off + b->len;
}

void evc__buf_commit(evc_buf *b, size_t n)
{
    assert(n <= tail_room(b));
    assert(!block_shared(b));
    b->len += n;
    note_written(b);
}

void evc__buf_consume(evc_buf *b, size_t n)
{
    assert(n <= b->len);
    b->len -= n;
    /* An empty buffer starts again at the front, so the whole block is tail room
     * and no compaction is ever needed for it. */
    b->off = b->len == 0 ? 0 : b->off + n;
}

int evc__buf_append(evc_buf *b, const void *bytes, size_t n)
{
    if (n == 0)
        return 0;
    /* The bytes may be part of this buffer's own content, which reserve may move:
     * remember where they sit relative to the content and find them again. */
    const char *p = bytes;
    const char *head = b->data ? b->data + b->off : NULL;
    bool inside = head && p >= head && p < head + b->len;
    size_t rel = inside ? (size_t)(p - head) : 0;

    int rc = evc__buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (inside)
        p = b->data + b->off + rel;
    memcpy(b->data + b->off + b->len, p, n);
    b->len += n;
    note_written(b);
    return 0;
}

void evc__buf_clear(evc_buf *b)
{
    b->off = 0;
    b->len = 0;
}

void evc__buf_trim(evc_buf *b)
{
    if (b->len == 0) {
        evc__buf_free(b);
        return;
    }
    size_t need = block_size_for(b->len, BUF_MIN_CAP);
    if (b->cap / BUF_SHRINK_FACTOR <= need)
        return;
    /* Shrinking is an optimisation: when the smaller block cannot be had, the
     * bigger one still holds the content, so the failure is ignored. */
    (void)move_to_new_block(b, need);
}

void evc__buf_free(evc_buf *b)
{
    evc_block *blk = b->block;
    use_block(b, NULL);
    b->len = 0;
    if (blk)
        evc__block_release(blk);
}

void evc__buf_init(evc_buf *b, evc_block_source *source)
{
    *b = (evc_buf)EVC_BUF_INIT;
    b->source = source;
}

evc_block *evc__buf_ref(evc_buf *b, const void *bytes, size_t len)
{
    if (!b->block || !bytes)
        return NULL;
    /* Compared as integers: the bytes may belong to another object entirely. */
    uintptr_t p = (uintptr_t)bytes, start = (uintptr_t)b->data;
    if (p < start || p - start > b->written || len > b->written - (p - start))
        return NULL;
    b->block->refs++;
    return b->block;
}

unsigned evc__buf_refs(const evc_buf *b)
{
    return b->block ? b->block->refs : 0;
}
