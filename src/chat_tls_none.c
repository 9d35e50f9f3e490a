/*
 * TLS when evchat is built without OpenSSL (configure --without-openssl, or no
 * OpenSSL 3 found): the public calls answer -ENOTSUP, and since no chat ever
 * gets a session (c->tls stays NULL) the chat never reaches the hooks, which
 * are here only so that the library links.
 */
#include "chat_internal.h"

int evc_chat_start_tls(evc_chat *c, struct ssl_ctx_st *ctx, unsigned flags, const char *hostname)
{
    (void)c, (void)ctx, (void)flags, (void)hostname;
    return -ENOTSUP;
}

void evc_chat_set_tls_handshake_timeout(evc_chat *c, double seconds)
{
    c->tls_handshake_timeout = seconds > 0 ? seconds : 0;
    c->tls_timeout_set = true;
}

bool evc_chat_tls_established(const evc_chat *c)
{
    (void)c;
    return false;
}

const struct x509_st *evc_chat_tls_peer_certificate(const evc_chat *c)
{
    (void)c;
    return NULL;
}

struct ssl_st *evc_chat_tls_ssl(evc_chat *c)
{
    (void)c;
    return NULL;
}

bool evc_chat_tls_truncated(const evc_chat *c)
{
    (void)c;
    return false;
}

int evc_chat_tls_error(const evc_chat *c, char *buf, size_t cap)
{
    (void)c;
    if (cap > 0)
        buf[0] = '\0';
    return -ENOTSUP;
}

/* Unreachable: c->tls is always NULL. */
int evc__tls_readable(const evc_chat *c) { (void)c; return -1; }
int evc__tls_writable(const evc_chat *c) { (void)c; return -1; }
bool evc__tls_read_pending(const evc_chat *c) { (void)c; return false; }
bool evc__tls_read_ready(evc_chat *c) { (void)c; return true; }
ssize_t evc__tls_read(evc_chat *c, void *buf, size_t len)
{
    (void)c, (void)buf, (void)len;
    return -ENOTSUP;
}
ssize_t evc__tls_writev(evc_chat *c, const struct iovec *iov, int n)
{
    (void)c, (void)iov, (void)n;
    return -ENOTSUP;
}
int evc__tls_flush(evc_chat *c) { (void)c; return 0; }
int evc__tls_close_notify(evc_chat *c) { (void)c; return 0; }
void evc__tls_flushed(evc_chat *c) { (void)c; }
size_t evc__tls_buffer_size(const evc_chat *c) { (void)c; return 0; }
void evc__tls_closing(evc_chat *c, bool nothing_dropped) { (void)c, (void)nothing_dropped; }
bool evc__tls_handshake_timed_out(evc_chat *c) { (void)c; return false; }
bool evc__tls_keep_idle_timeout(evc_chat *c, double seconds)
{
    (void)c, (void)seconds;
    return false;
}
void evc__tls_free(evc_tls *t) { (void)t; }
