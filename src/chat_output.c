/*
 * The chat's output side: the push FIFO and the writes.
 *
 * Pushes append to the output queue; a reply pushed from the chat's own
 * callback into a tail chunk with room is a single memcpy.  The queue is
 * written with one writev at the end of the chat's own handler, or before the
 * loop sleeps for pushes made from elsewhere (output_added schedules that).
 * Only what the kernel did not take leaves the chat writable, and so arms
 * EV_WRITE.  Above the high-water mark the chat stops reading until the queue
 * drains below the low mark.
 */
#include "chat_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* iovecs per writev: enough to coalesce a burst of small replies. */
#define WRITE_IOVS 64
/* Bytes one flush hands a direct (sendfile) producer per call. */
#define DIRECT_CHUNK (1u << 20)

/*
 * Nothing queued can be written any more.  The failure is only recorded here:
 * this runs inside a flush, which may be inside the delivery of frames, so the
 * callbacks it leads to (held frames, handle_close, handle_error) wait for the
 * top of the handler (evc__chat_settle_output).  Output is dead from now on:
 * the queue is dropped and pushes fail with -EPIPE.
 */
static void write_failed(evc_chat *c, int err)
{
    c->write_err = err;
    evc__outq_clear(&c->out);
}

/* The queue reached evc_chat_shutdown_when_done's marker: everything before
 * it was written.  Send our FIN, then read and discard until the peer's (or
 * the linger time is up), so that unread input cannot turn the close into a
 * reset that destroys the answer in flight.  A pipe cannot half-close: it closes. */
static void start_lingering(evc_chat *c)
{
    if (evc__dispatcher_shutdown_write(c->disp) < 0) {
        evc_chat_close(c);
        return;
    }
    c->state = CHAT_LINGERING;
    clear_flag(c, CHAT_INPUT_HELD);   /* frames not delivered yet never will be */
    clear_flag(c, CHAT_THROTTLED);
    evc__buf_clear(&c->in);
    evc__dispatcher_set_deadline(c->disp, c->linger);
}

/* Writes what the kernel takes; returns false if the chat closed meanwhile. */
static bool write_queue(evc_chat *c)
{
    for (;;) {
        struct iovec iov[WRITE_IOVS];
        int niov = 0, err = 0;
        size_t nbytes = 0;
        unsigned resumes = c->resumes;
        evc_outq_state st = evc__outq_iov(&c->out, iov, WRITE_IOVS, &niov, &nbytes, &err);
        if (!user_may_continue(c))
            return false;   /* a producer's callback closed us */
        if (niov > 0) {
            ssize_t n = EVC_UNLIKELY(c->tls) ? evc__tls_writev(c, iov, niov)
                                             : evc__dispatcher_writev(c->disp, iov, niov);
            if (n == -EAGAIN)
                return true;
            if (n < 0) {
                write_failed(c, (int)n);
                return false;
            }
            evc__outq_consume(&c->out, (size_t)n);
            if ((size_t)n < nbytes)
                return true;        /* the kernel is full: wait for EV_WRITE */
            continue;
        }
        switch (st) {
        case EVC_OUTQ_MORE:
        case EVC_OUTQ_EMPTY:
            return true;
        case EVC_OUTQ_NOT_YET:
            /* A producer that called evc_chat_resume from inside its own more()
             * has more after all: stay writable and ask it again next pass. */
            if (resumes == c->resumes)
                set_flag(c, CHAT_PRODUCER_WAITING);
            else
                clear_flag(c, CHAT_PRODUCER_WAITING);
            return true;
        case EVC_OUTQ_CLOSE:
            if (EVC_UNLIKELY(c->tls)) {
                /* close_notify goes out before the close (or the FIN). */
                int rc = evc__tls_close_notify(c);
                if (rc == -EAGAIN)
                    return true;
                if (rc < 0) {
                    write_failed(c, rc);
                    return false;
                }
            }
            evc__outq_pop_close(&c->out);
            if (c->state == CHAT_SHUTTING)
                start_lingering(c);
            else
                evc_chat_close(c);
            return false;
        case EVC_OUTQ_ERROR:
            evc__chat_report_error(c, err);
            return false;
        case EVC_OUTQ_DIRECT: {
            int fd = evc__dispatcher_head(c->disp)->fd;
            ssize_t n = evc__outq_send_direct(&c->out, fd, DIRECT_CHUNK);
            if (n == -EAGAIN)
                return true;
            if (n < 0) {
                write_failed(c, evc__io_peer_gone((int)n) ? EVC_IO_GONE : (int)n);
                return false;
            }
            if (n > 0)
                evc__dispatcher_touch(c->disp);
            continue;
        }
        }
    }
}

