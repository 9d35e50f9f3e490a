/*
 * What the parts of the chat share: the chat's state, the re-check after user
 * code, and the calls one part makes into another.  chat.c has the input side
 * (read -> scan -> callbacks); chat_output.c the push FIFO and the writing
 * (push -> queue -> writev); chat_lifetime.c the lifetime (new, connect,
 * close) and the dispatcher's callbacks, which route each event to the two
 * sides.  chat_forward.c and chat_push_framed.c are pushes built on these.
 * Never installed.
 */
#ifndef EVC_CHAT_INTERNAL_H
#define EVC_CHAT_INTERNAL_H

#include "internal.h"

#include <errno.h>

/* A chat's TLS session (chat_tls.c); opaque to the other chat files. */
typedef struct evc_tls evc_tls;

/*
 * The chat's lifetime (evc_chat(3), LIFETIME).  New, connecting and closed are
 * told apart by the dispatcher (its head's fd, `connecting` and `closed`, which
 * stays the one closed of both layers): a new or connecting chat is CHAT_OPEN
 * here.  Between them a chat goes one way through these, each allowing less
 * than the one before (only evc_chat_discard_buffers, dropping the queued
 * close, goes back from CLOSING or SHUTTING to OPEN):
 */
typedef enum chat_state {
    CHAT_OPEN = 0,      /* pushes are queued; reading and delivery as `input` says */
    CHAT_CLOSING,       /* close_when_done queued: pushes fail; closes once the queue is written */
    CHAT_SHUTTING,      /* shutdown_when_done queued: pushes fail; lingers once it is written */
    CHAT_LINGERING,     /* our FIN is sent: read and drop until the peer's EOF or the linger time */
    CHAT_STILLBORN      /* the constructor failed: closed, and no user callback ever */
} chat_state;

/*
 * The input's own states.  The peer's EOF and a framing error come whenever the
 * peer sends them, whatever the chat's state (a close may be queued or not),
 * so they are a second state rather than steps of the first.  Both ends of the
 * input can be reached, in either order.
 */
typedef enum chat_input {
    INPUT_OPEN = 0,           /* read, framed and delivered */
    INPUT_DISCARDING,         /* after a framing error: read and dropped */
    INPUT_ENDED,              /* the peer's EOF was read: nothing more is read; frames already
                               * read are delivered */
    INPUT_ENDED_DISCARDING    /* both: nothing more is read and nothing is delivered */
} chat_input;

/*
 * Conditions that come and go while the chat is open and hold in any
 * combination with each other and with either state, which is why they are
 * bits of one word (`flags`) and not states.
 */
enum {
    CHAT_THROTTLED = 1u << 0,         /* output above the high-water mark: no reads, no frames
                                       * (except at EOF) until it falls to the low mark */
    CHAT_INPUT_HELD = 1u << 1,        /* frames left in `in` when delivery stopped, delivered
                                       * once it may go on (before anything more is read) */
    CHAT_READING_PAUSED = 1u << 2,    /* evc_chat_pause_reading: no frames, no reads */
    CHAT_PRODUCER_WAITING = 1u << 3,  /* a producer answered EVC_NOT_YET */
    /* Output events due, run at the top of a handler (evc__chat_settle_output): */
    CHAT_DRAIN_ARMED = 1u << 4,       /* output was queued since handle_drained last ran */
    CHAT_LOW_WATER_ARMED = 1u << 5,   /* the high-water mark was crossed since handle_low_water */
    /* A failed write (write_err) is recorded whenever a flush meets it, in any
     * state, and reported once, at the top of a handler: */
    CHAT_WRITE_ERR_SEEN = 1u << 6     /* handle_close/handle_error has heard of write_err */
};

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

    size_t low_water, high_water, output_limit;

    chat_state state;       /* how far the chat is on its way to the close */
    chat_input input;       /* what becomes of the bytes the peer sends */
    unsigned flags;         /* CHAT_* conditions, independent of the states and of each other */
    unsigned resumes;       /* evc_chat_resume calls, to notice one made during a fill */
    /* A write failed (EVC_IO_GONE or -errno): output is dead.  Recorded inside
     * the flush, acted on at the top of a handler (evc__chat_settle_output). */
    int write_err;
    double linger;          /* evc_chat_shutdown_when_done's bound, in seconds */

    /* Threads (chat_ref.c): */
    evc_chat_ref *ref;      /* the chat's one reference object, made on first evc_chat_ref_new */
    evc_work *resolving;    /* evc_chat_connect_addr's name lookup in the pool, or NULL */
    /* The frame deadline (chat_deadline.c). */
    bool frame_deadline_on;
    unsigned frames_done;   /* frames ended or dropped: moved during a read = a new frame */
    /* TLS (chat_tls.c): NULL on a plain chat; the hooks below are reached only
     * through it, at the read, the write and the chat's predicates. */
    evc_tls *tls;
    double tls_handshake_timeout;   /* evc_chat_set_tls_handshake_timeout */
    bool tls_timeout_set;           /* else EVC_DEFAULT_TLS_HANDSHAKE_TIMEOUT */
    /* The loop's memory account (chat_memory.c): what the loop's sums hold for
     * this chat since it was last accounted, and its place in the loop's list. */
    evc_loop_memory *mem;
    evc_chat *mem_prev, *mem_next;
    size_t acct_in, acct_out, acct_ref;
    size_t acct_peak;       /* the most input + output it was seen holding */
    size_t acct_doomed;     /* held when picked to close for the budget (then in doomed_bytes) */
    bool over_budget;       /* picked: closed with handle_error(-ENOBUFS) at its next handler */
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

