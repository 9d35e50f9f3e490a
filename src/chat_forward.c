/*
 * Forwarding without a copy: evc_chat_push_incoming queues bytes a chat was
 * handed (by collect_incoming_data, or as evc_chat_incoming's frame) on a chat
 * of the same loop by reference to the read block they sit in.  A proxy, or a
 * server streaming a body back, then moves each byte from the socket into a
 * read block and from there to the kernel, never through the output queue's
 * copy chunks.
 *
 * The read block is reference-counted (buf.c): the queued reference keeps it
 * from being written, moved or reused until its bytes are written or
 * discarded, whatever the source chat does meanwhile (read again, discard its
 * buffers, close).  The count is not atomic, which is why both chats must
 * belong to one loop, and so to one thread.  When the last reference goes, the
 * block returns to the loop's source; the loop's registry entry, which holds
 * the source, lives until the loop's last dispatcher has run its on_destroy,
 * and a chat's queue is emptied in its on_destroy at the latest.
 */
#include "chat_internal.h"

/*
 * Runs shorter than this are copied: a reference costs a queue chunk of its own
 * (an allocation, an iovec) where a short copy joins the tail chunk with the
 * replies around it, so for a line or a header a copy is the cheaper of the two.
 */
#define FORWARD_COPY_MAX ((size_t)512)

/* True when [p, p+len) lies within [start, start+n) (pointers compared as integers:
 * the bytes may belong to another object entirely). */
static bool within(const void *p, size_t len, const char *start, size_t n)
{
    uintptr_t a = (uintptr_t)p, s = (uintptr_t)start;
    return start && a >= s && a - s <= n && len <= n - (a - s);
}

int evc_chat_push_incoming(evc_chat *to, evc_chat *from, const void *bytes, size_t len)
{
    if (!to || !from || !bytes)
        return -EINVAL;
    if (evc__dispatcher_entry(to->disp) != evc__dispatcher_entry(from->disp))
        return -EXDEV;
    /* A frame the default collector assembled from several reads lives in from's
     * frame buffer, which is freed when the frame is done: it is copied. */
    bool in_frame = within(bytes, len, evc__buf_head(&from->frame), from->frame.len);
    bool in_block = within(bytes, len, from->in.data, from->in.written);
    if (!in_frame && !in_block)
        return -EINVAL;
    if (in_frame || len < FORWARD_COPY_MAX)
        return evc_chat_push(to, bytes, len);
    evc_block *block = evc__buf_ref(&from->in, bytes, len);
    if (!block)
        return -EINVAL;
    int rc = evc_chat_push_ref(to, bytes, len, evc__block_release, block);
    if (rc < 0)
        evc__block_release(block);   /* a failed push never calls release */
    return rc;
}
