/*
 * Worker loops: socketserver's ThreadingTCPServer, the evchat way.  Not a
 * thread per connection but a loop per core, each serving its share of the
 * connections to completion; a connection never moves between loops, so
 * everything about it (its chat, its buffers, the loop's read blocks) stays
 * on one thread and needs no lock.
 *
 * Two ways to spread the connections, chosen by evc_workers_new's flags:
 *
 *   - EVC_WORKERS_REUSEPORT: every worker has its own listening socket, all
 *     bound to the same address with SO_REUSEPORT, and the kernel spreads new
 *     connections over them by a hash of the peer's address.  No thread
 *     touches another's connections at all.  (A unix socket cannot be shared
 *     that way: there the workers watch one listening socket together.)
 *   - EVC_WORKERS_ACCEPTOR: one listener on evc_workers_run's thread accepts
 *     and deals the fds round robin; each worker has an inbox (a mutex and an
 *     array whose memory is reused) and an ev_async that wakes it.
 *
 * bench/workers.sh measures both; REUSEPORT is the default, for the reasons
 * evc_server(3) gives.  The process variant (EVC_WORKERS_FORK) is in
 * workers_fork.c; one worker's life, setup to teardown, is here and is the
 * same in a thread and in a child process.
 *
 * Stopping is one flag and a wake-up per loop.  Every loop and its ev_async
 * exist from evc_workers_new to evc_workers_free, so evc_workers_stop, which
 * may run in a signal handler, only stores the flag and calls ev_async_send
 * (async-signal-safe by libev's contract) on loops that cannot go away
 * meanwhile.
 */
#include "workers_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Measured by bench/workers.sh: see evc_server(3), WORKERS. */
#define DEFAULT_DISTRIBUTION EVC_WORKERS_REUSEPORT

/* More workers than this is a mistake (a negative number passed as unsigned). */
#define MAX_WORKERS 4096

/* Loop passes a stopping worker spends running deferred destroys; each pass
 * runs every destroy fed so far, so a handful always suffices. */
#define SETTLE_PASSES 64

/* ---------------------------------------------------------------- stop */

void evc_workers_stop(evc_workers *w)
{
    if (!w)
        return;
    __atomic_store_n(&w->stop_requested, 1, __ATOMIC_SEQ_CST);
    if ((w->flags & EVC_WORKERS_FORK) && getpid() == w->supervisor) {
        /* The supervisor polls this pipe; a full pipe already says "stop". */
        ssize_t rc = write(w->stop_pipe[1], "", 1);
        (void)rc;
        return;
    }
    /* In a worker process only its own slot has a live loop. */
    for (unsigned i = 0; i < w->n; i++) {
        evc_worker *wk = &w->workers[i];
        struct ev_loop *loop = __atomic_load_n(&wk->live, __ATOMIC_ACQUIRE);
        if (loop)
            ev_async_send(loop, &wk->wake);
    }
    struct ev_loop *loop = __atomic_load_n(&w->acceptor_live, __ATOMIC_ACQUIRE);
    if (loop)
        ev_async_send(loop, &w->acceptor_wake);
}

/* ---------------------------------------------------------------- hand-offs */

/* Queues an accepted fd for wk; the caller wakes it.  0 or -ENOMEM. */
static int handoff_push(evc_worker *wk, int fd, const struct sockaddr *sa, socklen_t len)
{
    pthread_mutex_lock(&wk->lock);
    evc_handoff_queue *q = &wk->inbox;
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        evc_handoff *items = realloc(q->items, cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&wk->lock);
            return -ENOMEM;
        }
        q->items = items;
        q->cap = cap;
    }
    evc_handoff *h = &q->items[q->len++];
    h->fd = fd;
    h->len = len <= sizeof h->addr ? len : (socklen_t)sizeof h->addr;
    memcpy(&h->addr, sa, h->len);
    pthread_mutex_unlock(&wk->lock);
    return 0;
}

/*
 * Takes everything in the inbox and hands it to the user (or closes it when
 * stopping).  The two arrays are swapped under the lock, so the acceptor is
 * never held up by the user's handle_accepted.
 */
