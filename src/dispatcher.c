/*
 * The dispatcher: asyncore.dispatcher on libev.  One fd, one ev_io whose
 * events follow the readable()/writable() predicates, one idle ev_timer, one
 * ev_prepare for writes scheduled from outside callbacks, and one watcher that
 * is never started and only fed, to run the deferred destroy.  The socket
 * calls (create, bind, listen, connect, accept, send, recv) are in
 * dispatcher_socket.c.
 *
 * Lifetime.  evc_dispatcher_close stops everything and closes the fd at once,
 * but the memory lives on until the destroy watcher runs from the loop with
 * no callback of this dispatcher on the stack (`depth` counts them; a close
 * inside a callback is only fed to the loop when the outermost one returns,
 * so even a user who runs the loop recursively cannot free a dispatcher under
 * its own callback).  Every call into user code goes through call_*() helpers
 * that end in leave(), which answers "still open?"; nothing touches the
 * dispatcher's state after a user call without asking it.
 *
 * Predicates are asked after every callback and state change, and the ev_io
 * is changed only when the answer changed, so a dispatcher that wants
 * nothing has no active watcher and costs no wake-ups.
 */
#include "dispatcher_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Connections the default handle_accept takes per wake-up: enough to drain a
 * burst, few enough that one busy listener cannot starve the other watchers. */
#define ACCEPT_BATCH 32
/* Scratch size of the default handle_read (read and discard). */
#define DISCARD_CHUNK 4096

static const struct evc_dispatcher_ops no_ops;

/* ------------------------------------------------------------------ */
/* Entering and leaving user code                                      */
/* ------------------------------------------------------------------ */

static void feed_destroy(evc_dispatcher *d)
{
    d->destroy_fed = true;
    ev_feed_event(d->loop, &d->destroyer, EV_CUSTOM);
}

static void enter(evc_dispatcher *d)
{
    d->depth++;
}

/* The one re-check after user code: false when the dispatcher was closed. */
static bool leave(evc_dispatcher *d)
{
    assert(d->depth > 0);
    d->depth--;
    if (!d->h.closed)
        return true;
    if (d->depth == 0 && !d->destroy_fed)
        feed_destroy(d);
    return false;
}

static void destroy_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    evc_dispatcher *d = w->data;
    (void)loop;
    (void)revents;
    d->destroy_fed = false;
    if (d->depth > 0)
        return;     /* a recursive ev_run inside our callback: leave() feeds us again */
    /* The loop's entry outlives on_destroy: a chat gives its read blocks back
     * to the loop's source there, and the last dispatcher's detach frees it. */
    if (d->ops->on_destroy)
        d->ops->on_destroy(d, d->data);
    evc__registry_detach(d->entry, &d->link);
    free(d);
}

static bool ask(evc_dispatcher *d, bool (*pred)(evc_dispatcher *, void *), bool dflt)
{
    if (!pred)
        return dflt;
    enter(d);
    bool answer = pred(d, d->data);
    return leave(d) && answer;
}

/* One helper per event: call the op (or its default), then re-check. */

static void default_read(evc_dispatcher *d)
{
    char scratch[DISCARD_CHUNK];
    /* EOF and resets reach handle_close through recv. */
    evc_dispatcher_recv(d, scratch, sizeof scratch);
}

static bool call_read(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_read)
        d->ops->handle_read(d, d->data);
    else
        default_read(d);
    return leave(d);
}

static bool call_write(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_write)
        d->ops->handle_write(d, d->data);
    return leave(d);
}

static bool call_connect(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_connect)
        d->ops->handle_connect(d, d->data);
    return leave(d);
}

bool evc__dispatcher_call_close(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_close)
        d->ops->handle_close(d, d->data);
    else
        evc_dispatcher_close(d);
    return leave(d);
}

bool evc__dispatcher_call_error(evc_dispatcher *d, int err)
{
    enter(d);
    if (d->ops->handle_error)
        d->ops->handle_error(d, err, d->data);
    else
        evc_dispatcher_close(d);
    return leave(d);
}

static bool call_timeout(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_timeout)
        d->ops->handle_timeout(d, d->data);
    else
        evc_dispatcher_close(d);
    return leave(d);
}

static void default_expt(evc_dispatcher *d)
{
    char byte;
    while (recv(d->h.fd, &byte, 1, MSG_OOB) < 0 && errno == EINTR)
        ;
}

