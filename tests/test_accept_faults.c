/*
 * Listeners under accept(2) errors (tests/wrap.h): every errno accept(2)
 * documents, once and lasting, on a listening dispatcher and on evc_server.
 * What a user relies on: a connection-level or resource error never stops a
 * listener that has no handle_error, handle_error hears of it when there is
 * one, an error that lasts costs a few calls per second rather than a core,
 * the listener serves again as soon as the error passes, and the pause
 * starts over after a success.  Errors that say the listener itself is
 * broken still close it by default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support.h"
#include "wrap.h"

/* Connection-level and resource errors: absorbed, the listener goes on. */
static const int absorbed[] = {
    ENOBUFS, ENOMEM, EPERM, EPROTO, ENFILE, EMFILE, ECONNABORTED, EINTR,
    ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH,
    ETIMEDOUT, ENOSR, ESOCKTNOSUPPORT, EPROTONOSUPPORT,
};
/* The listener itself is broken: handle_error, whose default is to close. */
static const int broken[] = {EBADF, EFAULT, EINVAL, ENOTSOCK};

#define N_ABSORBED ((int)(sizeof absorbed / sizeof absorbed[0]))
#define N_BROKEN ((int)(sizeof broken / sizeof broken[0]))

/* Errors evc_dispatcher_accept retries, and fd exhaustion, which sheds a
 * connection instead: a single one never reaches handle_error. */
static bool hidden_once(int err)
{
    return err == ECONNABORTED || err == EINTR || err == EMFILE || err == ENFILE;
}

typedef struct rec {
    int accepted, errors, destroys;
    int last_err;
    int fds[8];
    double accepted_at;
} rec;

static void h_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                       void *data)
{
    rec *r = data;
    (void)sa, (void)len;
    if (r->accepted < 8)
        r->fds[r->accepted] = fd;
    else
        close(fd);
    r->accepted++;
    r->accepted_at = ev_now(evc_dispatcher_loop(d));
}

static void h_error_keep(evc_dispatcher *d, int err, void *data)
{
    rec *r = data;
    (void)d;
    r->errors++;
    r->last_err = err;
}

static void h_destroy(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->destroys++;
}

/* No handle_error: the library's default decides. */
static const struct evc_dispatcher_ops default_ops = {
    .handle_accepted = h_accepted,
    .on_destroy = h_destroy,
};

/* handle_error records and keeps the listener open. */
static const struct evc_dispatcher_ops keep_ops = {
    .handle_accepted = h_accepted,
    .handle_error = h_error_keep,
    .on_destroy = h_destroy,
};

typedef struct listener {
    evc_dispatcher *d;
    evc_server *s;
    rec r;
    struct sockaddr_in sin;
    int clients[8];
    int n_clients;
} listener;

static void listener_open(listener *l, struct ev_loop *loop, const struct evc_dispatcher_ops *ops)
{
    memset(l, 0, sizeof *l);
    l->d = evc_dispatcher_new(loop, ops, &l->r);
    assert_non_null(l->d);
    assert_int_equal(evc_dispatcher_create_socket(l->d, AF_INET, SOCK_STREAM), 0);
    l->sin.sin_family = AF_INET;
    l->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(evc_dispatcher_bind(l->d, (struct sockaddr *)&l->sin, sizeof l->sin), 0);
    assert_int_equal(evc_dispatcher_listen(l->d, 16), 0);
    socklen_t len = sizeof l->sin;
    assert_int_equal(getsockname(evc_dispatcher_fd(l->d), (struct sockaddr *)&l->sin, &len), 0);
}

static void s_accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    h_accepted(evc_server_dispatcher(s), fd, sa, len, data);
}

static void s_error(evc_server *s, int err, void *data)
{
    h_error_keep(evc_server_dispatcher(s), err, data);
}

static void s_destroy(evc_server *s, void *data)
{
    h_destroy(evc_server_dispatcher(s), data);
}

static const struct evc_server_ops server_ops = {
    .handle_accepted = s_accepted,
    .handle_error = s_error,
    .on_destroy = s_destroy,
};

static void server_open(listener *l, struct ev_loop *loop)
{
    memset(l, 0, sizeof *l);
    l->s = evc_server_new(loop, "127.0.0.1:0", 16, &server_ops, &l->r);
    assert_non_null(l->s);
    l->d = evc_server_dispatcher(l->s);
    socklen_t len = sizeof l->sin;
    assert_int_equal(getsockname(evc_dispatcher_fd(l->d), (struct sockaddr *)&l->sin, &len), 0);
}