static void handoff_deliver(evc_worker *wk, bool stopping)
{
    pthread_mutex_lock(&wk->lock);
    evc_handoff_queue taken = wk->inbox;
    wk->inbox = wk->taking;
    pthread_mutex_unlock(&wk->lock);
    const struct evc_worker_ops *ops = wk->owner->ops;
    for (size_t i = 0; i < taken.len; i++) {
        evc_handoff *h = &taken.items[i];
        if (stopping || !ops->handle_accepted)
            close(h->fd);
        else
            ops->handle_accepted(wk->loop, h->fd, (const struct sockaddr *)&h->addr, h->len,
                                 wk->worker_data);
    }
    taken.len = 0;
    wk->taking = taken;
}

static void acceptor_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                              void *data)
{
    (void)d;
    evc_workers *w = data;
    evc_worker *wk = &w->workers[w->next];
    w->next = (w->next + 1) % w->n;
    if (handoff_push(wk, fd, sa, len) < 0)
        close(fd);   /* out of memory: the client sees the connection end */
    else
        ev_async_send(wk->loop, &wk->wake);
}

/* A listener keeps serving through accept errors, as evc_server does. */
static void listener_error(evc_dispatcher *d, int err, void *data)
{
    (void)d, (void)err, (void)data;
}

static const struct evc_dispatcher_ops acceptor_ops = {
    .handle_accepted = acceptor_accepted,
    .handle_error = listener_error,
};

/* ---------------------------------------------------------------- one worker */

static void worker_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                            void *data)
{
    (void)d;
    evc_worker *wk = data;
    if (wk->owner->ops->handle_accepted)
        wk->owner->ops->handle_accepted(wk->loop, fd, sa, len, wk->worker_data);
    else
        close(fd);
}

static const struct evc_dispatcher_ops worker_listener_ops = {
    .handle_accepted = worker_accepted,
    .handle_error = listener_error,
};

static void on_worker_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    evc_worker *wk = w->data;
    if (evc__workers_stopping(wk->owner)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    handoff_deliver(wk, false);
}

void evc__worker_wake_start(evc_worker *wk)
{
    ev_async_init(&wk->wake, on_worker_wake);
    wk->wake.data = wk;
    ev_async_start(wk->loop, &wk->wake);
    __atomic_store_n(&wk->live, wk->loop, __ATOMIC_RELEASE);
}

/* Runs the loop until the dispatchers evc_close_all closed are destroyed (their
 * on_destroy callbacks free the user's per-connection state). */
