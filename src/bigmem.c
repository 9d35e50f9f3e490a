/*
 * Large buffers straight from the kernel: frame buffers, read blocks grown
 * past their pool size, big output copies and shared buffers.
 *
 * Why not malloc.  glibc serves a large request with mmap only until the first
 * such block is freed; then it raises its mmap threshold (up to 32 MiB) and
 * serves the next ones from the heap, where a block freed in the middle can be
 * given back only by a trim that nobody calls.  A server that two thousand
 * hostile clients made hold a 1 MiB frame each kept 418 to 708 MB after they
 * all left.  Tuning malloc (mallopt, M_MMAP_THRESHOLD) would fix it for the
 * whole process, which a library may not decide for its user.  So blocks of
 * EVC_BIG_MIN bytes and more are mapped and unmapped here, and their pages go
 * back to the kernel the moment they are released, whatever the allocator.
 * Growing uses mremap where the kernel has it, which moves pages instead of
 * copying bytes.  Smaller blocks stay with malloc, which is faster for them.
 *
 * The caller passes the size back on free and realloc (every caller knows it:
 * a block's capacity), which is what decides where a block came from.
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
