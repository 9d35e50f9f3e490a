/*
 * The -Wl,--wrap fault injectors: see wrap.h.  The linker sends every call to
 * X in the program to __wrap_X and makes the real one reachable as __real_X;
 * those names are the linker's convention, hence the reserved-looking
 * identifiers.
 */
#include "wrap.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t __real_read(int, void *, size_t);
ssize_t __real_recv(int, void *, size_t, int);
ssize_t __real_send(int, const void *, size_t, int);
ssize_t __real_sendmsg(int, const struct msghdr *, int);
ssize_t __real_writev(int, const struct iovec *, int);
ssize_t __real_write(int, const void *, size_t);
int __real_accept4(int, struct sockaddr *, socklen_t *, int);
int __real_connect(int, const struct sockaddr *, socklen_t);

ssize_t __wrap_read(int, void *, size_t);
ssize_t __wrap_recv(int, void *, size_t, int);
ssize_t __wrap_send(int, const void *, size_t, int);
ssize_t __wrap_sendmsg(int, const struct msghdr *, int);
ssize_t __wrap_writev(int, const struct iovec *, int);
ssize_t __wrap_write(int, const void *, size_t);
int __wrap_accept4(int, struct sockaddr *, socklen_t *, int);
int __wrap_connect(int, const struct sockaddr *, socklen_t);

typedef struct script {
    evw_step steps[EVW_MAX_STEPS];
    size_t len, pos;
    int fd;
    unsigned long calls;
    int always_err;     /* evw_fail_always: errno once the steps ran out; 0: none */
    int always_fd;
    long always_left;   /* evw_fail_next: failures still to come; -1: no end */
} script;

/* Test scaffolding only: one program, one thread, reset between tests. */
static script scripts[EVW_NCALLS];

void evw_arm(evw_call call, int fd, const evw_step *steps, size_t n)
{
    script *s = &scripts[call];
    if (s->pos == s->len) {
        s->pos = s->len = 0;
        s->fd = fd;
    }
    assert_int_equal(s->fd, fd);
    assert_true(s->len + n <= EVW_MAX_STEPS);
    for (size_t i = 0; i < n; i++)
        s->steps[s->len++] = steps[i];
}

void evw_fail(evw_call call, int fd, int err, size_t times)
{
    for (size_t i = 0; i < times; i++)
        evw_arm(call, fd, &EVW_ERR(err), 1);
}

void evw_fail_always(evw_call call, int fd, int err)
{
    scripts[call].always_err = err;
    scripts[call].always_fd = fd;
    scripts[call].always_left = -1;
}

void evw_fail_next(evw_call call, int fd, int err, unsigned long n)
{
    evw_fail_always(call, fd, err);
    scripts[call].always_left = (long)n;
}

void evw_fail_stop(evw_call call)
{
    scripts[call].always_err = 0;
}

size_t evw_pending(evw_call call)
{
    return scripts[call].len - scripts[call].pos;
}

unsigned long evw_count(evw_call call)
{
    return scripts[call].calls;
}

void evw_reset(void)
{
    for (size_t i = 0; i < EVW_NCALLS; i++) {
        scripts[i].len = scripts[i].pos = 0;
        scripts[i].fd = -1;
        scripts[i].calls = 0;
        scripts[i].always_err = 0;
    }
}

/* The step for this call, or a pass when the script is empty or for another fd. */
static evw_step next_step(evw_call call, int fd)
{
    script *s = &scripts[call];
    s->calls++;
    if (s->pos == s->len || (s->fd >= 0 && s->fd != fd)) {
        if (s->always_err && (s->always_fd < 0 || s->always_fd == fd)) {
            evw_step st = EVW_ERR(s->always_err);
            if (s->always_left > 0 && --s->always_left == 0)
                s->always_err = 0;
            return st;
        }
        return EVW_PASS;
    }
    return s->steps[s->pos++];
}

/* Copies iov into out, trimmed to max bytes in total; returns the count. */
static int trim_iov(const struct iovec *iov, int n, size_t max, struct iovec *out, int cap)
{
    int m = 0;
    for (int i = 0; i < n && m < cap && max > 0; i++) {
        out[m] = iov[i];
        if (out[m].iov_len > max)
            out[m].iov_len = max;
        max -= out[m].iov_len;
        m++;
    }
    return m;
}

static size_t cap_len(evw_step st, size_t len)
{
    return st.kind == EVW_KIND_SHORT && (size_t)st.value < len ? (size_t)st.value : len;
}

ssize_t __wrap_read(int fd, void *buf, size_t len)
{
    evw_step st = next_step(EVW_READ, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    if (st.kind == EVW_KIND_EOF)
        return 0;
    return __real_read(fd, buf, cap_len(st, len));
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    evw_step st = next_step(EVW_RECV, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    if (st.kind == EVW_KIND_EOF)
        return 0;
    return __real_recv(fd, buf, cap_len(st, len), flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    evw_step st = next_step(EVW_SEND, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    return __real_send(fd, buf, cap_len(st, len), flags);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    evw_step st = next_step(EVW_WRITE, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    return __real_write(fd, buf, cap_len(st, len));
}

ssize_t __wrap_writev(int fd, const struct iovec *iov, int n)
{
    evw_step st = next_step(EVW_WRITEV, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    if (st.kind == EVW_KIND_SHORT) {
        struct iovec trimmed[64];
        int m = trim_iov(iov, n, (size_t)st.value, trimmed, 64);
        return __real_writev(fd, trimmed, m);
    }
    return __real_writev(fd, iov, n);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    evw_step st = next_step(EVW_SENDMSG, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    if (st.kind == EVW_KIND_SHORT) {
        struct iovec trimmed[64];
        struct msghdr copy = *msg;
        copy.msg_iov = trimmed;
        copy.msg_iovlen = (size_t)trim_iov(msg->msg_iov, (int)msg->msg_iovlen, (size_t)st.value,
                                           trimmed, 64);
        return __real_sendmsg(fd, &copy, flags);
    }
    return __real_sendmsg(fd, msg, flags);
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    evw_step st = next_step(EVW_ACCEPT4, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    return __real_accept4(fd, addr, len, flags);
}

int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    evw_step st = next_step(EVW_CONNECT, fd);
    if (st.kind == EVW_KIND_ERR) {
        errno = st.value;
        return -1;
    }
    return __real_connect(fd, addr, len);
}