static void settle(struct ev_loop *loop)
{
    for (int i = 0; i < SETTLE_PASSES && evc__registry_dispatchers(loop) > 0; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

/*
 * A worker without a listener of its own (the acceptor's) holds an idle
 * dispatcher for its whole life: a loop's registry entry, with its pool of
 * read blocks, goes away with the loop's last dispatcher, and without this a
 * worker between two short connections would free and rebuild it each time.
 */
static const struct evc_dispatcher_ops anchor_ops;

static int start_listener(evc_worker *wk)
{
    if (wk->listen_fd < 0) {
        wk->listener = evc_dispatcher_new(wk->loop, &anchor_ops, wk);
        return wk->listener ? 0 : -ENOMEM;
    }
    wk->listener = evc_dispatcher_new(wk->loop, &worker_listener_ops, wk);
    if (!wk->listener)
        return -ENOMEM;
    int rc = evc_dispatcher_set_socket(wk->listener, wk->listen_fd);
    if (rc < 0)
        return rc;
    wk->listen_fd = -1;   /* the dispatcher owns it now */
    return 0;
}

void evc__worker_serve(evc_worker *wk)
{
    evc_workers *w = wk->owner;
    wk->worker_data = w->data;
    int rc = w->ops->setup ? w->ops->setup(wk->loop, wk->index, w->data, &wk->worker_data) : 0;
    if (rc < 0) {
        wk->setup_rc = rc;
        evc_workers_stop(w);
    } else {
        wk->set_up = true;
        rc = start_listener(wk);
        if (rc < 0) {
            wk->setup_rc = rc;
            evc_workers_stop(w);
        }
        ev_run(wk->loop, 0);   /* until on_worker_wake sees the stop */
    }
    /* Stop accepting, refuse what is still queued, then close every chat. */
    if (wk->listener)
        evc_dispatcher_close(wk->listener);
    wk->listener = NULL;
    handoff_deliver(wk, true);
    evc_close_all(wk->loop);
    settle(wk->loop);
    if (wk->set_up && w->ops->teardown)
        w->ops->teardown(wk->loop, wk->index, wk->worker_data, w->data);
    settle(wk->loop);
}

static void *worker_thread(void *arg)
{
    evc__worker_serve(arg);
    return NULL;
}

/* ---------------------------------------------------------------- acceptor */

static void on_acceptor_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void run_acceptor(evc_workers *w)
{
    evc_dispatcher *d = evc_dispatcher_new(w->acceptor_loop, &acceptor_ops, w);
    int rc = d ? evc_dispatcher_set_socket(d, w->acceptor_fd) : -ENOMEM;
    if (rc == 0)
        w->acceptor_fd = -1;
    else
        evc_workers_stop(w);
    ev_run(w->acceptor_loop, 0);
    if (d)
        evc_dispatcher_close(d);
    settle(w->acceptor_loop);
}

/* ---------------------------------------------------------------- listeners */

static int open_listener(const struct sockaddr_storage *ss, socklen_t len, int backlog,
                         bool reuseport)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    if (ss->ss_family == AF_UNIX)
        evc__remove_stale_unix_socket((const struct sockaddr_un *)ss, len);
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
             (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0))
        goto fail;
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/*
 * The listening sockets: one for the acceptor, or one per worker.  The first
 * is bound to addr as given; the others to the address it actually got, so a
 * port 0 becomes the same port for all.
 */
static int open_listeners(evc_workers *w, const struct sockaddr_storage *ss, socklen_t len,
                          int backlog)
{
    bool reuseport = (w->flags & EVC_WORKERS_REUSEPORT) != 0;
    int first = open_listener(ss, len, backlog, reuseport && ss->ss_family != AF_UNIX);
    if (first < 0)
        return first;
    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        if (sun->sun_path[0] != '\0')
            memcpy(w->unix_path, sun->sun_path, sizeof w->unix_path);
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(first, (struct sockaddr *)&bound, &blen) < 0 ||
        evc_addr_format((const struct sockaddr *)&bound, blen, w->address, sizeof w->address) < 0)
        snprintf(w->address, sizeof w->address, "?");
    if (!reuseport) {
        w->acceptor_fd = first;
        return 0;
    }
    w->workers[0].listen_fd = first;
    for (unsigned i = 1; i < w->n; i++) {
        int fd = ss->ss_family == AF_UNIX ? fcntl(first, F_DUPFD_CLOEXEC, 0)
                                          : open_listener(&bound, blen, backlog, true);
        if (fd < 0)
            return ss->ss_family == AF_UNIX ? -errno : fd;
        w->workers[i].listen_fd = fd;
    }
    return 0;
}

/* ---------------------------------------------------------------- new, run, free */

static int make_loop(struct ev_loop **loop)
{
    *loop = ev_loop_new(EVFLAG_AUTO);
    return *loop ? 0 : -ENOMEM;
}

/* What evc_workers_new needs besides the listeners: a loop and a wake-up per
 * worker (threads), the acceptor's loop, or the supervisor's pipe. */
static int prepare(evc_workers *w)
{
    if (w->flags & EVC_WORKERS_FORK) {
        return pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno : 0;
    }
    for (unsigned i = 0; i < w->n; i++) {
        int rc = make_loop(&w->workers[i].loop);
        if (rc < 0)
            return rc;
        evc__worker_wake_start(&w->workers[i]);
    }
    if (w->flags & EVC_WORKERS_ACCEPTOR) {
        int rc = make_loop(&w->acceptor_loop);
        if (rc < 0)
            return rc;
        ev_async_init(&w->acceptor_wake, on_acceptor_wake);
        ev_async_start(w->acceptor_loop, &w->acceptor_wake);
        __atomic_store_n(&w->acceptor_live, w->acceptor_loop, __ATOMIC_RELEASE);
    }
    return 0;
}

static int check_flags(unsigned *flags)
{
    unsigned how = *flags & (EVC_WORKERS_REUSEPORT | EVC_WORKERS_ACCEPTOR);
    if ((*flags & ~(EVC_WORKERS_REUSEPORT | EVC_WORKERS_ACCEPTOR | EVC_WORKERS_FORK)) ||
        how == (EVC_WORKERS_REUSEPORT | EVC_WORKERS_ACCEPTOR) ||
        ((*flags & EVC_WORKERS_FORK) && how == EVC_WORKERS_ACCEPTOR))
        return -EINVAL;
    /* Processes share nothing to deal fds through: always a listener each. */
    if (how == 0)
        *flags |= (*flags & EVC_WORKERS_FORK) ? EVC_WORKERS_REUSEPORT : DEFAULT_DISTRIBUTION;
    return 0;
}

