/*
 * The chat layer: asynchat.async_chat on a dispatcher.  This file has the
 * input side and the lifetime; chat_output.c has the push FIFO and the writes.
 *
 * A chat owns a dispatcher (its fd and events), an input buffer, a scanner
 * and an output queue.  Bytes flow one way: read into `in`, the scanner finds
 * frame boundaries in place, the user's collect_incoming_data gets pointers
 * into `in`, the user pushes replies into `out`, and `out` is written with one
 * writev at the end of the chat's own callback (or, for pushes made from
 * elsewhere, just before the loop sleeps).  Write interest is armed only for
 * what the kernel did not take.
 *
 * Every call into user code may close the chat, discard its buffers or change
 * its terminator.  The rule here: after each user call, check `closed` (one
 * helper, user_may_continue) before touching anything, and re-read the
 * terminator and the input rather than trusting what was computed before.
 */
#include "chat_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* How much free space each read asks for; a read takes whatever is free.  12 KiB
 * makes a 16 KiB block (the buffer doubles from 4 KiB) that a few held-back
 * bytes do not force to grow to 32 KiB. */
#define READ_RESERVE (12 * 1024)
static const struct evc_dispatcher_ops chat_dispatcher_ops;

void evc__chat_report_error(evc_chat *c, int err)
{
    if (c->ops->handle_error)
        c->ops->handle_error(c, err, c->data);
    else
        evc_chat_close(c);
}


/* ------------------------------------------------------------------ */
/* Input: buffer -> scanner -> collect_incoming_data/found_terminator  */
/* ------------------------------------------------------------------ */

/* The default collector's slow case: a frame that spans reads is copied. */
static void collect_copy(evc_chat *c, const char *p, size_t n)
{
    if (evc__buf_append(&c->frame, p, n) < 0) {
        evc__chat_report_error(c, -ENOMEM);
        return;
    }
    c->incoming = evc__buf_head(&c->frame);
    c->incoming_len = c->frame.len;
}

/* Hands n bytes of the current frame to the collector. */
static inline void collect(evc_chat *c, const char *p, size_t n, bool frame_ends_here)
{
    if (c->ops->collect_incoming_data) {
        c->ops->collect_incoming_data(c, p, n, c->data);
        return;
    }
    /* The default collector: a frame that sits whole in the input buffer is
     * handed to found_terminator in place; only frames that span reads are copied. */
    if (frame_ends_here && c->frame.len == 0) {
        c->incoming = p;
        c->incoming_len = n;
        return;
    }
    collect_copy(c, p, n);
}

/* A frame outgrew max_frame: fail the chat.  Always false. */
static bool frame_too_big(evc_chat *c)
{
    evc__chat_report_error(c, -EMSGSIZE);
    if (user_may_continue(c))
        evc_chat_close(c);   /* an oversized frame cannot be resynchronised */
    return false;
}

/* Enforces the frame limit before a chunk is collected; false if the chat was failed. */
static inline bool frame_fits(evc_chat *c, size_t n)
{
    if (!c->frame_limited || c->max_frame == 0)
        return true;
    if (n <= c->max_frame && c->frame_bytes <= c->max_frame - n) {
        c->frame_bytes += n;
        return true;
    }
    return frame_too_big(c);
}

static inline void frame_done(evc_chat *c)
{
    c->frame_bytes = 0;
    c->incoming = NULL;
    c->incoming_len = 0;
    if (c->frame.data)      /* only frames that spanned reads were copied */
        evc__buf_free(&c->frame);
}

/* Whether max_frame applies follows the terminator's kind and the collector. */
static void terminator_changed(evc_chat *c)
{
    c->frame_limited = c->scanner.kind == EVC_TERM_BYTES || !c->ops->collect_incoming_data;
}

/*
 * Delivers every complete frame in `in`, and the data of an incomplete one.
 * The terminator is re-read on every pass, so a terminator changed inside a
 * callback applies to the bytes that remain.
 */
static void process_input(evc_chat *c)
{
    if (!user_may_continue(c))
        return;
    /* Every exit from user code below re-checks before going round again. */
    while (c->in.len > 0) {
        const char *p = evc__buf_head(&c->in);
        uint64_t generation = c->in_generation;
        evc_scan_result r;
        evc__scan_inline(&c->scanner, p, c->in.len, &r);

        if (r.data_len > 0) {
            if (!frame_fits(c, r.data_len))
                return;
            collect(c, p, r.data_len, r.found);
            if (!user_may_continue(c))
                return;
        }
        if (generation != c->in_generation)
            continue;   /* discard_buffers emptied `in` under us */
        evc__buf_consume_inline(&c->in, r.consumed);
        if (r.found) {
            if (!c->ops->collect_incoming_data && r.data_len == 0 && c->frame.len == 0)
                c->incoming = p, c->incoming_len = 0;   /* an empty frame */
            if (c->ops->found_terminator)
                c->ops->found_terminator(c, c->data);
            if (!user_may_continue(c))
                return;
            frame_done(c);
        } else if (r.consumed == 0) {
            break;      /* only a possible terminator prefix is left: wait for more */
        }
    }
    if (c->in.len == 0)
        evc__buf_trim(&c->in);
}

