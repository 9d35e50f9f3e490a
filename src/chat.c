/*
 * The chat layer: asynchat.async_chat on a dispatcher.  This file has the
 * input side; chat_output.c has the push FIFO and the writes, and
 * chat_lifetime.c the lifetime and the dispatcher's callbacks.
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
#include <string.h>

/*
 * How much free space each read asks for; a read takes whatever is free.  A
 * read block is EVC_READ_BLOCK (64 KiB), borrowed from the loop's pool for as
 * long as input is waiting: the system calls, not the bytes, are what a
 * pipelined channel pays most for, and 64 KiB reads make a quarter of the calls
 * 16 KiB ones do (bench/README.md).  The reserve leaves room for a few bytes
 * held back as a terminator prefix without growing the block.
 */
#define READ_RESERVE (EVC_READ_BLOCK - 4096)

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

/* The library's collector: a frame that spans reads (or pieces a custom
 * collector delegates) is copied.  0, -ENOMEM or -EMSGSIZE. */
static int collect_copy(evc_chat *c, const char *p, size_t n)
{
    if (evc__buf_append(&c->frame, p, n) < 0)
        return -ENOMEM;
    c->incoming = evc__buf_head(&c->frame);
    c->incoming_len = c->frame.len;
    return 0;
}

static inline void frame_done(evc_chat *c)
{
    c->frames_done++;
    c->incoming = NULL;
    c->incoming_len = 0;
    if (c->frame.data)      /* only frames that spanned reads were copied */
        evc__buf_free(&c->frame);
}

/*
 * The framing failed: a frame outgrew max_frame (-EMSGSIZE) or broke its
 * protocol (-EPROTO).  The stream cannot be resynchronised, but the server may
 * answer: replies queued for earlier frames stay queued, the handler may push
 * one more and call close_when_done, and the rest of the input is dropped.
 * Whatever the handler does, the chat closes once its output is written
 * (unless it closed the chat itself).
 */
static void input_failed(evc_chat *c, int err)
{
    c->input = input_ended(c) ? INPUT_ENDED_DISCARDING : INPUT_DISCARDING;
    evc__buf_clear(&c->in);
    frame_done(c);
    if (err == -EMSGSIZE && c->ops->frame_too_long)
        c->ops->frame_too_long(c, c->data);
    else if (c->ops->handle_error)
        c->ops->handle_error(c, err, c->data);
    if (user_may_continue(c))
        evc_chat_close_when_done(c);
}

/* A custom collector's evc_chat_collect failed: report it.  Always false. */
static bool collect_failed(evc_chat *c)
{
    int err = c->collect_error;
    c->collect_error = 0;
    if (err == -EMSGSIZE)
        input_failed(c, err);
    else
        evc__chat_report_error(c, err);
    return false;
}

/* The found_terminator of a chat that has none: the frame is dropped. */
static void ignore_frame(evc_chat *c, void *data)
{
    (void)c, (void)data;
}

/* What the line fast path's delivery needs, in the delivery loop's registers. */
typedef struct in_place {
    evc_chat *c;
    void (*found)(evc_chat *, void *);   /* never NULL: ignore_frame stands in */
    void *data;
    const bool *closed;                  /* the dispatcher's, read by user_may_continue */
} in_place;

/* The line fast path's delivery (evc__scan_lines): a whole frame in place to
 * the default collector and found_terminator.  Whether delivery may go on.
 * Only a close has to be checked here: whatever else stops delivery (a pause,
 * the high-water mark, a new terminator, discard_buffers) ends the batch in
 * the engine (pause_delivery, the engine's setters and reset). */
static inline bool deliver_in_place(void *ctx, const char *frame, size_t n, size_t consumed)
{
    const in_place *ip = ctx;
    evc_chat *c = ip->c;
    /* The batch consumes `in` once, at its end; meanwhile in_next says where
     * the undelivered rest starts (evc_chat_peek, discard_buffers). */
    c->in_next = frame + consumed;
    c->incoming = frame;
    c->incoming_len = n;
    ip->found(c, ip->data);
    return !*ip->closed;
}

