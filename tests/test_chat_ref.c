/*
 * Tests of the cross-thread side of a chat: pushes from other threads through
 * an evc_chat_ref reach the peer whole and in each thread's order; a push
 * whose chat closed before it ran reports -EPIPE to its done callback and
 * leaks nothing; a ref outlives its chat; and evc_chat_connect_addr with a
 * host name resolves on the pool (connects, fails with -ENOENT, or is
 * dropped silently when the chat closes during the lookup).
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct chat_rec {
    int connects;
    int errors;
    int last_error;
    int destroys;
} chat_rec;

static void rec_connect(evc_chat *c, void *data)
{
    (void)c;
    ((chat_rec *)data)->connects++;
}

static void rec_error(evc_chat *c, int err, void *data)
{
    chat_rec *r = data;
    r->errors++;
    r->last_error = err;
    evc_chat_close(c);
}

static void rec_destroy(evc_chat *c, void *data)
{
    (void)c;
    ((chat_rec *)data)->destroys++;
}

static const struct evc_chat_ops rec_ops = {
    .handle_connect = rec_connect,
    .handle_error = rec_error,
    .on_destroy = rec_destroy,
};

typedef struct push_result {
    int status;
    int calls;
} push_result;

static void on_pushed(int status, void *arg)
{
    push_result *r = arg;
    r->status = status;
    r->calls++;
}

/* A chat over one end of a TCP pair; the other end is returned in *peer. */
static evc_chat *chat_on_pair(struct ev_loop *loop, chat_rec *r, int *peer)
{
    int fds[2];
    evt_tcp_pair(fds);
    evc_chat *c = evc_chat_new(loop, fds[0], &rec_ops, r);
    assert_non_null(c);
    *peer = fds[1];
    return c;
}

typedef struct pusher {
    pthread_t thread;
    evc_chat_ref *ref;
    int index;
    int lines;
    int failures;
} pusher;

static void *pusher_main(void *arg)
{
    pusher *p = arg;
    for (int i = 0; i < p->lines; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d %d\n", p->index, i);
        if (evc_chat_ref_push(p->ref, line, (size_t)n, NULL, NULL) != 0)
            p->failures++;
    }
    evc_chat_ref_release(p->ref);
    return NULL;
}

