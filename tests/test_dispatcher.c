/*
 * The dispatcher against real sockets and a real loop: the behaviours of
 * CPython's test_asyncore (each handle_* event over IPv4, IPv6 and unix
 * sockets, resets, urgent data, file dispatchers, close_all, bind conflicts,
 * refused connects), plus what evchat adds: idle timeouts, predicates that
 * cost no wake-ups, fd exhaustion without spinning, and the lifetime rules
 * (close from inside every callback, on_destroy once and only afterwards).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "internal.h"
#include "support_dispatcher.h"

/* The port of an IPv4 or IPv6 address. */
static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* ------------------------------------------------------------------ */
/* asyncore's events, per address family                               */
/* ------------------------------------------------------------------ */

/* connect, accept(ed), write, read, close: the whole conversation. */
static void test_conversation(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *cr = evt_drec_new(), *sr = evt_drec_new();
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);

    evc_dispatcher *c = evc_dispatcher_new(loop, &evt_drec_pred_ops, cr);
    assert_non_null(c);
    cr->d = c;
    assert_int_equal(evc_dispatcher_create_socket(c, family, SOCK_STREAM), 0);
    cr->to_send = "hello, dispatcher";
    cr->send_len = (int)strlen(cr->to_send);
    cr->writable = true;
    assert_int_equal(evc_dispatcher_connect(c, (struct sockaddr *)&a.ss, a.len), 0);
    /* Even an immediate (unix) connect is reported from the loop, never inside connect. */
    assert_int_equal(cr->n[EVT_D_CONNECT], 0);

    evc_dispatcher *s = evt_accept_one(loop, lr, &evt_drec_ops, sr);
    assert_true(evt_run_until_count(loop, &cr->n[EVT_D_CONNECT], 1, 5.));
    assert_int_equal(lr->peer.ss_family, family);
    if (family != AF_UNIX) {
        struct sockaddr_storage local;
        socklen_t llen = sizeof local;
        assert_int_equal(getsockname(evc_dispatcher_fd(c), (struct sockaddr *)&local, &llen), 0);
        assert_int_equal(port_of(&lr->peer), port_of(&local));
    }

    assert_true(evt_run_until_count(loop, &sr->len, (int)cr->send_len, 5.));
    assert_memory_equal(sr->data, cr->to_send, cr->send_len);
    assert_true(cr->n[EVT_D_WRITE] >= 1);

    /* The peer goes away: handle_close, not handle_error. */
    evc_dispatcher_close(c);
    assert_true(evt_run_until_count(loop, &sr->n[EVT_D_CLOSE], 1, 5.));
    assert_int_equal(sr->n[EVT_D_ERROR], 0);
    (void)s;   /* destroyed by now: h_close closed it */

    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    evt_drec_assert_done(cr);
    evt_drec_assert_done(sr);
    evt_forget_addr(&a);
    free(lr);
    free(cr);
    free(sr);
}

/* handle_accept set: the user accepts, and gets a usable fd and the peer address. */
static void test_user_accept(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new();
    struct evc_dispatcher_ops ops = evt_drec_ops;
    ops.handle_accept = evt_drec_accept;
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &ops, lr, &a);
    int client = evt_raw_connect(&a);
    assert_true(evt_run_until_count(loop, &lr->n[EVT_D_ACCEPT], 1, 5.));
    assert_int_equal(lr->n[EVT_D_ACCEPTED], 0);
    assert_true(lr->accepted_fd >= 0);
    assert_int_equal(lr->peer.ss_family, family);
    assert_int_equal(send(lr->accepted_fd, "x", 1, MSG_NOSIGNAL), 1);
    char c = 0;
    assert_int_equal(recv(client, &c, 1, 0), 1);
    assert_int_equal(c, 'x');
    /* Nothing more waiting: accept says so. */
    assert_int_equal(evc_dispatcher_accept(l, NULL, NULL), -EAGAIN);
    close(lr->accepted_fd);
    close(client);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    evt_forget_addr(&a);
    free(lr);
}

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

/* Binding an address that is in use fails with -EADDRINUSE. */
static void test_bind_twice(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new(), *r2 = evt_drec_new();
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, family, &evt_drec_ops, lr, &a);
    evc_dispatcher *d = evc_dispatcher_new(loop, &evt_drec_ops, r2);
    assert_int_equal(evc_dispatcher_create_socket(d, family, SOCK_STREAM), 0);
    if (family != AF_UNIX)
        assert_int_equal(evc_dispatcher_set_reuse_addr(d), 0);
    assert_int_equal(evc_dispatcher_bind(d, (struct sockaddr *)&a.ss, a.len), -EADDRINUSE);
    evc_dispatcher_close(d);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    evt_drec_assert_done(r2);
    assert_int_equal(r2->total, 0);
    evt_forget_addr(&a);
    free(lr);
    free(r2);
}