/*
 * The one delivery loop: the engine finds the next piece of a frame in `in`,
 * the collector gets it, and found_terminator follows when the frame ends.
 * The piece is consumed before any user code runs, so whatever a callback
 * does (a new terminator, discard_buffers, a pause) applies to the bytes that
 * remain, which the engine is simply asked about again.  For a one-byte
 * delimiter and the default collector the engine hands over a batch of whole
 * frames in place (evc__scan_lines), one found_terminator each.
 */
static void process_input(evc_chat *c)
{
    if (!user_may_continue(c))
        return;
    if (input_discarding(c)) {
        evc__buf_clear(&c->in);
        return;
    }
    evc_scanner *const engine = &c->scanner;
    void (*const custom)(evc_chat *, const char *, size_t, void *) = c->ops->collect_incoming_data;
    void (*const found)(evc_chat *, void *) = c->ops->found_terminator;
    void *const data = c->data;
    in_place ip = {c, found ? found : ignore_frame, data, &evc__dispatcher_head(c->disp)->closed};
    while ((c->in.len > 0 || evc__scanner_ready(engine)) && !delivery_paused(c)) {
        const char *p = evc__buf_head(&c->in);
        if (!custom && c->frame.len == 0 && evc__scan_lines_apply(engine)) {
            size_t passed = evc__scan_lines(engine, p, c->in.len, deliver_in_place, &ip);
            if (!user_may_continue(c))
                return;
            if (c->in_next) {   /* NULL: discard_buffers emptied `in` meanwhile */
                evc__buf_consume_inline(&c->in, (size_t)(c->in_next - p));
                c->in_next = NULL;
            }
            frame_done(c);
            if (passed > 0)
                continue;
            /* A rest without a delimiter, or a frame over the limit: below. */
        }
        const evc_scan_result r = evc__scan_step(engine, p, c->in.len);
        if (r.error) {
            input_failed(c, r.error);
            return;
        }
        evc__buf_consume_inline(&c->in, r.consumed);
        if (r.data_len == 0) {
            if (r.found)
                goto found_it;
            if (r.consumed == 0)
                break;      /* only held bytes are left: wait for more */
            continue;       /* a length header went by */
        }
        if (custom) {
            const unsigned epoch = evc__scanner_epoch(engine);
            custom(c, p + r.start, r.data_len, data);
            if (!user_may_continue(c))
                return;
            if (c->collect_error) {
                collect_failed(c);
                return;
            }
            if (epoch != evc__scanner_epoch(engine))
                continue;   /* discard_buffers in the collector: this frame is gone */
        } else if (r.found && c->frame.len == 0) {
            c->incoming = p + r.start;      /* whole in `in`: no copy */
            c->incoming_len = r.data_len;
        } else if (collect_copy(c, p + r.start, r.data_len) < 0) {
            evc__chat_report_error(c, -ENOMEM);
            return;
        }
        if (!r.found)
            continue;
found_it:
        if (found) {
            found(c, data);
            if (!user_may_continue(c))
                return;
        }
        frame_done(c);
    }
    if ((c->in.len > 0 || evc__scanner_ready(engine)) && delivery_paused(c) &&
        !input_discarding(c))
        set_flag(c, CHAT_INPUT_HELD);
    else
        clear_flag(c, CHAT_INPUT_HELD);
    input_drained(c);
}

/*
 * Delivers frames held at the high-water mark (or by a pause) once delivery may
 * go on, writing after each batch, until they are all delivered or delivery
 * stops again.  Nothing new is read meanwhile, so a peer's requests cannot pile
 * up in the input while their replies pile up in the output.
 */
void evc__chat_deliver_held(evc_chat *c)
{
    while (has_flag(c, CHAT_INPUT_HELD) && !delivery_paused(c) && user_may_continue(c)) {
        clear_flag(c, CHAT_INPUT_HELD);
        process_input(c);
        evc__chat_flush(c);
    }
}

