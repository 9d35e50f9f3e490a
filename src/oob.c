/*
 * Urgent (TCP out-of-band) data for dispatchers that have a handle_expt.
 *
 * libev watches readability and writability, never POLLPRI, so each loop that
 * has dispatchers with a handle_expt gets one epoll fd, watched by one ev_io.
 * Each such dispatcher's socket is registered with EPOLLPRI, edge-triggered:
 * an urgent byte the handler leaves unread is reported again only when more
 * data arrives, so it can never make the loop spin.  The watcher belongs to
 * its loop (the loop's registry entry keeps it) and is touched only from that
 * loop's thread.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <ev.h>

/* Urgent-data events taken per wake-up; more simply wake the loop again. */
#define OOB_BATCH 32

struct evc_oob {
    struct ev_loop *loop;
    int epfd;
    ev_io watcher;      /* readable epfd; active while count > 0 */
    size_t count;       /* fds registered with epfd */
};

static void oob_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    evc_oob *o = w->data;
    struct epoll_event evs[OOB_BATCH];
    (void)loop;
    (void)revents;
    int n;
    do
        n = epoll_wait(o->epfd, evs, OOB_BATCH, 0);
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

evc_oob *evc__oob_new(struct ev_loop *loop)
{
    evc_oob *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (o->epfd < 0) {
        int saved = errno;
        free(o);
        errno = saved;
        return NULL;
    }
    o->loop = loop;
    ev_io_init(&o->watcher, oob_ready, o->epfd, EV_READ);
    o->watcher.data = o;
    return o;
}

void evc__oob_free(evc_oob *o)
{
    /* Every dispatcher removed its fd at close, so the watcher is stopped. */
    close(o->epfd);
    free(o);
}

int evc__oob_add(evc_oob *o, int fd, evc_reg_link *link)
{
    struct epoll_event ev = {.events = EPOLLPRI | EPOLLET, .data.ptr = link};
    if (epoll_ctl(o->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    if (o->count++ == 0)
        ev_io_start(o->loop, &o->watcher);
    return 0;
}

void evc__oob_del(evc_oob *o, int fd)
{
    /* The fd is still open here, so this cannot fail in a way that leaves it registered. */
    epoll_ctl(o->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (--o->count == 0)
        ev_io_stop(o->loop, &o->watcher);
}