/* A connect to a port nobody listens on reaches handle_error(-ECONNREFUSED). */
static void test_connect_refused(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *cr = evt_drec_new();
    evt_taddr a;
    evt_any_addr(family, &a);
    /* Keep the port bound but not listening, so nobody else can take it. */
    int holder = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(holder, (struct sockaddr *)&a.ss, a.len), 0);
    a.len = sizeof a.ss;
    assert_int_equal(getsockname(holder, (struct sockaddr *)&a.ss, &a.len), 0);
    evc_dispatcher *c = evc_dispatcher_new(loop, &evt_drec_ops, cr);
    assert_int_equal(evc_dispatcher_create_socket(c, family, SOCK_STREAM), 0);
    int rc = evc_dispatcher_connect(c, (struct sockaddr *)&a.ss, a.len);
    if (family == AF_UNIX) {
        /* unix sockets refuse synchronously: no callback follows. */
        assert_int_equal(rc, -ECONNREFUSED);
        evt_run_for(loop, 0.05);
        assert_int_equal(cr->total, 0);
        evc_dispatcher_close(c);
    } else {
        assert_int_equal(rc, 0);
        assert_true(evt_run_until_count(loop, &cr->n[EVT_D_ERROR], 1, 5.));
        assert_int_equal(cr->last_err, -ECONNREFUSED);
        assert_int_equal(cr->n[EVT_D_CONNECT], 0);
    }
    evt_loop_finish(loop);
    evt_drec_assert_done(cr);
    close(holder);
    evt_forget_addr(&a);
    free(cr);
}

/* ------------------------------------------------------------------ */
/* Files, close_all, datagrams, misc                                   */
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

/* set_socket takes one fd only, and refuses a bad one. */
static void test_set_socket_errors(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *r = evt_drec_new();
    evc_dispatcher *d = evc_dispatcher_new(loop, &evt_drec_ops, r);
    assert_int_equal(evc_dispatcher_fd(d), -1);
    assert_ptr_equal(evc_dispatcher_data(d), r);
    assert_ptr_equal(evc_dispatcher_loop(d), loop);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    assert_int_equal(evc_dispatcher_set_socket(d, p[1]), -EBADF);
    assert_int_equal(evc_dispatcher_set_socket(d, p[0]), 0);
    assert_int_equal(evc_dispatcher_fd(d), p[0]);
    int other = dup(p[0]);
    assert_int_equal(evc_dispatcher_set_socket(d, other), -EBUSY);
    assert_int_equal(evc_dispatcher_create_socket(d, AF_INET, SOCK_STREAM), -EBUSY);
    close(other);
    evc_dispatcher_close(d);
    assert_int_equal(evc_dispatcher_fd(d), -1);
    /* The fd was closed by close. */
    assert_int_equal(fcntl(p[0], F_GETFD), -1);
    evt_loop_finish(loop);
    evt_drec_assert_done(r);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Timeouts and predicates                                             */
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

/* The fd limit lowered and the fds that fill it, for test_emfile_no_spin: the
 * teardown gives them back even when an assertion failed half-way, so one failure
 * cannot starve the tests after it of fds. */
enum { EMFILE_CLIENTS = 3, EMFILE_FILLERS = 64 };
typedef struct emfile_env {
    struct rlimit saved;
    bool lowered;
    int fillers[EMFILE_FILLERS], nfill;
    int clients[EMFILE_CLIENTS];
} emfile_env;

static int emfile_setup(void **state)
{
    emfile_env *e = calloc(1, sizeof *e);
    if (!e || getrlimit(RLIMIT_NOFILE, &e->saved) != 0) {
        free(e);
        return -1;
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        e->clients[i] = -1;
    *state = e;
    return 0;
}

/* Closes the fillers and restores the limit (idempotent). */
static void emfile_release(emfile_env *e)
{
    for (int i = 0; i < e->nfill; i++)
        close(e->fillers[i]);
    e->nfill = 0;
    if (e->lowered && setrlimit(RLIMIT_NOFILE, &e->saved) == 0)
        e->lowered = false;
}

static int emfile_teardown(void **state)
{
    emfile_env *e = *state;
    emfile_release(e);
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        if (e->clients[i] >= 0)
            close(e->clients[i]);
    bool restored = !e->lowered;
    free(e);
    return restored ? 0 : -1;
}

/* Out of fds: the listener sheds connections without spinning and serves again later. */
static void test_emfile_no_spin(void **state)
{
    emfile_env *e = *state;
    struct ev_loop *loop = evt_loop_new();
    evt_drec *lr = evt_drec_new();
    evt_taddr a;
    evc_dispatcher *l = evt_listen_on(loop, AF_INET, &evt_drec_ops, lr, &a);
    int *clients = e->clients;
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(clients[i] >= 0);
    }
    struct rlimit low = e->saved;
    int top = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(top >= 0);
    close(top);
    low.rlim_cur = (rlim_t)top + 16;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    e->lowered = true;
    /* Fill every fd the lowered limit allows. */
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        assert_true(e->nfill < EMFILE_FILLERS);
        e->fillers[e->nfill++] = fd;
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        assert_int_equal(connect(clients[i], (struct sockaddr *)&a.ss, a.len), 0);
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.2);
    assert_true(ev_iteration(loop) - before < 20);
    assert_int_equal(lr->n[EVT_D_ACCEPTED], 0);
    assert_int_equal(lr->n[EVT_D_ERROR], 0);
    /* Each client was shed: it sees its connection end (EOF, or a reset) instead
     * of hanging; a timeout would mean it was left waiting. */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        char c;
        struct timeval tv = {2, 0};
        setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = recv(clients[i], &c, 1, 0);
        int err = n < 0 ? errno : 0;
        assert_true(n == 0 || (n < 0 && err == ECONNRESET));
        close(clients[i]);
        clients[i] = -1;
    }
    emfile_release(e);
    assert_false(e->lowered);
    /* Serves again. */
    int again = evt_raw_connect(&a);
    assert_true(evt_run_until_count(loop, &lr->n[EVT_D_ACCEPTED], 1, 5.));
    close(lr->accepted_fd);
    close(again);
    evc_dispatcher_close(l);
    evt_loop_finish(loop);
    evt_drec_assert_done(lr);
    free(lr);
}