static inline bool has_flag(const evc_chat *c, unsigned flag)
{
    return (c->flags & flag) != 0;
}

static inline void set_flag(evc_chat *c, unsigned flag)
{
    c->flags |= flag;
}

static inline void clear_flag(evc_chat *c, unsigned flag)
{
    c->flags &= ~flag;
}

/* The peer's EOF was read: nothing more is read (except while lingering). */
static inline bool input_ended(const evc_chat *c)
{
    return c->input == INPUT_ENDED || c->input == INPUT_ENDED_DISCARDING;
}

/* A framing error happened: input is read (until EOF) and dropped. */
static inline bool input_discarding(const evc_chat *c)
{
    return c->input == INPUT_DISCARDING || c->input == INPUT_ENDED_DISCARDING;
}

/* close_when_done or shutdown_when_done was called (and may have been reached). */
static inline bool close_queued(const evc_chat *c)
{
    return c->state != CHAT_OPEN;
}

/* Delivery stops at the high-water mark, except at EOF: the peer sends no more,
 * and what it sent before closing is answered; and while the user paused reading. */
static inline bool delivery_paused(const evc_chat *c)
{
    if (EVC_LIKELY(!has_flag(c, CHAT_THROTTLED | CHAT_READING_PAUSED)))
        return false;
    return has_flag(c, CHAT_READING_PAUSED) || !input_ended(c);
}

/* A condition that pauses delivery set while frames may be being delivered: a
 * batch of lines (evc__scan_lines) ends after the frame at hand, and the
 * delivery loop then sees the pause. */
static inline void pause_delivery(evc_chat *c, unsigned flag)
{
    set_flag(c, flag);
    evc__scan_lines_stop(&c->scanner);
}

/* Pushes made outside this chat's own handlers are written before the loop sleeps. */
static inline void output_added(evc_chat *c)
{
    set_flag(c, CHAT_DRAIN_ARMED);
    if (c->high_water && evc__outq_bytes(&c->out) > c->high_water)
        pause_delivery(c, CHAT_THROTTLED | CHAT_LOW_WATER_ARMED);
    if (c->dispatching == 0 && user_may_continue(c))
        evc__dispatcher_schedule_write(c->disp);
}

/* chat.c, the input side: */
/* One readable event: read what the kernel has, deliver frames, or (lingering)
 * read and drop until the peer's EOF. */
void evc__chat_read(evc_chat *c);
/* Delivers frames held at the high-water mark or by a pause once delivery may
 * go on, writing after each batch. */
void evc__chat_deliver_held(evc_chat *c);
/* The peer closed: held bytes delivered, then handle_close (or its default). */
void evc__chat_peer_closed(evc_chat *c);

