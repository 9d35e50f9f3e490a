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
#include "support.h"

/* ------------------------------------------------------------------ */
/* A recording dispatcher user                                         */
/* ------------------------------------------------------------------ */

enum kind { K_READ, K_WRITE, K_EXPT, K_CONNECT, K_ACCEPT, K_ACCEPTED, K_CLOSE, K_ERROR,
            K_TIMEOUT, K_NKINDS, K_NONE = -1 };

typedef struct rec {
    evc_dispatcher *d;
    int n[K_NKINDS];
    int total;              /* all handle_* calls */
    int pred_calls;
    int destroys;
    int depth;              /* our handlers on the stack */
    int destroyed_in_cb;    /* on_destroy while a handler ran: must stay 0 */
    int after_close;        /* handlers entered after close: must stay 0 */
    int close_on;           /* close (twice) inside this handler kind */
    int last_err;
    bool readable, writable;
    char data[1 << 17];
    int len;                /* bytes in data (an int, so the run helpers can wait for it) */
    const char *to_send;
    int send_len, sent;
    struct rec *other;      /* close_other_on_read closes this one's dispatcher */
    int accepted_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    bool read_oob;
    int oob;
} rec;

static rec *rec_new(void)
{
    rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->close_on = K_NONE;
    r->readable = true;
    r->accepted_fd = -1;
    r->oob = -1;
    return r;
}

static void begin(rec *r, evc_dispatcher *d, enum kind k)
{
    r->d = d;
    r->n[k]++;
    r->total++;
    if (evc_dispatcher_closed(d))
        r->after_close++;
    r->depth++;
}

static void end(rec *r, enum kind k)
{
    if (r->close_on == (int)k) {
        evc_dispatcher_close(r->d);
        evc_dispatcher_close(r->d);   /* closing twice is fine */
    }
    r->depth--;
}

static bool p_readable(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->pred_calls++;
    return r->readable;
}

static bool p_writable(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->pred_calls++;
    return r->writable;
}

static void h_read(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_READ);
    ssize_t n = evc_dispatcher_recv(d, r->data + r->len, sizeof r->data - r->len);
    if (n > 0)
        r->len += (size_t)n;
    end(r, K_READ);
}

static void h_write(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_WRITE);
    if (r->to_send && r->sent < r->send_len) {
        ssize_t n = evc_dispatcher_send(d, r->to_send + r->sent, r->send_len - r->sent);
        if (n > 0)
            r->sent += (size_t)n;
        if (r->sent == r->send_len)
            r->writable = false;
    }
    end(r, K_WRITE);
}

static void h_expt(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_EXPT);
    unsigned char byte;
    if (r->read_oob && recv(evc_dispatcher_fd(d), &byte, 1, MSG_OOB) == 1)
        r->oob = byte;
    end(r, K_EXPT);
}

static void h_connect(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_CONNECT);
    end(r, K_CONNECT);
}

static void h_accept(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_ACCEPT);
    r->peer_len = sizeof r->peer;
    int fd = evc_dispatcher_accept(d, &r->peer, &r->peer_len);
    if (fd >= 0) {
        if (r->accepted_fd >= 0)
            close(r->accepted_fd);
        r->accepted_fd = fd;
    }
    end(r, K_ACCEPT);
}

static void h_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                       void *data)
{
    rec *r = data;
    begin(r, d, K_ACCEPTED);
    if (r->accepted_fd >= 0)
        close(r->accepted_fd);
    r->accepted_fd = fd;
    memcpy(&r->peer, sa, len);
    r->peer_len = len;
    end(r, K_ACCEPTED);
}

static void h_close(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_CLOSE);
    evc_dispatcher_close(d);
    end(r, K_CLOSE);
}

static void h_error(evc_dispatcher *d, int err, void *data)
{
    rec *r = data;
    begin(r, d, K_ERROR);
    r->last_err = err;
    evc_dispatcher_close(d);
    end(r, K_ERROR);
}

