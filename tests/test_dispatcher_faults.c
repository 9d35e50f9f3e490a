/*
 * The dispatcher under injected system-call faults (tests/wrap.h): recv and
 * send returning EAGAIN, EINTR, short counts and resets; accept4 returning
 * ECONNABORTED, EMFILE and ENOBUFS; connect failing synchronously.  Each test
 * checks what the user sees: the return value, which handle_* ran, and that
 * nothing spins or is lost.
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
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "internal.h"
#include "support.h"
#include "wrap.h"

typedef struct rec {
    evc_dispatcher *d;
    int reads, writes, closes, errors, connects, accepted, destroys;
    int last_err;
    ssize_t last_ret;       /* what the last recv/send in a handler returned */
    char data[4096];
    int len;
    int accepted_fd;
} rec;

static void h_read(evc_dispatcher *d, void *data)
{
    rec *r = data;
    r->reads++;
    r->last_ret = evc_dispatcher_recv(d, r->data + r->len, sizeof r->data - (size_t)r->len);
    if (r->last_ret > 0)
        r->len += (int)r->last_ret;
}

static void h_close(evc_dispatcher *d, void *data)
{
    rec *r = data;
    r->closes++;
    evc_dispatcher_close(d);
}

static void h_error(evc_dispatcher *d, int err, void *data)
{
    rec *r = data;
    r->errors++;
    r->last_err = err;
    evc_dispatcher_close(d);
}

/* A listener's error does not close it: it keeps serving. */
static void h_error_keep(evc_dispatcher *d, int err, void *data)
{
    rec *r = data;
    (void)d;
    r->errors++;
    r->last_err = err;
}

static void h_connect(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->connects++;
}

static void h_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                       void *data)
{
    rec *r = data;
    (void)d;
    (void)sa;
    (void)len;
    r->accepted++;
    if (r->accepted_fd >= 0)
        close(r->accepted_fd);
    r->accepted_fd = fd;
}

static void h_destroy(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->destroys++;
}

static const struct evc_dispatcher_ops ops = {
    .handle_read = h_read,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_connect = h_connect,
    .handle_accepted = h_accepted,
    .on_destroy = h_destroy,
};

static const struct evc_dispatcher_ops listener_ops = {
    .handle_accepted = h_accepted,
    .handle_error = h_error_keep,
    .on_destroy = h_destroy,
};

/* Silent: only writes when the test calls send. */
static bool never(evc_dispatcher *d, void *data)
{
    (void)d;
    (void)data;
    return false;
}

static const struct evc_dispatcher_ops quiet_ops = {
    .readable = never,
    .handle_close = h_close,
    .handle_error = h_error,
    .on_destroy = h_destroy,
};

typedef struct fixture {
    struct ev_loop *loop;
    rec r;
    evc_dispatcher *d;
    int fd;      /* the dispatcher's end */
    int peer;    /* the test's end */
    bool fd_adopted;
} fixture;

static int setup(void **state)
{
    evw_reset();
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[0];
    f->peer = sv[1];
    f->r.accepted_fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    evw_reset();
    if (f->d && f->r.destroys == 0)
        evc_dispatcher_close(f->d);
    evt_assert_loop_empty(f->loop);
    ev_loop_destroy(f->loop);
    if (f->d)
        assert_int_equal(f->r.destroys, 1);
    if (f->peer >= 0)
        close(f->peer);
    if (!f->fd_adopted)
        close(f->fd);
    if (f->r.accepted_fd >= 0)
        close(f->r.accepted_fd);
    free(f);
    return 0;
}

static void start(fixture *f, const struct evc_dispatcher_ops *o)
{
    f->d = evc_dispatcher_new(f->loop, o, &f->r);
    assert_non_null(f->d);
    f->r.d = f->d;
    assert_int_equal(evc_dispatcher_set_socket(f->d, f->fd), 0);
    f->fd_adopted = true;
}

/* ------------------------------------------------------------------ */
/* recv                                                                */
/* ------------------------------------------------------------------ */

