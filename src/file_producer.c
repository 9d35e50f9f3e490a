/*
 * The file producer: streams a range of a file, like Medusa's file_producer,
 * with sendfile(2) into sockets.
 *
 * more() reads with pread, so the producer never moves the fd's own offset and
 * a partial write loses nothing: `pos` advances only by what was handed out or
 * actually written.  send_to_fd() (which makes the producer "direct" in the
 * output queue) uses sendfile into sockets; into anything else, or once the
 * kernel refused sendfile for this pair, it falls back to pread + writev.
 *
 * sendfile into a socket whose peer is gone raises SIGPIPE, and unlike send it
 * has no MSG_NOSIGNAL.  A library may not change the program's disposition, so
 * SIGPIPE is blocked in this thread around the call and a SIGPIPE the call
 * raised is consumed before the old mask returns (the same scheme io.c uses
 * for pipes).
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bytes one fallback call reads and writes. */
#define FALLBACK_BUF ((size_t)65536)
/* Linux transfers at most this much per sendfile/read/write call. */
#define MAX_IO ((size_t)0x7ffff000)

typedef struct file_state {
    int fd;
    bool to_eof;         /* length was UINT64_MAX */
    bool no_sendfile;    /* the kernel refused sendfile: use the fallback from now on */
    uint64_t pos;        /* next byte of the file to hand out */
    uint64_t remaining;  /* bytes still to hand out (unless to_eof) */
    int out_fd;          /* the last fd send_to_fd wrote to, and whether it is a socket */
    bool out_is_socket;
    char *buf;           /* fallback buffer, allocated on first use */
} file_state;

/* How much the next call may move: min(limit, remaining, MAX_IO). */
static size_t next_len(const file_state *s, size_t limit)
{
    size_t n = limit < MAX_IO ? limit : MAX_IO;
    if (!s->to_eof && s->remaining < n)
        n = (size_t)s->remaining;
    return n;
}

static void advance(file_state *s, size_t n)
{
    s->pos += n;
    if (!s->to_eof)
        s->remaining -= n;
}

static bool finished(const file_state *s)
{
    return !s->to_eof && s->remaining == 0;
}

/* The file ended: done when streaming to EOF, -EIO when a length was promised. */
static ssize_t at_eof(const file_state *s)
{
    return s->to_eof ? 0 : -EIO;
}

static ssize_t pread_retry(int fd, void *buf, size_t len, uint64_t pos)
{
    for (;;) {
        ssize_t r = pread(fd, buf, len, (off_t)pos);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t file_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    file_state *s = data;
    (void)p;
    if (finished(s))
        return 0;
    ssize_t r = pread_retry(s->fd, buf, next_len(s, cap), s->pos);
    if (r < 0)
        return r;
    if (r == 0)
        return at_eof(s);
    advance(s, (size_t)r);
    return r;
}

/* sendfile with SIGPIPE held off; >=0 bytes or -errno. */
static ssize_t sendfile_nosigpipe(int out, int in, uint64_t pos, size_t len)
{
    evc_sigpipe_guard guard;
    int rc = evc__sigpipe_hold(&guard);
    if (rc < 0)
        return rc;
    ssize_t r;
    for (;;) {
        off_t off = (off_t)pos;
        r = sendfile(out, in, &off, len);
        if (r >= 0)
            break;
        r = -errno;
        if (r != -EINTR)
            break;
    }
    evc__sigpipe_release(&guard);
    return r;
}

/* pread, then write what was read; only what was written counts as sent. */
static ssize_t send_fallback(file_state *s, int out, size_t max)
{
    if (!s->buf) {
        s->buf = malloc(FALLBACK_BUF);
        if (!s->buf)
            return -ENOMEM;
    }
    ssize_t r = pread_retry(s->fd, s->buf, next_len(s, max < FALLBACK_BUF ? max : FALLBACK_BUF),
                            s->pos);
    if (r < 0)
        return r;
    if (r == 0)
        return at_eof(s);
    struct iovec iov = {.iov_base = s->buf, .iov_len = (size_t)r};
    ssize_t w = evc__io_writev(out, s->out_is_socket, &iov, 1);
    if (w < 0)
        return w;
    /* 0 would read as "finished"; a writer that took nothing is simply full. */
    if (w == 0)
        return -EAGAIN;
    advance(s, (size_t)w);
    return w;
}

static ssize_t file_send_to_fd(evc_producer *p, int out, size_t max, void *data)
{
    file_state *s = data;
    (void)p;
    if (max == 0)
        return -EINVAL;
    if (finished(s))
        return 0;
    if (out != s->out_fd) {
        s->out_fd = out;
        s->out_is_socket = evc__io_is_socket(out);
    }
    if (s->out_is_socket && !s->no_sendfile) {
        ssize_t r = sendfile_nosigpipe(out, s->fd, s->pos, next_len(s, max));
        if (r > 0) {
            advance(s, (size_t)r);
            return r;
        }
        if (r == 0)
            return at_eof(s);
        if (r != -EINVAL && r != -ENOSYS && r != -EOPNOTSUPP)
            return r;
        /* This pair cannot use sendfile (and it moved nothing): fall back for good. */
        s->no_sendfile = true;
    }
    return send_fallback(s, out, max);
}

static void file_destroy(evc_producer *p, void *data)
{
    file_state *s = data;
    (void)p;
    close(s->fd);
    free(s->buf);
    free(s);
}

static const struct evc_producer_ops file_ops = {
    .more = file_more,
    .on_destroy = file_destroy,
    .send_to_fd = file_send_to_fd,
};

evc_producer *evc_file_producer_new(int fd, uint64_t offset, uint64_t length)
{
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;    /* errno from fstat: EBADF for a closed fd */
    /* pread and sendfile need a file with positions. */
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        errno = EINVAL;
        return NULL;
    }
    bool to_eof = length == UINT64_MAX;
    if (offset > (uint64_t)INT64_MAX || (!to_eof && length > (uint64_t)INT64_MAX - offset)) {
        errno = EINVAL;
        return NULL;
    }
    file_state *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->fd = fd;
    s->to_eof = to_eof;
    s->pos = offset;
    s->remaining = to_eof ? 0 : length;
    s->out_fd = -1;
    evc_producer *p = evc_producer_new(&file_ops, s);
    if (!p) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}
