/*
 * The blocking-work pool (libuv's uv_queue_work): a function runs on one of
 * the loop's worker threads and its completion runs on the loop's thread, so
 * a handler may block (a database call, a name lookup, a sleep) without
 * stalling the other channels of the loop.
 *
 * One pool per loop, kept with the loop's posts (loop_post.c): a finished
 * item travels back as a post whose node is embedded in the item, so the way
 * home never allocates and is never refused (each item holds the posts).
 * Threads start lazily, one more whenever work is queued and none is idle,
 * up to the pool's size; they are joined when the loop's posts go, which is
 * only once no work is left.  A per-loop pool needs no process-wide state,
 * and worker loops each get their own, sized with evc_loop_set_pool_size.
 */
#include "internal.h"

#include <ev.h>
#include <pthread.h>
#include <stdlib.h>

typedef enum work_state {
    WORK_QUEUED,        /* on the pool's queue: may be cancelled */
    WORK_TAKEN          /* a thread took it, or it was cancelled: done follows */
} work_state;

struct evc_work {
    evc_post_node home;           /* posts the completion to the loop */
    void (*work)(void *);
    void (*done)(void *, int);
    void *arg;
    int status;
    work_state state;             /* under the pool's lock */
    evc_work *next;               /* on the pool's queue */
    evc_posts *posts;
};

struct evc_pool {
    pthread_mutex_t lock;
    pthread_cond_t wanted;        /* work queued, or stopping */
    /* Under `lock`: */
    evc_work *head, *tail;
    unsigned idle;                /* threads waiting for work */
    bool stopping;
    /* The loop's thread only (threads are started and joined there): */
    unsigned max;
    unsigned nthreads;
    pthread_t *threads;           /* nthreads started, room for `cap` */
    unsigned cap;
    evc_posts *posts;
};

static void *worker_main(void *arg)
{
    evc_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping) {
            pool->idle++;
            pthread_cond_wait(&pool->wanted, &pool->lock);
            pool->idle--;
        }
        if (!pool->head)
            break;      /* stopping, and nothing is left */
        evc_work *w = pool->head;
        pool->head = w->next;
        if (!pool->head)
            pool->tail = NULL;
        w->state = WORK_TAKEN;
        pthread_mutex_unlock(&pool->lock);
        w->work(w->arg);
        w->status = 0;
        /* The item is the loop thread's again from here: not touched after. */
        evc__posts_push(w->posts, &w->home);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Runs on the loop's thread, posted by a worker or by evc_work_cancel. */
static void complete(void *arg)
{
    evc_work *w = arg;
    evc_posts *posts = w->posts;
    w->done(w->arg, w->status);
    free(w);
    evc__posts_release(posts);
}

evc_pool *evc__pool_new(evc_posts *posts, unsigned max)
{
    evc_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool);
        errno = ENOMEM;
        return NULL;
    }
    if (pthread_cond_init(&pool->wanted, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        free(pool);
        errno = ENOMEM;
        return NULL;
    }
    pool->max = max;
    pool->posts = posts;
    return pool;
}

void evc__pool_set_max(evc_pool *pool, unsigned max)
{
    pool->max = max;
}

void evc__pool_free(evc_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wanted);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->wanted);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

/* Starts one more thread.  0 or -errno. */
static int start_thread(evc_pool *pool)
{
    if (pool->nthreads == pool->cap) {
        unsigned cap = pool->cap ? pool->cap * 2 : 4;
        pthread_t *t = realloc(pool->threads, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        pool->threads = t;
        pool->cap = cap;
    }
    int rc = pthread_create(&pool->threads[pool->nthreads], NULL, worker_main, pool);
    if (rc != 0)
        return -rc;
    pool->nthreads++;
    return 0;
}

evc_work *evc_work_queue(struct ev_loop *loop, void (*work)(void *), void (*done)(void *, int),
                         void *arg)
{
    if (!loop || !work || !done) {
        errno = EINVAL;
        return NULL;
    }
    evc_work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    evc_posts *posts = evc__posts_hold(loop);
    evc_pool *pool = posts ? evc__posts_pool(posts) : NULL;
    if (!pool) {
        int saved = errno;
        if (posts)
            evc__posts_release(posts);
        free(w);
        errno = saved;
        return NULL;
    }
    w->home.fn = complete;
    w->home.arg = w;
    w->work = work;
    w->done = done;
    w->arg = arg;
    w->posts = posts;
    w->state = WORK_QUEUED;

    pthread_mutex_lock(&pool->lock);
    bool need_thread = pool->idle == 0 && pool->nthreads < pool->max;
    if (pool->tail)
        pool->tail->next = w;
    else
        pool->head = w;
    pool->tail = w;
    pthread_cond_signal(&pool->wanted);
    pthread_mutex_unlock(&pool->lock);
    /* A thread that cannot start is not fatal while another one runs: the
     * item waits its turn.  With no thread at all it would never run. */
    if (need_thread) {
        int rc = start_thread(pool);
        if (rc < 0 && pool->nthreads == 0) {
            pthread_mutex_lock(&pool->lock);
            pool->head = pool->tail = NULL;
            pthread_mutex_unlock(&pool->lock);
            free(w);
            evc__posts_release(posts);
            errno = -rc;
            return NULL;
        }
    }
    return w;
}

int evc_work_cancel(evc_work *w)
{
    if (!w)
        return -EINVAL;
    evc_pool *pool = evc__posts_pool(w->posts);
    pthread_mutex_lock(&pool->lock);
    if (w->state != WORK_QUEUED) {
        pthread_mutex_unlock(&pool->lock);
        return -EBUSY;
    }
    evc_work **pp = &pool->head;
    evc_work *prev = NULL;
    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (pool->tail == w)
        pool->tail = prev;
    w->state = WORK_TAKEN;
    pthread_mutex_unlock(&pool->lock);
    w->status = -ECANCELED;
    evc__posts_push(w->posts, &w->home);
    return 0;
}