evc_workers *evc_workers_new(const char *addr, int backlog, unsigned n, unsigned flags,
                             const struct evc_worker_ops *ops, void *data)
{
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)cpus : 1;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = !addr || !ops || n > MAX_WORKERS ? -EINVAL : check_flags(&flags);
    if (rc == 0)
        rc = evc_addr_parse(addr, &ss, &len);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    evc_workers *w = calloc(1, sizeof *w);
    if (!w || !(w->workers = calloc(n, sizeof *w->workers))) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->ops = ops;
    w->data = data;
    w->n = n;
    w->flags = flags;
    w->acceptor_fd = -1;
    w->supervisor = getpid();
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    for (unsigned i = 0; i < n; i++) {
        evc_worker *wk = &w->workers[i];
        wk->owner = w;
        wk->index = i;
        wk->listen_fd = -1;
        pthread_mutex_init(&wk->lock, NULL);
    }
    rc = open_listeners(w, &ss, len, backlog);
    if (rc == 0)
        rc = prepare(w);
    if (rc < 0) {
        evc_workers_free(w);
        errno = -rc;
        return NULL;
    }
    return w;
}

int evc_workers_address(const evc_workers *w, char *buf, size_t cap)
{
    size_t len = strlen(w->address);
    if (len >= cap)
        return -ENOSPC;
    memcpy(buf, w->address, len + 1);
    return (int)len;
}

unsigned evc_workers_count(const evc_workers *w)
{
    return w->n;
}

int evc_workers_run(evc_workers *w)
{
    if (w->ran)
        return -EBUSY;
    w->ran = true;
    if (w->flags & EVC_WORKERS_FORK)
        return evc__workers_supervise(w);

    /* Workers take no signals: a process-directed SIGTERM goes to a thread that
     * has not blocked it (the program's), whose handler calls evc_workers_stop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (unsigned i = 0; i < w->n && rc == 0; i++) {
        evc_worker *wk = &w->workers[i];
        int err = pthread_create(&wk->thread, NULL, worker_thread, wk);
        if (err)
            rc = -err;
        else
            wk->thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc < 0)
        evc_workers_stop(w);
    else if (w->flags & EVC_WORKERS_ACCEPTOR)
        run_acceptor(w);
    for (unsigned i = 0; i < w->n; i++) {
        evc_worker *wk = &w->workers[i];
        if (wk->thread_started)
            pthread_join(wk->thread, NULL);
        if (rc == 0 && wk->setup_rc < 0)
            rc = wk->setup_rc;
    }
    return rc;
}

void evc_workers_free(evc_workers *w)
{
    if (!w)
        return;
    for (unsigned i = 0; i < w->n; i++) {
        evc_worker *wk = &w->workers[i];
        if (wk->loop) {
            __atomic_store_n(&wk->live, NULL, __ATOMIC_RELEASE);
            ev_async_stop(wk->loop, &wk->wake);
            ev_loop_destroy(wk->loop);
        }
        if (wk->listen_fd >= 0)
            close(wk->listen_fd);
        for (size_t k = 0; k < wk->inbox.len; k++)
            close(wk->inbox.items[k].fd);
        free(wk->inbox.items);
        free(wk->taking.items);
        pthread_mutex_destroy(&wk->lock);
    }
    if (w->acceptor_loop) {
        __atomic_store_n(&w->acceptor_live, NULL, __ATOMIC_RELEASE);
        ev_async_stop(w->acceptor_loop, &w->acceptor_wake);
        ev_loop_destroy(w->acceptor_loop);
    }
    if (w->acceptor_fd >= 0)
        close(w->acceptor_fd);
    for (int i = 0; i < 2; i++)
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
    /* Only the process that bound the unix socket removes its path. */
    if (w->unix_path[0] != '\0' && (!(w->flags & EVC_WORKERS_FORK) || getpid() == w->supervisor))
        unlink(w->unix_path);
    free(w->workers);
    free(w);
}
