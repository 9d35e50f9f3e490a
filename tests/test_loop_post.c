/*
 * Tests of evc_loop_post: calls from other threads run on the loop's thread,
 * in the order each poster made them; posts are refused (never lost) before
 * the loop opens them and after it closes them; every post accepted runs,
 * at the latest in evc_loop_close_posts; a loop without any dispatcher takes
 * posts; loops on many threads at once each keep their own.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Counts the library's calls to malloc (linked with -Wl,--wrap=malloc; the
 * library is linked statically into this program, so its calls are wrapped). */
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
static atomic_int mallocs;

void *__wrap_malloc(size_t size)
{
    atomic_fetch_add(&mallocs, 1);
    return __real_malloc(size);
}

#define POSTERS 4
#define POSTS_EACH 2000

typedef struct record {
    pthread_t loop_thread;
    int ran;
    bool wrong_thread;
    int last_seq[POSTERS];      /* per poster: the last sequence number seen */
    bool out_of_order;
    struct ev_loop *loop;
} record;

/* A post's argument: which poster, which of its posts. */
typedef struct post_arg {
    record *rec;
    int poster;
    int seq;
} post_arg;

static void on_post(void *arg)
{
    post_arg *a = arg;
    record *r = a->rec;
    if (!pthread_equal(pthread_self(), r->loop_thread))
        r->wrong_thread = true;
    if (a->seq != r->last_seq[a->poster] + 1)
        r->out_of_order = true;
    r->last_seq[a->poster] = a->seq;
    r->ran++;
}

static void record_init(record *r, struct ev_loop *loop)
{
    memset(r, 0, sizeof *r);
    r->loop_thread = pthread_self();
    r->loop = loop;
    for (int i = 0; i < POSTERS; i++)
        r->last_seq[i] = -1;
}

typedef struct poster {
    pthread_t thread;
    int index;
    record *rec;
    struct ev_loop *loop;
    post_arg args[POSTS_EACH];
    int accepted;
    int refused;
    bool until_refused;         /* stop at the first refusal (the stop test) */
    bool wrong_error;           /* cmocka may not fail a test from this thread */
} poster;

static void *poster_main(void *arg)
{
    poster *p = arg;
    for (int i = 0; i < POSTS_EACH; i++) {
        p->args[i] = (post_arg){p->rec, p->index, i};
        int rc = evc_loop_post(p->loop, on_post, &p->args[i]);
        if (rc == 0) {
            p->accepted++;
        } else {
            if (rc != -ESHUTDOWN)
                p->wrong_error = true;
            p->refused++;
            if (p->until_refused)
                break;
        }
    }
    return NULL;
}

static void start_posters(poster *ps, int n, record *r, struct ev_loop *loop, bool until_refused)
{
    for (int i = 0; i < n; i++) {
        ps[i].index = i;
        ps[i].rec = r;
        ps[i].loop = loop;
        ps[i].accepted = ps[i].refused = 0;
        ps[i].until_refused = until_refused;
        ps[i].wrong_error = false;
        assert_int_equal(pthread_create(&ps[i].thread, NULL, poster_main, &ps[i]), 0);
    }
}

static void join_posters(poster *ps, int n)
{
    for (int i = 0; i < n; i++) {
        pthread_join(ps[i].thread, NULL);
        assert_false(ps[i].wrong_error);
    }
}

static void test_refused_unless_open(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    post_arg a = {&r, 0, 0};
    assert_int_equal(evc_loop_post(loop, on_post, &a), -ESHUTDOWN);
    assert_int_equal(evc_loop_post(NULL, on_post, &a), -EINVAL);
    assert_int_equal(evc_loop_post(loop, NULL, &a), -EINVAL);
    assert_int_equal(evc_loop_close_posts(loop), 0);    /* never opened: nothing to do */

    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_loop_open_posts(loop), 0);     /* idempotent */
    assert_int_equal(evc_loop_post(loop, on_post, &a), 0);
    assert_true(evt_run_until_count(loop, &r.ran, 1, 5.));
    assert_int_equal(evc_loop_close_posts(loop), 0);
    assert_int_equal(evc_loop_post(loop, on_post, &a), -ESHUTDOWN);
    assert_int_equal(r.ran, 1);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

