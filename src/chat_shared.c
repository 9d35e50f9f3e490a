/*
 * Shared bytes: one buffer, reference-counted, queued on many chats.
 *
 * A chat room relaying one member's 18 MB message to a thousand members that
 * do not read copied it a thousand times (967 MB) with evc_chat_push.  With
 * evc_shared the bytes are copied once; each queue holds a reference, which
 * its chat drops when the bytes are written or discarded, and the buffer goes
 * when the last reference does.
 *
 * The count is atomic so that chats of different loops (worker threads) may
 * queue the same buffer; the bytes are never written after evc_shared_new, so
 * nothing else needs a lock.  Large buffers are mapped (evc__big_alloc), so
 * their pages go back to the kernel with the last reference.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct evc_shared {
    unsigned long refs;        /* the creator's, and one per queued push */
    size_t len;
    _Alignas(16) char bytes[];
};

static size_t shared_size(size_t len)
{
    return sizeof(evc_shared) + len;
}

evc_shared *evc_shared_new(const void *bytes, size_t len)
{
    if ((!bytes && len > 0) || len > (size_t)PTRDIFF_MAX - sizeof(evc_shared)) {
        errno = EINVAL;
        return NULL;
    }
    evc_shared *sh = evc__big_alloc(shared_size(len));
    if (!sh) {
        errno = ENOMEM;
        return NULL;
    }
    sh->refs = 1;
    sh->len = len;
    if (len > 0)
        memcpy(sh->bytes, bytes, len);
    return sh;
}

void evc_shared_release(evc_shared *sh)
{
    if (!sh)
        return;
    if (__atomic_sub_fetch(&sh->refs, 1, __ATOMIC_ACQ_REL) == 0)
        evc__big_free(sh, shared_size(sh->len));
}

/* A queue's release callback. */
static void release_queued(void *arg)
{
    evc_shared_release(arg);
}

int evc_chat_push_shared(evc_chat *c, evc_shared *sh)
{
    if (!c || !sh)
        return -EINVAL;
    __atomic_add_fetch(&sh->refs, 1, __ATOMIC_RELAXED);
    int rc = evc_chat_push_ref(c, sh->bytes, sh->len, release_queued, sh);
    if (rc < 0)
        __atomic_sub_fetch(&sh->refs, 1, __ATOMIC_RELAXED);   /* the caller still holds one */
    return rc;
}

const void *evc_shared_bytes(const evc_shared *sh, size_t *len)
{
    *len = sh->len;
    return sh->bytes;
}