static bool call_expt(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_expt)
        d->ops->handle_expt(d, d->data);
    else
        default_expt(d);
    return leave(d);
}

static bool call_accepted(evc_dispatcher *d, int fd, const struct sockaddr_storage *ss,
                          socklen_t len)
{
    enter(d);
    if (d->ops->handle_accepted)
        d->ops->handle_accepted(d, fd, (const struct sockaddr *)ss, len, d->data);
    else
        close(fd);
    return leave(d);
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/* Wanted io events, from the predicates; -1 if a predicate closed the dispatcher. */
static int wanted_events(evc_dispatcher *d)
{
    int events = 0;
    if (ask(d, d->ops->readable, true))
        events |= EV_READ;
    if (d->h.closed)
        return -1;
    /* A connect completes on writability whatever writable() says. */
    if (d->h.connecting || ask(d, d->ops->writable, false))
        events |= EV_WRITE;
    if (d->h.closed)
        return -1;
    return events;
}

void evc__dispatcher_update_events(evc_dispatcher *d)
{
    if (d->h.closed || d->h.fd < 0)
        return;
    /* An unconnected stream socket polls as hung up: watching it would spin;
     * a listener pausing after an accept error is not watched either. */
    int events = d->unconnected || evc__accept_paused(d) ? 0 : wanted_events(d);
    if (events < 0 || events == d->io_events)
        return;
    if (d->io_events)
        ev_io_stop(d->loop, &d->io);
    d->io_events = events;
    if (events) {
        ev_io_set(&d->io, d->h.fd, events);
        ev_io_start(d->loop, &d->io);
    }
}

/* Reopens the EMFILE reserve; false when even that fails. */
bool evc__dispatcher_reopen_reserve(evc_dispatcher *d)
{
    if (d->reserve_fd < 0)
        d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return d->reserve_fd >= 0;
}

/*
 * Out of fds with connections waiting: the listener would be readable forever
 * and the loop would spin.  Give up the reserve fd, take the connection and
 * close it at once (the client sees it end rather than hang), and take the
 * reserve back.  Returns 1 if a connection was shed, 0 if none was waiting
 * (Linux reports EMFILE before it looks at the queue), -1 if it could not.
 */
static int shed_connection(evc_dispatcher *d)
{
    if (d->reserve_fd < 0)
        return -1;
    close(d->reserve_fd);
    d->reserve_fd = -1;
    int fd;
    do
        fd = accept4(d->h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    int err = errno;
    if (fd >= 0)
        close(fd);
    evc__dispatcher_reopen_reserve(d);
    if (fd >= 0)
        return 1;
    return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void default_accept(evc_dispatcher *d)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        /* readable() may turn false with a connection taken (a server at its cap). */
        if (i > 0 && !ask(d, d->ops->readable, true))
            return;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = evc_dispatcher_accept(d, &ss, &len);
        if (fd >= 0) {
            evc__accept_succeeded(d);
            if (!call_accepted(d, fd, &ss, len))
                return;
            continue;
        }
        if (fd == -EAGAIN)
            return;
        if (fd == -EMFILE || fd == -ENFILE) {
            int shed = shed_connection(d);
            if (shed > 0)
                continue;   /* progress: the next one may be taken */
            if (shed == 0)
                return;     /* nothing is waiting */
        }
        /* Reported or absorbed as the errno calls for; then a pause, never a spin. */
        evc__accept_failed(d, fd);
        return;
    }
}

static bool call_accept(evc_dispatcher *d)
{
    enter(d);
    if (d->ops->handle_accept)
        d->ops->handle_accept(d, d->data);
    else
        default_accept(d);
    return leave(d);
}

/*
 * A connect in progress reported an event.  Returns true when the caller may
 * go on handling the event (connected and still open).
 */
static bool finish_connect(evc_dispatcher *d)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(d->h.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        if (getpeername(d->h.fd, (struct sockaddr *)&peer, &plen) < 0 && errno == ENOTCONN)
            return false;   /* a spurious wake-up: the connect is still in progress */
    }
    d->h.connecting = false;
    if (err != 0) {
        evc__dispatcher_call_error(d, -err);
        return false;
    }
    return call_connect(d);
}

