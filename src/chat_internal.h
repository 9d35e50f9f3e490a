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
    /* The push window: room at the end of the tail copy chunk that evc_chat_push
     * fills with nothing else to check, open only inside the chat's own handlers.
     * Bytes in [window_start, window) are not yet counted in `out`: push_window_close
     * counts them, and must run before anything else looks at or changes `out`. */
    char *window;
    char *window_end;
    evc_outq out;
    size_t quiet_limit;     /* queued bytes a push may reach without crossing either limit
                             * below (SIZE_MAX when both are off): evc_chat_push's one check */
    unsigned dispatching;   /* nesting depth of this chat's own event handlers */
    bool closed;            /* evc_chat_close, or the dispatcher closed (evc_close_all) */
    const struct evc_chat_ops *ops;
    void *data;

    evc_dispatcher *disp;
    evc_buf in;             /* bytes read and not yet delivered */
    evc_scanner scanner;
    evc_buf frame;          /* default collector: a frame that spans reads */
    size_t max_frame;       /* also the engine's limit; evc_chat_collect checks it too */
    int collect_error;      /* evc_chat_collect failed inside the collector: act on it */
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
};

/* Recomputes quiet_limit after high_water or output_limit changed. */
static inline void limits_changed(evc_chat *c)
{
    size_t high = c->high_water ? c->high_water : SIZE_MAX;
    size_t out = c->output_limit ? c->output_limit : SIZE_MAX;
    c->quiet_limit = high < out ? high : out;
}

/* The single re-check after a call into user code: may we keep going?
 * evc_close_all closes the dispatcher without going through evc_chat_close;
 * the dispatcher mirrors its close into `closed` (evc__dispatcher_mirror_closed). */
static inline bool user_may_continue(const evc_chat *c)
{
    return !c->closed;
}

static inline bool is_peer_gone(int err)
{
    return err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN || err == -ESHUTDOWN ||
           err == -ECONNABORTED || err == -ETIMEDOUT;
}

/* Counts the bytes pushed through the window into `out` and closes the window. */
static inline void push_window_close(evc_chat *c)
{
    if (!c->window)
        return;
    size_t filled = (size_t)(c->window - (c->out.tail_copy + *c->out.tail_len));
    *c->out.tail_len += filled;
    c->out.bytes += filled;
    c->window = c->window_end = NULL;
}

/* Leaves one of the chat's own handlers: pushes from elsewhere take the full path. */
static inline void leave_handler(evc_chat *c)
{
    push_window_close(c);
    c->dispatching--;
}

/* Pushes made outside this chat's own handlers are written before the loop sleeps. */
static inline void output_added(evc_chat *c)
{
    if (c->high_water && c->out.bytes > c->high_water)
        c->throttled = true;
    if (c->dispatching == 0 && !c->closed)
        evc__dispatcher_schedule_write(c->disp);
}

/* handle_error, or close when it is NULL. */
void evc__chat_report_error(evc_chat *c, int err);
/* The peer closed: held bytes delivered, then handle_close (or its default). */
void evc__chat_peer_closed(evc_chat *c);
/* Writes what the kernel takes now, unless closed, unconnected or connecting. */
void evc__chat_flush(evc_chat *c);
/* Delivery stops at the high-water mark, except at EOF: the peer sends no more,
 * and what it sent before closing is answered; and while the user paused reading. */
static inline bool delivery_paused(const evc_chat *c)
{
    return (c->throttled && !c->eof) || c->reading_paused;
}

#endif /* EVC_CHAT_INTERNAL_H */
