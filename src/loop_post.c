/*
 * Posts: how another thread hands a loop work (Medusa's select_trigger,
 * libuv's uv_async).  A poster queues a call under the posts' mutex and, when
 * the queue was empty, wakes the loop through its one ev_async; the loop's
 * thread runs the calls in the order they were queued.
 *
 * Where they live.  A loop's posts hang off its registry entry, because a
 * poster only knows the loop pointer and finds them through the table
 * (evc__registry_lock_posts hands them out locked, the table lock taken
 * first, so the loop thread cannot free them between the look-up and the
 * queueing).  Open posts pin the entry.
 *
 * Who keeps them.  Two kinds of users keep a loop's posts: the user, between
 * evc_loop_open_posts and evc_loop_close_posts (only then does evc_loop_post
 * accept anything), and the library's own holds (evc__posts_hold: a work item
 * in the pool, a name being resolved), whose completions are posted too and
 * are never refused.  Holds keep ev_run running (the ev_async is referenced
 * while there are any); the user's opening does not, as a loop that has
 * nothing else to do should let ev_run return.  The posts, the pool and its
 * threads go when the last of both lets go.
 *
 * No allocation per post: nodes go back to a spare list, kept under the
 * mutex, and are reused; only a queue longer than ever before allocates.
 */
#include "internal.h"

#include <ev.h>
#include <pthread.h>
#include <stdlib.h>

/* Spare nodes kept for reuse; a burst beyond this gives its nodes back to malloc. */
#define SPARE_MAX 1024
/* Pool threads a loop may start unless evc_loop_set_pool_size says otherwise. */
#define POOL_DEFAULT 4
#define POOL_MAX 256

struct evc_posts {
    pthread_mutex_t lock;
    /* Under `lock`: */
    evc_post_node *head, *tail;   /* queued calls, oldest first */
    evc_post_node *spare;         /* nodes to reuse */
    size_t nspare;
    bool accepting;               /* evc_loop_post accepted (open and not closed) */

    /* The loop's thread only: */
    struct ev_loop *loop;
    ev_async wake;
    evc_loop_entry *entry;
    bool user_open;               /* between evc_loop_open_posts and evc_loop_close_posts */
    unsigned holds;               /* the library's holds (evc__posts_hold) */
    unsigned running;             /* nesting depth of run_queued (teardown waits for 0) */
    evc_pool *pool;               /* NULL until the first work item */
    unsigned pool_size;
};

void evc__posts_lock(evc_posts *p)
{
    pthread_mutex_lock(&p->lock);
}

void evc__posts_unlock(evc_posts *p)
{
    pthread_mutex_unlock(&p->lock);
}

/* Appends node; wakes the loop when the queue was empty (a later post finds
 * the wake-up already on its way).  Call with the lock held. */
static void enqueue_locked(evc_posts *p, evc_post_node *node)
{
    node->next = NULL;
    if (p->tail) {
        p->tail->next = node;
    } else {
        p->head = node;
        ev_async_send(p->loop, &p->wake);
    }
    p->tail = node;
}

/* Runs what is queued, one node at a time, until the queue is empty.  Taking
 * one node per lock, rather than the whole queue, keeps the order when a call
 * runs the queue itself (evc_loop_close_posts from inside a post). */
static int run_queued(evc_posts *p)
{
    int ran = 0;
    evc_post_node *used = NULL;
    p->running++;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (used) {
            if (p->nspare < SPARE_MAX) {
                used->next = p->spare;
                p->spare = used;
                p->nspare++;
                used = NULL;
            }
        }
        evc_post_node *node = p->head;
        if (node) {
            p->head = node->next;
            if (!p->head)
                p->tail = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        free(used);
        used = NULL;
        if (!node)
            break;
        /* The library's own nodes live in their owner, which fn may free: read
         * everything first.  A spare node is ours again once fn is known. */
        void (*fn)(void *) = node->fn;
        void *arg = node->arg;
        if (node->spare)
            used = node;
        fn(arg);
        ran++;
    }
    p->running--;
    return ran;
}