/* EAGAIN is "nothing now": 0, no callback; the data comes on the next wake-up. */
static void test_recv_eagain(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_fail(EVW_RECV, f->fd, EAGAIN, 2);
    evt_send_all(f->peer, "hello", 5);
    assert_true(evt_run_until_count(f->loop, &f->r.len, 5, 2.));
    assert_int_equal(f->r.reads, 3);
    assert_int_equal(f->r.closes + f->r.errors, 0);
    assert_memory_equal(f->r.data, "hello", 5);
}

/* EINTR is retried inside the same call. */
static void test_recv_eintr(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_fail(EVW_RECV, f->fd, EINTR, 3);
    evt_send_all(f->peer, "hello", 5);
    assert_true(evt_run_until_count(f->loop, &f->r.len, 5, 2.));
    assert_int_equal(f->r.reads, 1);
    assert_int_equal(evw_pending(EVW_RECV), 0);
}

/* Short counts lose nothing: the rest comes on later wake-ups. */
static void test_recv_short(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_arm(EVW_RECV, f->fd, (evw_step[]){EVW_SHORT(3), EVW_SHORT(1), EVW_SHORT(2)}, 3);
    evt_send_all(f->peer, "abcdefghij", 10);
    assert_true(evt_run_until_count(f->loop, &f->r.len, 10, 2.));
    assert_int_equal(f->r.reads, 4);
    assert_memory_equal(f->r.data, "abcdefghij", 10);
}

/* The brief's script: EAGAIN, EAGAIN, a short count of 3, then a reset (a close). */
static void test_recv_script(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_arm(EVW_RECV, f->fd,
            (evw_step[]){EVW_ERR(EAGAIN), EVW_ERR(EAGAIN), EVW_SHORT(3), EVW_ERR(ECONNRESET)}, 4);
    evt_send_all(f->peer, "abcdef", 6);
    assert_true(evt_run_until_count(f->loop, &f->r.closes, 1, 2.));
    assert_int_equal(f->r.len, 3);
    assert_memory_equal(f->r.data, "abc", 3);
    assert_int_equal(f->r.errors, 0);
    assert_int_equal(f->r.last_ret, 0);
}

/* Every "peer gone" errno is handle_close and a 0 return, never handle_error.
 * ETIMEDOUT is one of them, for a dispatcher as for a chat: one list. */
static void test_recv_peer_gone(void **state)
{
    static const int gone[] = {ECONNRESET, EPIPE, ENOTCONN, ESHUTDOWN, ECONNABORTED, ETIMEDOUT};
    fixture *f = *state;
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        struct ev_loop *loop = f->loop;
        rec r = {.accepted_fd = -1};
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        evc_dispatcher *d = evc_dispatcher_new(loop, &ops, &r);
        assert_int_equal(evc_dispatcher_set_socket(d, sv[0]), 0);
        evw_fail(EVW_RECV, sv[0], gone[i], 1);
        evt_send_all(sv[1], "x", 1);
        assert_true(evt_run_until_count(loop, &r.destroys, 1, 2.));
        assert_int_equal(r.closes, 1);
        assert_int_equal(r.errors, 0);
        assert_int_equal(r.last_ret, 0);
        close(sv[1]);
    }
}

/* Other errors are handle_error(-errno), returned too. */
static void test_recv_error(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_fail(EVW_RECV, f->fd, ENOMEM, 1);
    evt_send_all(f->peer, "x", 1);
    assert_true(evt_run_until_count(f->loop, &f->r.errors, 1, 2.));
    assert_int_equal(f->r.last_err, -ENOMEM);
    assert_int_equal(f->r.last_ret, -ENOMEM);
    assert_int_equal(f->r.closes, 0);
}

/* A faked EOF from recv is handle_close. */
static void test_recv_eof(void **state)
{
    fixture *f = *state;
    start(f, &ops);
    evw_arm(EVW_RECV, f->fd, &EVW_EOF, 1);
    evt_send_all(f->peer, "x", 1);
    assert_true(evt_run_until_count(f->loop, &f->r.closes, 1, 2.));
    assert_int_equal(f->r.errors, 0);
}

/* ------------------------------------------------------------------ */
/* send                                                                */
/* ------------------------------------------------------------------ */