/* Frames buffered or due (a count of 0) while no handler of the chat runs: have
 * the dispatcher call handle_write, which delivers them, before the loop sleeps. */
static void input_became_deliverable(evc_chat *c)
{
    if (!user_may_continue(c) || input_discarding(c) || delivery_paused(c))
        return;
    if (c->in.len == 0 && !evc__scanner_ready(&c->scanner))
        return;
    set_flag(c, CHAT_INPUT_HELD);
    if (c->dispatching == 0)
        evc_dispatcher_update(c->disp);
}

void evc__chat_peer_closed(evc_chat *c)
{
    c->input = input_discarding(c) ? INPUT_ENDED_DISCARDING : INPUT_ENDED;
    if (has_flag(c, CHAT_INPUT_HELD)) {
        clear_flag(c, CHAT_INPUT_HELD);
        process_input(c);
        if (!user_may_continue(c))
            return;
    }
    /* Bytes held back as a possible delimiter are data now. */
    evc__scanner_end(&c->scanner);
    process_input(c);
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

void evc__chat_read(evc_chat *c)
{
    if (c->state == CHAT_LINGERING) {
        discard_input(c);
        return;
    }
    /* chat_readable keeps a chat with held frames from being asked to read, but
     * should the event come anyway, frames already read go before new bytes. */
    if (has_flag(c, CHAT_INPUT_HELD)) {
        evc__chat_deliver_held(c);
        if (has_flag(c, CHAT_INPUT_HELD) || !user_may_continue(c))
            return;
    }
    if (has_flag(c, CHAT_READING_PAUSED))
        return;
    /* An empty input takes a read block from the loop's source here. */
    if (evc__buf_reserve(&c->in, READ_RESERVE) < 0) {
        evc__chat_report_error(c, -ENOMEM);
        return;
    }
    if (EVC_UNLIKELY(c->tls) && !evc__tls_read_ready(c)) {
        input_drained(c);
        return;
    }
    size_t avail;
    char *tail = evc__buf_tail(&c->in, &avail);
    ssize_t n = EVC_UNLIKELY(c->tls) ? evc__tls_read(c, tail, avail)
                                     : evc__dispatcher_read(c->disp, tail, avail);
    if (n > 0) {
        const unsigned frames_before = c->frames_done;
        evc__buf_commit(&c->in, (size_t)n);
        process_input(c);
        if (EVC_UNLIKELY(c->frame_deadline_on))
            evc__chat_track_frame(c, frames_before);
    } else if (n == EVC_IO_GONE) {
        evc__chat_peer_closed(c);
    } else if (n != -EAGAIN) {
        evc__chat_report_error(c, (int)n);
    }
    input_drained(c);
}

/* STARTTLS: what the peer sent after the command that starts TLS came before
 * the handshake, so no TLS protects it.  It is dropped, and a batch of lines
 * in progress stops after the current frame. */
void evc__chat_drop_input(evc_chat *c)
{
    evc__buf_clear(&c->in);
    c->in_next = NULL;
    evc__scanner_reset(&c->scanner);
    evc__scan_lines_stop(&c->scanner);
    clear_flag(c, CHAT_INPUT_HELD);
}

/* ------------------------------------------------------------------ */
/* Public API: framing and input                                       */
/* ------------------------------------------------------------------ */

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
    return evc__scanner_set_bytes(&c->scanner, bytes, len);
}

int evc_chat_set_terminator_count(evc_chat *c, uint64_t n)
{
    if (!c)
        return -EINVAL;
    evc__scanner_set_count(&c->scanner, n);
    input_became_deliverable(c);   /* a count of 0 is a frame now */
    return 0;
}

void evc_chat_set_terminator_none(evc_chat *c)
{
    if (c)
        evc__scanner_set_none(&c->scanner);
}

int evc_chat_set_terminator_line(evc_chat *c, evc_eol eol)
{
    if (!c)
        return -EINVAL;
    return evc__scanner_set_line(&c->scanner, eol);
}

