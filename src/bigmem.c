/*
 * Large one-off buffers straight from the kernel: evc_shared's.
 *
 * A shared buffer is allocated once per broadcast, written once, and freed
 * when the last chat has sent it.  Mapped, its pages go back to the kernel
 * the moment it is freed; from malloc, an 18 MB message freed in the middle of
 * the heap would stay resident until something trims the heap.  Tuning malloc
 * (mallopt, M_MMAP_THRESHOLD) would fix it for the whole process, which a
 * library may not decide for its user.
 *
 * Why only these.  Mapping every large frame and output block as well was
 * measured (a 1 MiB frame read, a 1 MiB push written, over and over on one
 * chat): 1.7 to 3.8 times slower than malloc, which reuses warm heap memory
 * where a fresh mapping takes a page fault per 4 KiB.  The memory those
 * buffers leave behind when hostile clients go is given back by the heap trim
 * in chat_memory.c instead, which alone brings 2,000 departed 1 MiB frames
 * down to 3.6 MB.
 *
 * Blocks under EVC_BIG_MIN stay with malloc.  The caller passes the size back
 * on free and realloc, which is what decides where a block came from.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Rounds a mapped size up to whole pages. */
static size_t map_size(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) & ~(page - 1);
}

static bool is_big(size_t size)
{
    return size >= EVC_BIG_MIN;
}

void *evc__big_alloc(size_t size)
{
    if (!is_big(size))
        return malloc(size);
    if (size > (size_t)PTRDIFF_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = mmap(NULL, map_size(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void evc__big_free(void *p, size_t size)
{
    if (!p)
        return;
    if (is_big(size))
        munmap(p, map_size(size));
    else
        free(p);
}

void *evc__big_realloc(void *p, size_t old_size, size_t new_size)
{
    if (!is_big(old_size) && !is_big(new_size))
        return realloc(p, new_size);
#ifdef MREMAP_MAYMOVE
    if (is_big(old_size) && is_big(new_size)) {
        if (new_size > (size_t)PTRDIFF_MAX / 2)
            return NULL;
        void *q = mremap(p, map_size(old_size), map_size(new_size), MREMAP_MAYMOVE);
        return q == MAP_FAILED ? NULL : q;
    }
#endif
    /* Across the threshold (or without mremap): a new block and a copy. */
    void *q = evc__big_alloc(new_size);
    if (!q)
        return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    evc__big_free(p, old_size);
    return q;
}
