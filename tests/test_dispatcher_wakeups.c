/*
 * When a dispatcher is woken: readable() and writable() decide which events
 * come, evc_dispatcher_update re-asks them, a NULL writable() is false once
 * connected, an idle dispatcher costs no callbacks and no wake-ups, a
 * scheduled write comes once and never after close, and the idle timeout
 * fires after each quiet period (closing by default), postponed by I/O.
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
#include "internal.h"
#include "support_dispatcher.h"

/* ------------------------------------------------------------------ */
/* Predicates and update                                              */
/* ------------------------------------------------------------------ */

/* readable() false: no handle_read; after evc_dispatcher_update with true: it comes. */
static void test_readable_false_and_update(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    r->readable = false;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = evt_adopt(loop, sv[0], &evt_drec_pred_ops, r);
    evt_send_all(sv[1], "data", 4);
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.1);
    assert_int_equal(r->total, 0);
    assert_true(ev_iteration(loop) - before < 5);
    r->readable = true;
    evc_dispatcher_update(d);
    assert_true(evt_run_until_count(loop, &r->len, 4, 2.));
    /* And back off again: writable now true re-arms for writing too. */
    r->writable = true;
    evc_dispatcher_update(d);
    assert_true(evt_run_until_count(loop, &r->n[EVT_D_WRITE], 1, 2.));
    r->writable = false;
    evc_dispatcher_update(d);
    int writes = r->n[EVT_D_WRITE];
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[EVT_D_WRITE], writes);
    evc_dispatcher_close(d);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    close(sv[1]);
    free(r);
}

/* A dispatcher with nothing to do gets no callbacks and causes no wake-ups. */
static void test_idle_no_callbacks(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = evt_adopt(loop, sv[0], &evt_drec_pred_ops, r);
    int preds = r->pred_calls;
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.2);
    assert_int_equal(r->total, 0);
    assert_int_equal(r->pred_calls, preds);
    assert_true(ev_iteration(loop) - before <= 3);
    evc_dispatcher_close(d);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    close(sv[1]);
    free(r);
}

/* writable() NULL is false once connected: no handle_write spinning. */
static void test_writable_default_no_spin(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *cr = evt_drec_new();
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);
    evc_dispatcher *c = evc_dispatcher_new(loop, &evt_drec_ops, cr);
    assert_int_equal(evc_dispatcher_create_socket(c, family, SOCK_STREAM), 0);
    assert_int_equal(evc_dispatcher_connect(c, (struct sockaddr *)&a.ss, a.len), 0);
    assert_true(evc__dispatcher_connecting(c));
    assert_true(evt_run_until_count(loop, &cr->n[EVT_D_CONNECT], 1, 5.));
    assert_false(evc__dispatcher_connecting(c));
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.1);
    assert_int_equal(cr->n[EVT_D_WRITE], 0);
    assert_true(ev_iteration(loop) - before < 10);
    evc_dispatcher_close(c);
    evc_dispatcher_close(l);
    if (lr->accepted_fd >= 0)
        close(lr->accepted_fd);
    evt_loop_finish(loop);
    evt_drec_assert_done(cr);
    evt_forget_addr(&a);
    free(lr);
    free(cr);
}

/* evc__dispatcher_schedule_write: one handle_write before the loop sleeps, none after close. */
static void test_schedule_write(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = evt_adopt(loop, sv[0], &evt_drec_ops, r);
    evc__dispatcher_schedule_write(d);
    evc__dispatcher_schedule_write(d);
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[EVT_D_WRITE], 1);
    evc__dispatcher_schedule_write(d);
    evc_dispatcher_close(d);
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[EVT_D_WRITE], 1);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    close(sv[1]);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Idle timeouts                                                      */
/* ------------------------------------------------------------------ */

static void test_idle_timeout(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new(), *q = evt_drec_new();
    int sv[2], sq[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sq), 0);
    evc_dispatcher *d = evt_adopt(loop, sv[0], &evt_drec_ops, r);
    evc_dispatcher_set_timeout(d, 0.05);
    ev_tstamp t0 = ev_time();
    assert_true(evt_run_until_count(loop, &r->n[EVT_D_TIMEOUT], 1, 2.));
    assert_true(ev_time() - t0 >= 0.04);
    /* Still open (handle_timeout did not close): it fires again after another period. */
    assert_true(evt_run_until_count(loop, &r->n[EVT_D_TIMEOUT], 2, 2.));
    evc_dispatcher_set_timeout(d, 0);
    evt_run_for(loop, 0.1);
    assert_int_equal(r->n[EVT_D_TIMEOUT], 2);
    evc_dispatcher_close(d);

    /* NULL handle_timeout closes. */
    struct evc_dispatcher_ops ops = evt_drec_ops;
    ops.handle_timeout = NULL;
    evc_dispatcher *e = evt_adopt(loop, sq[0], &ops, q);
    evc_dispatcher_set_timeout(e, 0.05);
    assert_true(evt_run_until_count(loop, &q->destroys, 1, 2.));
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    evt_drec_assert_done(q);
    close(sv[1]);
    close(sq[1]);
    free(r);
    free(q);
}

static void poke(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    int fd = *(int *)w->data;
    assert_int_equal(send(fd, "p", 1, MSG_NOSIGNAL), 1);
}

/* I/O postpones the idle timeout. */
static void test_timeout_postponed_by_io(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = evt_adopt(loop, sv[0], &evt_drec_ops, r);
    evc_dispatcher_set_timeout(d, 0.1);
    ev_timer pinger;
    ev_timer_init(&pinger, poke, 0.03, 0.03);
    pinger.data = &sv[1];
    ev_timer_start(loop, &pinger);
    evt_run_for(loop, 0.3);
    ev_timer_stop(loop, &pinger);
    assert_int_equal(r->n[EVT_D_TIMEOUT], 0);
    assert_true(r->len >= 5);
    assert_true(evt_run_until_count(loop, &r->n[EVT_D_TIMEOUT], 1, 2.));
    evc_dispatcher_close(d);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    close(sv[1]);
    free(r);
}

/* ------------------------------------------------------------------ */

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        EVT_PER_FAMILY(test_writable_default_no_spin),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_timeout_postponed_by_io),
        cmocka_unit_test(test_readable_false_and_update),
        cmocka_unit_test(test_idle_no_callbacks),
        cmocka_unit_test(test_schedule_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
