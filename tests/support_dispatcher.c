/*
 * The recording dispatcher user and the loopback sockets the dispatcher test
 * programs share (see support_dispatcher.h for the contract of each).
 */
#include "support_dispatcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

const int evt_family_inet = AF_INET, evt_family_inet6 = AF_INET6, evt_family_unix = AF_UNIX;

/* ------------------------------------------------------------------ */
/* The recording user                                                  */
/* ------------------------------------------------------------------ */

evt_drec *evt_drec_new(void)
{
    evt_drec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->close_on = EVT_D_NONE;
    r->readable = true;
    r->accepted_fd = -1;
    r->oob = -1;
    return r;
}

void evt_drec_begin(evt_drec *r, evc_dispatcher *d, enum evt_devent k)
{
    r->d = d;
    r->n[k]++;
    r->total++;
    if (evc_dispatcher_closed(d))
        r->after_close++;
    r->depth++;
}

void evt_drec_end(evt_drec *r, enum evt_devent k)
{
    if (r->close_on == (int)k) {
        evc_dispatcher_close(r->d);
        evc_dispatcher_close(r->d);   /* closing twice is fine */
    }
    r->depth--;
}

static bool p_readable(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    (void)d;
    r->pred_calls++;
    return r->readable;
}

static bool p_writable(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    (void)d;
    r->pred_calls++;
    return r->writable;
}

static void h_read(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_READ);
    ssize_t n = evc_dispatcher_recv(d, r->data + r->len, sizeof r->data - r->len);
    if (n > 0)
        r->len += (size_t)n;
    evt_drec_end(r, EVT_D_READ);
}

static void h_write(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_WRITE);
    if (r->to_send && r->sent < r->send_len) {
        ssize_t n = evc_dispatcher_send(d, r->to_send + r->sent, r->send_len - r->sent);
        if (n > 0)
            r->sent += (size_t)n;
        if (r->sent == r->send_len)
            r->writable = false;
    }
    evt_drec_end(r, EVT_D_WRITE);
}

static void h_expt(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_EXPT);
    unsigned char byte;
    if (r->read_oob && recv(evc_dispatcher_fd(d), &byte, 1, MSG_OOB) == 1)
        r->oob = byte;
    evt_drec_end(r, EVT_D_EXPT);
}

static void h_connect(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_CONNECT);
    evt_drec_end(r, EVT_D_CONNECT);
}

void evt_drec_accept(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_ACCEPT);
    r->peer_len = sizeof r->peer;
    int fd = evc_dispatcher_accept(d, &r->peer, &r->peer_len);
    if (fd >= 0) {
        if (r->accepted_fd >= 0)
            close(r->accepted_fd);
        r->accepted_fd = fd;
    }
    evt_drec_end(r, EVT_D_ACCEPT);
}

static void h_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                       void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_ACCEPTED);
    if (r->accepted_fd >= 0)
        close(r->accepted_fd);
    r->accepted_fd = fd;
    memcpy(&r->peer, sa, len);
    r->peer_len = len;
    evt_drec_end(r, EVT_D_ACCEPTED);
}

static void h_close(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_CLOSE);
    evc_dispatcher_close(d);
    evt_drec_end(r, EVT_D_CLOSE);
}

static void h_error(evc_dispatcher *d, int err, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_ERROR);
    r->last_err = err;
    evc_dispatcher_close(d);
    evt_drec_end(r, EVT_D_ERROR);
}

static void h_timeout(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    evt_drec_begin(r, d, EVT_D_TIMEOUT);
    evt_drec_end(r, EVT_D_TIMEOUT);
}

static void h_destroy(evc_dispatcher *d, void *data)
{
    evt_drec *r = data;
    (void)d;
    r->destroys++;
    if (r->depth > 0)
        r->destroyed_in_cb++;
}

/* Every handler set; NULL predicates (the defaults). */
const struct evc_dispatcher_ops evt_drec_ops = {
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

/* As evt_drec_ops (without handle_expt), with both predicates answered from the recorder. */
const struct evc_dispatcher_ops evt_drec_pred_ops = {
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

void evt_drec_assert_done(const evt_drec *r)
{
    assert_int_equal(r->destroys, 1);
    assert_int_equal(r->destroyed_in_cb, 0);
    assert_int_equal(r->after_close, 0);
}

/* ------------------------------------------------------------------ */
/* Addresses and sockets                                               */
/* ------------------------------------------------------------------ */

/* Numbers the unix socket paths this process makes, so that no two tests share one. */
static int unix_counter;

void evt_any_addr(int family, evt_taddr *a)
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

void evt_forget_addr(const evt_taddr *a)
{
    if (a->ss.ss_family == AF_UNIX)
        unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
}

evc_dispatcher *evt_listen_on(struct ev_loop *loop, int family, const struct evc_dispatcher_ops *ops,
                              evt_drec *r, evt_taddr *a)
{
    evc_dispatcher *d = evc_dispatcher_new(loop, ops, r);
    assert_non_null(d);
    r->d = d;
    evt_any_addr(family, a);
    assert_int_equal(evc_dispatcher_create_socket(d, family, SOCK_STREAM), 0);
    if (family != AF_UNIX)
        assert_int_equal(evc_dispatcher_set_reuse_addr(d), 0);
    assert_int_equal(evc_dispatcher_bind(d, (struct sockaddr *)&a->ss, a->len), 0);
    assert_int_equal(evc_dispatcher_listen(d, 64), 0);
    a->len = sizeof a->ss;
    assert_int_equal(getsockname(evc_dispatcher_fd(d), (struct sockaddr *)&a->ss, &a->len), 0);
    return d;
}

int evt_raw_connect(const evt_taddr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&a->ss, a->len), 0);
    return fd;
}

evc_dispatcher *evt_adopt(struct ev_loop *loop, int fd, const struct evc_dispatcher_ops *ops,
                          evt_drec *r)
{
    evc_dispatcher *d = evc_dispatcher_new(loop, ops, r);
    assert_non_null(d);
    r->d = d;
    assert_int_equal(evc_dispatcher_set_socket(d, fd), 0);
    return d;
}

evc_dispatcher *evt_accept_one(struct ev_loop *loop, evt_drec *lr,
                               const struct evc_dispatcher_ops *ops, evt_drec *sr)
{
    int before = lr->n[EVT_D_ACCEPTED];
    assert_true(evt_run_until_count(loop, &lr->n[EVT_D_ACCEPTED], before + 1, 5.));
    int fd = lr->accepted_fd;
    lr->accepted_fd = -1;
    return evt_adopt(loop, fd, ops, sr);
}