/* The peer closed: deliver what was held back as a possible terminator prefix. */
static void deliver_held(evc_chat *c)
{
    size_t held = evc__scanner_flush_held(&c->scanner);
    if (held == 0 || held > c->in.len)
        return;
    if (!frame_fits(c, held))
        return;
    collect(c, evc__buf_head(&c->in), held, false);
    if (user_may_continue(c))
        evc__buf_consume(&c->in, held);
}

void evc__chat_peer_closed(evc_chat *c)
{
    c->eof = true;
    deliver_held(c);
    if (!user_may_continue(c))
        return;
    if (c->ops->handle_close) {
        c->ops->handle_close(c, c->data);
    } else if (evc__outq_empty(&c->out)) {
        evc_chat_close(c);
    } else {
        /* Replies to what the peer sent before closing are still written. */
        evc_chat_close_when_done(c);
    }
}

static void read_some(evc_chat *c)
{
    int fd = evc__dispatcher_head(c->disp)->fd;
    if (evc__buf_reserve(&c->in, READ_RESERVE) < 0) {
        evc__chat_report_error(c, -ENOMEM);
        return;
    }
    size_t avail;
    char *tail = evc__buf_tail(&c->in, &avail);
    ssize_t n = evc__io_read(fd, tail, avail);
    if (n > 0) {
        evc__buf_commit(&c->in, (size_t)n);
        evc__dispatcher_touch(c->disp);
        process_input(c);
    } else if (n == 0 || is_peer_gone((int)n)) {
        evc__chat_peer_closed(c);
    } else if (n != -EAGAIN) {
        evc__chat_report_error(c, (int)n);
    }
    if (c->in.len == 0)
        evc__buf_trim(&c->in);
}

/* ------------------------------------------------------------------ */
/* The dispatcher's view of a chat                                     */
/* ------------------------------------------------------------------ */

static bool chat_readable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    return !c->eof && !c->throttled;
}

static bool chat_writable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    if (evc__dispatcher_head(d)->connecting)
        return true;
    return !evc__outq_empty(&c->out) && !c->producer_waiting;
}

static void chat_handle_read(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    read_some(c);
    evc__chat_flush(c);
    c->dispatching--;
}

static void chat_handle_write(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    evc__chat_flush(c);
    c->dispatching--;
}

static void chat_handle_connect(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    if (c->ops->handle_connect)
        c->ops->handle_connect(c, c->data);
    evc__chat_flush(c);
    c->dispatching--;
}

static void chat_handle_close(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    evc__chat_peer_closed(c);
    evc__chat_flush(c);
    c->dispatching--;
}

static void chat_handle_error(evc_dispatcher *d, int err, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    evc__chat_report_error(c, err);
    c->dispatching--;
}

static void chat_handle_timeout(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    c->dispatching++;
    if (c->ops->handle_timeout)
        c->ops->handle_timeout(c, c->data);
    else
        evc_chat_close(c);
    evc__chat_flush(c);
    c->dispatching--;
}

static void chat_on_destroy(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    /* evc_close_all closes the dispatcher with output still queued.  Release
     * callbacks and producers may use the user's data, and on_destroy, the last
     * callback, may free it: so they all run first. */
    evc__outq_clear(&c->out);
    if (!c->stillborn && c->ops->on_destroy)
        c->ops->on_destroy(c, c->data);
    evc__buf_free(&c->in);
    evc__buf_free(&c->frame);
    evc__scanner_free(&c->scanner);
    free(c);
}

static const struct evc_dispatcher_ops chat_dispatcher_ops = {
    .readable = chat_readable,
    .writable = chat_writable,
    .handle_read = chat_handle_read,
    .handle_write = chat_handle_write,
    .handle_connect = chat_handle_connect,
    .handle_close = chat_handle_close,
    .handle_error = chat_handle_error,
    .handle_timeout = chat_handle_timeout,
    .on_destroy = chat_on_destroy,
};

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

static const struct evc_chat_ops default_ops;