static void h_timeout(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_TIMEOUT);
    end(r, K_TIMEOUT);
}

static void h_destroy(evc_dispatcher *d, void *data)
{
    rec *r = data;
    (void)d;
    r->destroys++;
    if (r->depth > 0)
        r->destroyed_in_cb++;
}

/* Every handler set; NULL predicates (the defaults). */
static const struct evc_dispatcher_ops all_ops = {
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_expt = h_expt,
    .handle_connect = h_connect,
    .handle_accepted = h_accepted,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_timeout = h_timeout,
    .on_destroy = h_destroy,
};

/* As all_ops, with both predicates answered from the rec. */
static const struct evc_dispatcher_ops pred_ops = {
    .readable = p_readable,
    .writable = p_writable,
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_connect = h_connect,
    .handle_accepted = h_accepted,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_timeout = h_timeout,
    .on_destroy = h_destroy,
};

/* Checks the lifetime promises for a rec whose dispatcher is gone. */
static void assert_rec_done(const rec *r)
{
    assert_int_equal(r->destroys, 1);
    assert_int_equal(r->destroyed_in_cb, 0);
    assert_int_equal(r->after_close, 0);
}

/* ------------------------------------------------------------------ */
/* Addresses and sockets                                               */
/* ------------------------------------------------------------------ */

typedef struct taddr {
    struct sockaddr_storage ss;
    socklen_t len;
} taddr;

static int unix_counter;

static void any_addr(int family, taddr *a)
{
    memset(a, 0, sizeof *a);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->len = sizeof *sin;
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        a->len = sizeof *sin6;
    } else {
        struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof sun->sun_path, "/tmp/evc-disp-%ld-%d.sock",
                 (long)getpid(), unix_counter++);
        unlink(sun->sun_path);
        a->len = sizeof *sun;
    }
}

static void forget_addr(const taddr *a)
{
    if (a->ss.ss_family == AF_UNIX)
        unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* A listening dispatcher on a fresh loopback address; *a gets the bound address. */
static evc_dispatcher *listen_on(struct ev_loop *loop, int family, const struct evc_dispatcher_ops *ops,
                                 rec *r, taddr *a)
{
    evc_dispatcher *d = evc_dispatcher_new(loop, ops, r);
    assert_non_null(d);
    r->d = d;
    any_addr(family, a);
    assert_int_equal(evc_dispatcher_create_socket(d, family, SOCK_STREAM), 0);
    if (family != AF_UNIX)
        assert_int_equal(evc_dispatcher_set_reuse_addr(d), 0);
    assert_int_equal(evc_dispatcher_bind(d, (struct sockaddr *)&a->ss, a->len), 0);
    assert_int_equal(evc_dispatcher_listen(d, 64), 0);
    a->len = sizeof a->ss;
    assert_int_equal(getsockname(evc_dispatcher_fd(d), (struct sockaddr *)&a->ss, &a->len), 0);
    return d;
}

/* A blocking client socket connected to a. */
static int raw_connect(const taddr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&a->ss, a->len), 0);
    return fd;
}

/* A dispatcher over fd with ops and r. */
static evc_dispatcher *adopt(struct ev_loop *loop, int fd, const struct evc_dispatcher_ops *ops, rec *r)
{
    evc_dispatcher *d = evc_dispatcher_new(loop, ops, r);
    assert_non_null(d);
    r->d = d;
    assert_int_equal(evc_dispatcher_set_socket(d, fd), 0);
    return d;
}

/* Accepts one connection on listener l (recording into lr) and adopts it into sr. */
static evc_dispatcher *accept_one(struct ev_loop *loop, rec *lr, const struct evc_dispatcher_ops *ops,
                                  rec *sr)
{
    int before = lr->n[K_ACCEPTED];
    assert_true(evt_run_until_count(loop, &lr->n[K_ACCEPTED], before + 1, 5.));
    int fd = lr->accepted_fd;
    lr->accepted_fd = -1;
    return adopt(loop, fd, ops, sr);
}