/* chat_deadline.c: */
/* After a read with the frame deadline on: a frame begun now starts its period,
 * none in progress ends it.  frames_before: frames_done before the read. */
void evc__chat_track_frame(evc_chat *c, unsigned frames_before);
/* Whether a frame has begun and not ended (bytes of it read, its terminator not). */
bool evc__chat_in_frame(const evc_chat *c);

/* chat_lifetime.c: */
/* The dispatcher's frame deadline passed: handle_frame_timeout, or its default. */
void evc__chat_frame_expired(evc_dispatcher *d, void *data);
/* handle_error, or close when it is NULL. */
void evc__chat_report_error(evc_chat *c, int err);

/* chat_output.c, the output side: */
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

/* evc_chat_connect_addr with a host name: the lookup runs in the loop's work
 * pool, then the connect follows (chat_ref.c).  0 or -errno. */
int evc__chat_connect_resolving(evc_chat *, const char *text);

/* chat.c, for STARTTLS: drops the bytes read and not yet delivered (after the
 * current frame), keeping the output queue. */
void evc__chat_drop_input(evc_chat *c);

/* chat_tls.c (chat_tls_none.c without OpenSSL), the transport under the two
 * I/O paths, reached only when c->tls is set.  The predicates answer 1 or 0
 * to decide, -1 to leave the decision to the chat's own rules. */
int evc__tls_readable(const evc_chat *c);
int evc__tls_writable(const evc_chat *c);
/* Plaintext (or its end) waits inside OpenSSL with nothing left on the socket
 * to wake the chat: handle_write reads it. */
bool evc__tls_read_pending(const evc_chat *c);
/* Runs the handshake until it waits (false) or has ended (true: data may be
 * read); handle_tls_ready, or handle_error(-EPROTO) / handle_close, run here. */
bool evc__tls_read_ready(evc_chat *c);
/* The chat's read over TLS: as evc__dispatcher_read, in plaintext bytes. */
ssize_t evc__tls_read(evc_chat *c, void *buf, size_t len);
/* The chat's writev over TLS: plaintext bytes taken, -EAGAIN, EVC_IO_GONE, -errno. */
ssize_t evc__tls_writev(evc_chat *c, const struct iovec *iov, int n);
/* Start of every flush: the client's hello and the ciphertext waiting go out.
 * 0, or a failure to record (EVC_IO_GONE, -errno, -EPROTO). */
int evc__tls_flush(evc_chat *c);
/* End of a flush that left the chat open: an idle chat gives its buffer back. */
void evc__tls_flushed(evc_chat *c);
/* Bytes of ciphertext buffer the chat holds (0: none).  For tests. */
size_t evc__tls_buffer_size(const evc_chat *c);
/* close_when_done reached: close_notify queued and sent.  0 when all is sent,
 * -EAGAIN to wait for the socket, or a failure. */
int evc__tls_close_notify(evc_chat *c);
/* evc_chat_close: a best-effort close_notify when no output was dropped. */
void evc__tls_closing(evc_chat *c, bool nothing_dropped);
/* The deadline fired: true (and the session failed) when it was the handshake's. */
bool evc__tls_handshake_timed_out(evc_chat *c);
/* evc_chat_set_timeout during the handshake: kept for its end (true), or false
 * when the timeout applies now. */
bool evc__tls_keep_idle_timeout(evc_chat *c, double seconds);
/* Frees the session (on_destroy).  NULL is a no-op. */
void evc__tls_free(evc_tls *t);

/* chat_memory.c, the loop's memory account: */
/* Joins the loop's account (evc_chat_new). */
void evc__chat_memory_join(evc_chat *c);
/* Leaves it (on_destroy): the loop's sums lose what they held for the chat. */
void evc__chat_memory_leave(evc_chat *c);
/* Brings the loop's sums up to what the chat holds now; past the budget, picks
 * the chats holding the most to be closed (at their next handler).  Cheap: a
 * few additions, and a scan of the loop's chats only when over the budget. */
void evc__chat_account(evc_chat *c);
/* From the top of a handler: a chat picked for the budget is closed, with
 * handle_error(-ENOBUFS) first.  True when it was. */
bool evc__chat_memory_settle(evc_chat *c);

#endif /* EVC_CHAT_INTERNAL_H */
