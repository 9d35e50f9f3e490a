/*
 * The dispatcher's socket calls: adopting an fd, create/bind/listen/connect/
 * accept, and send/recv for streams and datagrams.  Each is a thin, errno-
 * returning wrapper; what they change in the dispatcher's state ends with the
 * events re-asked (evc__dispatcher_update_events).  Peer resets met by send
 * and recv are handle_close, not handle_error, as in asyncore.
 */
#include "dispatcher_internal.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* EINTR and ECONNABORTED retries of one evc_dispatcher_accept call. */
#define ACCEPT_RETRIES 8

/*
 * One getsockopt answers both questions adopt() has: SO_ACCEPTCONN fails with
 * ENOTSOCK on anything but a socket, and says whether a socket listens.
 */
static void probe_fd(int fd, bool *is_socket, bool *listening)
{
    int on = 0;
    socklen_t len = sizeof on;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0) {
        *is_socket = true;
        *listening = on != 0;
        return;
    }
    *is_socket = errno == ENOTSOCK ? false : evc__io_is_socket(fd);
    *listening = false;
}

/* Takes fd (already non-blocking).  On failure the caller keeps fd. */
static int adopt(evc_dispatcher *d, int fd)
{
    bool listening;
    probe_fd(fd, &d->h.is_socket, &listening);
    if (listening) {
        int rc = evc__accept_backoff_init(d);
        if (rc < 0)
            return rc;
    }
    if (d->h.is_socket && d->ops->handle_expt) {
        /* Only dispatchers that asked for urgent data pay for watching it; for
         * the others the kernel drops the urgent byte as reads pass it. */
        evc_oob *oob = evc__registry_oob(d->entry);
        int rc = oob ? evc__oob_add(oob, fd, &d->link) : -errno;
        if (rc < 0)
            return rc;
        d->oob_watched = true;
    }
    d->h.fd = fd;
    evc__registry_adopted(d->entry, fd, d);
    if (listening) {
        d->listening = true;
        evc__dispatcher_reopen_reserve(d);
    }
    evc__dispatcher_update_events(d);
    return 0;
}

int evc_dispatcher_create_socket(evc_dispatcher *d, int family, int type)
{
    if (d->h.closed)
        return -EBADF;
    if (d->h.fd >= 0)
        return -EBUSY;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    d->unconnected = base_type == SOCK_STREAM || base_type == SOCK_SEQPACKET;
    int rc = adopt(d, fd);
    if (rc < 0)
        close(fd);
    return rc;
}

int evc_dispatcher_set_socket(evc_dispatcher *d, int fd)
{
    if (d->h.closed)
        return -EBADF;
    if (d->h.fd >= 0)
        return -EBUSY;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -EBADF;
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return adopt(d, fd);
}

int evc__dispatcher_adopt(evc_dispatcher *d, int fd)
{
    if (d->h.closed)
        return -EBADF;
    if (d->h.fd >= 0)
        return -EBUSY;
    return adopt(d, fd);
}

