/*
 * Tests of the blocking-work pool: work runs on another thread and its done
 * on the loop's thread; pending work keeps ev_run running; a queued item can
 * be cancelled (done hears -ECANCELED, work never runs), a running one not;
 * the pool never runs more threads than its size; the loop serves its other
 * watchers while work blocks; everything is joined and freed afterwards.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

typedef struct job {
    pthread_t loop_thread;
    bool worked;
    bool worked_on_loop_thread;
    bool done_off_loop_thread;
    int status;
    int done_calls;
    /* A gate: work waits until the test opens it (for cancel and the pool size). */
    pthread_mutex_t *gate_lock;
    pthread_cond_t *gate_cond;
    bool *gate_open;
    atomic_int *running;
    atomic_int *max_running;
    int *finished;
} job;

static void work_fn(void *arg)
{
    job *j = arg;
    if (j->running) {
        int now = atomic_fetch_add(j->running, 1) + 1;
        int seen = atomic_load(j->max_running);
        while (now > seen && !atomic_compare_exchange_weak(j->max_running, &seen, now))
            ;
    }
    if (j->gate_lock) {
        pthread_mutex_lock(j->gate_lock);
        while (!*j->gate_open)
            pthread_cond_wait(j->gate_cond, j->gate_lock);
        pthread_mutex_unlock(j->gate_lock);
    }
    j->worked = true;
    j->worked_on_loop_thread = pthread_equal(pthread_self(), j->loop_thread);
    if (j->running)
        atomic_fetch_sub(j->running, 1);
}

static void done_fn(void *arg, int status)
{
    job *j = arg;
    j->status = status;
    j->done_calls++;
    j->done_off_loop_thread = !pthread_equal(pthread_self(), j->loop_thread);
    if (j->finished)
        (*j->finished)++;
}

static void job_init(job *j)
{
    memset(j, 0, sizeof *j);
    j->loop_thread = pthread_self();
    j->status = 1;
}

static void test_work_then_done(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    job j;
    job_init(&j);
    assert_non_null(evc_work_queue(loop, work_fn, done_fn, &j));
    /* Pending work alone keeps ev_run going until done ran. */
    ev_run(loop, 0);
    assert_true(j.worked);
    assert_false(j.worked_on_loop_thread);
    assert_int_equal(j.done_calls, 1);
    assert_int_equal(j.status, 0);
    assert_false(j.done_off_loop_thread);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    job j;
    job_init(&j);
    errno = 0;
    assert_null(evc_work_queue(loop, NULL, done_fn, &j));
    assert_int_equal(errno, EINVAL);
    assert_null(evc_work_queue(loop, work_fn, NULL, &j));
    assert_int_equal(evc_work_cancel(NULL), -EINVAL);
    assert_int_equal(evc_loop_set_pool_size(loop, 2), -ESHUTDOWN);   /* posts not open */
    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_loop_set_pool_size(loop, 0), -EINVAL);
    assert_int_equal(evc_loop_set_pool_size(loop, 257), -EINVAL);
    assert_int_equal(evc_loop_set_pool_size(loop, 2), 0);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
} gate;

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void job_gated(job *j, gate *g)
{
    job_init(j);
    j->gate_lock = &g->lock;
    j->gate_cond = &g->cond;
    j->gate_open = &g->open;
}

/* One thread, held by the first item: the second is still queued and can be cancelled. */
static void test_cancel_while_queued(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_loop_set_pool_size(loop, 1), 0);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    job first, second;
    job_gated(&first, &g);
    job_init(&second);
    atomic_int running = 0, max_running = 0;
    first.running = &running;
    first.max_running = &max_running;
    evc_work *w1 = evc_work_queue(loop, work_fn, done_fn, &first);
    evc_work *w2 = evc_work_queue(loop, work_fn, done_fn, &second);
    assert_non_null(w1);
    assert_non_null(w2);
    /* Wait until the one thread took the first item. */
    for (int i = 0; i < 5000 && atomic_load(&running) == 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&running), 1);
    assert_int_equal(evc_work_cancel(w1), -EBUSY);
    assert_int_equal(evc_work_cancel(w2), 0);
    assert_int_equal(evc_work_cancel(w2), -EBUSY);    /* done has not run yet: still valid */
    assert_int_equal(second.done_calls, 0);            /* done comes from the loop, later */
    gate_open(&g);
    int finished = 0;
    first.finished = second.finished = &finished;
    assert_true(evt_run_until_count(loop, &finished, 2, 10.));
    assert_false(second.worked);
    assert_int_equal(second.status, -ECANCELED);
    assert_int_equal(second.done_calls, 1);
    assert_true(first.worked);
    assert_int_equal(first.status, 0);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

/* Many items, two threads: never more than two at once, every done once. */
static void test_pool_size_bounds_threads(void **state)
{
    (void)state;
    enum { N = 40 };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_loop_set_pool_size(loop, 2), 0);
    static job jobs[N];
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    atomic_int running = 0, max_running = 0;
    int finished = 0;
    for (int i = 0; i < N; i++) {
        job_gated(&jobs[i], &g);
        jobs[i].running = &running;
        jobs[i].max_running = &max_running;
        jobs[i].finished = &finished;
        assert_non_null(evc_work_queue(loop, work_fn, done_fn, &jobs[i]));
    }
    evt_run_for(loop, 0.05);
    gate_open(&g);
    assert_true(evt_run_until_count(loop, &finished, N, 20.));
    assert_true(atomic_load(&max_running) >= 1);
    assert_true(atomic_load(&max_running) <= 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_int_equal(jobs[i].status, 0);
    }
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void sleep_work(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
}

static void sleep_done(void *arg, int status)
{
    (void)status;
    *(bool *)arg = true;
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    (*(int *)w->data)++;
}

/* While work blocks for 300 ms, the loop keeps serving its timers. */
static void test_loop_runs_while_work_blocks(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bool done = false;
    int ticks = 0;
    ev_timer t;
    ev_timer_init(&t, tick, 0.02, 0.02);
    t.data = &ticks;
    ev_timer_start(loop, &t);
    assert_non_null(evc_work_queue(loop, sleep_work, sleep_done, &done));
    assert_true(evt_run_until(loop, &done, 10.));
    ev_timer_stop(loop, &t);
    assert_true(ticks >= 5);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_then_done),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_cancel_while_queued),
        cmocka_unit_test(test_pool_size_bounds_threads),
        cmocka_unit_test(test_loop_runs_while_work_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