evc_chat *evc_chat_new(struct ev_loop *loop, int fd, const struct evc_chat_ops *ops, void *data)
{
    /* F_GETFL both proves fd open and tells whether the dispatcher need set
     * O_NONBLOCK (an accept4'd socket already is). */
    int flags = fd >= 0 ? fcntl(fd, F_GETFL) : 0;
    if (!loop || fd < -1 || flags < 0) {
        errno = (fd >= 0 || fd < -1) ? EBADF : EINVAL;
        return NULL;
    }
    evc_chat *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ops = ops ? ops : &default_ops;
    c->data = data;
    c->max_frame = EVC_DEFAULT_MAX_FRAME;
    c->low_water = EVC_DEFAULT_LOW_WATER;
    c->high_water = EVC_DEFAULT_HIGH_WATER;
    c->output_limit = EVC_DEFAULT_OUTPUT_LIMIT;
    evc__scanner_init(&c->scanner);
    terminator_changed(c);
    c->disp = evc_dispatcher_new(loop, &chat_dispatcher_ops, c);
    if (!c->disp) {
        int saved = errno;
        evc__scanner_free(&c->scanner);
        free(c);
        errno = saved;
        return NULL;
    }
    evc__dispatcher_mirror_closed(c->disp, &c->closed);
    if (fd >= 0) {
        int rc = (flags & O_NONBLOCK) ? evc__dispatcher_adopt(c->disp, fd)
                                      : evc_dispatcher_set_socket(c->disp, fd);
        if (rc < 0) {
            /* The dispatcher frees the chat from the loop; the user hears nothing. */
            c->stillborn = true;
            c->closed = true;
            evc_dispatcher_close(c->disp);
            errno = -rc;
            return NULL;
        }
    }
    return c;
}

int evc_chat_connect(evc_chat *c, const struct sockaddr *addr, socklen_t len)
{
    if (!c || !addr)
        return -EINVAL;
    if (c->closed)
        return -EPIPE;
    if (evc_dispatcher_fd(c->disp) < 0) {
        int rc = evc_dispatcher_create_socket(c->disp, addr->sa_family, SOCK_STREAM);
        if (rc < 0)
            return rc;
    }
    return evc_dispatcher_connect(c->disp, addr, len);
}

int evc_chat_set_terminator(evc_chat *c, const char *term)
{
    if (!c || !term)
        return -EINVAL;
    return evc_chat_set_terminator_bytes(c, term, strlen(term));
}

int evc_chat_set_terminator_bytes(evc_chat *c, const void *bytes, size_t len)
{
    if (!c || (!bytes && len > 0))
        return -EINVAL;
    int rc = evc__scanner_set_bytes(&c->scanner, bytes, len);
    terminator_changed(c);
    return rc;
}

int evc_chat_set_terminator_count(evc_chat *c, uint64_t n)
{
    if (!c)
        return -EINVAL;
    evc__scanner_set_count(&c->scanner, n);
    terminator_changed(c);
    return 0;
}

void evc_chat_set_terminator_none(evc_chat *c)
{
    if (c) {
        evc__scanner_set_none(&c->scanner);
        terminator_changed(c);
    }
}

evc_terminator evc_chat_get_terminator(const evc_chat *c)
{
    return evc__scanner_get(&c->scanner);
}

void evc_chat_discard_buffers(evc_chat *c)
{
    if (!c)
        return;
    evc__buf_clear(&c->in);
    c->in_generation++;
    c->scanner.held = 0;
    frame_done(c);
    evc__outq_clear(&c->out);
    c->close_queued = false;
    c->producer_waiting = false;
    c->throttled = false;
    /* Reading may have been paused for the output just dropped, with write
     * interest armed on a full socket: nothing would wake the chat again.
     * Inside its own handlers the dispatcher re-asks on the way out. */
    if (c->dispatching == 0)
        evc_dispatcher_update(c->disp);
}

void evc_chat_close(evc_chat *c)
{
    if (!c || c->closed)
        return;
    c->closed = true;
    evc__outq_clear(&c->out);
    evc_dispatcher_close(c->disp);
}

bool evc_chat_closed(const evc_chat *c)
{
    return !user_may_continue(c);
}

const char *evc_chat_incoming(evc_chat *c, size_t *len)
{
    if (c->incoming) {
        *len = c->incoming_len;
        return c->incoming;
    }
    *len = c->frame.len;
    return c->frame.len ? evc__buf_head(&c->frame) : "";
}

void evc_chat_set_max_frame(evc_chat *c, size_t max)
{
    c->max_frame = max;
}

void evc_chat_set_timeout(evc_chat *c, double seconds)
{
    evc_dispatcher_set_timeout(c->disp, seconds);
}

int evc_chat_peer_address(const evc_chat *c, struct sockaddr_storage *ss, socklen_t *len)
{
    int fd = evc_dispatcher_fd(c->disp);
    if (fd < 0)
        return -ENOTCONN;
    *len = sizeof *ss;
    return getpeername(fd, (struct sockaddr *)ss, len) < 0 ? -errno : 0;
}

evc_dispatcher *evc_chat_dispatcher(evc_chat *c)
{
    return c->disp;
}

void *evc_chat_data(const evc_chat *c)
{
    return c->data;
}