void evc__chat_flush(evc_chat *c)
{
    const evc_dispatcher_head *h = evc__dispatcher_head(c->disp);
    if (!user_may_continue(c) || h->fd < 0 || h->connecting || c->write_err ||
        c->state == CHAT_LINGERING)
        return;
    if (EVC_UNLIKELY(c->tls)) {
        int rc = evc__tls_flush(c);
        if (rc < 0) {
            write_failed(c, rc);
            return;
        }
    }
    if (!write_queue(c))
        return;
    if (EVC_UNLIKELY(c->tls))
        evc__tls_flushed(c);
    if (has_flag(c, CHAT_THROTTLED) && evc__outq_bytes(&c->out) <= c->low_water)
        clear_flag(c, CHAT_THROTTLED);
}

/* A recorded write failure reaches the user: held frames and handle_close when
 * the peer is gone (a close when handle_close already ran for its EOF),
 * handle_error otherwise.  A close_when_done queued before can
 * no longer be reached through the queue, so it is honoured here: otherwise a
 * handle_close that keeps the chat open would leave it open for ever. */
static void settle_write_failure(evc_chat *c)
{
    set_flag(c, CHAT_WRITE_ERR_SEEN);
    clear_flag(c, CHAT_THROTTLED);
    if (c->write_err == EVC_IO_GONE && input_ended(c)) {
        /* handle_close already heard of the peer's close; now nothing can be
         * written either, so nothing more can happen on this chat. */
        evc_chat_close(c);
        return;
    }
    if (c->write_err == EVC_IO_GONE)
        evc__chat_peer_closed(c);
    else
        evc__chat_report_error(c, c->write_err);
    if (user_may_continue(c) && close_queued(c))
        evc_chat_close(c);
}

/* handle_low_water, once the queue fell back to the low mark after crossing the high one. */
static void run_low_water(evc_chat *c)
{
    if (!has_flag(c, CHAT_LOW_WATER_ARMED) || has_flag(c, CHAT_THROTTLED))
        return;
    clear_flag(c, CHAT_LOW_WATER_ARMED);
    if (!c->ops->handle_low_water)
        return;
    c->ops->handle_low_water(c, c->data);
    evc__chat_flush(c);
}

/* handle_drained, once per queue emptied by writing. */
static void run_drained(evc_chat *c)
{
    if (!has_flag(c, CHAT_DRAIN_ARMED) || !evc__outq_empty(&c->out))
        return;
    clear_flag(c, CHAT_DRAIN_ARMED);
    if (!c->ops->handle_drained)
        return;
    c->ops->handle_drained(c, c->data);
    evc__chat_flush(c);
    /* What it pushed went out at once: come back for the next part on the
     * loop's next pass rather than loop here, so one chat cannot starve the rest. */
    if (user_may_continue(c) && has_flag(c, CHAT_DRAIN_ARMED) && evc__outq_empty(&c->out) &&
        !c->write_err)
        evc__dispatcher_schedule_write(c->disp);
}

void evc__chat_settle_output(evc_chat *c)
{
    /* Lingering, the chat is handed off: no callback but on_destroy. */
    if (!user_may_continue(c) || c->state == CHAT_LINGERING)
        return;
    if (!c->write_err)
        run_low_water(c);
    if (user_may_continue(c) && !c->write_err)
        run_drained(c);
    /* Last, so that a write the callbacks above made and that failed is acted on too. */
    if (user_may_continue(c) && c->write_err && !has_flag(c, CHAT_WRITE_ERR_SEEN))
        settle_write_failure(c);
}

void evc__chat_linger_done(evc_chat *c)
{
    evc_chat_close(c);
}

/* The checks every push makes before queueing len more bytes. */
static inline int push_allowed(const evc_chat *c, size_t len)
{
    if (!user_may_continue(c) || close_queued(c) || c->write_err)
        return -EPIPE;
    if (c->over_budget)
        return -ENOBUFS;   /* to be closed for the loop's memory budget */
    if (c->output_limit && (len > c->output_limit || evc__outq_bytes(&c->out) > c->output_limit - len))
        return -ENOBUFS;
    return 0;
}

/* evc_chat_push for everything the reserve does not take. */
static __attribute__((noinline)) int push_slow(evc_chat *c, const void *bytes, size_t len)
{
    if (!c || (!bytes && len > 0))
        return -EINVAL;
    int rc = push_allowed(c, len);
    if (rc < 0 || len == 0)
        return rc;
    rc = evc__outq_push_copy(&c->out, bytes, len);
    if (rc < 0)
        return rc;
    output_added(c);
    evc__chat_account(c);
    return 0;
}

