/*
 * Plain reads and writes that never raise SIGPIPE and never change the
 * process's signal dispositions.
 *
 * A library may not install a SIGPIPE handler or ignore the signal: that
 * belongs to the program.  Sockets avoid the signal with MSG_NOSIGNAL.  Pipes
 * have no such flag, so the signal is blocked in the calling thread around the
 * write; if the write failed with EPIPE the signal it raised is now pending
 * for this thread and is consumed with a zero-timeout sigtimedwait before the
 * old mask comes back.  A SIGPIPE that was already pending before the write
 * belongs to someone else and is left alone.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

ssize_t evc__io_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t socket_writev(int fd, const struct iovec *iov, int n)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) < 0)
        return false;
    return sigismember(&pending, SIGPIPE) == 1;
}

int evc__sigpipe_hold(evc_sigpipe_guard *g)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    /* pthread_sigmask only fails for a bad "how"; a failure here would mean
     * writing unprotected, so it is reported rather than ignored. */
    int rc = pthread_sigmask(SIG_BLOCK, &block, &g->old_mask);
    if (rc != 0)
        return -rc;
    g->was_pending = sigpipe_pending();
    return 0;
}

void evc__sigpipe_release(evc_sigpipe_guard *g)
{
    /* Not only a result of -EPIPE raises it: a sendfile that moved some bytes
     * before the peer vanished returns that count and leaves SIGPIPE pending. */
    if (!g->was_pending && sigpipe_pending()) {
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGPIPE);
        const struct timespec zero = {0, 0};
        int sig;
        do
            sig = sigtimedwait(&block, NULL, &zero);
        while (sig < 0 && errno == EINTR);
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
}

static ssize_t pipe_writev(int fd, const struct iovec *iov, int n)
{
    evc_sigpipe_guard guard;
    int rc = evc__sigpipe_hold(&guard);
    if (rc < 0)
        return rc;
    ssize_t r;
    for (;;) {
        r = writev(fd, iov, n);
        if (r >= 0)
            break;
        r = -errno;
        if (r != -EINTR)
            break;
    }
    evc__sigpipe_release(&guard);
    return r;
}

ssize_t evc__io_writev(int fd, bool is_socket, const struct iovec *iov, int n)
{
    if (is_socket)
        return socket_writev(fd, iov, n);
    return pipe_writev(fd, iov, n);
}

bool evc__io_is_socket(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    return S_ISSOCK(st.st_mode);
}
