/*
 * A dispatcher's I/O against real sockets, pipes and a real loop: resets and
 * a pipe nobody reads are handle_close (never handle_error, never SIGPIPE),
 * urgent data reaches handle_expt or is dropped without spinning or
 * blocking the stream, file dispatchers read and write pipes to EOF, and
 * datagram sockets send and receive with sendto/recvfrom.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
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
/* Streams: resets and urgent data                                    */
/* ------------------------------------------------------------------ */

/* A reset (SO_LINGER 0) is a close, not an error. */
static void test_reset_is_close(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *sr = evt_drec_new();
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);
    int client = evt_raw_connect(&a);
    evt_accept_one(loop, lr, &evt_drec_ops, sr);
    evt_send_all(client, "abc", 3);
    assert_true(evt_run_until_count(loop, &sr->len, 3, 5.));
    evt_close_reset(client);
    assert_true(evt_run_until_count(loop, &sr->n[EVT_D_CLOSE], 1, 5.));
    assert_int_equal(sr->n[EVT_D_ERROR], 0);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    evt_drec_assert_done(sr);
    free(lr);
    free(sr);
}

/* Urgent data reaches handle_expt, which can read the byte with MSG_OOB. */
static void test_oob_reaches_expt(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *sr = evt_drec_new();
    sr->read_oob = true;
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);
    int client = evt_raw_connect(&a);
    evc_dispatcher *s = evt_accept_one(loop, lr, &evt_drec_ops, sr);
    assert_int_equal(send(client, "X", 1, MSG_OOB), 1);
    assert_true(evt_run_until_count(loop, &sr->n[EVT_D_EXPT], 1, 5.));
    assert_int_equal(sr->oob, 'X');
    /* Handled once: no repeats while nothing new arrives. */
    evt_run_for(loop, 0.05);
    assert_int_equal(sr->n[EVT_D_EXPT], 1);
    evc_dispatcher_close(s);
    close(client);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(sr);
    free(lr);
    free(sr);
}

/* Without handle_expt, urgent data neither spins the loop nor blocks the stream. */
static void test_oob_default_discards(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *sr = evt_drec_new();
    struct evc_dispatcher_ops ops = evt_drec_ops;
    ops.handle_expt = NULL;
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);
    int client = evt_raw_connect(&a);
    evc_dispatcher *s = evt_accept_one(loop, lr, &ops, sr);
    evt_send_all(client, "ab", 2);
    assert_int_equal(send(client, "X", 1, MSG_OOB), 1);
    evt_send_all(client, "cd", 2);
    assert_true(evt_run_until_count(loop, &sr->len, 4, 5.));
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.1);
    assert_true(ev_iteration(loop) - before < 10);
    assert_int_equal(sr->len, 4);
    assert_memory_equal(sr->data, "abcd", 4);
    assert_true(sr->n[EVT_D_READ] <= 4);
    evc_dispatcher_close(s);
    close(client);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(sr);
    free(lr);
    free(sr);
}

/* ------------------------------------------------------------------ */
/* Pipes and datagrams                                                */
/* ------------------------------------------------------------------ */

/* A file dispatcher over a pipe reads the whole content and sees EOF as handle_close;
 * another one writes it with evc_dispatcher_send (write(2) on a non-socket). */
static void test_pipe_file_dispatcher(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *rr = evt_drec_new(), *wr = evt_drec_new();
    static char content[100000];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)('a' + i % 23);
    int p[2];
    assert_int_equal(pipe(p), 0);
    evc_dispatcher *rd = evt_adopt(loop, p[0], &evt_drec_ops, rr);
    wr->to_send = content;
    wr->send_len = (int)sizeof content;
    wr->writable = true;
    evc_dispatcher *wd = evc_dispatcher_new(loop, &evt_drec_pred_ops, wr);
    wr->readable = false;
    assert_int_equal(evc_dispatcher_set_socket(wd, p[1]), 0);
    assert_false(evc__dispatcher_is_socket(wd));
    /* O_NONBLOCK was set on the adopted fd. */
    assert_true(fcntl(p[1], F_GETFL) & O_NONBLOCK);
    assert_true(evt_run_until_count(loop, &wr->sent, (int)sizeof content, 5.));
    evc_dispatcher_close(wd);
    assert_true(evt_run_until_count(loop, &rr->n[EVT_D_CLOSE], 1, 5.));
    assert_int_equal(rr->len, (int)sizeof content);
    assert_memory_equal(rr->data, content, sizeof content);
    (void)rd;  /* destroyed by now: h_close closed it */
    assert_int_equal(rr->n[EVT_D_ERROR], 0);
    evt_loop_finish(loop);
    evt_drec_assert_done(rr);
    evt_drec_assert_done(wr);
    free(rr);
    free(wr);
}