int evc_dispatcher_set_reuse_addr(evc_dispatcher *d)
{
    if (d->h.fd < 0)
        return -EBADF;
    int on = 1;
    if (setsockopt(d->h.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        return -errno;
    return 0;
}

int evc_dispatcher_bind(evc_dispatcher *d, const struct sockaddr *addr, socklen_t len)
{
    if (d->h.fd < 0)
        return -EBADF;
    if (bind(d->h.fd, addr, len) < 0)
        return -errno;
    return 0;
}

int evc_dispatcher_listen(evc_dispatcher *d, int backlog)
{
    if (d->h.fd < 0)
        return -EBADF;
    if (d->h.connecting)
        return -EINVAL;
    if (listen(d->h.fd, backlog) < 0)
        return -errno;
    int rc = evc__accept_backoff_init(d);
    if (rc < 0)
        return rc;
    d->listening = true;
    d->unconnected = false;
    /* Opened now, while fds are plentiful, so it is there when they run out. */
    evc__dispatcher_reopen_reserve(d);
    evc__dispatcher_update_events(d);
    return 0;
}

int evc_dispatcher_connect(evc_dispatcher *d, const struct sockaddr *addr, socklen_t len)
{
    if (d->h.fd < 0)
        return -EBADF;
    if (d->h.connecting)
        return -EALREADY;
    if (d->listening)
        return -EINVAL;
    /*
     * An immediate success (unix sockets) is still reported from the loop:
     * the socket is writable at once, so handle_connect arrives on the next
     * pass, never inside this call.  EINTR means the connect goes on
     * asynchronously.
     */
    if (connect(d->h.fd, addr, len) < 0 && errno != EINPROGRESS && errno != EINTR)
        return -errno;
    d->h.connecting = true;
    d->unconnected = false;
    evc__dispatcher_update_events(d);
    return 0;
}

int evc_dispatcher_accept(evc_dispatcher *d, struct sockaddr_storage *addr, socklen_t *len)
{
    if (d->h.fd < 0)
        return -EBADF;
    socklen_t dummy = sizeof(struct sockaddr_storage);
    if (addr && !len)
        len = &dummy;
    if (!addr)
        len = NULL;
    for (int retries = 0;; retries++) {
        int fd = accept4(d->h.fd, (struct sockaddr *)addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        /* A connection reset before we took it: there may be others behind it.
         * Only a few times, so an error that persists reaches the caller. */
        if ((errno == EINTR || errno == ECONNABORTED) && retries < ACCEPT_RETRIES)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

/*
 * The one classification of a read or write result: bytes moved refresh the
 * idle timer; EWOULDBLOCK is EAGAIN; a peer that went away (evc__io_peer_gone,
 * EOF for a read) becomes EVC_IO_GONE; anything else stays its -errno.
 */
static ssize_t classify(evc_dispatcher *d, ssize_t n, bool is_read, size_t asked)
{
    if (n > 0) {
        evc__dispatcher_touch(d);
        return n;
    }
    if (n == 0)
        return is_read && asked > 0 ? EVC_IO_GONE : 0;
    if (n == -EWOULDBLOCK)
        return -EAGAIN;
    return evc__io_peer_gone((int)n) ? EVC_IO_GONE : n;
}

ssize_t evc__dispatcher_read(evc_dispatcher *d, void *buf, size_t len)
{
    return classify(d, evc__io_read(d->h.fd, buf, len), true, len);
}

ssize_t evc__dispatcher_writev(evc_dispatcher *d, const struct iovec *iov, int n)
{
    return classify(d, evc__io_writev(d->h.fd, d->h.is_socket, iov, n), false, 0);
}

/* What send and recv do with a classified result: peer gone is a close, the rest an error. */
static ssize_t io_result(evc_dispatcher *d, ssize_t n)
{
    if (n >= 0)
        return n;
    if (n == -EAGAIN)
        return 0;
    if (n == EVC_IO_GONE) {
        evc__dispatcher_call_close(d);
        return 0;
    }
    evc__dispatcher_call_error(d, (int)n);
    return n;
}

ssize_t evc_dispatcher_send(evc_dispatcher *d, const void *buf, size_t len)
{
    if (d->h.closed || d->h.fd < 0)
        return -EBADF;
    ssize_t n;
    if (d->h.is_socket) {
        do
            n = send(d->h.fd, buf, len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            n = -errno;
    } else {
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        n = evc__io_writev(d->h.fd, false, &iov, 1);
    }
    return io_result(d, classify(d, n, false, len));
}

ssize_t evc_dispatcher_recv(evc_dispatcher *d, void *buf, size_t len)
{
    if (d->h.closed || d->h.fd < 0)
        return -EBADF;
    ssize_t n;
    if (d->h.is_socket) {
        do
            n = recv(d->h.fd, buf, len, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            n = -errno;
    } else {
        n = evc__io_read(d->h.fd, buf, len);
    }
    return io_result(d, classify(d, n, true, len));
}

ssize_t evc_dispatcher_recvfrom(evc_dispatcher *d, void *buf, size_t len,
                                struct sockaddr_storage *from, socklen_t *fromlen)
{
    if (d->h.closed || d->h.fd < 0)
        return -EBADF;
    socklen_t dummy = sizeof(struct sockaddr_storage);
    if (from && !fromlen)
        fromlen = &dummy;
    if (!from)
        fromlen = NULL;
    ssize_t n;
    do
        n = recvfrom(d->h.fd, buf, len, 0, (struct sockaddr *)from, fromlen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    evc__dispatcher_touch(d);
    return n;
}

ssize_t evc_dispatcher_sendto(evc_dispatcher *d, const void *buf, size_t len,
                              const struct sockaddr *to, socklen_t tolen)
{
    if (d->h.closed || d->h.fd < 0)
        return -EBADF;
    ssize_t n;
    do
        n = sendto(d->h.fd, buf, len, MSG_NOSIGNAL, to, tolen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    evc__dispatcher_touch(d);
    return n;
}