static struct ev_loop *new_loop(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    return loop;
}

static void finish_loop(struct ev_loop *loop)
{
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static int fam_inet = AF_INET, fam_inet6 = AF_INET6, fam_unix = AF_UNIX;

/* ------------------------------------------------------------------ */
/* asyncore's events, per address family                               */
/* ------------------------------------------------------------------ */

/* connect, accept(ed), write, read, close: the whole conversation. */
static void test_conversation(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *cr = rec_new(), *sr = rec_new();
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);

    evc_dispatcher *c = evc_dispatcher_new(loop, &pred_ops, cr);
    assert_non_null(c);
    cr->d = c;
    assert_int_equal(evc_dispatcher_create_socket(c, family, SOCK_STREAM), 0);
    cr->to_send = "hello, dispatcher";
    cr->send_len = (int)strlen(cr->to_send);
    cr->writable = true;
    assert_int_equal(evc_dispatcher_connect(c, (struct sockaddr *)&a.ss, a.len), 0);
    /* Even an immediate (unix) connect is reported from the loop, never inside connect. */
    assert_int_equal(cr->n[K_CONNECT], 0);

    evc_dispatcher *s = accept_one(loop, lr, &all_ops, sr);
    assert_true(evt_run_until_count(loop, &cr->n[K_CONNECT], 1, 5.));
    assert_int_equal(lr->peer.ss_family, family);
    if (family != AF_UNIX) {
        struct sockaddr_storage local;
        socklen_t llen = sizeof local;
        assert_int_equal(getsockname(evc_dispatcher_fd(c), (struct sockaddr *)&local, &llen), 0);
        assert_int_equal(port_of(&lr->peer), port_of(&local));
    }

    assert_true(evt_run_until_count(loop, &sr->len, (int)cr->send_len, 5.));
    assert_memory_equal(sr->data, cr->to_send, cr->send_len);
    assert_true(cr->n[K_WRITE] >= 1);

    /* The peer goes away: handle_close, not handle_error. */
    evc_dispatcher_close(c);
    assert_true(evt_run_until_count(loop, &sr->n[K_CLOSE], 1, 5.));
    assert_int_equal(sr->n[K_ERROR], 0);
    (void)s;   /* destroyed by now: h_close closed it */

    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(lr);
    assert_rec_done(cr);
    assert_rec_done(sr);
    forget_addr(&a);
    free(lr);
    free(cr);
    free(sr);
}

/* handle_accept set: the user accepts, and gets a usable fd and the peer address. */
static void test_user_accept(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new();
    struct evc_dispatcher_ops ops = all_ops;
    ops.handle_accept = h_accept;
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &ops, lr, &a);
    int client = raw_connect(&a);
    assert_true(evt_run_until_count(loop, &lr->n[K_ACCEPT], 1, 5.));
    assert_int_equal(lr->n[K_ACCEPTED], 0);
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
    finish_loop(loop);
    assert_rec_done(lr);
    forget_addr(&a);
    free(lr);
}

/* A reset (SO_LINGER 0) is a close, not an error. */
static void test_reset_is_close(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *sr = rec_new();
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);
    int client = raw_connect(&a);
    accept_one(loop, lr, &all_ops, sr);
    evt_send_all(client, "abc", 3);
    assert_true(evt_run_until_count(loop, &sr->len, 3, 5.));
    evt_close_reset(client);
    assert_true(evt_run_until_count(loop, &sr->n[K_CLOSE], 1, 5.));
    assert_int_equal(sr->n[K_ERROR], 0);
    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(lr);
    assert_rec_done(sr);
    free(lr);
    free(sr);
}