static void test_send_faults(void **state)
{
    fixture *f = *state;
    start(f, &quiet_ops);
    /* EAGAIN: 0, nothing ran. */
    evw_fail(EVW_SEND, f->fd, EAGAIN, 1);
    assert_int_equal(evc_dispatcher_send(f->d, "abc", 3), 0);
    /* EINTR: retried. */
    evw_fail(EVW_SEND, f->fd, EINTR, 2);
    assert_int_equal(evc_dispatcher_send(f->d, "abc", 3), 3);
    /* Short: the count the kernel took. */
    evw_arm(EVW_SEND, f->fd, &EVW_SHORT(2), 1);
    assert_int_equal(evc_dispatcher_send(f->d, "defg", 4), 2);
    char buf[8];
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), 5);
    assert_memory_equal(buf, "abcde", 5);
    assert_int_equal(f->r.closes + f->r.errors, 0);
    /* Other errors: handle_error ran, -errno returned. */
    evw_fail(EVW_SEND, f->fd, EIO, 1);
    assert_int_equal(evc_dispatcher_send(f->d, "x", 1), -EIO);
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, -EIO);
    /* Closed by the NULL-like handler: further sends say so, and call nothing. */
    assert_int_equal(evc_dispatcher_send(f->d, "x", 1), -EBADF);
    assert_int_equal(f->r.errors, 1);
}

static void test_send_reset_is_close(void **state)
{
    fixture *f = *state;
    start(f, &quiet_ops);
    evw_fail(EVW_SEND, f->fd, EPIPE, 1);
    assert_int_equal(evc_dispatcher_send(f->d, "x", 1), 0);
    assert_int_equal(f->r.closes, 1);
    assert_int_equal(f->r.errors, 0);
}

/* Non-sockets go through writev (evc__io_writev): the same rules. */
static void test_pipe_writev_faults(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    close(f->fd);
    f->fd = p[1];
    start(f, &quiet_ops);
    evw_arm(EVW_WRITEV, p[1], (evw_step[]){EVW_ERR(EINTR), EVW_ERR(EAGAIN), EVW_SHORT(1)}, 3);
    assert_int_equal(evc_dispatcher_send(f->d, "ab", 2), 0);   /* EINTR retried, then EAGAIN */
    assert_int_equal(evc_dispatcher_send(f->d, "ab", 2), 1);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(c, 'a');
    evw_fail(EVW_WRITEV, p[1], EPIPE, 1);
    assert_int_equal(evc_dispatcher_send(f->d, "ab", 2), 0);
    assert_int_equal(f->r.closes, 1);
    close(p[0]);
}

/* evc__io_writev on sockets: sendmsg with EINTR retried and short counts reported. */
static void test_io_sendmsg(void **state)
{
    fixture *f = *state;
    char abc[] = "abc", def[] = "def";
    struct iovec iov[2] = {{.iov_base = abc, .iov_len = 3}, {.iov_base = def, .iov_len = 3}};
    evw_arm(EVW_SENDMSG, f->fd, (evw_step[]){EVW_ERR(EINTR), EVW_SHORT(4)}, 2);
    assert_int_equal(evc__io_writev(f->fd, true, iov, 2), 4);
    evw_fail(EVW_SENDMSG, f->fd, EAGAIN, 1);
    assert_int_equal(evc__io_writev(f->fd, true, iov, 2), -EAGAIN);
    char buf[8];
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), 4);
    assert_memory_equal(buf, "abcd", 4);
    evw_fail(EVW_READ, f->peer, EINTR, 2);
    evt_send_all(f->fd, "z", 1);
    assert_int_equal(evc__io_read(f->peer, buf, sizeof buf), 1);
    assert_int_equal(evw_pending(EVW_READ), 0);
}

/* ------------------------------------------------------------------ */
/* accept and connect                                                  */
/* ------------------------------------------------------------------ */