int evc_chat_push(evc_chat *c, const void *bytes, size_t len)
{
    /*
     * The common case is a reply pushed from the chat's own callback into the
     * queue's reserve: then it is a copy and nothing else has to happen (no
     * limit to check, no throttling, no write to schedule: enter_handler cut
     * the reserve to what needs none of that).  A push of 0 bytes never fits,
     * so it takes the full path, which reports a closed chat.  The closed test
     * catches evc_close_all, which closes the chat without a call into it.
     */
    if (c && bytes && user_may_continue(c) && evc__outq_append(&c->out, bytes, len))
        return 0;
    return push_slow(c, bytes, len);
}

int evc_chat_push_str(evc_chat *c, const char *s)
{
    if (!s)
        return -EINVAL;
    return evc_chat_push(c, s, strlen(s));
}

int evc_chat_pushf(evc_chat *c, const char *fmt, ...)
{
    if (!c || !fmt)
        return -EINVAL;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return evc_chat_push(c, small, (size_t)n);

    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = evc_chat_push(c, big, (size_t)n);
    free(big);
    return rc;
}

int evc_chat_push_ref(evc_chat *c, const void *bytes, size_t len, void (*release)(void *), void *arg)
{
    if (!c || (!bytes && len > 0))
        return -EINVAL;
    int rc = push_allowed(c, len);
    if (rc < 0)
        return rc;
    rc = evc__outq_push_ref(&c->out, bytes, len, release, arg);
    if (rc == 0) {
        output_added(c);
        evc__chat_account(c);
    }
    return rc;
}

int evc_chat_push_with_producer(evc_chat *c, evc_producer *p)
{
    if (!c || !p)
        return -EINVAL;
    int rc = push_allowed(c, 0);
    if (rc < 0)
        return rc;
    rc = evc__outq_push_producer(&c->out, p);
    if (rc == 0) {
        p->chat = c;
        output_added(c);
    }
    return rc;
}

/* Queues the close marker and enters `state` (CHAT_CLOSING or CHAT_SHUTTING);
 * 0, or -ENOMEM after closing now (which beats never closing). */
static int queue_close(evc_chat *c, chat_state state)
{
    if (evc__outq_push_close(&c->out) < 0) {
        evc_chat_close(c);
        return -ENOMEM;
    }
    c->state = state;
    if (c->write_err) {
        /* Nothing can be written any more: the marker is never reached. */
        evc_chat_close(c);
        return 0;
    }
    output_added(c);
    return 0;
}

void evc_chat_close_when_done(evc_chat *c)
{
    if (!c || !user_may_continue(c) || close_queued(c))
        return;
    queue_close(c, CHAT_CLOSING);
}

int evc_chat_shutdown_when_done(evc_chat *c, double linger_seconds)
{
    if (!c || !(linger_seconds > 0))
        return -EINVAL;
    if (!user_may_continue(c) || close_queued(c))
        return -EPIPE;
    c->linger = linger_seconds;
    return queue_close(c, CHAT_SHUTTING);
}

void evc_chat_resume(evc_chat *c)
{
    if (!c || !user_may_continue(c))
        return;
    c->resumes++;
    if (!has_flag(c, CHAT_PRODUCER_WAITING))
        return;
    clear_flag(c, CHAT_PRODUCER_WAITING);
    if (c->dispatching == 0)
        evc__dispatcher_schedule_write(c->disp);
}

int evc_chat_set_watermarks(evc_chat *c, size_t low, size_t high)
{
    if (high && low > high)
        return -EINVAL;
    c->low_water = low;
    c->high_water = high;
    limits_changed(c);
    if (high && evc__outq_bytes(&c->out) > high)
        pause_delivery(c, CHAT_THROTTLED | CHAT_LOW_WATER_ARMED);
    else
        clear_flag(c, CHAT_THROTTLED);
    /* Frames held at the old mark are delivered before the loop sleeps. */
    if (has_flag(c, CHAT_INPUT_HELD) && !has_flag(c, CHAT_THROTTLED) && c->dispatching == 0)
        evc__dispatcher_schedule_write(c->disp);
    evc_dispatcher_update(c->disp);
    return 0;
}

void evc_chat_set_output_limit(evc_chat *c, size_t max)
{
    c->output_limit = max;
    limits_changed(c);
}

size_t evc_chat_output_pending(const evc_chat *c)
{
    return evc__outq_bytes(&c->out);
}
