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
    evc_dispatcher *disp;
    const struct evc_chat_ops *ops;
    void *data;

    evc_buf in;             /* bytes read and not yet delivered */
    uint64_t in_generation; /* bumped by discard_buffers: stale scan results are dropped */
    evc_scanner scanner;
    evc_buf frame;          /* default collector: a frame that spans reads */
    const char *incoming;   /* default collector: the frame found_terminator sees */
    size_t incoming_len;
    size_t frame_bytes;     /* bytes collected in the current string-terminated frame */
    size_t max_frame;
    bool frame_limited;     /* max_frame applies: a string terminator or the default collector */

    evc_outq out;
    size_t low_water, high_water, output_limit;

    unsigned dispatching;   /* nesting depth of this chat's own event handlers */
    bool throttled;         /* reading paused: output above the high-water mark */
    bool producer_waiting;  /* a producer answered EVC_NOT_YET */
    unsigned resumes;       /* evc_chat_resume calls, to notice one made during a fill */
    bool close_queued;      /* close_when_done was called */
    bool eof;               /* the peer closed its side: read no more */
    bool closed;            /* evc_chat_close, or the dispatcher closed (evc_close_all) */
    bool stillborn;         /* constructor failed: no user callbacks, ever */
};

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

#endif /* EVC_CHAT_INTERNAL_H */