/* Four threads push lines at once: every line arrives whole, each thread's in order. */
static void test_threads_push_lines(void **state)
{
    (void)state;
    enum { THREADS = 4, LINES = 500 };
    struct ev_loop *loop = evt_loop_new();
    assert_int_equal(evc_loop_open_posts(loop), 0);
    chat_rec r = {0};
    int peer;
    evc_chat *c = chat_on_pair(loop, &r, &peer);
    pusher ps[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ps[i] = (pusher){.ref = evc_chat_ref_new(c), .index = i, .lines = LINES};
        assert_non_null(ps[i].ref);
        assert_int_equal(pthread_create(&ps[i].thread, NULL, pusher_main, &ps[i]), 0);
    }
    /* Each line is "T N\n"; count the bytes the lines make. */
    size_t want = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < LINES; i++)
            want += (size_t)snprintf(NULL, 0, "%d %d\n", t, i);
    evt_sink sink;
    evt_sink_start(&sink, loop, peer, want);
    evt_sink_wait(&sink, want);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(ps[i].thread, NULL);
        assert_int_equal(ps[i].failures, 0);
    }
    int next[THREADS] = {0};
    char *save = NULL;
    for (char *line = strtok_r(sink.got.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int t, i;
        assert_int_equal(sscanf(line, "%d %d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS);
        assert_int_equal(i, next[t]);
        next[t]++;
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(next[t], LINES);
    evt_sink_stop(&sink);
    evc_chat_close(c);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_loop_finish(loop);
    close(peer);
    assert_int_equal(r.destroys, 1);
}

typedef struct one_push {
    evc_chat_ref *ref;
    push_result *result;
    int rc;
} one_push;

static void *push_once(void *arg)
{
    one_push *o = arg;
    o->rc = evc_chat_ref_push(o->ref, "late\n", 5, on_pushed, o->result);
    return NULL;
}

/* The push was accepted, then the chat closed before the loop ran it: done hears -EPIPE. */
static void test_chat_closed_before_push_ran(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    assert_int_equal(evc_loop_open_posts(loop), 0);
    chat_rec r = {0};
    int peer;
    evc_chat *c = chat_on_pair(loop, &r, &peer);
    evc_chat_ref *ref = evc_chat_ref_new(c);
    assert_non_null(ref);
    push_result res = {1, 0};
    one_push o = {ref, &res, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_once, &o), 0);
    pthread_join(t, NULL);
    assert_int_equal(o.rc, 0);
    evc_chat_close(c);
    assert_null(evc_chat_ref_get(ref));          /* closed: the loop thread sees no chat */
    evt_run_for(loop, 0.05);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, -EPIPE);
    assert_int_equal(r.destroys, 1);
    /* The chat is gone: pushes fail at once, from any thread. */
    assert_int_equal(evc_chat_ref_push(ref, "x", 1, on_pushed, &res), -EPIPE);
    assert_int_equal(res.calls, 1);
    evc_chat_ref_release(ref);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_loop_finish(loop);
    close(peer);
}

/* A push to a loop whose posts are closed is refused to its caller; done never runs. */
static void test_push_refused_when_posts_closed(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    chat_rec r = {0};
    int peer;
    evc_chat *c = chat_on_pair(loop, &r, &peer);
    evc_chat_ref *ref = evc_chat_ref_new(c);
    evc_chat_ref *again = evc_chat_ref_new(c);
    assert_ptr_equal(ref, again);                 /* one identity per chat */
    assert_ptr_equal(evc_chat_ref_get(ref), c);
    push_result res = {1, 0};
    assert_int_equal(evc_chat_ref_push(ref, "x", 1, on_pushed, &res), -ESHUTDOWN);
    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_chat_ref_push(ref, "ok\n", 3, on_pushed, &res), 0);
    assert_int_equal(evc_loop_close_posts(loop), 1);   /* the accepted push runs */
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, 0);
    assert_int_equal(evc_chat_ref_push(ref, "x", 1, on_pushed, &res), -ESHUTDOWN);
    evc_chat_ref_release(ref);
    evc_chat_ref_release(again);
    evt_sink sink;
    evt_sink_start(&sink, loop, peer, 3);
    evt_sink_wait(&sink, 3);
    assert_memory_equal(sink.got.p, "ok\n", 3);
    evt_sink_stop(&sink);
    evc_chat_close(c);
    evt_loop_finish(loop);
    close(peer);
    errno = 0;
    assert_int_equal(r.destroys, 1);
}

static void test_ref_of_closed_chat(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    chat_rec r = {0};
    int peer;
    evc_chat *c = chat_on_pair(loop, &r, &peer);
    evc_chat_close(c);
    errno = 0;
    assert_null(evc_chat_ref_new(c));
    assert_int_equal(errno, EPIPE);
    errno = 0;
    assert_null(evc_chat_ref_new(NULL));
    assert_int_equal(errno, EINVAL);
    evt_loop_finish(loop);
    close(peer);
}

/* ------------------------------------------------------------------ */
/* evc_chat_connect_addr with names                                    */
/* ------------------------------------------------------------------ */

static void srv_accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    (void)s;
    (void)sa;
    (void)len;
    *(int *)data = fd;
}

static const struct evc_server_ops srv_ops = {.handle_accepted = srv_accepted};

static void test_connect_by_name(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int accepted = -1;
    /* The server binds the first address of localhost, which the lookup finds first too. */
    evc_server *s = evc_server_new(loop, "localhost:0", 8, &srv_ops, &accepted);
    assert_non_null(s);
    char addr[EVC_ADDRSTRLEN];
    assert_true(evc_server_address(s, addr, sizeof addr) > 0);
    char text[64];
    snprintf(text, sizeof text, "localhost:%s", strrchr(addr, ':') + 1);
    chat_rec r = {0};
    evc_chat *c = evc_chat_new(loop, -1, &rec_ops, &r);
    assert_non_null(c);
    assert_int_equal(evc_chat_connect_addr(c, text), 0);
    assert_int_equal(evc_chat_connect_addr(c, text), -EALREADY);
    assert_int_equal(evc_chat_push(c, "queued\n", 7), 0);   /* queues until connected */
    assert_int_equal(r.connects, 0);                        /* nothing happens inline */
    assert_true(evt_run_until_count(loop, &r.connects, 1, 10.));
    assert_int_equal(r.errors, 0);
    assert_true(evt_run_until_count(loop, &accepted, 0, 5.));
    char buf[16];
    ssize_t n = 0;
    for (int i = 0; i < 100 && n <= 0; i++) {
        evt_run_for(loop, 0.01);
        n = recv(accepted, buf, sizeof buf, MSG_DONTWAIT);
    }
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "queued\n", 7);
    close(accepted);
    evc_chat_close(c);
    evc_server_close(s);
    evt_loop_finish(loop);
    assert_int_equal(r.destroys, 1);
}