static void client(listener *l)
{
    assert_true(l->n_clients < 8);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&l->sin, sizeof l->sin), 0);
    l->clients[l->n_clients++] = fd;
}

/* Closes what is left and runs the loop until the listener is destroyed. */
static void listener_finish(listener *l, struct ev_loop *loop)
{
    evw_reset();
    if (l->s)
        evc_server_close(l->s);
    else if (!evc_dispatcher_closed(l->d))
        evc_dispatcher_close(l->d);
    assert_true(evt_run_until_count(loop, &l->r.destroys, 1, 2.));
    for (int i = 0; i < l->n_clients; i++)
        close(l->clients[i]);
    for (int i = 0; i < l->r.accepted && i < 8; i++)
        close(l->r.fds[i]);
}

static int setup(void **state)
{
    evw_reset();
    *state = evt_loop_new();
    return 0;
}

static int teardown(void **state)
{
    evw_reset();
    evt_loop_finish(*state);
    return 0;
}

/* One error of each kind, no handle_error: the listener stays open and the
 * connections behind the error are served. */
static void test_once_default_keeps_serving(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_ABSORBED; i++) {
        listener l;
        listener_open(&l, loop, &default_ops);
        evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l.d), absorbed[i], 1);
        client(&l);
        client(&l);   /* EMFILE and ENFILE shed the first */
        if (!evt_run_until_count(loop, &l.r.accepted, 1, 2.))
            fail_msg("%s: nothing accepted", strerror(absorbed[i]));
        assert_false(evc_dispatcher_closed(l.d));
        listener_finish(&l, loop);
    }
}

/* One error of each kind, with handle_error: it hears of it (unless it was
 * retried or a connection was shed) and the listener goes on. */
static void test_once_reported(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_ABSORBED; i++) {
        listener l;
        listener_open(&l, loop, &keep_ops);
        evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l.d), absorbed[i], 1);
        client(&l);
        client(&l);
        int want = 2 - (absorbed[i] == EMFILE || absorbed[i] == ENFILE);
        if (!evt_run_until_count(loop, &l.r.accepted, want, 2.))
            fail_msg("%s: %d accepted", strerror(absorbed[i]), l.r.accepted);
        assert_int_equal(l.r.errors, hidden_once(absorbed[i]) ? 0 : 1);
        if (l.r.errors)
            assert_int_equal(l.r.last_err, -absorbed[i]);
        listener_finish(&l, loop);
    }
}

/* Runs a listener under a lasting error for `seconds`: how many accept calls it
 * made.  The listener must still be open and must serve once the error stops. */
static unsigned long lasting_error(listener *l, struct ev_loop *loop, int err, double seconds)
{
    evw_fail_always(EVW_ACCEPT4, evc_dispatcher_fd(l->d), err);
    client(l);
    unsigned long before = evw_count(EVW_ACCEPT4);
    evt_run_for(loop, seconds);
    unsigned long calls = evw_count(EVW_ACCEPT4) - before;
    assert_false(evc_dispatcher_closed(l->d));
    evw_fail_stop(EVW_ACCEPT4);
    client(l);
    /* The longest pause so far is under a second. */
    if (!evt_run_until_count(loop, &l->r.accepted, 1, 2.))
        fail_msg("%s: nothing accepted after the error stopped", strerror(err));
    return calls;
}

/*
 * A lasting error of each kind: a few accept calls per pause (10 ms doubling),
 * not one per loop iteration.  0.2 s of pauses is 4 or 5 rounds; a round makes
 * at most 9 calls (a retried errno: 1 + 8 retries).
 */
#define LASTING 0.2
#define MAX_CALLS 50

static void test_lasting_no_spin_dispatcher(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_ABSORBED; i++) {
        listener l;
        listener_open(&l, loop, &default_ops);
        unsigned long calls = lasting_error(&l, loop, absorbed[i], LASTING);
        if (calls > MAX_CALLS)
            fail_msg("%s: %lu accept calls in %.1f s", strerror(absorbed[i]), calls, LASTING);
        listener_finish(&l, loop);
    }
}

