/*
 * The chat's lifetime and its face to the dispatcher: evc_chat_new, connect,
 * close, and the dispatcher's callbacks, which enter the chat's handlers,
 * route each event to the input side (chat.c) or the output side
 * (chat_output.c), and end every event the same way (finish_event).  The
 * lifetime states are in chat_internal.h and evc_chat(3), LIFETIME.
 */
#include "chat_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>

void evc__chat_report_error(evc_chat *c, int err)
{
    if (c->ops->handle_error)
        c->ops->handle_error(c, err, c->data);
    else
        evc_chat_close(c);
}

/* ------------------------------------------------------------------ */
/* The dispatcher's view of a chat                                     */
/* ------------------------------------------------------------------ */

static bool chat_readable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    if (c->state == CHAT_LINGERING)
        return true;
    if (EVC_UNLIKELY(c->tls)) {
        int tls = evc__tls_readable(c);
        if (tls >= 0)
            return tls;
    }
    return !input_ended(c) &&
           !has_flag(c, CHAT_THROTTLED | CHAT_INPUT_HELD | CHAT_READING_PAUSED);
}

static bool chat_writable(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    if (evc__dispatcher_head(d)->connecting)
        return true;
    if (c->state == CHAT_LINGERING || c->write_err)
        return false;
    if (EVC_UNLIKELY(c->tls)) {
        int tls = evc__tls_writable(c);
        if (tls >= 0)
            return tls;
        if (evc__tls_read_pending(c) && chat_readable(d, data))
            return true;   /* handle_write reads what OpenSSL holds */
    }
    /* Held frames that may go on now are delivered from handle_write, which a
     * writable socket calls at once. */
    if (has_flag(c, CHAT_INPUT_HELD) && !delivery_paused(c))
        return true;
    return !evc__outq_empty(&c->out) && !has_flag(c, CHAT_PRODUCER_WAITING);
}

/*
 * The end of every event, from the top of the handler: write what was pushed,
 * deliver frames held at the high-water mark if the writes made room, then let
 * the output side act on what happened (a failed write, a drained queue).
 */
static void finish_event(evc_chat *c)
{
    if (evc__chat_memory_settle(c))
        return;
    evc__chat_flush(c);
    evc__chat_deliver_held(c);
    evc__chat_settle_output(c);
    evc__chat_account(c);
}

static void chat_handle_read(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    evc__chat_read(c);
    finish_event(c);
    leave_handler(c);
}

static void chat_handle_write(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    enter_handler(c);
    if (EVC_UNLIKELY(c->tls) && evc__tls_read_pending(c) && chat_readable(d, data))
        evc__chat_read(c);
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
    evc__chat_account(c);
    leave_handler(c);
}

static void chat_handle_timeout(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    (void)d;
    enter_handler(c);
    if (c->state == CHAT_LINGERING)
        evc__chat_linger_done(c);
    else if (EVC_UNLIKELY(c->tls) && evc__tls_handshake_timed_out(c))
        evc__chat_report_error(c, -ETIMEDOUT);
    else if (c->ops->handle_timeout)
        c->ops->handle_timeout(c, c->data);
    else
        evc_chat_close(c);
    finish_event(c);
    leave_handler(c);
}

void evc__chat_frame_expired(evc_dispatcher *d, void *data)
{
    evc_chat *c = data;
    /* Checked now, not when the frame began: it may have been delivered since
     * without a read (frames held at the high-water mark). */
    if (!evc__chat_in_frame(c)) {
        evc__dispatcher_frame_end(d);
        return;
    }
    /* Not the peer's doing: we stopped reading.  Another period. */
    if (delivery_paused(c) || c->state == CHAT_LINGERING)
        return;
    enter_handler(c);
    if (c->ops->handle_frame_timeout)
        c->ops->handle_frame_timeout(c, c->data);
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
    evc__chat_memory_leave(c);
    /* evc_close_all closes the dispatcher with output still queued.  Release
     * callbacks and producers may use the user's data, and on_destroy, the last
     * callback, may free it: so they all run first. */
    evc__outq_clear(&c->out);
    evc__chat_threads_destroyed(c);
    if (c->state != CHAT_STILLBORN && c->ops->on_destroy)
        c->ops->on_destroy(c, c->data);
    evc__buf_free(&c->in);
    evc__buf_free(&c->frame);
    evc__scanner_free(&c->scanner);
    evc__tls_free(c->tls);
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
/* Public API: lifetime                                                */
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
    /* The library collects when there is no collect_incoming_data: then the
     * frame limit caps every frame, not only delimited ones. */
    evc__scanner_set_limit(&c->scanner, c->max_frame, !c->ops->collect_incoming_data);
    c->disp = evc_dispatcher_new(loop, &chat_dispatcher_ops, c);
    if (!c->disp) {
        int saved = errno;
        evc__scanner_free(&c->scanner);
        free(c);
        errno = saved;
        return NULL;
    }
    evc__chat_memory_join(c);
    evc__buf_init(&c->in, evc__registry_blocks(evc__dispatcher_entry(c->disp)));
    if (fd >= 0) {
        int rc = (flags & O_NONBLOCK) ? evc__dispatcher_adopt(c->disp, fd)
                                      : evc_dispatcher_set_socket(c->disp, fd);
        if (rc < 0) {
            /* The dispatcher frees the chat from the loop; the user hears nothing. */
            c->state = CHAT_STILLBORN;
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
    /* A name would block the loop in getaddrinfo: the pool looks it up. */
    int rc = evc__addr_parse_numeric(text, &ss, &len);
    if (rc == -EAGAIN)
        return evc__chat_connect_resolving(c, text);
    if (rc < 0)
        return rc;
    return evc_chat_connect(c, (const struct sockaddr *)&ss, len);
}

void evc_chat_close(evc_chat *c)
{
    if (!c || !user_may_continue(c))
        return;
    if (EVC_UNLIKELY(c->tls))
        evc__tls_closing(c, evc__outq_empty(&c->out));
    /* Closed first: release callbacks and producers' on_destroy, run by the
     * clear, see a closed chat and cannot queue anything more. */
    evc_dispatcher_close(c->disp);
    evc__outq_clear(&c->out);
    evc__chat_account(c);
}

bool evc_chat_closed(const evc_chat *c)
{
    return !user_may_continue(c);
}
void evc_chat_set_timeout(evc_chat *c, double seconds)
{
    /* During a TLS handshake its deadline runs; the idle timeout waits for its end. */
    if (EVC_UNLIKELY(c->tls) && evc__tls_keep_idle_timeout(c, seconds))
        return;
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