int evc_chat_set_terminator_any(evc_chat *c, const char *const *delims, const size_t *lens,
                                size_t n)
{
    if (!c)
        return -EINVAL;
    return evc__scanner_set_any(&c->scanner, delims, lens, n);
}

size_t evc_chat_terminator_matched(const evc_chat *c)
{
    return evc__scanner_matched(&c->scanner);
}

int evc_chat_set_terminator_count_then(evc_chat *c, uint64_t n, const void *delim, size_t len)
{
    if (!c)
        return -EINVAL;
    return evc__scanner_set_count_then(&c->scanner, n, delim, len);
}

int evc_chat_set_terminator_prefix(evc_chat *c, unsigned width, bool big_endian, uint64_t max)
{
    if (!c)
        return -EINVAL;
    return evc__scanner_set_prefix(&c->scanner, width, big_endian, max);
}

int evc_chat_set_terminator_netstring(evc_chat *c, uint64_t max)
{
    if (!c)
        return -EINVAL;
    return evc__scanner_set_netstring(&c->scanner, max);
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
    c->in_next = NULL;
    evc__scanner_reset(&c->scanner);
    frame_done(c);
    evc__outq_clear(&c->out);
    evc__chat_account(c);
    /* The queued close went with the queue; a chat already lingering stays so. */
    if (c->state == CHAT_CLOSING || c->state == CHAT_SHUTTING)
        c->state = CHAT_OPEN;
    clear_flag(c, CHAT_PRODUCER_WAITING | CHAT_THROTTLED | CHAT_INPUT_HELD);
    clear_flag(c, CHAT_DRAIN_ARMED | CHAT_LOW_WATER_ARMED);   /* dropped, not written */
    /* Reading may have been paused for the output just dropped, with write
     * interest armed on a full socket: nothing would wake the chat again.
     * Inside its own handlers the dispatcher re-asks on the way out. */
    if (c->dispatching == 0)
        evc_dispatcher_update(c->disp);
}

const char *evc_chat_incoming(evc_chat *c, size_t *len)
{
    /* An empty frame is collected as nothing: NULL, never a pointer with length 0. */
    *len = c->incoming_len;
    return c->incoming_len ? c->incoming : NULL;
}

int evc_chat_collect(evc_chat *c, const char *p, size_t n)
{
    if (!c || (!p && n > 0))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (c->max_frame && (n > c->max_frame || c->frame.len > c->max_frame - n)) {
        c->collect_error = -EMSGSIZE;
        return -EMSGSIZE;
    }
    int rc = collect_copy(c, p, n);
    if (rc < 0)
        c->collect_error = rc;
    return rc;
}

const char *evc_chat_peek(evc_chat *c, size_t *len)
{
    const char *head = evc__buf_head(&c->in);
    *len = input_discarding(c) ? 0 : c->in.len;
    if (*len && c->in_next) {   /* inside a batch of lines: after the current frame */
        *len -= (size_t)(c->in_next - head);
        head = c->in_next;
    }
    return *len ? head : NULL;
}

void evc_chat_pause_reading(evc_chat *c)
{
    if (!c || has_flag(c, CHAT_READING_PAUSED))
        return;
    pause_delivery(c, CHAT_READING_PAUSED);
    if (c->dispatching == 0 && user_may_continue(c))
        evc_dispatcher_update(c->disp);
}

void evc_chat_resume_reading(evc_chat *c)
{
    if (!c || !has_flag(c, CHAT_READING_PAUSED))
        return;
    clear_flag(c, CHAT_READING_PAUSED);
    /* Frames already read go first: handle_write delivers them before the
     * socket is read again (chat_readable is false while frames are held). */
    input_became_deliverable(c);
    if (c->dispatching == 0 && user_may_continue(c))
        evc_dispatcher_update(c->disp);
}

void evc_chat_set_keep_terminator(evc_chat *c, bool keep)
{
    evc__scanner_set_keep(&c->scanner, keep);
}

void evc_chat_set_max_frame(evc_chat *c, size_t max)
{
    c->max_frame = max;
    evc__scanner_set_limit(&c->scanner, max, !c->ops->collect_incoming_data);
}