/* Urgent data reaches handle_expt, which can read the byte with MSG_OOB. */
static void test_oob_reaches_expt(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *sr = rec_new();
    sr->read_oob = true;
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);
    int client = raw_connect(&a);
    evc_dispatcher *s = accept_one(loop, lr, &all_ops, sr);
    assert_int_equal(send(client, "X", 1, MSG_OOB), 1);
    assert_true(evt_run_until_count(loop, &sr->n[K_EXPT], 1, 5.));
    assert_int_equal(sr->oob, 'X');
    /* Handled once: no repeats while nothing new arrives. */
    evt_run_for(loop, 0.05);
    assert_int_equal(sr->n[K_EXPT], 1);
    evc_dispatcher_close(s);
    close(client);
    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(sr);
    free(lr);
    free(sr);
}

/* Without handle_expt, urgent data neither spins the loop nor blocks the stream. */
static void test_oob_default_discards(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *sr = rec_new();
    struct evc_dispatcher_ops ops = all_ops;
    ops.handle_expt = NULL;
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);
    int client = raw_connect(&a);
    evc_dispatcher *s = accept_one(loop, lr, &ops, sr);
    evt_send_all(client, "ab", 2);
    assert_int_equal(send(client, "X", 1, MSG_OOB), 1);
    evt_send_all(client, "cd", 2);
    assert_true(evt_run_until_count(loop, &sr->len, 4, 5.));
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.1);
    assert_true(ev_iteration(loop) - before < 10);
    assert_int_equal(sr->len, 4);
    assert_memory_equal(sr->data, "abcd", 4);
    assert_true(sr->n[K_READ] <= 4);
    evc_dispatcher_close(s);
    close(client);
    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(sr);
    free(lr);
    free(sr);
}

/* Binding an address that is in use fails with -EADDRINUSE. */
static void test_bind_twice(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *r2 = rec_new();
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);
    evc_dispatcher *d = evc_dispatcher_new(loop, &all_ops, r2);
    assert_int_equal(evc_dispatcher_create_socket(d, family, SOCK_STREAM), 0);
    if (family != AF_UNIX)
        assert_int_equal(evc_dispatcher_set_reuse_addr(d), 0);
    assert_int_equal(evc_dispatcher_bind(d, (struct sockaddr *)&a.ss, a.len), -EADDRINUSE);
    evc_dispatcher_close(d);
    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(lr);
    assert_rec_done(r2);
    assert_int_equal(r2->total, 0);
    forget_addr(&a);
    free(lr);
    free(r2);
}

/* A connect to a port nobody listens on reaches handle_error(-ECONNREFUSED). */
static void test_connect_refused(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *cr = rec_new();
    taddr a;
    any_addr(family, &a);
    /* Keep the port bound but not listening, so nobody else can take it. */
    int holder = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(holder, (struct sockaddr *)&a.ss, a.len), 0);
    a.len = sizeof a.ss;
    assert_int_equal(getsockname(holder, (struct sockaddr *)&a.ss, &a.len), 0);
    evc_dispatcher *c = evc_dispatcher_new(loop, &all_ops, cr);
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
        assert_true(evt_run_until_count(loop, &cr->n[K_ERROR], 1, 5.));
        assert_int_equal(cr->last_err, -ECONNREFUSED);
        assert_int_equal(cr->n[K_CONNECT], 0);
    }
    finish_loop(loop);
    assert_rec_done(cr);
    close(holder);
    forget_addr(&a);
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
    struct ev_loop *loop = new_loop();
    rec *rr = rec_new(), *wr = rec_new();
    static char content[100000];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)('a' + i % 23);
    int p[2];
    assert_int_equal(pipe(p), 0);
    evc_dispatcher *rd = adopt(loop, p[0], &all_ops, rr);
    wr->to_send = content;
    wr->send_len = (int)sizeof content;
    wr->writable = true;
    evc_dispatcher *wd = evc_dispatcher_new(loop, &pred_ops, wr);
    wr->readable = false;
    assert_int_equal(evc_dispatcher_set_socket(wd, p[1]), 0);
    assert_false(evc__dispatcher_is_socket(wd));
    /* O_NONBLOCK was set on the adopted fd. */
    assert_true(fcntl(p[1], F_GETFL) & O_NONBLOCK);
    assert_true(evt_run_until_count(loop, &wr->sent, (int)sizeof content, 5.));
    evc_dispatcher_close(wd);
    assert_true(evt_run_until_count(loop, &rr->n[K_CLOSE], 1, 5.));
    assert_int_equal(rr->len, (int)sizeof content);
    assert_memory_equal(rr->data, content, sizeof content);
    (void)rd;  /* destroyed by now: h_close closed it */
    assert_int_equal(rr->n[K_ERROR], 0);
    finish_loop(loop);
    assert_rec_done(rr);
    assert_rec_done(wr);
    free(rr);
    free(wr);
}