static void dispatch_io(evc_dispatcher *d, int revents)
{
    if (d->h.connecting) {
        if (!finish_connect(d) || !(revents & EV_READ))
            return;
        revents &= ~EV_WRITE;   /* that writability was the connect's */
    }
    if (d->listening) {
        if (revents & EV_READ)
            call_accept(d);
        return;
    }
    if ((revents & EV_READ) && !call_read(d))
        return;
    if (revents & EV_WRITE)
        call_write(d);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    evc_dispatcher *d = w->data;
    (void)loop;
    evc__dispatcher_touch(d);
    enter(d);
    dispatch_io(d, revents);
    if (leave(d))
        evc__dispatcher_update_events(d);
}

/* When the idle timeout is due (0: never). */
static ev_tstamp idle_due(const evc_dispatcher *d)
{
    return d->timeout > 0 ? d->last_activity + d->timeout : 0;
}

/* When the frame in progress is due (0: never). */
static ev_tstamp frame_due(const evc_dispatcher *d)
{
    return d->frame_limit > 0 && d->frame_started > 0 ? d->frame_started + d->frame_limit : 0;
}

/* Sets the one timer to the earlier of the idle and frame dues, or stops it. */
static void arm_timer(evc_dispatcher *d)
{
    ev_tstamp idle = idle_due(d), frame = frame_due(d);
    ev_tstamp due = idle == 0 ? frame : frame == 0 || idle < frame ? idle : frame;
    ev_timer_stop(d->loop, &d->timer);
    if (due == 0)
        return;
    ev_tstamp wait = due - ev_now(d->loop);
    ev_timer_set(&d->timer, wait > 0 ? wait : 0., 0.);
    ev_timer_start(d->loop, &d->timer);
}

static bool call_frame_expired(evc_dispatcher *d)
{
    enter(d);
    if (d->frame_expired)
        d->frame_expired(d, d->data);
    return leave(d);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    evc_dispatcher *d = w->data;
    (void)revents;
    /* libev's "last activity" idiom: I/O only moves last_activity (and a new
     * frame frame_started); the timer notices it here and sleeps for the rest
     * of the period. */
    ev_tstamp now = ev_now(loop);
    ev_tstamp frame = frame_due(d);
    if (frame != 0 && frame <= now) {
        d->frame_started = now;   /* another period, unless the frame ends */
        if (!call_frame_expired(d))
            return;
        if (!ev_is_active(&d->timer))
            arm_timer(d);
        evc__dispatcher_update_events(d);
        return;
    }
    ev_tstamp idle = idle_due(d);
    if (idle == 0 || idle > now) {
        arm_timer(d);
        return;
    }
    enter(d);
    call_timeout(d);
    if (!leave(d))
        return;
    /* Still open: another idle period, unless handle_timeout set a new one. */
    if (!ev_is_active(&d->timer)) {
        if (d->timeout > 0)
            evc_dispatcher_set_timeout(d, d->timeout);
        else
            arm_timer(d);
    }
    evc__dispatcher_update_events(d);
}

static void writer_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    evc_dispatcher *d = w->data;
    (void)revents;
    ev_prepare_stop(loop, w);
    if (d->h.closed)
        return;
    enter(d);
    call_write(d);
    if (leave(d))
        evc__dispatcher_update_events(d);
}

void evc__dispatcher_expt(evc_dispatcher *d)
{
    if (d->h.closed)
        return;
    enter(d);
    call_expt(d);
    if (leave(d))
        evc__dispatcher_update_events(d);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */
/* ------------------------------------------------------------------ */

evc_dispatcher *evc_dispatcher_new(struct ev_loop *loop, const struct evc_dispatcher_ops *ops,
                                   void *data)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    evc_dispatcher *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->ops = ops ? ops : &no_ops;
    d->data = data;
    d->h.fd = -1;
    d->reserve_fd = -1;
    d->link.owner = d;
    ev_init(&d->io, io_cb);
    d->io.data = d;
    ev_init(&d->timer, timer_cb);
    d->timer.data = d;
    ev_prepare_init(&d->writer, writer_cb);
    d->writer.data = d;
    ev_check_init(&d->destroyer, destroy_cb);
    d->destroyer.data = d;
    d->entry = evc__registry_attach(loop, &d->link);
    if (!d->entry) {
        free(d);
        errno = ENOMEM;
        return NULL;
    }
    return d;
}

/* ------------------------------------------------------------------ */
/* Close, state, properties                                            */
/* ------------------------------------------------------------------ */

