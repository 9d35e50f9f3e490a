/*
 * Worker processes: socketserver's ForkingTCPServer, the evchat way.  The
 * process that called evc_workers_run becomes a supervisor: it forks one
 * child per worker slot, restarts a child that dies, and on
 * evc_workers_stop sends every child SIGTERM and waits for them.
 *
 * Each slot's listening socket (SO_REUSEPORT, bound by evc_workers_new) stays
 * open in the supervisor, so connections the kernel hashed to a slot whose
 * child just died wait in its backlog for the replacement instead of being
 * refused, and a restart never has to bind again.  A child keeps only its own
 * slot's socket.
 *
 * A library may not take SIGCHLD from the program, so the supervisor does not
 * wait for that signal: it polls its stop pipe with a short timeout and reaps
 * its own children by pid (never waitpid(-1), which could steal the
 * program's).  A child that dies is replaced at once, unless it was started
 * less than RESTART_INTERVAL ago: then its replacement waits until that much
 * time has passed since the previous start, so a worker that crashes on
 * start-up costs one fork per slot per interval, not a fork bomb.
 *
 * A child is a process of its own and owns its signals: it watches SIGTERM
 * and SIGINT on its loop (the supervisor's SIGTERM, or a terminal's ^C sent
 * to the whole group), and asks the kernel for SIGTERM if the supervisor dies.
 */
#include "workers_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Seconds between two starts of the same slot's child, at least. */
#define RESTART_INTERVAL 1.0
/* How often (ms) the supervisor looks for dead children while nothing else wakes it. */
#define REAP_TICK_MS 100
/* Seconds children get to finish after SIGTERM before SIGKILL. */
#define STOP_GRACE 10.0

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_child_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop, (void)revents;
    evc_workers_stop(sig->data);
}

/* The child's side of the fork: serve slot wk, then exit (0, or 1 when setup failed). */
static void __attribute__((noreturn)) child_main(evc_workers *w, evc_worker *wk)
{
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    for (unsigned i = 0; i < w->n; i++) {
        if (&w->workers[i] != wk && w->workers[i].listen_fd >= 0) {
            close(w->workers[i].listen_fd);
            w->workers[i].listen_fd = -1;
        }
    }
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != w->supervisor)   /* it died before the line above */
        _exit(0);
#endif
    wk->loop = ev_loop_new(EVFLAG_AUTO);
    if (!wk->loop)
        _exit(1);
    evc__worker_wake_start(wk);
    ev_signal stops[2];
    int signals[2] = {SIGTERM, SIGINT};
    sigset_t unblock;
    sigemptyset(&unblock);
    for (int i = 0; i < 2; i++) {
        ev_signal_init(&stops[i], on_child_signal, signals[i]);
        stops[i].data = w;
        ev_signal_start(wk->loop, &stops[i]);
        ev_unref(wk->loop);
        sigaddset(&unblock, signals[i]);
    }
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    if (!evc__workers_stopping(w))
        evc__worker_serve(wk);
    for (int i = 0; i < 2; i++) {
        ev_ref(wk->loop);
        ev_signal_stop(wk->loop, &stops[i]);
    }
    int status = wk->setup_rc < 0 ? 1 : 0;
    evc_workers_free(w);   /* this process's copy: its loop; the path stays the supervisor's */
    /* The program's own exit handlers belong to the supervisor. */
    fflush(NULL);
    _exit(status);
}

/* Forks slot wk's child; on failure the slot stays empty and is tried again later. */
static void spawn(evc_workers *w, evc_worker *wk)
{
    wk->started = now_seconds();
    fflush(NULL);   /* or the child would write the program's buffered output again */
    pid_t pid = fork();
    if (pid == 0)
        child_main(w, wk);
    wk->pid = pid > 0 ? pid : 0;
}

/* Notes children that have exited; with `block`, waits for each. */
static void reap(evc_workers *w, bool block)
{
    for (unsigned i = 0; i < w->n; i++) {
        evc_worker *wk = &w->workers[i];
        if (wk->pid <= 0)
            continue;
        pid_t rc;
        do
            rc = waitpid(wk->pid, NULL, block ? 0 : WNOHANG);
        while (rc < 0 && errno == EINTR);
        /* ECHILD: the program ignores SIGCHLD, so the kernel reaped it. */
        if (rc == wk->pid || (rc < 0 && errno == ECHILD))
            wk->pid = 0;
    }
}

/* Restarts the empty slots that are due; returns ms until the next one is (or the tick). */
static int restart_due(evc_workers *w)
{
    double now = now_seconds();
    double wait = REAP_TICK_MS / 1000.0;
    for (unsigned i = 0; i < w->n; i++) {
        evc_worker *wk = &w->workers[i];
        if (wk->pid > 0)
            continue;
        double due = wk->started + RESTART_INTERVAL;
        if (wk->started == 0 || due <= now)
            spawn(w, wk);
        else if (due - now < wait)
            wait = due - now;
    }
    return (int)(wait * 1000.0) + 1;
}

static bool any_alive(const evc_workers *w)
{
    for (unsigned i = 0; i < w->n; i++)
        if (w->workers[i].pid > 0)
            return true;
    return false;
}

static void signal_all(evc_workers *w, int sig)
{
    for (unsigned i = 0; i < w->n; i++)
        if (w->workers[i].pid > 0)
            kill(w->workers[i].pid, sig);
}

int evc__workers_supervise(evc_workers *w)
{
    while (!evc__workers_stopping(w)) {
        reap(w, false);
        int timeout = restart_due(w);
        struct pollfd p = {.fd = w->stop_pipe[0], .events = POLLIN};
        if (poll(&p, 1, timeout) > 0) {
            char drain[16];
            while (read(w->stop_pipe[0], drain, sizeof drain) > 0)
                continue;
        }
    }
    signal_all(w, SIGTERM);
    double deadline = now_seconds() + STOP_GRACE;
    reap(w, false);
    while (any_alive(w) && now_seconds() < deadline) {
        poll(NULL, 0, 10);
        reap(w, false);
    }
    if (any_alive(w)) {
        signal_all(w, SIGKILL);
        reap(w, true);
    }
    return 0;
}