/* Sending into a pipe nobody reads is a close, and never raises SIGPIPE. */
static void test_pipe_epipe_no_sigpipe(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *wr = rec_new();
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    sigset_t before, after, pending;
    pthread_sigmask(SIG_SETMASK, NULL, &before);
    evc_dispatcher *wd = adopt(loop, p[1], &all_ops, wr);
    assert_int_equal(evc_dispatcher_send(wd, "x", 1), 0);
    assert_int_equal(wr->n[K_CLOSE], 1);
    assert_int_equal(wr->n[K_ERROR], 0);
    assert_true(evc_dispatcher_closed(wd));
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    assert_int_equal(sigismember(&before, SIGPIPE), sigismember(&after, SIGPIPE));
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    finish_loop(loop);
    assert_rec_done(wr);
    free(wr);
}

/* close_all closes every dispatcher of the loop; each on_destroy runs once. */
static void test_close_all(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    struct ev_loop *other = new_loop();
    rec *lr = rec_new(), *sr[3], *fresh = rec_new(), *elsewhere = rec_new();
    taddr a;
    listen_on(loop, AF_INET, &all_ops, lr, &a);
    int clients[3];
    for (int i = 0; i < 3; i++) {
        sr[i] = rec_new();
        clients[i] = raw_connect(&a);
        accept_one(loop, lr, &all_ops, sr[i]);
    }
    evc_dispatcher_new(loop, &all_ops, fresh);   /* no fd yet: closed too */
    evc_dispatcher *e = evc_dispatcher_new(other, &all_ops, elsewhere);
    evc_close_all(loop);
    evc_close_all(loop);
    finish_loop(loop);
    assert_rec_done(lr);
    assert_rec_done(fresh);
    for (int i = 0; i < 3; i++) {
        assert_rec_done(sr[i]);
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
    finish_loop(other);
    assert_rec_done(elsewhere);
    free(lr);
    free(fresh);
    free(elsewhere);
}

/* close_all from inside a callback, while that callback's dispatcher closes others. */
static void close_all_on_read(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_READ);
    evc_close_all(evc_dispatcher_loop(d));
    end(r, K_READ);
}

static void test_close_all_from_callback(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r[4];
    int peers[4];
    struct evc_dispatcher_ops ops = all_ops;
    ops.handle_read = close_all_on_read;
    for (int i = 0; i < 4; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        r[i] = rec_new();
        adopt(loop, sv[0], &ops, r[i]);
        peers[i] = sv[1];
        /* All four readable in the same loop pass. */
        evt_send_all(sv[1], "z", 1);
    }
    evt_run_for(loop, 0.05);
    int reads = 0;
    for (int i = 0; i < 4; i++)
        reads += r[i]->n[K_READ];
    assert_int_equal(reads, 1);
    finish_loop(loop);
    for (int i = 0; i < 4; i++) {
        assert_rec_done(r[i]);
        close(peers[i]);
        free(r[i]);
    }
}