/* ------------------------------------------------------------------ */
/* Lifetime: close from inside each callback                           */
/* ------------------------------------------------------------------ */

/* Produces event k on a dispatcher whose evt_drec closes inside that handler. */
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

static int k_read = EVT_D_READ, k_write = EVT_D_WRITE, k_expt = EVT_D_EXPT,
           k_connect = EVT_D_CONNECT, k_accept = EVT_D_ACCEPT, k_accepted = EVT_D_ACCEPTED,
           k_close = EVT_D_CLOSE, k_error = EVT_D_ERROR, k_timeout = EVT_D_TIMEOUT;


int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        EVT_PER_FAMILY(test_conversation),
        EVT_PER_FAMILY(test_user_accept),
        EVT_PER_INET(test_reset_is_close),
        EVT_PER_INET(test_oob_reaches_expt),
        EVT_PER_INET(test_oob_default_discards),
        EVT_PER_FAMILY(test_bind_twice),
        EVT_PER_FAMILY(test_connect_refused),
        EVT_PER_FAMILY(test_writable_default_no_spin),
        cmocka_unit_test(test_pipe_file_dispatcher),
        cmocka_unit_test(test_pipe_epipe_no_sigpipe),
        cmocka_unit_test(test_close_all),
        cmocka_unit_test(test_close_all_from_callback),
        cmocka_unit_test(test_datagrams),
        cmocka_unit_test(test_set_socket_errors),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_timeout_postponed_by_io),
        cmocka_unit_test(test_readable_false_and_update),
        cmocka_unit_test(test_idle_no_callbacks),
        cmocka_unit_test(test_schedule_write),
        cmocka_unit_test_setup_teardown(test_emfile_no_spin, emfile_setup, emfile_teardown),
        cmocka_unit_test_prestate(test_close_inside, &k_read),
        cmocka_unit_test_prestate(test_close_inside, &k_write),
        cmocka_unit_test_prestate(test_close_inside, &k_expt),
        cmocka_unit_test_prestate(test_close_inside, &k_connect),
        cmocka_unit_test_prestate(test_close_inside, &k_accept),
        cmocka_unit_test_prestate(test_close_inside, &k_accepted),
        cmocka_unit_test_prestate(test_close_inside, &k_close),
        cmocka_unit_test_prestate(test_close_inside, &k_error),
        cmocka_unit_test_prestate(test_close_inside, &k_timeout),
        cmocka_unit_test(test_destroy_deferred),
        cmocka_unit_test(test_close_other_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
