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
#include "lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * How much free space each read asks for; a read takes whatever is free.  A
 * read block is EVC_READ_BLOCK (64 KiB), borrowed from the loop's pool for as
 * long as input is waiting: the system calls, not the bytes, are what a
 * pipelined channel pays most for, and 64 KiB reads make a quarter of the calls
 * 16 KiB ones do (bench/README.md).  The reserve leaves room for a few bytes
 * held back as a terminator prefix without growing the block.
 */
#define READ_RESERVE (EVC_READ_BLOCK - 4096)
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

/* Once every byte read was delivered the chat needs no input block until its
 * next read: trim drops it (a read block goes back to the loop's source once no
 * output queue references it, any other is freed).  A few bytes held back as a
 * terminator prefix move to a small block, so a channel that goes quiet in the
 * middle of a terminator does not keep 64 KiB. */
static void input_drained(evc_chat *c)
{
    if (c->in.data)
        evc__buf_trim(&c->in);
}

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

/* Whether max_frame applies follows the terminator's kind and the collector.
 * The count of changes tells deliver_lines that a callback changed the framing. */
static void terminator_changed(evc_chat *c)
{
    c->frame_limited = c->scanner.kind == EVC_TERM_BYTES || !c->ops->collect_incoming_data;
    c->framing_changes++;
}

/* Bytes of a frame the scanner found that the collector gets: its data, and its
 * terminator too when the chat keeps terminators (for a count terminator the two agree). */
static inline size_t frame_take(const evc_chat *c, const evc_scan_result *r)
{
    return r->found && c->keep_terminator ? r->consumed : r->data_len;
}

/* deliver_lines applies: a one-byte terminator, the default collector, and no
 * frame begun in an earlier read. */
static inline bool lines_apply(const evc_chat *c)
{
    return c->scanner.kind == EVC_TERM_BYTES && c->scanner.term_len == 1 &&
           !c->ops->collect_incoming_data && c->frame.len == 0 && c->frame_bytes == 0;
}

/*
 * The line protocols' fast path: what process_input's general loop does for a
 * one-byte terminator and the default collector, with the per-frame work cut to
 * one memchr and the callback.  Each frame is handed over in place and `in` is
 * updated once, after the last frame, rather than per frame.  It stops at the
 * first change a callback makes (a close, discard_buffers, a new terminator)
 * and leaves what remains to the general loop.  A rest without a terminator is
 * the start of the next frame: it is collected here, so no byte is scanned twice.
 * Each call consumes something or fails the chat; false when the chat closed.
 */