/* Datagram sockets: sendto/recvfrom, -EAGAIN when empty. */
static void test_datagrams(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *ar = rec_new(), *br = rec_new();
    evc_dispatcher *a = evc_dispatcher_new(loop, &pred_ops, ar);
    evc_dispatcher *b = evc_dispatcher_new(loop, &pred_ops, br);
    ar->readable = br->readable = false;
    assert_int_equal(evc_dispatcher_create_socket(a, AF_INET, SOCK_DGRAM), 0);
    assert_int_equal(evc_dispatcher_create_socket(b, AF_INET, SOCK_DGRAM), 0);
    taddr ta;
    any_addr(AF_INET, &ta);
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
    finish_loop(loop);
    assert_rec_done(ar);
    assert_rec_done(br);
    free(ar);
    free(br);
}

/* set_socket takes one fd only, and refuses a bad one. */
static void test_set_socket_errors(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    evc_dispatcher *d = evc_dispatcher_new(loop, &all_ops, r);
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
    finish_loop(loop);
    assert_rec_done(r);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Timeouts and predicates                                             */
/* ------------------------------------------------------------------ */

static void test_idle_timeout(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new(), *q = rec_new();
    int sv[2], sq[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sq), 0);
    evc_dispatcher *d = adopt(loop, sv[0], &all_ops, r);
    evc_dispatcher_set_timeout(d, 0.05);
    ev_tstamp t0 = ev_time();
    assert_true(evt_run_until_count(loop, &r->n[K_TIMEOUT], 1, 2.));
    assert_true(ev_time() - t0 >= 0.04);
    /* Still open (handle_timeout did not close): it fires again after another period. */
    assert_true(evt_run_until_count(loop, &r->n[K_TIMEOUT], 2, 2.));
    evc_dispatcher_set_timeout(d, 0);
    evt_run_for(loop, 0.1);
    assert_int_equal(r->n[K_TIMEOUT], 2);
    evc_dispatcher_close(d);

    /* NULL handle_timeout closes. */
    struct evc_dispatcher_ops ops = all_ops;
    ops.handle_timeout = NULL;
    evc_dispatcher *e = adopt(loop, sq[0], &ops, q);
    evc_dispatcher_set_timeout(e, 0.05);
    assert_true(evt_run_until_count(loop, &q->destroys, 1, 2.));
    finish_loop(loop);
    assert_rec_done(r);
    assert_rec_done(q);
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
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = adopt(loop, sv[0], &all_ops, r);
    evc_dispatcher_set_timeout(d, 0.1);
    ev_timer pinger;
    ev_timer_init(&pinger, poke, 0.03, 0.03);
    pinger.data = &sv[1];
    ev_timer_start(loop, &pinger);
    evt_run_for(loop, 0.3);
    ev_timer_stop(loop, &pinger);
    assert_int_equal(r->n[K_TIMEOUT], 0);
    assert_true(r->len >= 5);
    assert_true(evt_run_until_count(loop, &r->n[K_TIMEOUT], 1, 2.));
    evc_dispatcher_close(d);
    finish_loop(loop);
    assert_rec_done(r);
    close(sv[1]);
    free(r);
}

/* readable() false: no handle_read; after evc_dispatcher_update with true: it comes. */
static void test_readable_false_and_update(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    r->readable = false;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = adopt(loop, sv[0], &pred_ops, r);
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
    assert_true(evt_run_until_count(loop, &r->n[K_WRITE], 1, 2.));
    r->writable = false;
    evc_dispatcher_update(d);
    int writes = r->n[K_WRITE];
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[K_WRITE], writes);
    evc_dispatcher_close(d);
    finish_loop(loop);
    assert_rec_done(r);
    close(sv[1]);
    free(r);
}