static void test_connect_to_unknown_name(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    chat_rec r = {0};
    evc_chat *c = evc_chat_new(loop, -1, &rec_ops, &r);
    assert_non_null(c);
    /* .invalid never resolves (RFC 6761). */
    assert_int_equal(evc_chat_connect_addr(c, "no-such-host.invalid:80"), 0);
    assert_int_equal(r.errors, 0);
    assert_true(evt_run_until_count(loop, &r.errors, 1, 20.));
    assert_int_equal(r.last_error, -ENOENT);
    assert_int_equal(r.connects, 0);
    evt_loop_finish(loop);
    assert_int_equal(r.destroys, 1);
}

/* Closed while the name is being looked up: no callback, nothing left behind. */
static void test_close_during_lookup(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    chat_rec r = {0};
    evc_chat *c = evc_chat_new(loop, -1, &rec_ops, &r);
    assert_non_null(c);
    assert_int_equal(evc_chat_connect_addr(c, "localhost:9"), 0);
    evc_chat_close(c);
    /* The lookup keeps ev_run going until it is back; then nothing is left. */
    ev_run(loop, 0);
    assert_int_equal(r.connects, 0);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.destroys, 1);
    evt_loop_finish(loop);
}

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gated_work(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void count_done(void *arg, int status)
{
    (void)status;
    (*(int *)arg)++;
}

static void close_chat(void *arg)
{
    evc_chat_close(arg);
}

/* The chat is closed in the same loop pass as its lookup comes back, before it
 * is destroyed: still no callback. */
static void test_close_just_before_lookup_returns(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    assert_int_equal(evc_loop_open_posts(loop), 0);
    assert_int_equal(evc_loop_set_pool_size(loop, 1), 0);
    int gated_done = 0;
    gate_open = false;
    /* The one pool thread is held, so the lookup waits behind this item. */
    assert_non_null(evc_work_queue(loop, gated_work, count_done, &gated_done));
    chat_rec r = {0};
    evc_chat *c = evc_chat_new(loop, -1, &rec_ops, &r);
    assert_int_equal(evc_chat_connect_addr(c, "localhost:9"), 0);
    /* Queued ahead of both completions: the close, then the lookup's result. */
    assert_int_equal(evc_loop_post(loop, close_chat, c), 0);
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    usleep(200 * 1000);      /* both items finish while the loop does not run */
    ev_run(loop, 0);
    assert_int_equal(gated_done, 1);
    assert_int_equal(r.connects, 0);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.destroys, 1);
    assert_int_equal(evc_loop_close_posts(loop), 0);
    evt_loop_finish(loop);
}

/* Numeric addresses stay synchronous: a bad one fails inline, a good one needs no pool. */
static void test_numeric_stays_synchronous(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    struct sockaddr_in sin;
    int lfd = evt_listener(&sin);
    char text[64];
    snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    chat_rec r = {0};
    evc_chat *c = evc_chat_new(loop, -1, &rec_ops, &r);
    assert_int_equal(evc_chat_connect_addr(c, "127.0.0.1:http"), -EINVAL);
    assert_int_equal(evc_chat_connect_addr(c, text), 0);
    /* The socket exists at once: the connect was made inline. */
    assert_true(evc_dispatcher_fd(evc_chat_dispatcher(c)) >= 0);
    assert_true(evt_run_until_count(loop, &r.connects, 1, 5.));
    evc_chat_close(c);
    evt_loop_finish(loop);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_push_lines),
        cmocka_unit_test(test_chat_closed_before_push_ran),
        cmocka_unit_test(test_push_refused_when_posts_closed),
        cmocka_unit_test(test_ref_of_closed_chat),
        cmocka_unit_test(test_connect_by_name),
        cmocka_unit_test(test_connect_to_unknown_name),
        cmocka_unit_test(test_close_during_lookup),
        cmocka_unit_test(test_close_just_before_lookup_returns),
        cmocka_unit_test(test_numeric_stays_synchronous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
