/*
 * What the two halves of the chat share: the chat's state, the re-check after
 * user code, and the calls one half makes into the other.  chat.c has the
 * input side and the lifetime (read -> scan -> callbacks); chat_output.c has
 * the push FIFO and the writing (push -> queue -> writev).  Never installed.
 */
#ifndef EVC_CHAT_INTERNAL_H
#define EVC_CHAT_INTERNAL_H

#include "internal.h"

#include <errno.h>

struct evc_chat {
    /* What every frame and every push touches comes first, so that it shares
     * a couple of cache lines that the bytes streaming through do not evict. */
    const char *incoming;   /* default collector: the frame found_terminator sees (NULL: none) */
    size_t incoming_len;
    evc_dispatcher *disp;   /* its head's `closed` is the chat's (user_may_continue) */
    /* The output queue.  Its reserve (evc__outq_append) is open only inside the
     * chat's own handlers and only up to quiet_limit (enter_handler), so a push
     * into it needs nothing else: no limit to check, no write to schedule. */
    evc_outq out;
    size_t quiet_limit;     /* queued bytes a push may reach without crossing either limit
                             * below (SIZE_MAX when both are off): evc_chat_push's one check */
    unsigned dispatching;   /* nesting depth of this chat's own event handlers */
    const struct evc_chat_ops *ops;
    void *data;

    evc_buf in;             /* bytes read and not yet delivered */
    evc_scanner scanner;
    evc_buf frame;          /* default collector: a frame that spans reads */
    size_t max_frame;       /* also the engine's limit; evc_chat_collect checks it too */
    int collect_error;      /* evc_chat_collect failed inside the collector: act on it */
    const char *in_next;    /* during a batch of whole lines: the first byte of `in` not yet
                             * delivered (the batch consumes once, at its end); else NULL */
    bool reading_paused;    /* evc_chat_pause_reading: no frames, no reads */
    bool input_discarded;   /* after a framing error: input is read and dropped */

    size_t low_water, high_water, output_limit;

    bool throttled;         /* reading paused: output above the high-water mark */
    bool input_held;        /* frames left in `in` when the mark was crossed, delivered
                             * once the queue drains (before anything more is read) */
    bool producer_waiting;  /* a producer answered EVC_NOT_YET */
    unsigned resumes;       /* evc_chat_resume calls, to notice one made during a fill */
    bool close_queued;      /* close_when_done was called */
    bool eof;               /* the peer closed its side: read no more */
    bool stillborn;         /* constructor failed: no user callbacks, ever */

    /* Output events, acted on at the top of a handler (evc__chat_settle_output),
     * never from inside a flush. */
    int write_err;          /* a write failed (EVC_IO_GONE or -errno): output is dead */
    bool write_err_seen;    /* ...and handle_close/handle_error has heard of it */
    bool drain_armed;       /* output was queued since handle_drained last ran */
    bool low_water_armed;   /* the high-water mark was crossed since handle_low_water */
    bool shutdown_queued;   /* the queued close is evc_chat_shutdown_when_done's */
    bool lingering;         /* shut down for writing: reading and discarding until EOF */
    double linger;          /* evc_chat_shutdown_when_done's bound, in seconds */
};

/* The single re-check after a call into user code: may we keep going?  The
 * dispatcher's `closed` is the chat's too, so a close the chat did not make
 * itself (evc_close_all) is seen here as well. */
static inline bool user_may_continue(const evc_chat *c)
{
    return !evc__dispatcher_head(c->disp)->closed;
}

/* Recomputes quiet_limit after high_water or output_limit changed. */
static inline void limits_changed(evc_chat *c)
{
    size_t high = c->high_water ? c->high_water : SIZE_MAX;
    size_t out = c->output_limit ? c->output_limit : SIZE_MAX;
    c->quiet_limit = high < out ? high : out;
    if (c->dispatching)
        evc__outq_set_append_limit(&c->out, c->quiet_limit);
}

/* Enters one of the chat's own handlers: the reserve opens, because a write
 * follows before the handler returns. */
static inline void enter_handler(evc_chat *c)
{
    if (c->dispatching++ == 0)
        evc__outq_set_append_limit(&c->out, c->quiet_limit);
}

/* Leaves one of the chat's own handlers: pushes from elsewhere take the full
 * path, which schedules their write. */
static inline void leave_handler(evc_chat *c)
{
    if (--c->dispatching == 0)
        evc__outq_set_append_limit(&c->out, 0);
}

/* Pushes made outside this chat's own handlers are written before the loop sleeps. */
static inline void output_added(evc_chat *c)
{
    c->drain_armed = true;
    if (c->high_water && evc__outq_bytes(&c->out) > c->high_water)
        c->throttled = c->low_water_armed = true;
    if (c->dispatching == 0 && user_may_continue(c))
        evc__dispatcher_schedule_write(c->disp);
}

/* handle_error, or close when it is NULL. */
void evc__chat_report_error(evc_chat *c, int err);
/* The peer closed: held bytes delivered, then handle_close (or its default). */
void evc__chat_peer_closed(evc_chat *c);
/* Writes what the kernel takes now, unless closed, unconnected or connecting.  A
 * failed write is only recorded (write_err); evc__chat_settle_output acts on it. */
void evc__chat_flush(evc_chat *c);
/* The output side's part of the end of every handler, run from its top level:
 * a failed write reaches handle_close or handle_error, then handle_drained and
 * handle_low_water run when due, and what they pushed is written. */
void evc__chat_settle_output(evc_chat *c);
/* The peer closed while the chat lingers after evc_chat_shutdown_when_done, or
 * the linger time is up: close. */
void evc__chat_linger_done(evc_chat *c);
/* Delivery stops at the high-water mark, except at EOF: the peer sends no more,
 * and what it sent before closing is answered; and while the user paused reading. */
static inline bool delivery_paused(const evc_chat *c)
{
    return (c->throttled && !c->eof) || c->reading_paused;
}

#endif /* EVC_CHAT_INTERNAL_H */