static void test_lasting_no_spin_server(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_ABSORBED; i++) {
        listener l;
        server_open(&l, loop);
        unsigned long calls = lasting_error(&l, loop, absorbed[i], LASTING);
        if (calls > MAX_CALLS)
            fail_msg("%s: %lu accept calls in %.1f s", strerror(absorbed[i]), calls, LASTING);
        assert_true(l.r.errors >= 1);   /* a lasting error is heard, even a retried one */
        listener_finish(&l, loop);
    }
}

/* A listening socket made elsewhere and adopted with evc_dispatcher_set_socket
 * pauses the same way. */
static void test_adopted_listener_pauses(void **state)
{
    struct ev_loop *loop = *state;
    listener l;
    memset(&l, 0, sizeof l);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    l.sin.sin_family = AF_INET;
    l.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&l.sin, sizeof l.sin), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof l.sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&l.sin, &len), 0);
    l.d = evc_dispatcher_new(loop, &default_ops, &l.r);
    assert_non_null(l.d);
    assert_int_equal(evc_dispatcher_set_socket(l.d, fd), 0);
    unsigned long calls = lasting_error(&l, loop, ENOBUFS, LASTING);
    if (calls > MAX_CALLS)
        fail_msg("%lu accept calls in %.1f s", calls, LASTING);
    listener_finish(&l, loop);
}

/* After a success the pauses start over: an error right after a long lasting
 * one costs the next connection about 10 ms, not the second it had grown to. */
static void test_backoff_resets(void **state)
{
    struct ev_loop *loop = *state;
    listener l;
    listener_open(&l, loop, &keep_ops);
    lasting_error(&l, loop, ENOBUFS, 0.7);   /* pauses grew to 640 ms and more */
    assert_true(evt_run_until_count(loop, &l.r.accepted, 2, 2.));
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l.d), ENOBUFS, 1);
    ev_now_update(loop);
    double t0 = ev_now(loop);
    client(&l);
    assert_true(evt_run_until_count(loop, &l.r.accepted, 3, 2.));
    double waited = l.r.accepted_at - t0;
    if (waited > 0.2)
        fail_msg("the pause did not start over: %.3f s", waited);
    listener_finish(&l, loop);
}

/* The listener is broken: with no handle_error it closes, as before. */
static void test_broken_default_closes(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_BROKEN; i++) {
        listener l;
        listener_open(&l, loop, &default_ops);
        evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l.d), broken[i], 1);
        client(&l);
        if (!evt_run_until_count(loop, &l.r.destroys, 1, 2.))
            fail_msg("%s: listener not closed", strerror(broken[i]));
        assert_int_equal(l.r.accepted, 0);
        for (int k = 0; k < l.n_clients; k++)
            close(l.clients[k]);
    }
}

/* ... and a handle_error that keeps it open is heard: the listener pauses and
 * serves again, without spinning while the error lasts. */
static void test_broken_kept_open(void **state)
{
    struct ev_loop *loop = *state;
    for (int i = 0; i < N_BROKEN; i++) {
        listener l;
        listener_open(&l, loop, &keep_ops);
        unsigned long calls = lasting_error(&l, loop, broken[i], LASTING);
        if (calls > MAX_CALLS)
            fail_msg("%s: %lu accept calls", strerror(broken[i]), calls);
        assert_true(l.r.errors >= 1);
        assert_int_equal(l.r.last_err, -broken[i]);
        listener_finish(&l, loop);
    }
}

/* A handle_error may still close the listener on a connection-level error. */
static void h_error_close(evc_dispatcher *d, int err, void *data)
{
    h_error_keep(d, err, data);
    evc_dispatcher_close(d);
}

static void test_handler_may_close(void **state)
{
    struct ev_loop *loop = *state;
    static const struct evc_dispatcher_ops close_ops = {
        .handle_accepted = h_accepted,
        .handle_error = h_error_close,
        .on_destroy = h_destroy,
    };
    listener l;
    listener_open(&l, loop, &close_ops);
    evw_fail(EVW_ACCEPT4, evc_dispatcher_fd(l.d), ENOBUFS, 1);
    client(&l);
    assert_true(evt_run_until_count(loop, &l.r.destroys, 1, 2.));
    assert_int_equal(l.r.errors, 1);
    assert_int_equal(l.r.accepted, 0);
    close(l.clients[0]);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_once_default_keeps_serving),
        T(test_once_reported),
        T(test_lasting_no_spin_dispatcher),
        T(test_lasting_no_spin_server),
        T(test_adopted_listener_pauses),
        T(test_backoff_resets),
        T(test_broken_default_closes),
        T(test_broken_kept_open),
        T(test_handler_may_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
