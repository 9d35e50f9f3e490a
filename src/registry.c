/*
 * Per-loop bookkeeping: which dispatchers a loop has (for evc_close_all), the
 * loop's urgent-data watcher, and its pool of spare read blocks.
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
 * thread, like the loop itself, so only the table is locked.
 *
 * Urgent data.  libev watches readability and writability, never POLLPRI, so
 * each loop that has dispatchers with a handle_expt gets one epoll fd (kept
 * here) watched by one ev_io.  Each such dispatcher's socket is registered
 * with EPOLLPRI, edge-triggered: an urgent byte the handler leaves unread is
 * reported again only when more data arrives, so it can never make the loop
 * spin.
 *
 * Read blocks.  A chat reads into a 64 KiB block and, once everything read
 * was delivered, has no use for it until its next read, so an idle channel
 * holds no input memory.  Freeing and allocating that block on every read
 * made glibc trim and regrow the top of the heap (brk and fresh pages) in
 * some heap layouts, three times slower in the echo benchmark.  So the blocks
 * go back to a small per-loop pool instead: the loop's busy channels share a
 * few warm blocks, and at most EVC_POOL_BLOCKS idle ones are kept.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <ev.h>

/* Urgent-data events taken per wake-up; more simply wake the loop again. */
#define OOB_BATCH 32

struct evc_loop_entry {
    struct ev_loop *loop;
    evc_loop_entry *next;   /* next loop in the table */
    evc_reg_link head;      /* circular list of the loop's dispatchers */
    size_t count;           /* dispatchers in the list */
    int epfd;               /* urgent-data epoll fd, -1 until first needed */
    ev_io oob_watcher;      /* readable epfd; active while oob_count > 0 */
    size_t oob_count;       /* fds registered with epfd */
    void *blocks[EVC_POOL_BLOCKS]; /* spare read blocks of EVC_READ_BLOCK bytes */
    size_t nblocks;
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

evc_loop_entry *evc__registry_attach(struct ev_loop *loop, evc_reg_link *link)
{
    pthread_mutex_lock(&table_lock);
    evc_loop_entry *e = find_locked(loop);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&table_lock);
            errno = ENOMEM;
            return NULL;
        }
        e->loop = loop;
        e->head.prev = e->head.next = &e->head;
        e->epfd = -1;
        e->next = table;
        table = e;
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
    if (--e->count == 0) {
        for (evc_loop_entry **pp = &table; *pp; pp = &(*pp)->next) {
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        }
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&table_lock);
    if (e) {
        /* Every dispatcher unregistered its fd at close, so the watcher is stopped. */
        if (e->epfd >= 0)
            close(e->epfd);
        while (e->nblocks > 0)
            free(e->blocks[--e->nblocks]);
        free(e);
    }
}

void *evc__registry_block_take(evc_loop_entry *e)
{
    return e->nblocks > 0 ? e->blocks[--e->nblocks] : malloc(EVC_READ_BLOCK);
}

void evc__registry_block_give(evc_loop_entry *e, void *block)
{
    if (e->nblocks < EVC_POOL_BLOCKS)
        e->blocks[e->nblocks++] = block;
    else
        free(block);
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

static void oob_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    evc_loop_entry *e = w->data;
    struct epoll_event evs[OOB_BATCH];
    (void)loop;
    (void)revents;
    int n;
    do
        n = epoll_wait(e->epfd, evs, OOB_BATCH, 0);
    while (n < 0 && errno == EINTR);
    /*
     * A handler may close other dispatchers of this batch; their memory lives
     * until their deferred destroy, which cannot run before this returns, and
     * evc__dispatcher_expt ignores closed ones.
     */
    for (int i = 0; i < n; i++) {
        /* epoll always reports hang-ups and errors; those belong to the ev_io. */
        if (!(evs[i].events & EPOLLPRI))
            continue;
        evc_reg_link *link = evs[i].data.ptr;
        evc__dispatcher_expt(link->owner);
    }
}

int evc__registry_oob_add(evc_loop_entry *e, int fd, evc_reg_link *link)
{
    if (e->epfd < 0) {
        e->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (e->epfd < 0)
            return -errno;
        ev_io_init(&e->oob_watcher, oob_ready, e->epfd, EV_READ);
        e->oob_watcher.data = e;
    }
    struct epoll_event ev = {.events = EPOLLPRI | EPOLLET, .data.ptr = link};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    if (e->oob_count++ == 0)
        ev_io_start(e->loop, &e->oob_watcher);
    return 0;
}

void evc__registry_oob_del(evc_loop_entry *e, int fd)
{
    /* The fd is still open here, so this cannot fail in a way that leaves it registered. */
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (--e->oob_count == 0)
        ev_io_stop(e->loop, &e->oob_watcher);
}