/* Frees the posts once nobody keeps them and no run_queued is on the stack. */
static void maybe_free(evc_posts *p)
{
    if (p->user_open || p->holds > 0 || p->running > 0)
        return;
    /* After the unpin no other thread finds the posts; a poster that found
     * them before holds the lock until it is done, and the lock taken here
     * waits for it.  It was refused: `accepting` went false at the close. */
    evc__registry_unpin_posts(p->entry);
    pthread_mutex_lock(&p->lock);
    evc_post_node *spare = p->spare;
    pthread_mutex_unlock(&p->lock);
    /* Nothing is held, so no worker is busy and nothing is queued for them. */
    if (p->pool)
        evc__pool_free(p->pool);
    ev_ref(p->loop);    /* the watcher was started unreferenced */
    ev_async_stop(p->loop, &p->wake);
    while (spare) {
        evc_post_node *next = spare->next;
        free(spare);
        spare = next;
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    evc_posts *p = w->data;
    (void)loop;
    (void)revents;
    run_queued(p);
    maybe_free(p);
}

/* The loop's posts, made (and pinned in the registry) if it has none.  Loop thread. */
static evc_posts *get_or_make(struct ev_loop *loop)
{
    evc_posts *p = evc__registry_posts(loop);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->loop = loop;
    p->pool_size = POOL_DEFAULT;
    ev_async_init(&p->wake, wake_cb);
    p->wake.data = p;
    /* ev_async_start is not thread-safe: this runs on the loop's thread,
     * before any other thread can find the posts through the table. */
    ev_async_start(loop, &p->wake);
    ev_unref(loop);
    p->entry = evc__registry_pin_posts(loop, p);
    if (!p->entry) {
        ev_ref(loop);
        ev_async_stop(loop, &p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

evc_posts *evc__posts_hold(struct ev_loop *loop)
{
    evc_posts *p = get_or_make(loop);
    if (p && p->holds++ == 0)
        ev_ref(loop);
    return p;
}

void evc__posts_release(evc_posts *p)
{
    if (--p->holds == 0) {
        ev_unref(p->loop);
        maybe_free(p);
    }
}

void evc__posts_push(evc_posts *p, evc_post_node *node)
{
    node->spare = false;
    pthread_mutex_lock(&p->lock);
    enqueue_locked(p, node);
    pthread_mutex_unlock(&p->lock);
}

evc_pool *evc__posts_pool(evc_posts *p)
{
    if (!p->pool)
        p->pool = evc__pool_new(p, p->pool_size);
    return p->pool;
}

int evc_loop_open_posts(struct ev_loop *loop)
{
    if (!loop)
        return -EINVAL;
    evc_posts *p = get_or_make(loop);
    if (!p)
        return -ENOMEM;
    p->user_open = true;
    pthread_mutex_lock(&p->lock);
    p->accepting = true;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int evc_loop_close_posts(struct ev_loop *loop)
{
    evc_posts *p = loop ? evc__registry_posts(loop) : NULL;
    if (!p || !p->user_open)
        return 0;
    pthread_mutex_lock(&p->lock);
    p->accepting = false;
    pthread_mutex_unlock(&p->lock);
    /* Every post accepted so far runs now: a caller that got 0 from
     * evc_loop_post is never let down. */
    int ran = run_queued(p);
    p->user_open = false;
    maybe_free(p);
    return ran;
}

int evc_loop_post(struct ev_loop *loop, void (*fn)(void *), void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    evc_posts *p = evc__registry_lock_posts(loop);
    if (!p)
        return -ESHUTDOWN;
    int rc = 0;
    if (!p->accepting) {
        rc = -ESHUTDOWN;
        goto out;
    }
    evc_post_node *node = p->spare;
    if (node) {
        p->spare = node->next;
        p->nspare--;
    } else {
        node = malloc(sizeof *node);
        if (!node) {
            rc = -ENOMEM;
            goto out;
        }
    }
    node->fn = fn;
    node->arg = arg;
    node->spare = true;
    enqueue_locked(p, node);
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int evc_loop_set_pool_size(struct ev_loop *loop, unsigned n)
{
    if (!loop || n == 0 || n > POOL_MAX)
        return -EINVAL;
    evc_posts *p = evc__registry_posts(loop);
    if (!p)
        return -ESHUTDOWN;
    p->pool_size = n;
    if (p->pool)
        evc__pool_set_max(p->pool, n);
    return 0;
}
