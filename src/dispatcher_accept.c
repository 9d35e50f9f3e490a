/*
 * What a listening dispatcher does when accept(2) fails: which errors are the
 * listener's own and which belong to one connection or to a bad minute of the
 * kernel, and the one back-off every listener (evc_server's included) uses so
 * that an error that lasts never makes the loop spin.
 *
 * The rule, per errno of accept(2) (Linux and POSIX):
 *
 *   EAGAIN, EWOULDBLOCK  nothing is waiting: not an error (evc_dispatcher_accept).
 *   EINTR, ECONNABORTED  retried a few times by evc_dispatcher_accept: a signal,
 *                        or a connection reset before it was taken.
 *   EBADF, EFAULT, EINVAL, ENOTSOCK
 *                        the listener itself is broken (closed fd, bad address
 *                        buffer, not listening, not a socket): retrying cannot
 *                        help, so handle_error runs and its default is to close.
 *   everything else      absorbed.  EMFILE and ENFILE (out of fds: a connection
 *                        is shed first, see shed_connection in dispatcher.c),
 *                        ENOBUFS and ENOMEM (memory), EPERM (a firewall refused
 *                        the connection), EPROTO and the network errors Linux
 *                        passes on from the new socket (ENETDOWN, ENOPROTOOPT,
 *                        EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH,
 *                        ETIMEDOUT, ENOSR, ESOCKTNOSUPPORT, EPROTONOSUPPORT) concern
 *                        one connection or pass with time.  handle_error hears of
 *                        them if the user set one (it may still close); without
 *                        one the listener goes on.  (EOPNOTSUPP cannot mean "not a
 *                        stream socket" here: listen(2) would have failed.)
 *
 * Either way, a listener still open after an error stops watching its fd for
 * a pause that starts at ACCEPT_PAUSE_MIN and doubles with each error in a
 * row up to ACCEPT_PAUSE_MAX, and the next connection accepted resets it.  A
 * persistent error costs one accept call per pause, not a core.
 */
#include "dispatcher_internal.h"

#include <stdlib.h>

#define ACCEPT_PAUSE_MIN 0.010   /* seconds: the first pause after an error */
#define ACCEPT_PAUSE_MAX 1.0     /* seconds: the longest pause */

struct evc_accept_backoff {
    ev_timer timer;     /* running while the listener is paused */
    double next;        /* the pause the next error starts; 0: no error since the last accept */
};

int evc__accept_backoff_init(evc_dispatcher *d)
{
    if (d->backoff)
        return 0;
    d->backoff = calloc(1, sizeof *d->backoff);
    if (!d->backoff)
        return -ENOMEM;
    return 0;
}

static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    evc_dispatcher *d = w->data;
    (void)loop;
    (void)revents;
    /* Out of fds a while ago: take the reserve back if it could not be then. */
    evc__dispatcher_reopen_reserve(d);
    evc__dispatcher_update_events(d);
}

bool evc__accept_paused(const evc_dispatcher *d)
{
    return d->backoff && ev_is_active(&d->backoff->timer);
}

static bool listener_broken(int err)
{
    return err == -EBADF || err == -EFAULT || err == -EINVAL || err == -ENOTSOCK;
}

void evc__accept_failed(evc_dispatcher *d, int err)
{
    if (listener_broken(err) || d->ops->handle_error) {
        if (!evc__dispatcher_call_error(d, err))
            return;
    }
    evc_accept_backoff *b = d->backoff;
    if (!b || d->h.closed)
        return;
    double pause = b->next > 0 ? b->next : ACCEPT_PAUSE_MIN;
    b->next = pause * 2 < ACCEPT_PAUSE_MAX ? pause * 2 : ACCEPT_PAUSE_MAX;
    ev_timer_stop(d->loop, &b->timer);
    ev_timer_init(&b->timer, resume_cb, pause, 0.);
    b->timer.data = d;
    ev_timer_start(d->loop, &b->timer);
    /* io_cb re-asks the events on the way out and sees the pause. */
}

void evc__accept_succeeded(evc_dispatcher *d)
{
    if (d->backoff)
        d->backoff->next = 0;
}

void evc__accept_backoff_free(evc_dispatcher *d)
{
    if (!d->backoff)
        return;
    ev_timer_stop(d->loop, &d->backoff->timer);
    free(d->backoff);
    d->backoff = NULL;
}
