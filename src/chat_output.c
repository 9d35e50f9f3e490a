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
 * Nothing queued can be written any more.  A queued close_when_done can no
 * longer be reached through the queue, so it is honoured here: otherwise a
 * handle_close that keeps the chat open would leave it open for ever, with
 * every push refused.
 */
static void write_failed(evc_chat *c, int err)
{
    evc__outq_clear(&c->out);
    if (is_peer_gone(err))
        evc__chat_peer_closed(c);
    else
        evc__chat_report_error(c, err);
    if (user_may_continue(c) && c->close_queued)
        evc_chat_close(c);
}

/* Writes what the kernel takes; returns false if the chat closed meanwhile. */
static bool write_queue(evc_chat *c)
{
    int fd = evc__dispatcher_head(c->disp)->fd;
    bool is_socket = evc__dispatcher_head(c->disp)->is_socket;
    for (;;) {
        struct iovec iov[WRITE_IOVS];
        int niov = 0, err = 0;
        size_t nbytes = 0;
        unsigned resumes = c->resumes;
        push_window_close(c);
        evc_outq_state st = evc__outq_iov(&c->out, iov, WRITE_IOVS, &niov, &nbytes, &err);
        /* A producer's more() may have pushed (and opened the window on a chunk
         * that the consume below may free). */
        push_window_close(c);
        if (!user_may_continue(c))
            return false;   /* a producer's callback closed us */
        if (niov > 0) {
            ssize_t n = evc__io_writev(fd, is_socket, iov, niov);
            if (n == -EAGAIN)
                return true;
            if (n < 0) {
                write_failed(c, (int)n);
                return false;
            }
            evc__outq_consume(&c->out, (size_t)n);
            evc__dispatcher_touch(c->disp);
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
            c->producer_waiting = (resumes == c->resumes);
            return true;
        case EVC_OUTQ_CLOSE:
            evc__outq_pop_close(&c->out);
            evc_chat_close(c);
            return false;
        case EVC_OUTQ_ERROR:
            evc__chat_report_error(c, err);
            return false;
        case EVC_OUTQ_DIRECT: {
            ssize_t n = evc__outq_send_direct(&c->out, fd, DIRECT_CHUNK);
            if (n == -EAGAIN)
                return true;
            if (n < 0) {
                write_failed(c, (int)n);
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
    push_window_close(c);
    if (!user_may_continue(c) || h->fd < 0 || h->connecting)
        return;
    if (!write_queue(c))
        return;
    if (c->throttled && c->out.bytes <= c->low_water)
        c->throttled = false;
}

/* The checks every push makes before queueing len more bytes (window closed). */
static inline int push_allowed(const evc_chat *c, size_t len)
{
    if (!user_may_continue(c) || c->close_queued)
        return -EPIPE;
    if (c->output_limit && (len > c->output_limit || c->out.bytes > c->output_limit - len))
        return -ENOBUFS;
    return 0;
}

/*
 * Opens the push window after a push from the chat's own handler left a copy
 * chunk at the tail: the room in it, but no more than keeps the queue at or
 * below both limits, so pushes into the window never have to throttle reading,
 * fail or schedule a write.
 */
static void push_window_open(evc_chat *c)
{
    const evc_outq *q = &c->out;
    if (!c->dispatching || c->closed || !q->tail_copy || q->bytes >= c->quiet_limit)
        return;
    size_t room = q->tail_cap - *q->tail_len;
    size_t allowed = c->quiet_limit - q->bytes;
    c->window = q->tail_copy + *q->tail_len;
    c->window_end = c->window + (room < allowed ? room : allowed);
}

/* evc_chat_push for everything but a push into the open window. */
static __attribute__((noinline)) int push_slow(evc_chat *c, const void *bytes, size_t len)
{
    if (!c || (!bytes && len > 0))
        return -EINVAL;
    push_window_close(c);
    int rc = push_allowed(c, len);
    if (rc < 0 || len == 0)
        return rc;
    if (!evc__outq_append(&c->out, bytes, len)) {
        rc = evc__outq_push_copy(&c->out, bytes, len);
        if (rc < 0)
            return rc;
    }
    output_added(c);
    push_window_open(c);
    return 0;
}

/* A 16-byte unit for copy_bytes: the compiler moves it with one load and one store. */
typedef struct { char b[16]; } block16;

/* memcpy, with the short replies of line protocols (16 to 64 bytes) copied
 * inline by overlapping 16-byte moves instead of a call into libc. */
static inline void copy_bytes(char *dst, const char *src, size_t len)
{
    if (len - 16 > 48) {
        memcpy(dst, src, len);
        return;
    }
    block16 first, last;
    memcpy(&first, src, 16);
    memcpy(&last, src + len - 16, 16);
    if (len > 32) {
        block16 second, before_last;
        memcpy(&second, src + 16, 16);
        memcpy(&before_last, src + len - 32, 16);
        memcpy(dst + 16, &second, 16);
        memcpy(dst + len - 32, &before_last, 16);
    }
    memcpy(dst, &first, 16);
    memcpy(dst + len - 16, &last, 16);
}

int evc_chat_push(evc_chat *c, const void *bytes, size_t len)
{
    /*
     * The common case is a reply pushed from the chat's own callback while the
     * window is open: then it is a copy and nothing else has to happen (no
     * limit to check, no throttling, no write to schedule; push_window_open
     * answered all of that for the whole window).  len - 1 makes a push of 0
     * bytes take the full path, which reports a closed chat.  The closed test
     * catches evc_close_all, which closes the chat without a call into it.
     */
    if (c && bytes && len - 1 < (size_t)(c->window_end - c->window) && !c->closed) {
        copy_bytes(c->window, bytes, len);
        c->window += len;
        return 0;
    }
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
    push_window_close(c);
    int rc = push_allowed(c, len);
    if (rc < 0)
        return rc;
    rc = evc__outq_push_ref(&c->out, bytes, len, release, arg);
    if (rc == 0)
        output_added(c);
    return rc;
}

int evc_chat_push_with_producer(evc_chat *c, evc_producer *p)
{
    if (!c || !p)
        return -EINVAL;
    push_window_close(c);
    int rc = push_allowed(c, 0);
    if (rc < 0)
        return rc;
    rc = evc__outq_push_producer(&c->out, p);
    if (rc == 0)
        output_added(c);
    return rc;
}

void evc_chat_close_when_done(evc_chat *c)
{
    if (!c || c->closed || c->close_queued)
        return;
    push_window_close(c);
    if (evc__outq_push_close(&c->out) < 0) {
        evc_chat_close(c);   /* out of memory: closing now beats never closing */
        return;
    }
    c->close_queued = true;
    output_added(c);
}

void evc_chat_resume(evc_chat *c)
{
    if (!c || c->closed)
        return;
    c->resumes++;
    if (!c->producer_waiting)
        return;
    c->producer_waiting = false;
    if (c->dispatching == 0)
        evc__dispatcher_schedule_write(c->disp);
}

int evc_chat_set_watermarks(evc_chat *c, size_t low, size_t high)
{
    if (high && low > high)
        return -EINVAL;
    push_window_close(c);
    c->low_water = low;
    c->high_water = high;
    limits_changed(c);
    c->throttled = high && c->out.bytes > high;
    /* Frames held at the old mark are delivered before the loop sleeps. */
    if (c->input_held && !c->throttled && c->dispatching == 0)
        evc__dispatcher_schedule_write(c->disp);
    evc_dispatcher_update(c->disp);
    return 0;
}

void evc_chat_set_output_limit(evc_chat *c, size_t max)
{
    push_window_close(c);
    c->output_limit = max;
    limits_changed(c);
}

size_t evc_chat_output_pending(const evc_chat *c)
{
    size_t in_window = c->window ? (size_t)(c->window - (c->out.tail_copy + *c->out.tail_len)) : 0;
    return c->out.bytes + in_window;
}