/* A dispatcher with nothing to do gets no callbacks and causes no wake-ups. */
static void test_idle_no_callbacks(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = adopt(loop, sv[0], &pred_ops, r);
    int preds = r->pred_calls;
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.2);
    assert_int_equal(r->total, 0);
    assert_int_equal(r->pred_calls, preds);
    assert_true(ev_iteration(loop) - before <= 3);
    evc_dispatcher_close(d);
    finish_loop(loop);
    assert_rec_done(r);
    close(sv[1]);
    free(r);
}

/* writable() NULL is false once connected: no handle_write spinning. */
static void test_writable_default_no_spin(void **state)
{
    int family = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *cr = rec_new();
    taddr a;
    evc_dispatcher *l = listen_on(loop, family, &all_ops, lr, &a);
    evc_dispatcher *c = evc_dispatcher_new(loop, &all_ops, cr);
    assert_int_equal(evc_dispatcher_create_socket(c, family, SOCK_STREAM), 0);
    assert_int_equal(evc_dispatcher_connect(c, (struct sockaddr *)&a.ss, a.len), 0);
    assert_true(evc__dispatcher_connecting(c));
    assert_true(evt_run_until_count(loop, &cr->n[K_CONNECT], 1, 5.));
    assert_false(evc__dispatcher_connecting(c));
    unsigned before = ev_iteration(loop);
    evt_run_for(loop, 0.1);
    assert_int_equal(cr->n[K_WRITE], 0);
    assert_true(ev_iteration(loop) - before < 10);
    evc_dispatcher_close(c);
    evc_dispatcher_close(l);
    if (lr->accepted_fd >= 0)
        close(lr->accepted_fd);
    finish_loop(loop);
    assert_rec_done(cr);
    forget_addr(&a);
    free(lr);
    free(cr);
}

/* evc__dispatcher_schedule_write: one handle_write before the loop sleeps, none after close. */
static void test_schedule_write(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evc_dispatcher *d = adopt(loop, sv[0], &all_ops, r);
    evc__dispatcher_schedule_write(d);
    evc__dispatcher_schedule_write(d);
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[K_WRITE], 1);
    evc__dispatcher_schedule_write(d);
    evc_dispatcher_close(d);
    evt_run_for(loop, 0.05);
    assert_int_equal(r->n[K_WRITE], 1);
    finish_loop(loop);
    assert_rec_done(r);
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
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new();
    taddr a;
    evc_dispatcher *l = listen_on(loop, AF_INET, &all_ops, lr, &a);
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
    assert_int_equal(lr->n[K_ACCEPTED], 0);
    assert_int_equal(lr->n[K_ERROR], 0);
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
    int again = raw_connect(&a);
    assert_true(evt_run_until_count(loop, &lr->n[K_ACCEPTED], 1, 5.));
    close(lr->accepted_fd);
    close(again);
    evc_dispatcher_close(l);
    finish_loop(loop);
    assert_rec_done(lr);
    free(lr);
}

/* ------------------------------------------------------------------ */
/* Lifetime: close from inside each callback                           */
/* ------------------------------------------------------------------ */

