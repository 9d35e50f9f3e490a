/*
 * The socket side of TLS on a chat (chat_tls.c has the session): the BIO
 * OpenSSL reads and writes through, and the ciphertext buffer.
 *
 * The BIO's read is a read(2) of the chat's fd.  Its write never touches the
 * socket: records go into `cipher`, which the chat's flush sends with
 * MSG_NOSIGNAL (so no SIGPIPE, and one send for many records).  That write
 * always succeeds, so OpenSSL never answers WANT_WRITE and never holds a
 * half-written record that would have to be offered again with the same bytes.
 */
#include "chat_tls.h"

#include <pthread.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* The socket BIO                                                      */
/* ------------------------------------------------------------------ */

/*
 * The BIO method is a table of function pointers that never changes once made.
 * OpenSSL has no static initialiser for it, so it is made once per process and
 * freed at exit; it holds no state of any chat or loop.
 */
static BIO_METHOD *socket_method;
static pthread_once_t socket_method_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *buf, int len)
{
    evc_tls *t = BIO_get_data(b);
    int fd = evc__dispatcher_head(t->chat->disp)->fd;
    BIO_clear_retry_flags(b);
    ssize_t n = evc__io_read(fd, buf, (size_t)len);
    t->drained = n < len;
    if (n > 0)
        return (int)n;
    if (n == 0) {
        t->eof = true;
        return 0;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        BIO_set_retry_read(b);
        return -1;
    }
    t->io_err = (int)n;
    return -1;
}

/* Appends n bytes to the ciphertext buffer; false when memory ran out. */
static bool cipher_append(evc_tls *t, const char *p, size_t n)
{
    if (t->coff > 0 && t->coff + t->clen + n > t->ccap) {
        memmove(t->cipher, t->cipher + t->coff, t->clen);
        t->coff = 0;
    }
    if (t->clen + n > t->ccap) {
        size_t cap = t->ccap ? t->ccap : CIPHER_INITIAL;
        while (cap < t->clen + n)
            cap *= 2;
        char *grown = realloc(t->cipher, cap);
        if (!grown)
            return false;
        t->cipher = grown;
        t->ccap = cap;
    }
    memcpy(t->cipher + t->coff + t->clen, p, n);
    t->clen += n;
    return true;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    evc_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    return cipher_append(t, buf, (size_t)len) ? len : -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    evc_tls *t = BIO_get_data(b);
    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return t && t->eof;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_socket_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "evchat socket");
    if (!m)
        return;
    if (!BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    socket_method = m;
}

__attribute__((destructor)) static void free_socket_method(void)
{
    BIO_meth_free(socket_method);
    socket_method = NULL;
}

/* ------------------------------------------------------------------ */
/* Ciphertext out                                                      */
/* ------------------------------------------------------------------ */

ssize_t evc__tls_send_cipher(evc_chat *c, evc_tls *t)
{
    while (t->clen > 0) {
        struct iovec iov = {t->cipher + t->coff, t->clen};
        ssize_t n = evc__dispatcher_writev(c->disp, &iov, 1);
        if (n < 0)
            return n;
        if (n == 0)
            return -EAGAIN;
        t->coff += (size_t)n;
        t->clen -= (size_t)n;
    }
    t->coff = 0;
    return 0;
}

BIO *evc__tls_bio_new(evc_tls *t)
{
    pthread_once(&socket_method_once, make_socket_method);
    if (!socket_method)
        return NULL;
    BIO *bio = BIO_new(socket_method);
    if (bio)
        BIO_set_data(bio, t);
    return bio;
}
