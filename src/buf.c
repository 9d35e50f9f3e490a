/*
 * evc_buf: a growable byte buffer with a read offset (asynchat's ac_in_buffer).
 *
 * The content is data[off, off+len) of a cap-byte block.  Readers consume from
 * the front by moving `off`; writers reserve room at the tail, write into it
 * and commit.  Every failure leaves the content exactly as it was.
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

/* Free bytes after the content. */
static size_t tail_room(const evc_buf *b)
{
    return b->cap - b->off - b->len;
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

/* Moves the content to the front of a new block of new_cap bytes (>= len). */
static int move_to_new_block(evc_buf *b, size_t new_cap)
{
    char *block = malloc(new_cap);
    if (!block)
        return -ENOMEM;
    if (b->len > 0)
        memcpy(block, b->data + b->off, b->len);
    free(b->data);
    b->data = block;
    b->off = 0;
    b->cap = new_cap;
    return 0;
}

int evc__buf_reserve(evc_buf *b, size_t min_free)
{
    if (tail_room(b) >= min_free)
        return 0;

    /* No allocator hands out more than PTRDIFF_MAX bytes; refusing early also
     * keeps the size arithmetic below free of overflow. */
    if (min_free > (size_t)PTRDIFF_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + min_free;

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
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return 0;
    }

    /* Growing copies only the content (not the consumed prefix) into the new
     * block, so a grown buffer is also compacted.  Doubling keeps the number of
     * copies logarithmic in the final size. */
    size_t new_cap = block_size_for(need, b->cap <= (size_t)PTRDIFF_MAX / 2 ? b->cap * 2 : b->cap);
    if (b->off == 0 && b->data) {
        char *block = realloc(b->data, new_cap);
        if (!block)
            return -ENOMEM;
        b->data = block;
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
    *avail = tail_room(b);
    return b->data + b->off + b->len;
}

void evc__buf_commit(evc_buf *b, size_t n)
{
    assert(n <= tail_room(b));
    b->len += n;
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
    free(b->data);
    b->data = NULL;
    b->off = 0;
    b->len = 0;
    b->cap = 0;
}

void evc__buf_adopt(evc_buf *b, void *block, size_t cap)
{
    assert(b->data == NULL && b->len == 0);
    b->data = block;
    b->off = 0;
    b->cap = cap;
}

void *evc__buf_detach(evc_buf *b)
{
    assert(b->len == 0);
    void *block = b->data;
    b->data = NULL;
    b->off = 0;
    b->cap = 0;
    return block;
}