/* Produces event k on a dispatcher whose rec closes inside that handler. */
static void test_close_inside(void **state)
{
    int k = **(int **)state;
    struct ev_loop *loop = new_loop();
    rec *lr = rec_new(), *r = rec_new();
    r->close_on = k;
    taddr a;
    struct evc_dispatcher_ops ops = all_ops;
    int peer = -1;
    evc_dispatcher *l = NULL, *d = NULL;

    switch (k) {
    case K_ACCEPT:
    case K_ACCEPTED:
        if (k == K_ACCEPT)
            ops.handle_accept = h_accept;
        d = listen_on(loop, AF_INET, &ops, r, &a);
        peer = raw_connect(&a);
        break;
    case K_CONNECT:
    case K_ERROR: {
        if (k == K_CONNECT) {
            l = listen_on(loop, AF_INET, &all_ops, lr, &a);
        } else {
            any_addr(AF_INET, &a);
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
        l = listen_on(loop, AF_INET, &all_ops, lr, &a);
        peer = raw_connect(&a);
        if (k == K_WRITE)
            ops = pred_ops, r->writable = true;
        d = accept_one(loop, lr, &ops, r);
        if (k == K_READ)
            evt_send_all(peer, "r", 1);
        else if (k == K_EXPT)
            assert_int_equal(send(peer, "!", 1, MSG_OOB), 1);
        else if (k == K_CLOSE)
            close(peer), peer = -1;
        else if (k == K_TIMEOUT)
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
    finish_loop(loop);
    assert_rec_done(r);
    free(lr);
    free(r);
}

/* on_destroy never runs inside close: it comes from the loop. */
static void test_destroy_deferred(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r = rec_new();
    evc_dispatcher *d = evc_dispatcher_new(loop, &all_ops, r);
    evc_dispatcher_close(d);
    assert_int_equal(r->destroys, 0);
    assert_true(evc_dispatcher_closed(d));
    assert_int_equal(evc_dispatcher_send(d, "x", 1), -EBADF);
    evc_dispatcher_update(d);
    evc_dispatcher_set_timeout(d, 1.);
    evc_dispatcher_close(d);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(r->destroys, 1);
    finish_loop(loop);
    assert_rec_done(r);
    assert_int_equal(r->total, 0);
    free(r);
}

/* A handler that closes another dispatcher whose event is already pending in
 * the same loop pass: that one gets no callback at all. */
static void close_other_on_read(evc_dispatcher *d, void *data)
{
    rec *r = data;
    begin(r, d, K_READ);
    evc_dispatcher_close(r->other->d);
    char buf[8];
    evc_dispatcher_recv(d, buf, sizeof buf);
    end(r, K_READ);
}

static void test_close_other_pending(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    rec *r1 = rec_new(), *r2 = rec_new();
    r1->other = r2;
    r2->other = r1;
    struct evc_dispatcher_ops ops = all_ops;
    ops.handle_read = close_other_on_read;
    int s1[2], s2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s1), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s2), 0);
    adopt(loop, s1[0], &ops, r1);
    adopt(loop, s2[0], &ops, r2);
    /* Both readable before the loop polls: both events land in one pass. */
    evt_send_all(s1[1], "a", 1);
    evt_send_all(s2[1], "b", 1);
    evt_run_for(loop, 0.05);
    assert_int_equal(r1->total + r2->total, 1);
    rec *survivor = r1->total ? r1 : r2;
    assert_int_equal(survivor->other->destroys, 1);
    evc_dispatcher_close(survivor->d);
    finish_loop(loop);
    assert_rec_done(r1);
    assert_rec_done(r2);
    close(s1[1]);
    close(s2[1]);
    free(r1);
    free(r2);
}

/* ------------------------------------------------------------------ */

static int k_read = K_READ, k_write = K_WRITE, k_expt = K_EXPT, k_connect = K_CONNECT,
           k_accept = K_ACCEPT, k_accepted = K_ACCEPTED, k_close = K_CLOSE, k_error = K_ERROR,
           k_timeout = K_TIMEOUT;

#define PER_FAMILY(t) \
    cmocka_unit_test_prestate(t, &fam_inet), \
    cmocka_unit_test_prestate(t, &fam_inet6), \
    cmocka_unit_test_prestate(t, &fam_unix)
#define PER_INET(t) \
    cmocka_unit_test_prestate(t, &fam_inet), \
    cmocka_unit_test_prestate(t, &fam_inet6)

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would kill us: that is the test */
    const struct CMUnitTest tests[] = {
        PER_FAMILY(test_conversation),
        PER_FAMILY(test_user_accept),
        PER_INET(test_reset_is_close),
        PER_INET(test_oob_reaches_expt),
        PER_INET(test_oob_default_discards),
        PER_FAMILY(test_bind_twice),
        PER_FAMILY(test_connect_refused),
        PER_FAMILY(test_writable_default_no_spin),
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
