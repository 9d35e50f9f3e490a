/*
 * Worker loops: what workers.c (threads, the listeners, one worker's life)
 * and workers_fork.c (the process supervisor) share.  Never installed.
 */
#ifndef EVC_WORKERS_INTERNAL_H
#define EVC_WORKERS_INTERNAL_H

#include "internal.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ev.h>

/* A connection the acceptor accepted and a worker has not taken yet. */
typedef struct evc_handoff {
    int fd;
    socklen_t len;
    struct sockaddr_storage addr;
} evc_handoff;

/* A growable array of hand-offs; its memory is reused, so the steady state
 * allocates nothing per connection. */
typedef struct evc_handoff_queue {
    evc_handoff *items;
    size_t len;
    size_t cap;
} evc_handoff_queue;

typedef struct evc_worker {
    evc_workers *owner;
    unsigned index;
    /* The worker's loop: made by evc_workers_new for threads, by the child for
     * processes.  `live` is the same pointer once `wake` is started on it, and
     * the only field evc_workers_stop reads (from any thread or a signal). */
    struct ev_loop *loop;
    struct ev_loop *live;
    ev_async wake;             /* stop, or hand-offs waiting in `inbox` */
    int listen_fd;             /* this worker's listening socket until adopted; -1 if none */
    evc_dispatcher *listener;  /* the listener (or, with the acceptor, an idle anchor
                                * keeping the loop's registry entry) while serving */
    void *worker_data;         /* what setup made (or the user's data) */
    int setup_rc;              /* setup's failure, or 0 */
    bool set_up;               /* setup succeeded: teardown is owed */
    /* Threads. */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;      /* guards inbox: the acceptor appends, the worker takes */
    evc_handoff_queue inbox;
    evc_handoff_queue taking;  /* the worker's side of the swap; empty between wakes */
    /* Processes (in the supervisor's copy). */
    pid_t pid;                 /* the child serving this slot, 0 when none */
    double started;            /* when the slot's child was last forked (monotonic s) */
} evc_worker;

struct evc_workers {
    const struct evc_worker_ops *ops;
    void *data;
    unsigned n;
    unsigned flags;            /* exactly one of REUSEPORT / ACCEPTOR, maybe FORK */
    int stop_requested;        /* set once by evc_workers_stop; read with __atomic */
    bool ran;                  /* evc_workers_run was called */
    evc_worker *workers;
    char address[EVC_ADDRSTRLEN];
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* to unlink; "" if none */
    /* EVC_WORKERS_ACCEPTOR: the one listener, on evc_workers_run's thread. */
    int acceptor_fd;
    struct ev_loop *acceptor_loop;
    struct ev_loop *acceptor_live;
    ev_async acceptor_wake;
    unsigned next;             /* round robin: the worker the next connection goes to */
    /* EVC_WORKERS_FORK. */
    pid_t supervisor;          /* the process that called evc_workers_new */
    int stop_pipe[2];          /* evc_workers_stop wakes the supervisor through it */
};

/* Whether evc_workers_stop was called. */
static inline bool evc__workers_stopping(const evc_workers *w)
{
    return __atomic_load_n(&w->stop_requested, __ATOMIC_SEQ_CST) != 0;
}

/* One worker's whole life on the calling thread, whose loop and wake are set:
 * setup, serve until stopped, close everything, teardown (workers.c). */
void evc__worker_serve(evc_worker *);
/* Starts wk's wake watcher on its loop and publishes the loop to evc_workers_stop. */
void evc__worker_wake_start(evc_worker *);
/* evc_workers_run for EVC_WORKERS_FORK (workers_fork.c). */
int evc__workers_supervise(evc_workers *);

#endif /* EVC_WORKERS_INTERNAL_H */