static evc_dispatcher *tcp_listener(fixture *f, struct sockaddr_in *sin)
{
    f->d = evc_dispatcher_new(f->loop, &listener_ops, &f->r);
    assert_non_null(f->d);
    assert_int_equal(evc_dispatcher_create_socket(f->d, AF_INET, SOCK_STREAM), 0);
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(evc_dispatcher_bind(f->d, (struct sockaddr *)sin, sizeof *sin), 0);
    assert_int_equal(evc_dispatcher_listen(f->d, 16), 0);
    socklen_t len = sizeof *sin;
    getsockname(evc_dispatcher_fd(f->d), (struct sockaddr *)sin, &len);
    return f->d;
}

static int tcp_client(const struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)sin, sizeof *sin), 0);
    return fd;
}

/* ECONNABORTED is retried: the next connection is accepted, no error shows. */
static void test_accept_econnaborted(void **state)
{
    fixture *f = *state;
    struct sockaddr_in sin;
    evc_dispatcher *l = tcp_listener(f, &sin);
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l), ECONNABORTED, 2);
    int c = tcp_client(&sin);
    assert_true(evt_run_until_count(f->loop, &f->r.accepted, 1, 2.));
    assert_int_equal(f->r.errors, 0);
    assert_int_equal(evw_pending(EVW_ACCEPT4), 0);
    /* The direct call retries too. */
    int c2 = tcp_client(&sin);
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l), ECONNABORTED, 1);
    int fd = -EAGAIN;
    for (int i = 0; i < 100 && fd == -EAGAIN; i++) {
        fd = evc_dispatcher_accept(l, NULL, NULL);
        if (fd == -EAGAIN)
            usleep(1000);
    }
    assert_true(fd >= 0);
    close(fd);
    close(c);
    close(c2);
}

/* EMFILE: the waiting connection is shed (the client sees it end), no error,
 * no spinning, and the next connection is served. */
static void test_accept_emfile(void **state)
{
    fixture *f = *state;
    struct sockaddr_in sin;
    evc_dispatcher *l = tcp_listener(f, &sin);
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l), EMFILE, 1);
    int c = tcp_client(&sin);
    unsigned before = ev_iteration(f->loop);
    evt_run_for(f->loop, 0.1);
    assert_true(ev_iteration(f->loop) - before < 10);
    assert_int_equal(f->r.accepted, 0);
    assert_int_equal(f->r.errors, 0);
    char ch;
    assert_int_equal(recv(c, &ch, 1, 0), 0);
    close(c);
    c = tcp_client(&sin);
    assert_true(evt_run_until_count(f->loop, &f->r.accepted, 1, 2.));
    close(c);
}

/* Other accept failures reach handle_error; the listener goes on. */
static void test_accept_enobufs(void **state)
{
    fixture *f = *state;
    struct sockaddr_in sin;
    evc_dispatcher *l = tcp_listener(f, &sin);
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l), ENOBUFS, 1);
    int c = tcp_client(&sin);
    assert_true(evt_run_until_count(f->loop, &f->r.accepted, 1, 2.));
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, -ENOBUFS);
    close(c);
}

/* A synchronous connect failure is returned and no callback ever fires. */
static void test_connect_sync_refused(void **state)
{
    fixture *f = *state;
    f->d = evc_dispatcher_new(f->loop, &ops, &f->r);
    assert_int_equal(evc_dispatcher_create_socket(f->d, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    evw_fail(EVW_CONNECT, evc_dispatcher_fd(f->d), ECONNREFUSED, 1);
    assert_int_equal(evc_dispatcher_connect(f->d, (struct sockaddr *)&sin, sizeof sin),
                     -ECONNREFUSED);
    evt_run_for(f->loop, 0.05);
    assert_int_equal(f->r.connects + f->r.errors + f->r.closes + f->r.reads, 0);
    assert_false(evc__dispatcher_connecting(f->d));
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        T(test_recv_eagain),
        T(test_recv_eintr),
        T(test_recv_short),
        T(test_recv_script),
        T(test_recv_peer_gone),
        T(test_recv_error),
        T(test_recv_eof),
        T(test_send_faults),
        T(test_send_reset_is_close),
        T(test_pipe_writev_faults),
        T(test_io_sendmsg),
        T(test_accept_econnaborted),
        T(test_accept_emfile),
        T(test_accept_enobufs),
        T(test_connect_sync_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