void evc_dispatcher_close(evc_dispatcher *d)
{
    if (!d || d->h.closed)
        return;
    d->h.closed = true;
    d->h.connecting = false;
    if (d->io_events)
        ev_io_stop(d->loop, &d->io);
    d->io_events = 0;
    ev_timer_stop(d->loop, &d->timer);
    ev_prepare_stop(d->loop, &d->writer);
    if (d->oob_watched) {
        evc__oob_del(evc__registry_oob(d->entry), d->h.fd);
        d->oob_watched = false;
    }
    if (d->h.fd >= 0)
        close(d->h.fd);
    d->h.fd = -1;
    if (d->reserve_fd >= 0)
        close(d->reserve_fd);
    d->reserve_fd = -1;
    evc__accept_backoff_free(d);
    if (d->close_hook) {
        void (*hook)(void *) = d->close_hook;
        d->close_hook = NULL;
        hook(d->close_hook_arg);
    }
    /* Inside a callback, leave() feeds the destroy when the outermost returns. */
    if (d->depth == 0)
        feed_destroy(d);
}

bool evc_dispatcher_closed(const evc_dispatcher *d)
{
    return d->h.closed;
}

void evc_dispatcher_update(evc_dispatcher *d)
{
    evc__dispatcher_update_events(d);
}

void evc_dispatcher_set_timeout(evc_dispatcher *d, double idle_seconds)
{
    if (d->h.closed)
        return;
    d->deadline = false;
    d->timeout = idle_seconds > 0 ? idle_seconds : 0;
    if (d->timeout > 0)
        d->last_activity = ev_now(d->loop);
    arm_timer(d);
}

int evc_dispatcher_fd(const evc_dispatcher *d)
{
    return d->h.fd;
}

void *evc_dispatcher_data(const evc_dispatcher *d)
{
    return d->data;
}

struct ev_loop *evc_dispatcher_loop(const evc_dispatcher *d)
{
    return d->loop;
}

/* ------------------------------------------------------------------ */
/* Hooks for the chat and server layers                                */
/* ------------------------------------------------------------------ */

int evc__dispatcher_shutdown_write(evc_dispatcher *d)
{
    if (d->h.closed || d->h.fd < 0)
        return -EBADF;
    return shutdown(d->h.fd, SHUT_WR) < 0 ? -errno : 0;
}

void evc__dispatcher_set_deadline(evc_dispatcher *d, double seconds)
{
    evc_dispatcher_set_timeout(d, seconds);
    d->deadline = d->timeout > 0;
}

void evc__dispatcher_schedule_write(evc_dispatcher *d)
{
    if (!d->h.closed)
        ev_prepare_start(d->loop, &d->writer);
}

bool evc__dispatcher_is_socket(const evc_dispatcher *d)
{
    return d->h.is_socket;
}

bool evc__dispatcher_connecting(const evc_dispatcher *d)
{
    return d->h.connecting;
}

void evc__dispatcher_touch(evc_dispatcher *d)
{
    if (!d->deadline)
        d->last_activity = ev_now(d->loop);
}

void evc__dispatcher_set_frame_deadline(evc_dispatcher *d, double seconds,
                                        void (*expired)(evc_dispatcher *, void *data))
{
    d->frame_limit = seconds > 0 ? seconds : 0;
    d->frame_expired = expired;
    if (d->frame_limit == 0)
        d->frame_started = 0;
    if (!d->h.closed)
        arm_timer(d);
}

void evc__dispatcher_frame_begin(evc_dispatcher *d)
{
    if (d->frame_limit <= 0 || d->h.closed)
        return;
    d->frame_started = ev_now(d->loop);
    /* A timer that fires no later than this frame's due is left alone: it
     * finds out then (no heap operation per frame). */
    if (ev_is_active(&d->timer) && ev_timer_remaining(d->loop, &d->timer) <= d->frame_limit)
        return;
    arm_timer(d);
}

bool evc__dispatcher_set_close_hook(evc_dispatcher *d, void (*hook)(void *), void *arg)
{
    if (d->h.closed || d->close_hook)
        return false;
    d->close_hook = hook;
    d->close_hook_arg = arg;
    return true;
}

void evc__dispatcher_frame_end(evc_dispatcher *d)
{
    d->frame_started = 0;
}

bool evc__dispatcher_frame_open(const evc_dispatcher *d)
{
    return d->frame_started > 0;
}

double evc__dispatcher_timeout(const evc_dispatcher *d)
{
    return d->deadline ? 0 : d->timeout;
}

evc_loop_entry *evc__dispatcher_entry(const evc_dispatcher *d)
{
    return d->entry;
}