/* Many threads at once: each poster's calls run in its order, all on the loop thread. */
static void test_concurrent_posters_fifo(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    static poster ps[POSTERS];
    start_posters(ps, POSTERS, &r, loop, false);
    assert_true(evt_run_until_count(loop, &r.ran, POSTERS * POSTS_EACH, 30.));
    join_posters(ps, POSTERS);
    for (int i = 0; i < POSTERS; i++) {
        assert_int_equal(ps[i].accepted, POSTS_EACH);
        assert_int_equal(r.last_seq[i], POSTS_EACH - 1);
    }
    assert_false(r.out_of_order);
    assert_false(r.wrong_thread);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

/* Posts accepted while the loop did not run are run, in order, by the close. */
static void test_close_runs_accepted(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    static poster ps[2];
    start_posters(ps, 2, &r, loop, false);
    join_posters(ps, 2);
    assert_int_equal(r.ran, 0);
    assert_int_equal(evc_loop_close_posts(loop), 2 * POSTS_EACH);
    assert_int_equal(r.ran, 2 * POSTS_EACH);
    assert_false(r.out_of_order);
    assert_false(r.wrong_thread);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

typedef struct stopper {
    record *rec;
    int close_ran;
} stopper;

static void close_when_some_ran(struct ev_loop *loop, ev_check *w, int revents)
{
    stopper *s = w->data;
    (void)revents;
    if (s->rec->ran >= 100 && s->close_ran < 0) {
        s->close_ran = evc_loop_close_posts(loop);
        ev_check_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void give_up(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* A loop stops taking posts while threads post: each post is either refused
 * to its poster or run; none is lost. */
static void test_stop_while_posting(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    stopper s = {&r, -1};
    ev_check check;
    ev_check_init(&check, close_when_some_ran);
    check.data = &s;
    ev_check_start(loop, &check);
    static poster ps[POSTERS];
    start_posters(ps, POSTERS, &r, loop, true);
    ev_timer deadline;
    ev_timer_init(&deadline, give_up, 20., 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
    join_posters(ps, POSTERS);
    assert_true(s.close_ran >= 0);
    int accepted = 0;
    for (int i = 0; i < POSTERS; i++)
        accepted += ps[i].accepted;
    assert_int_equal(r.ran, accepted);
    assert_false(r.out_of_order);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void close_inside(void *arg)
{
    post_arg *a = arg;
    on_post(arg);
    /* Runs the rest of the queue from here, in order, then refuses. */
    assert_int_equal(evc_loop_close_posts(a->rec->loop), 2);
    assert_int_equal(evc_loop_post(a->rec->loop, on_post, a), -ESHUTDOWN);
}

static void test_close_inside_a_post(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    post_arg a[3] = {{&r, 0, 0}, {&r, 0, 1}, {&r, 0, 2}};
    assert_int_equal(evc_loop_post(loop, close_inside, &a[0]), 0);
    assert_int_equal(evc_loop_post(loop, on_post, &a[1]), 0);
    assert_int_equal(evc_loop_post(loop, on_post, &a[2]), 0);
    assert_true(evt_run_until_count(loop, &r.ran, 3, 5.));
    assert_false(r.out_of_order);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

/* Posts pin the loop's entry: a loop whose dispatchers come and go keeps taking posts. */
static void test_posts_outlive_dispatchers(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    evc_dispatcher *d = evc_dispatcher_new(loop, NULL, NULL);
    assert_non_null(d);
    evc_dispatcher_close(d);
    evt_run_for(loop, 0.01);      /* the last dispatcher's destroy */
    post_arg a = {&r, 0, 0};
    assert_int_equal(evc_loop_post(loop, on_post, &a), 0);
    assert_true(evt_run_until_count(loop, &r.ran, 1, 5.));
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

/* Worker loops: one loop per thread, each with its own posts and dispatchers, at once. */
typedef struct worker {
    pthread_t thread;
    int ran;
    bool ok;
} worker;

static void bump(void *arg)
{
    (*(int *)arg)++;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    w->ok = loop && evc_loop_open_posts(loop) == 0;
    for (int round = 0; round < 50 && w->ok; round++) {
        evc_dispatcher *d = evc_dispatcher_new(loop, NULL, NULL);
        w->ok = d && evc_loop_post(loop, bump, &w->ran) == 0;
        if (d)
            evc_dispatcher_close(d);
        ev_run(loop, EVRUN_NOWAIT);
    }
    evc_loop_close_posts(loop);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
    return NULL;
}

static void test_loops_on_many_threads(void **state)
{
    (void)state;
    worker ws[4];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(ws[i].thread, NULL);
        assert_true(ws[i].ok);
        assert_int_equal(ws[i].ran, 50);
    }
}

/* Once the queue has been as long as it gets, posting allocates nothing. */
static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    record r;
    record_init(&r, loop);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    static post_arg a[64];
    for (int i = 0; i < 64; i++)
        a[i] = (post_arg){&r, 0, i};
    for (int i = 0; i < 64; i++)
        assert_int_equal(evc_loop_post(loop, on_post, &a[i]), 0);
    assert_true(evt_run_until_count(loop, &r.ran, 64, 5.));
    int before = atomic_load(&mallocs);
    for (int round = 0; round < 100; round++) {
        r.last_seq[0] = -1;
        for (int i = 0; i < 64; i++)
            assert_int_equal(evc_loop_post(loop, on_post, &a[i]), 0);
        ev_run(loop, EVRUN_NOWAIT);
    }
    assert_true(evt_run_until_count(loop, &r.ran, 64 * 101, 5.));
    assert_int_equal(atomic_load(&mallocs), before);
    assert_false(r.out_of_order);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_unless_open),
        cmocka_unit_test(test_concurrent_posters_fifo),
        cmocka_unit_test(test_close_runs_accepted),
        cmocka_unit_test(test_stop_while_posting),
        cmocka_unit_test(test_close_inside_a_post),
        cmocka_unit_test(test_posts_outlive_dispatchers),
        cmocka_unit_test(test_loops_on_many_threads),
        cmocka_unit_test(test_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
