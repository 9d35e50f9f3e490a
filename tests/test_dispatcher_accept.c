/*
 * A dispatcher's sockets over IPv4, IPv6 and unix addresses: listen, accept
 * (by the library into handle_accepted, or by the user in handle_accept) and
 * connect, one whole conversation, bind conflicts, refused connects, the fd
 * rules of set_socket, and a listener out of fds (EMFILE) that sheds
 * connections without spinning and serves again once fds are back.
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
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support_dispatcher.h"

/* ------------------------------------------------------------------ */
/* Listen, accept, connect                                            */
/* ------------------------------------------------------------------ */

/* The port of an IPv4 or IPv6 address. */
static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

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
/* Out of file descriptors                                            */
/* ------------------------------------------------------------------ */

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

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        EVT_PER_FAMILY(test_conversation),
        EVT_PER_FAMILY(test_user_accept),
        EVT_PER_FAMILY(test_bind_twice),
        EVT_PER_FAMILY(test_connect_refused),
        cmocka_unit_test(test_set_socket_errors),
        cmocka_unit_test_setup_teardown(test_emfile_no_spin, emfile_setup, emfile_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
