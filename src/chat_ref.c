/*
 * A chat seen from other threads.  A chat belongs to its loop's thread and
 * dies there; another thread that holds an evc_chat * cannot know whether it
 * still points at a chat, or at memory a new chat now uses (the "deque index
 * out of range" asynchat users met pushing from threads was the same race on
 * Python's producer FIFO).  An evc_chat_ref is the identity that survives:
 * refcounted with atomics, released from any thread, and told on the loop's
 * thread when its chat is destroyed.  Pushes through it are copied and
 * posted to the loop, where they are checked against that.
 *
 * Name resolution for evc_chat_connect_addr lives here too: it is the other
 * hand-off of a chat to another thread (the work pool), and it needs the same
 * "is my chat still there" answer when it comes back.
 */
#include "chat_internal.h"

#include <stdatomic.h>
#include <stdlib.h>

struct evc_chat_ref {
    atomic_uint refs;        /* the chat's own, while it lives, and every holder's */
    atomic_bool gone;        /* the chat was destroyed: lets other threads fail early */
    struct ev_loop *loop;
    evc_chat *chat;          /* the loop's thread only; NULL once the chat was destroyed */
};

/* A push on its way to the loop: the ref it holds and a copy of the bytes. */
typedef struct ref_push {
    evc_chat_ref *ref;
    void (*done)(int, void *);
    void *arg;
    size_t len;
    char bytes[];
} ref_push;

evc_chat_ref *evc_chat_ref_new(evc_chat *c)
{
    if (!c) {
        errno = EINVAL;
        return NULL;
    }
    if (!user_may_continue(c)) {
        errno = EPIPE;
        return NULL;
    }
    if (!c->ref) {
        evc_chat_ref *ref = malloc(sizeof *ref);
        if (!ref)
            return NULL;
        atomic_init(&ref->refs, 1);
        atomic_init(&ref->gone, false);
        ref->loop = evc_dispatcher_loop(c->disp);
        ref->chat = c;
        c->ref = ref;
    }
    atomic_fetch_add_explicit(&c->ref->refs, 1, memory_order_relaxed);
    return c->ref;
}

void evc_chat_ref_release(evc_chat_ref *ref)
{
    if (!ref)
        return;
    /* Release order for the holder's last uses, acquire for the one that frees. */
    if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 1)
        free(ref);
}

evc_chat *evc_chat_ref_get(const evc_chat_ref *ref)
{
    if (!ref || !ref->chat || !user_may_continue(ref->chat))
        return NULL;
    return ref->chat;
}

void evc__chat_threads_destroyed(evc_chat *c)
{
    if (c->resolving)
        evc_work_cancel(c->resolving);   /* a lookup already running finishes unheard */
    evc_chat_ref *ref = c->ref;
    if (!ref)
        return;
    ref->chat = NULL;
    atomic_store_explicit(&ref->gone, true, memory_order_release);
    c->ref = NULL;
    evc_chat_ref_release(ref);
}

/* On the loop's thread: the push reaches the chat, if it is still there. */
static void deliver_push(void *arg)
{
    ref_push *m = arg;
    evc_chat *c = m->ref->chat;
    int status = c ? evc_chat_push(c, m->bytes, m->len) : -EPIPE;
    if (m->done)
        m->done(status, m->arg);
    evc_chat_ref_release(m->ref);
    free(m);
}

int evc_chat_ref_push(evc_chat_ref *ref, const void *bytes, size_t len,
                      void (*done)(int, void *), void *arg)
{
    if (!ref || (!bytes && len > 0) || len > SIZE_MAX - sizeof(ref_push))
        return -EINVAL;
    if (atomic_load_explicit(&ref->gone, memory_order_acquire))
        return -EPIPE;
    ref_push *m = malloc(sizeof *m + len);
    if (!m)
        return -ENOMEM;
    if (len > 0)
        memcpy(m->bytes, bytes, len);
    m->len = len;
    m->done = done;
    m->arg = arg;
    m->ref = ref;
    atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
    int rc = evc_loop_post(ref->loop, deliver_push, m);
    if (rc < 0) {
        evc_chat_ref_release(ref);
        free(m);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* evc_chat_connect_addr with a host name                              */
/* ------------------------------------------------------------------ */

typedef struct lookup {
    evc_chat_ref *ref;
    int rc;                          /* evc_addr_parse's, on the pool thread */
    struct sockaddr_storage ss;
    socklen_t len;
    char text[];
} lookup;

/* On a pool thread: the blocking getaddrinfo. */
static void lookup_work(void *arg)
{
    lookup *l = arg;
    l->rc = evc_addr_parse(l->text, &l->ss, &l->len);
}

/* On the loop's thread: connect, or report why not, unless the chat went away. */
static void lookup_done(void *arg, int status)
{
    lookup *l = arg;
    evc_chat *c = l->ref->chat;
    if (c)
        c->resolving = NULL;    /* even if closed: its destroy must not cancel a freed item */
    if (c && user_may_continue(c) && status == 0) {
        int rc = l->rc;
        if (rc == 0)
            rc = evc_chat_connect(c, (const struct sockaddr *)&l->ss, l->len);
        if (rc < 0) {
            /* As from the dispatcher: inside the chat's handler, so that a
             * push or a close made by handle_error is dealt with as usual. */
            enter_handler(c);
            evc__chat_report_error(c, rc);
            leave_handler(c);
        }
    }
    evc_chat_ref_release(l->ref);
    free(l);
}

int evc__chat_connect_resolving(evc_chat *c, const char *text)
{
    if (!user_may_continue(c))
        return -EPIPE;
    if (c->resolving)
        return -EALREADY;
    size_t n = strlen(text);
    lookup *l = malloc(sizeof *l + n + 1);
    if (!l)
        return -ENOMEM;
    memcpy(l->text, text, n + 1);
    l->ref = evc_chat_ref_new(c);
    if (!l->ref) {
        free(l);
        return -ENOMEM;
    }
    c->resolving = evc_work_queue(evc_dispatcher_loop(c->disp), lookup_work, lookup_done, l);
    if (!c->resolving) {
        int err = errno;
        evc_chat_ref_release(l->ref);
        free(l);
        return err ? -err : -ENOMEM;
    }
    return 0;
}
