/*
 * A dispatcher's lifetime: evc_dispatcher_close from inside every handler
 * (twice, harmlessly) ends all callbacks, on_destroy runs once and only from
 * the loop, never inside close or a handler, a dispatcher closed while its
 * event is pending gets no callback (nor does one closed in handle_read get
 * the handle_write of the same wake-up), and evc_close_all closes every
 * dispatcher of its loop (and no other loop's), also from inside a handler.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support_dispatcher.h"

/* ------------------------------------------------------------------ */
/* Close from inside each callback                                    */
/* ------------------------------------------------------------------ */

/* Produces event k on a dispatcher whose recorder closes inside that handler. */
static void test_close_inside(void **state)
{
    int k = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *r = evt_drec_new();
    r->close_on = k;
    evt_taddr a;
    struct evc_dispatcher_ops ops = evt_drec_ops;
    int peer = -1;
    evc_dispatcher *l = NULL, *d = NULL;

    switch (k) {
    case EVT_D_ACCEPT:
    case EVT_D_ACCEPTED:
        if (k == EVT_D_ACCEPT)
            ops.handle_accept = evt_drec_accept;
        d = evt_listen_on(loop, AF_INET, &ops, r, &a);
        peer = evt_raw_connect(&a);
        break;
    case EVT_D_CONNECT:
    case EVT_D_ERROR: {
        if (k == EVT_D_CONNECT) {
            l = evt_listen_on(loop, AF_INET, &evt_drec_ops, lr, &a);
        } else {
            evt_any_addr(AF_INET, &a);
            peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            assert_int_equal(bind(peer, (struct sockaddr *)&a.ss, a.len), 0);
            a.len = sizeof a.ss;
            getsockname(peer, (struct sockaddr *)&a.ss, &a.len);
        }
        d = evc_dispatcher_new(loop, &ops, r);
        r->d = d;
        assert_int_equal(evc_dispatcher_create_socket(d, AF_INET, SOCK_STREAM), 0);
        assert_int_equal(evc_dispatcher_connect(d, (struct sockaddr *)&a.ss, a.len), 0);
        break;
    }
    default: {
        l = evt_listen_on(loop, AF_INET, &evt_drec_ops, lr, &a);
        peer = evt_raw_connect(&a);
        if (k == EVT_D_WRITE)
            ops = evt_drec_pred_ops, r->writable = true;
        d = evt_accept_one(loop, lr, &ops, r);
        if (k == EVT_D_READ)
            evt_send_all(peer, "r", 1);
        else if (k == EVT_D_EXPT)
            assert_int_equal(send(peer, "!", 1, MSG_OOB), 1);
        else if (k == EVT_D_CLOSE)
            close(peer), peer = -1;
        else if (k == EVT_D_TIMEOUT)
            evc_dispatcher_set_timeout(d, 0.05);
        break;
    }
    }
    (void)d;
    assert_true(evt_run_until_count(loop, &r->n[k], 1, 5.));
    /* Closed inside the handler; on_destroy came after it returned, exactly once. */
    assert_true(evt_run_until_count(loop, &r->destroys, 1, 2.));
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[k], 1);
    if (l)
        evc_dispatcher_close(l);
    if (peer >= 0)
        close(peer);
    if (lr->accepted_fd >= 0)
        close(lr->accepted_fd);
    if (r->accepted_fd >= 0)
        close(r->accepted_fd);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    free(lr);
    free(r);
}

/* Readable and writable in the same wake-up, closed in handle_read: handle_write
 * does not follow on the closed dispatcher. */
static void test_close_in_read_skips_write(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    r->writable = true;
    r->close_on = EVT_D_READ;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* The data is there before the loop first polls, so the one wake-up has both events. */
    evt_send_all(sv[1], "r", 1);
    evt_adopt(loop, sv[0], &evt_drec_pred_ops, r);
    assert_true(evt_run_until_count(loop, &r->destroys, 1, 2.));
    assert_int_equal(r->n[EVT_D_READ], 1);
    assert_int_equal(r->n[EVT_D_WRITE], 0);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    close(sv[1]);
    free(r);
}

/* on_destroy never runs inside close: it comes from the loop. */
static void test_destroy_deferred(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    evc_dispatcher *d = evc_dispatcher_new(loop, &evt_drec_ops, r);
    evc_dispatcher_close(d);
    assert_int_equal(r->destroys, 0);
    assert_true(evc_dispatcher_closed(d));
    assert_int_equal(evc_dispatcher_send(d, "x", 1), -EBADF);
    evc_dispatcher_update(d);
    evc_dispatcher_set_timeout(d, 1.);
    evc_dispatcher_close(d);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(r->destroys, 1);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    assert_int_equal(r->total, 0);
    free(r);
}

/* A handler that closes another dispatcher whose event is already pending in
 * the same loop pass: that one gets no callback at all. */
static void close_other_on_read(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_READ);
    evc_dispatcher_close(r->other->d);
    char buf[8];
    evc_dispatcher_recv(d, buf, sizeof buf);
    evt_drec_end(r, EVT_D_READ);
}