/* Sending into a pipe nobody reads is a close, and never raises SIGPIPE. */
static void test_pipe_epipe_no_sigpipe(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *wr = evt_drec_new();
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    sigset_t before, after, pending;
    pthread_sigmask(SIG_SETMASK, NULL, &before);
    evc_dispatcher *wd = evt_adopt(loop, p[1], &evt_drec_ops, wr);
    assert_int_equal(evc_dispatcher_send(wd, "x", 1), 0);
    assert_int_equal(wr->n[EVT_D_CLOSE], 1);
    assert_int_equal(wr->n[EVT_D_ERROR], 0);
    assert_true(evc_dispatcher_closed(wd));
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    assert_int_equal(sigismember(&before, SIGPIPE), sigismember(&after, SIGPIPE));
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    evt_loop_finish(loop);
    evt_drec_assert_done(wr);
    free(wr);
}

/* Datagram sockets: sendto/recvfrom, -EAGAIN when empty. */
static void test_datagrams(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *ar = evt_drec_new(), *br = evt_drec_new();
    evc_dispatcher *a = evc_dispatcher_new(loop, &evt_drec_pred_ops, ar);
    evc_dispatcher *b = evc_dispatcher_new(loop, &evt_drec_pred_ops, br);
    ar->readable = br->readable = false;
    assert_int_equal(evc_dispatcher_create_socket(a, AF_INET, SOCK_DGRAM), 0);
    assert_int_equal(evc_dispatcher_create_socket(b, AF_INET, SOCK_DGRAM), 0);
    evt_taddr ta;
    evt_any_addr(AF_INET, &ta);
    assert_int_equal(evc_dispatcher_bind(a, (struct sockaddr *)&ta.ss, ta.len), 0);
    ta.len = sizeof ta.ss;
    getsockname(evc_dispatcher_fd(a), (struct sockaddr *)&ta.ss, &ta.len);
    char buf[16];
    assert_int_equal(evc_dispatcher_recvfrom(a, buf, sizeof buf, NULL, NULL), -EAGAIN);
    assert_int_equal(evc_dispatcher_sendto(b, "ping", 4, (struct sockaddr *)&ta.ss, ta.len), 4);
    assert_int_equal(evc_dispatcher_sendto(b, "", 0, (struct sockaddr *)&ta.ss, ta.len), 0);
    evt_run_for(loop, 0.02);
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    assert_int_equal(evc_dispatcher_recvfrom(a, buf, sizeof buf, &from, &fromlen), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(from.ss_family, AF_INET);
    assert_int_equal(evc_dispatcher_recvfrom(a, buf, sizeof buf, NULL, NULL), 0);
    evc_dispatcher_close(a);
    evc_dispatcher_close(b);
    evt_loop_finish(loop);
    evt_drec_assert_done(ar);
    evt_drec_assert_done(br);
    free(ar);
    free(br);
}

/* ------------------------------------------------------------------ */

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        EVT_PER_INET(test_reset_is_close),
        EVT_PER_INET(test_oob_reaches_expt),
        EVT_PER_INET(test_oob_default_discards),
        cmocka_unit_test(test_pipe_file_dispatcher),
        cmocka_unit_test(test_pipe_epipe_no_sigpipe),
        cmocka_unit_test(test_datagrams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
