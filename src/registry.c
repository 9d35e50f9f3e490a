/*
 * The loop table: which dispatchers a loop has (for evc_close_all), and where
 * the loop's other per-loop objects live: its source of read blocks (buf.c),
 * its urgent-data watcher (oob.c) and its memory account (chat_memory.c).
 * This file keeps the entries; what is in them belongs to those files.
 *
 * Why a process-wide table.  evc_close_all(loop) must find every dispatcher
 * of a loop, and libev offers no way to do that for us: ev_walk is compiled
 * out of Debian's libev, and ev_userdata belongs to the application, so the
 * library may not claim it.  The alternatives were an explicit "context"
 * object every user would have to create and pass around (a new concept
 * Python's asyncore does not have, and a break of the agreed API) or this
 * small table keyed by loop pointer.  We chose the table.  It is the only
 * mutable state in the library shared between loops; it is guarded by one
 * mutex, touched only when a dispatcher is created or destroyed and by
 * evc_close_all (never on the I/O path), and an entry is freed with the last
 * dispatcher of its loop, so a program that stops using evchat on a loop
 * leaves nothing behind.  Everything inside an entry belongs to that loop's
 * thread, like the loop itself, so only the table is locked; the one
 * exception is the loop's posts (loop_post.c), which other threads reach
 * through the table and which carry their own mutex, always taken after
 * table_lock.  Open posts pin the entry, so that a loop keeps taking posts
 * while it has no dispatcher at all.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct evc_loop_entry {
    struct ev_loop *loop;
    evc_loop_entry *next;   /* next loop in the table */
    evc_reg_link head;      /* circular list of the loop's dispatchers */
    size_t count;           /* dispatchers in the list */
    evc_block_source blocks; /* the chats' read blocks */
    evc_oob *oob;           /* urgent-data watcher, NULL until first needed */
    /* Cross-thread posts and the blocking-work pool (loop_post.c, work_pool.c).
     * `posts` is written under table_lock, so that another thread can find it
     * there; while it is set the entry is pinned and outlives its dispatchers. */
    evc_posts *posts;
    /* server.c's question "who took this accepted fd?" (evc__registry_claim_*). */
    int claim_fd;           /* -1 when no claim is open */
    evc_dispatcher *claim_adopter;
    evc_loop_memory memory; /* what the loop's chats hold, and the budget (chat_memory.c) */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static evc_loop_entry *table;

/* The loop's entry, or NULL.  Call with table_lock held. */
static evc_loop_entry *find_locked(struct ev_loop *loop)
{
    for (evc_loop_entry *e = table; e; e = e->next)
        if (e->loop == loop)
            return e;
    return NULL;
}

/* The loop's entry, added to the table if it has none; NULL when out of memory.
 * Call with table_lock held. */
static evc_loop_entry *find_or_add_locked(struct ev_loop *loop)
{
    evc_loop_entry *e = find_locked(loop);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->loop = loop;
    e->claim_fd = -1;
    e->head.prev = e->head.next = &e->head;
    evc__block_source_init(&e->blocks, EVC_READ_BLOCK);
    e->next = table;
    table = e;
    return e;
}

/* Takes an entry nothing uses any more out of the table.  Call with table_lock held. */
static void unlink_locked(evc_loop_entry *e)
{
    for (evc_loop_entry **pp = &table; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            return;
        }
    }
}

/* Frees an entry out of the table. */
static void free_entry(evc_loop_entry *e)
{
    /* Every dispatcher unregistered its fd at close, so the watcher is
     * stopped; and every chat released its blocks in its on_destroy, which
     * ran before the last detach, so none can come back to the source. */
    if (e->oob)
        evc__oob_free(e->oob);
    evc__block_source_fini(&e->blocks);
    free(e);
}

evc_loop_entry *evc__registry_attach(struct ev_loop *loop, evc_reg_link *link)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_or_add_locked(loop);
    if (!e) {
        pthread_mutex_unlock(&table_lock);
        errno = ENOMEM;
        return NULL;
    }
    /* New dispatchers go to the tail so evc_close_all closes in creation order. */
    link->next = &e->head;
    link->prev = e->head.prev;
    e->head.prev->next = link;
    e->head.prev = link;
    e->count++;
    pthread_mutex_unlock(&table_lock);
    return e;
}

void evc__registry_detach(evc_loop_entry *e, evc_reg_link *link)
{
    pthread_mutex_lock(&table_lock);
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
    /* Posts that are open pin the entry: it goes with the last of both. */
    bool unused = --e->count == 0 && !e->posts;
    if (unused)
        unlink_locked(e);
    pthread_mutex_unlock(&table_lock);
    if (unused)
        free_entry(e);
}

evc_loop_entry *evc__registry_pin_posts(struct ev_loop *loop, evc_posts *posts)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_or_add_locked(loop);
    if (e)
        e->posts = posts;
    pthread_mutex_unlock(&table_lock);
    return e;
}

void evc__registry_unpin_posts(evc_loop_entry *e)
{
    pthread_mutex_lock(&table_lock);
    e->posts = NULL;
    bool unused = e->count == 0;
    if (unused)
        unlink_locked(e);
    pthread_mutex_unlock(&table_lock);
    if (unused)
        free_entry(e);
}

evc_posts *evc__registry_lock_posts(struct ev_loop *loop)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    evc_posts *p = e ? e->posts : NULL;
    /* Locked before the table is let go (the order is always table, then a
     * loop's posts), so the loop thread cannot free them in between. */
    if (p)
        evc__posts_lock(p);
    pthread_mutex_unlock(&table_lock);
    return p;
}

evc_posts *evc__registry_posts(struct ev_loop *loop)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    evc_posts *p = e ? e->posts : NULL;
    pthread_mutex_unlock(&table_lock);
    return p;
}

evc_block_source *evc__registry_blocks(evc_loop_entry *e)
{
    return &e->blocks;
}

evc_oob *evc__registry_oob(evc_loop_entry *e)
{
    if (!e->oob)
        e->oob = evc__oob_new(e->loop);
    return e->oob;
}

void evc__registry_claim_begin(evc_loop_entry *e, int fd)
{
    e->claim_fd = fd;
    e->claim_adopter = NULL;
}

evc_dispatcher *evc__registry_claim_end(evc_loop_entry *e)
{
    evc_dispatcher *d = e->claim_adopter;
    e->claim_fd = -1;
    e->claim_adopter = NULL;
    return d;
}

void evc__registry_adopted(evc_loop_entry *e, int fd, evc_dispatcher *d)
{
    if (e->claim_fd >= 0 && e->claim_fd == fd && !e->claim_adopter)
        e->claim_adopter = d;
}

evc_loop_memory *evc__registry_memory(evc_loop_entry *e)
{
    return &e->memory;
}

evc_loop_entry *evc__registry_find(struct ev_loop *loop)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    pthread_mutex_unlock(&table_lock);
    return e;
}

void evc_close_all(struct ev_loop *loop)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    pthread_mutex_unlock(&table_lock);
    if (!e)
        return;
    /*
     * evc_dispatcher_close runs no user code and unlinks nothing (the link
     * goes away with the deferred destroy, from the loop), so the list cannot
     * change under this walk; `next` is still taken first so that stays true
     * if close ever learns to unlink.
     */
    for (evc_reg_link *l = e->head.next, *next; l != &e->head; l = next) {
        next = l->next;
        evc_dispatcher_close(l->owner);
    }
}

size_t evc__registry_dispatchers(struct ev_loop *loop)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    size_t count = e ? e->count : 0;
    pthread_mutex_unlock(&table_lock);
    return count;
}