static void test_close_other_pending(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r1 = evt_drec_new(), *r2 = evt_drec_new();
    r1->other = r2;
    r2->other = r1;
    struct evc_dispatcher_ops ops = evt_drec_ops;
    ops.handle_read = close_other_on_read;
    int s1[2], s2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s1), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s2), 0);
    evt_adopt(loop, s1[0], &ops, r1);
    evt_adopt(loop, s2[0], &ops, r2);
    /* Both readable before the loop polls: both events land in one pass. */
    evt_send_all(s1[1], "a", 1);
    evt_send_all(s2[1], "b", 1);
    evt_run_for(loop, 0.05);
    assert_int_equal(r1->total + r2->total, 1);
    evt_drec *survivor = r1->total ? r1 : r2;
    assert_int_equal(survivor->other->destroys, 1);
    evc_dispatcher_close(survivor->d);
    evt_loop_finish(loop);
    evt_drec_assert_done(r1);
    evt_drec_assert_done(r2);
    close(s1[1]);
    close(s2[1]);
    free(r1);
    free(r2);
}

/* ------------------------------------------------------------------ */
/* close_all                                                          */
/* ------------------------------------------------------------------ */

/* close_all closes every dispatcher of the loop; each on_destroy runs once. */
static void test_close_all(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    struct ev_loop *other = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *sr[3], *fresh = evt_drec_new(), *elsewhere = evt_drec_new();
    evt_taddr a;
    evt_listen_on(loop, AF_INET, &evt_drec_ops, lr, &a);
    int clients[3];
    for (int i = 0; i < 3; i++) {
        sr[i] = evt_drec_new();
        clients[i] = evt_raw_connect(&a);
        evt_accept_one(loop, lr, &evt_drec_ops, sr[i]);
    }
    evc_dispatcher_new(loop, &evt_drec_ops, fresh);   /* no fd yet: closed too */
    evc_dispatcher *e = evc_dispatcher_new(other, &evt_drec_ops, elsewhere);
    evc_close_all(loop);
    evc_close_all(loop);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    evt_drec_assert_done(fresh);
    for (int i = 0; i < 3; i++) {
        evt_drec_assert_done(sr[i]);
        /* The peers see the connections end. */
        char c;
        assert_int_equal(recv(clients[i], &c, 1, 0), 0);
        close(clients[i]);
        free(sr[i]);
    }
    /* Another loop's dispatchers are untouched. */
    assert_false(evc_dispatcher_closed(e));
    assert_int_equal(elsewhere->destroys, 0);
    evc_dispatcher_close(e);
    evt_loop_finish(other);
    evt_drec_assert_done(elsewhere);
    free(lr);
    free(fresh);
    free(elsewhere);
}

/* close_all from inside a callback, while that callback's dispatcher closes others. */
static void close_all_on_read(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_READ);
    evc_close_all(evc_dispatcher_loop(d));
    evt_drec_end(r, EVT_D_READ);
}

static void test_close_all_from_callback(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r[4];
    int peers[4];
    struct evc_dispatcher_ops ops = evt_drec_ops;
    ops.handle_read = close_all_on_read;
    for (int i = 0; i < 4; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        r[i] = evt_drec_new();
        evt_adopt(loop, sv[0], &ops, r[i]);
        peers[i] = sv[1];
        /* All four readable in the same loop pass. */
        evt_send_all(sv[1], "z", 1);
    }
    evt_run_for(loop, 0.05);
    int reads = 0;
    for (int i = 0; i < 4; i++)
        reads += r[i]->n[EVT_D_READ];
    assert_int_equal(reads, 1);
    evt_loop_finish(loop);
    for (int i = 0; i < 4; i++) {
        evt_drec_assert_done(r[i]);
        close(peers[i]);
        free(r[i]);
    }
}

/* ------------------------------------------------------------------ */

static int k_read = EVT_D_READ, k_write = EVT_D_WRITE, k_expt = EVT_D_EXPT,
           k_connect = EVT_D_CONNECT, k_accept = EVT_D_ACCEPT, k_accepted = EVT_D_ACCEPTED,
           k_close = EVT_D_CLOSE, k_error = EVT_D_ERROR, k_timeout = EVT_D_TIMEOUT;

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_all),
        cmocka_unit_test(test_close_all_from_callback),
        cmocka_unit_test_prestate(test_close_inside, &k_read),
        cmocka_unit_test_prestate(test_close_inside, &k_write),
        cmocka_unit_test_prestate(test_close_inside, &k_expt),
        cmocka_unit_test_prestate(test_close_inside, &k_connect),
        cmocka_unit_test_prestate(test_close_inside, &k_accept),
        cmocka_unit_test_prestate(test_close_inside, &k_accepted),
        cmocka_unit_test_prestate(test_close_inside, &k_close),
        cmocka_unit_test_prestate(test_close_inside, &k_error),
        cmocka_unit_test_prestate(test_close_inside, &k_timeout),
        cmocka_unit_test(test_close_in_read_skips_write),
        cmocka_unit_test(test_destroy_deferred),
        cmocka_unit_test(test_close_other_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