static bool deliver_lines(evc_chat *c)
{
    const char *start = evc__buf_head(&c->in);
    const char *p = start, *end = start + c->in.len, *hit = NULL;
    evc_line_cursor lines;
    /* Everything a callback could change is behind framing_changes (terminator,
     * keep_terminator, max_frame, discard_buffers) or closed; ops and data are fixed. */
    const unsigned framing = c->framing_changes;
    evc__lines_init(&lines, p, end, (unsigned char)c->scanner.term[0]);
    const size_t keep = c->keep_terminator;
    const size_t max = c->max_frame ? c->max_frame : SIZE_MAX;
    void (*const found)(evc_chat *, void *) = c->ops->found_terminator;
    void *const data = c->data;
    const uint64_t generation = c->in_generation;
    bool oversized = false;

    while ((hit = evc__lines_next(&lines)) != NULL) {
        size_t len = (size_t)(hit - p) + keep;
        if (len > max) {
            oversized = true;
            break;
        }
        c->incoming = p;
        c->incoming_len = len;
        p = hit + 1;
        if (found) {
            found(c, data);
            if (framing != c->framing_changes || !user_may_continue(c) || delivery_paused(c))
                break;
        }
    }
    c->incoming = NULL;
    c->incoming_len = 0;
    if (!user_may_continue(c))
        return false;
    if (generation != c->in_generation)
        return true;     /* discard_buffers emptied `in` under us */
    c->scanner.examined += (uint64_t)(p - start);
    evc__buf_consume_inline(&c->in, (size_t)(p - start));
    if (oversized)
        return frame_too_big(c);
    if (hit || p == end)
        return true;

    /* No terminator in the rest: it is the start of a frame that spans reads. */
    size_t rest = (size_t)(end - p);
    c->scanner.examined += rest;
    if (!frame_fits(c, rest))
        return false;
    collect_copy(c, p, rest);
    if (!user_may_continue(c))
        return false;
    evc__buf_consume_inline(&c->in, rest);
    return true;
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
    while (c->in.len > 0 && !delivery_paused(c)) {
        if (lines_apply(c)) {
            if (!deliver_lines(c))
                return;
            continue;
        }
        const char *p = evc__buf_head(&c->in);
        uint64_t generation = c->in_generation;
        evc_scan_result r;
        evc__scan_inline(&c->scanner, p, c->in.len, &r);

        size_t take = frame_take(c, &r);
        if (take > 0) {
            if (!frame_fits(c, take))
                return;
            collect(c, p, take, r.found);
            if (!user_may_continue(c))
                return;
        }
        if (generation != c->in_generation)
            continue;   /* discard_buffers emptied `in` under us */
        evc__buf_consume_inline(&c->in, r.consumed);
        if (r.found) {
            if (!c->ops->collect_incoming_data && take == 0 && c->frame.len == 0)
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
    c->input_held = c->in.len > 0 && delivery_paused(c);
    input_drained(c);
}

/*
 * Delivers frames held at the high-water mark once the queue has drained
 * below the low mark, writing after each batch, until they are all delivered
 * or the mark is crossed again.  Nothing new is read meanwhile, so a peer's
 * requests cannot pile up in the input while their replies pile up in the output.
 */
static void deliver_held_frames(evc_chat *c)
{
    while (c->input_held && !c->throttled && user_may_continue(c)) {
        c->input_held = false;
        process_input(c);
        evc__chat_flush(c);
    }
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
    if (c->input_held) {
        c->input_held = false;
        process_input(c);
        if (!user_may_continue(c))
            return;
    }
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

/* Lingering after evc_chat_shutdown_when_done: read and discard until the peer
 * closes (or fails), delivering nothing. */
static void discard_input(evc_chat *c)
{
    char scratch[16384];
    ssize_t n = evc__dispatcher_read(c->disp, scratch, sizeof scratch);
    if (n > 0 || n == -EAGAIN)
        return;
    evc__chat_linger_done(c);
}

static void read_some(evc_chat *c)
{
    if (c->lingering) {
        discard_input(c);
        return;
    }
    /* chat_readable keeps a chat with held frames from being asked to read, but
     * should the event come anyway, frames already read go before new bytes. */
    if (c->input_held) {
        deliver_held_frames(c);
        if (c->input_held || !user_may_continue(c))
            return;
    }
    /* An empty input takes a read block from the loop's source here. */
    if (evc__buf_reserve(&c->in, READ_RESERVE) < 0) {
        evc__chat_report_error(c, -ENOMEM);
        return;
    }
    size_t avail;
    char *tail = evc__buf_tail(&c->in, &avail);
    ssize_t n = evc__dispatcher_read(c->disp, tail, avail);
    if (n > 0) {
        evc__buf_commit(&c->in, (size_t)n);
        process_input(c);
    } else if (n == EVC_IO_GONE) {
        evc__chat_peer_closed(c);
    } else if (n != -EAGAIN) {
        evc__chat_report_error(c, (int)n);
    }
    input_drained(c);
}

/* ------------------------------------------------------------------ */
/* The dispatcher's view of a chat                                     */
/* ------------------------------------------------------------------ */

static bool chat_readable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    if (c->lingering)
        return true;
    return !c->eof && !c->throttled && !c->input_held;
}

static bool chat_writable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    if (evc__dispatcher_head(d)->connecting)
        return true;
    if (c->lingering || c->write_err)
        return false;
    /* Held frames that may go on now are delivered from handle_write, which a
     * writable socket calls at once. */
    if (c->input_held && !c->throttled)
        return true;
    return !evc__outq_empty(&c->out) && !c->producer_waiting;
}

/*
 * The end of every event, from the top of the handler: write what was pushed,
 * deliver frames held at the high-water mark if the writes made room, then let
 * the output side act on what happened (a failed write, a drained queue).
 */
static void finish_event(evc_chat *c)
{
    evc__chat_flush(c);
    deliver_held_frames(c);
    evc__chat_settle_output(c);
}

static void chat_handle_read(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    read_some(c);
    finish_event(c);
    leave_handler(c);
}

static void chat_handle_write(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    finish_event(c);
    leave_handler(c);
}

static void chat_handle_connect(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    if (c->ops->handle_connect)
        c->ops->handle_connect(c, c->data);
    finish_event(c);
    leave_handler(c);
}

static void chat_handle_close(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    evc__chat_peer_closed(c);
    finish_event(c);
    leave_handler(c);
}

static void chat_handle_error(evc_dispatcher *d, int err, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    evc__chat_report_error(c, err);
    leave_handler(c);
}

static void chat_handle_timeout(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    if (c->lingering)
        evc__chat_linger_done(c);
    else if (c->ops->handle_timeout)
        c->ops->handle_timeout(c, c->data);
    else
        evc_chat_close(c);
    finish_event(c);
    leave_handler(c);
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
    limits_changed(c);
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
    evc__buf_init(&c->in, evc__registry_blocks(evc__dispatcher_entry(c->disp)));
    if (fd >= 0) {
        int rc = (flags & O_NONBLOCK) ? evc__dispatcher_adopt(c->disp, fd)
                                      : evc_dispatcher_set_socket(c->disp, fd);
        if (rc < 0) {
            /* The dispatcher frees the chat from the loop; the user hears nothing. */
            c->stillborn = true;
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
    if (!user_may_continue(c))
        return -EPIPE;
    if (evc_dispatcher_fd(c->disp) < 0) {
        int rc = evc_dispatcher_create_socket(c->disp, addr->sa_family, SOCK_STREAM);
        if (rc < 0)
            return rc;
    }
    return evc_dispatcher_connect(c->disp, addr, len);
}

int evc_chat_connect_addr(evc_chat *c, const char *text)
{
    if (!c || !text)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = evc_addr_parse(text, &ss, &len);
    if (rc < 0)
        return rc;
    return evc_chat_connect(c, (const struct sockaddr *)&ss, len);
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
    c->framing_changes++;   /* and stops deliver_lines */
    c->scanner.held = 0;
    frame_done(c);
    evc__outq_clear(&c->out);
    c->close_queued = c->shutdown_queued = false;
    c->producer_waiting = false;
    c->throttled = false;
    c->input_held = false;
    c->drain_armed = c->low_water_armed = false;   /* dropped, not written */
    /* Reading may have been paused for the output just dropped, with write
     * interest armed on a full socket: nothing would wake the chat again.
     * Inside its own handlers the dispatcher re-asks on the way out. */
    if (c->dispatching == 0)
        evc_dispatcher_update(c->disp);
}

void evc_chat_close(evc_chat *c)
{
    if (!c || !user_may_continue(c))
        return;
    /* Closed first: release callbacks and producers' on_destroy, run by the
     * clear, see a closed chat and cannot queue anything more. */
    evc_dispatcher_close(c->disp);
    evc__outq_clear(&c->out);
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

void evc_chat_set_keep_terminator(evc_chat *c, bool keep)
{
    c->keep_terminator = keep;
    c->framing_changes++;
}

void evc_chat_set_max_frame(evc_chat *c, size_t max)
{
    c->max_frame = max;
    c->framing_changes++;
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
