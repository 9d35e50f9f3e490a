/*
 * TLS on a chat (evc_tls(3)): a transport under the chat's one read and one
 * write path, so that framings, producers, watermarks, limits, timeouts and
 * the lifetime rules work over it unchanged and count plaintext bytes.
 *
 * OpenSSL talks to the socket through a small BIO of ours (chat_tls_bio.c)
 * whose writes gather records in a ciphertext buffer the flush sends; what
 * bounds that buffer is that application data is encrypted only while it
 * holds less than CIPHER_HIGH bytes (handshake and alert messages are small
 * and bounded by OpenSSL itself).
 *
 * The phases: bytes queued before evc_chat_start_tls still go out in the
 * clear (STARTTLS's "go ahead"), then the handshake runs from the read
 * events (a client sends its hello from the first flush), then data flows.
 * The handshake deadline replaces the idle timeout until the handshake ends.
 */
#include "chat_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ------------------------------------------------------------------ */
/* Failures                                                            */
/* ------------------------------------------------------------------ */

/* Keeps OpenSSL's reason for a failure (and the certificate check's, which
 * says more) for evc_chat_tls_error, and empties the thread's error queue. */
static void note_failure(evc_tls *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    long verify = t->server ? X509_V_OK : SSL_get_verify_result(t->ssl);
    if (verify != X509_V_OK)
        snprintf(t->reason, sizeof t->reason, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
    else if (e != 0)
        snprintf(t->reason, sizeof t->reason, "%s", ERR_reason_error_string(e)
                                                     ? ERR_reason_error_string(e) : what);
    else
        snprintf(t->reason, sizeof t->reason, "%s", what);
    ERR_clear_error();
}

/* The handshake or a record failed: the alert OpenSSL queued goes out if the
 * socket takes it now; nothing more is read or written over TLS. */
static void tls_failed(evc_chat *c, evc_tls *t, const char *what)
{
    note_failure(t, what);
    t->phase = TLS_FAILED;
    (void)evc__tls_send_cipher(c, t);
    t->clen = 0;
}

/* The handshake ended: the chat's idle timeout replaces its deadline. */
static void end_deadline(evc_chat *c, evc_tls *t)
{
    evc__dispatcher_set_deadline(c->disp, 0);
    evc_dispatcher_set_timeout(c->disp, t->idle_timeout);
}

/* Starts the handshake deadline (after the clear bytes, if any, were sent). */
static void start_handshake(evc_chat *c, evc_tls *t)
{
    t->phase = TLS_HANDSHAKE;
    if (t->handshake_timeout > 0)
        evc__dispatcher_set_deadline(c->disp, t->handshake_timeout);
}

/* A client speaks first: its hello is queued in `cipher` now, and the
 * handshake goes on from the read events.  It cannot end here: the server
 * has to answer first.  0 or -EPROTO. */
static int send_hello(evc_tls *t)
{
    if (t->server || t->hello_sent || t->phase != TLS_HANDSHAKE)
        return 0;
    t->hello_sent = true;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int e = SSL_get_error(t->ssl, r);
    if (r != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return -EPROTO;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The chat's hooks (chat_internal.h)                                  */
/* ------------------------------------------------------------------ */

int evc__tls_readable(const evc_chat *c)
{
    if (c->tls->read_end != 0)
        return -1;   /* the end of a read that returned data first is still due */
    switch (c->tls->phase) {
    case TLS_PLAIN_FIRST:
    case TLS_FAILED:
        return 0;
    case TLS_HANDSHAKE:
        return 1;
    case TLS_OPEN:
    default:
        return -1;
    }
}

int evc__tls_writable(const evc_chat *c)
{
    const evc_tls *t = c->tls;
    if (t->read_end != 0)
        return -1;   /* handle_write delivers the end of the last read (read_pending) */
    if (t->clen > 0 && t->phase != TLS_FAILED)
        return 1;
    if (t->phase == TLS_HANDSHAKE || t->phase == TLS_FAILED)
        return 0;
    return -1;
}

bool evc__tls_read_pending(const evc_chat *c)
{
    const evc_tls *t = c->tls;
    /* SSL_has_pending is also true for an incomplete record, which only the
     * socket can complete: asked after a WANT_READ it would spin. */
    return t->read_end != 0 || (t->phase == TLS_OPEN && t->read_full && SSL_has_pending(t->ssl));
}

/* The peer went away (EOF or reset) without close_notify. */
static bool peer_dropped(const evc_tls *t)
{
    return t->eof || evc__io_peer_gone(t->io_err);
}

bool evc__tls_read_ready(evc_chat *c)
{
    evc_tls *t = c->tls;
    if (t->phase == TLS_OPEN || t->read_end != 0)
        return true;
    if (t->phase != TLS_HANDSHAKE)
        return false;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    t->hello_sent = true;
    if (r == 1) {
        t->phase = TLS_OPEN;
        end_deadline(c, t);
        if (c->ops->handle_tls_ready) {
            c->ops->handle_tls_ready(c, c->data);
            if (!user_may_continue(c))
                return false;
        }
        /* The peer's first data may have come with its last handshake message. */
        return true;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return false;
    /* OpenSSL names an EOF itself (it asks the BIO, BIO_CTRL_EOF); anything
     * else in its queue is a real failure even if the peer left after it. */
    unsigned long err = ERR_peek_error();
    if (peer_dropped(t) && (err == 0 || ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        /* A peer that connects and leaves is a close, as a reset is elsewhere. */
        t->truncated = true;
        tls_failed(c, t, "the peer closed during the handshake");
        evc__chat_peer_closed(c);
        return false;
    }
    tls_failed(c, t, "handshake failed");
    evc__chat_report_error(c, -EPROTO);
    return false;
}

ssize_t evc__tls_read(evc_chat *c, void *buf, size_t len)
{
    evc_tls *t = c->tls;
    if (t->read_end != 0) {
        ssize_t end = t->read_end;
        t->read_end = 0;
        return end;
    }
    size_t total = 0;
    ssize_t end = -EAGAIN;
    ERR_clear_error();
    t->read_full = false;
    while (total < len) {
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, (char *)buf + total, len - total, &got);
        if (r == 1) {
            total += got;
            /* What OpenSSL holds is all there was: the socket's next bytes come
             * with the next readable event, as they do without TLS. */
            if (t->drained && !SSL_has_pending(t->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            end = EVC_IO_GONE;              /* close_notify: a clean end */
        } else if (peer_dropped(t)) {
            t->truncated = true;            /* EOF or reset without close_notify */
            end = EVC_IO_GONE;
            ERR_clear_error();
        } else {
            tls_failed(c, t, "record failed");
            end = -EPROTO;
        }
        break;
    }
    t->read_full = total == len;
    if (total > 0) {
        evc__dispatcher_touch(c->disp);
        if (end != -EAGAIN)
            t->read_end = (int)end;
        return (ssize_t)total;
    }
    return end;
}

/* Encrypts the iovecs from (*i, *off) into `cipher` while less than
 * CIPHER_HIGH bytes of it wait; the plaintext bytes taken, or -EPROTO.  A big
 * piece goes a record at a time without a copy; small ones are gathered into
 * one record, since a record per reply of a pipelined burst would cost 22 bytes
 * and an AEAD call each. */
static ssize_t encrypt_iov(evc_tls *t, const struct iovec *iov, int n)
{
    char stage[RECORD_PLAIN];
    size_t taken = 0, off = 0;
    int i = 0;
    while (t->clen < CIPHER_HIGH && i < n) {
        const char *base = iov[i].iov_base;
        size_t left = iov[i].iov_len - off;
        if (left == 0) {
            i++;
            off = 0;
            continue;
        }
        const char *src;
        size_t take;
        if (left >= RECORD_PLAIN || i + 1 == n) {
            src = base + off;
            take = left < RECORD_PLAIN ? left : RECORD_PLAIN;
            off += take;
        } else {
            src = stage;
            take = 0;
            while (i < n && take < RECORD_PLAIN) {
                size_t piece = iov[i].iov_len - off;
                size_t k = piece < RECORD_PLAIN - take ? piece : RECORD_PLAIN - take;
                memcpy(stage + take, (const char *)iov[i].iov_base + off, k);
                take += k;
                off += k;
                if (off == iov[i].iov_len) {
                    i++;
                    off = 0;
                }
            }
        }
        size_t wrote = 0;
        if (SSL_write_ex(t->ssl, src, take, &wrote) != 1 || wrote != take)
            return -EPROTO;
        taken += take;
    }
    return (ssize_t)taken;
}

ssize_t evc__tls_writev(evc_chat *c, const struct iovec *iov, int n)
{
    evc_tls *t = c->tls;
    if (t->phase == TLS_PLAIN_FIRST) {
        /* STARTTLS: only the bytes queued before it go in the clear. */
        struct iovec clear[64];
        int k = 0;
        size_t want = 0;
        for (; k < n && k < 64 && want < t->plain_left; k++) {
            clear[k] = iov[k];
            if (clear[k].iov_len > t->plain_left - want)
                clear[k].iov_len = t->plain_left - want;
            want += clear[k].iov_len;
        }
        ssize_t w = evc__dispatcher_writev(c->disp, clear, k);
        if (w > 0) {
            t->plain_left -= (size_t)w;
            if (t->plain_left == 0) {
                start_handshake(c, t);
                if (send_hello(t) < 0) {
                    tls_failed(c, t, "handshake failed");
                    return -EPROTO;
                }
                ssize_t sent = evc__tls_send_cipher(c, t);
                if (sent < 0 && sent != -EAGAIN)
                    return sent;
            }
            /* Short of what was asked: the rest waits for the handshake. */
        }
        return w;
    }
    if (t->phase != TLS_OPEN)
        return t->phase == TLS_FAILED ? -EPROTO : -EAGAIN;
    ssize_t sent = evc__tls_send_cipher(c, t);
    if (sent < 0 && sent != -EAGAIN)
        return sent;
    ERR_clear_error();
    ssize_t taken = encrypt_iov(t, iov, n);
    if (taken < 0) {
        tls_failed(c, t, "encryption failed");
        return taken;
    }
    sent = evc__tls_send_cipher(c, t);
    if (sent < 0 && sent != -EAGAIN)
        return sent;
    if (taken == 0)
        return -EAGAIN;
    return (ssize_t)taken;
}

int evc__tls_flush(evc_chat *c)
{
    evc_tls *t = c->tls;
    if (t->phase == TLS_PLAIN_FIRST && t->plain_left == 0)
        start_handshake(c, t);
    if (send_hello(t) < 0) {
        tls_failed(c, t, "handshake failed");
        return -EPROTO;
    }
    if (t->phase == TLS_FAILED)
        return 0;
    ssize_t r = evc__tls_send_cipher(c, t);
    return r == -EAGAIN ? 0 : (int)r;
}

void evc__tls_flushed(evc_chat *c)
{
    evc_tls *t = c->tls;
    /* An idle connection keeps no ciphertext buffer (OpenSSL's own record
     * buffers go too: SSL_MODE_RELEASE_BUFFERS), so ten thousand idle TLS
     * chats cost little; one with output still queued keeps it. */
    if (t->cipher && t->clen == 0 && evc__outq_empty(&c->out)) {
        free(t->cipher);
        t->cipher = NULL;
        t->ccap = 0;
    }
}

size_t evc__tls_buffer_size(const evc_chat *c)
{
    return c->tls ? c->tls->ccap : 0;
}

int evc__tls_close_notify(evc_chat *c)
{
    evc_tls *t = c->tls;
    if (t->phase != TLS_OPEN)
        return 0;
    if (!t->notify_sent) {
        t->notify_sent = true;
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);   /* 0: ours is queued, the peer's not read: enough */
        ERR_clear_error();
    }
    return (int)evc__tls_send_cipher(c, t);
}

void evc__tls_closing(evc_chat *c, bool nothing_dropped)
{
    evc_tls *t = c->tls;
    /* A close_notify says "that was all": never after dropping output. */
    if (t->phase != TLS_OPEN || t->notify_sent || !nothing_dropped || t->clen > 0)
        return;
    (void)evc__tls_close_notify(c);
}

bool evc__tls_handshake_timed_out(evc_chat *c)
{
    evc_tls *t = c->tls;
    if (t->phase != TLS_PLAIN_FIRST && t->phase != TLS_HANDSHAKE)
        return false;
    t->phase = TLS_FAILED;
    snprintf(t->reason, sizeof t->reason, "handshake timed out");
    return true;
}

bool evc__tls_keep_idle_timeout(evc_chat *c, double seconds)
{
    evc_tls *t = c->tls;
    bool handshaking = t->phase == TLS_PLAIN_FIRST || t->phase == TLS_HANDSHAKE;
    if (!handshaking)
        return false;
    t->idle_timeout = seconds > 0 ? seconds : 0;   /* what the handshake's end puts back */
    return t->handshake_timeout > 0;               /* a deadline runs: the timeout waits */
}

void evc__tls_free(evc_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->cipher);
    free(t);
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

/* Host-name checks and SNI for a client: an IP literal is checked against the
 * certificate's addresses and sent no SNI (RFC 6066 forbids it). */
static int set_peer_name(SSL *ssl, const char *hostname)
{
    unsigned char addr[16];
    bool literal = inet_pton(AF_INET, hostname, addr) == 1 ||
                   inet_pton(AF_INET6, hostname, addr) == 1;
    if (literal)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), hostname) == 1 ? 0 : -EINVAL;
    if (SSL_set_tlsext_host_name(ssl, hostname) != 1 || SSL_set1_host(ssl, hostname) != 1)
        return -EINVAL;
    return 0;
}

int evc_chat_start_tls(evc_chat *c, SSL_CTX *ctx, unsigned flags, const char *hostname)
{
    bool server = (flags & EVC_TLS_SERVER) != 0;
    bool insecure = (flags & EVC_TLS_NO_VERIFY) != 0;
    if (!c || !ctx || (flags & ~(EVC_TLS_SERVER | EVC_TLS_NO_VERIFY)) ||
        (!server && !insecure && (!hostname || !*hostname)))
        return -EINVAL;
    if (!user_may_continue(c) || close_queued(c) || c->write_err)
        return -EPIPE;
    if (c->tls)
        return -EALREADY;
    evc_tls *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->chat = c;
    t->server = server;
    t->handshake_timeout = c->tls_timeout_set ? c->tls_handshake_timeout
                                              : EVC_DEFAULT_TLS_HANDSHAKE_TIMEOUT;
    t->ssl = SSL_new(ctx);
    BIO *bio = t->ssl ? evc__tls_bio_new(t) : NULL;
    if (!bio) {
        ERR_clear_error();
        evc__tls_free(t);
        return -ENOMEM;
    }
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION);
    SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                         SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: whole socket reads, not a header and a body per record.
     * What it leaves buffered is read from handle_write (evc__tls_read_pending). */
    SSL_set_read_ahead(t->ssl, 1);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        int rc = hostname && *hostname ? set_peer_name(t->ssl, hostname) : 0;
        if (rc < 0) {
            ERR_clear_error();
            evc__tls_free(t);
            return rc;
        }
        SSL_set_verify(t->ssl, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    }
    /* Everything queued now is the clear part (STARTTLS's reply). */
    t->plain_left = evc__outq_bytes(&c->out);
    t->idle_timeout = evc__dispatcher_timeout(c->disp);
    c->tls = t;
    /* A producer must hand its bytes to the encryption, not sendfile them. */
    c->out.direct_off = true;
    /* Bytes that came after the command that started TLS were sent before the
     * handshake, so no TLS protects them: they are dropped, never delivered as
     * if they had come over it (the STARTTLS injection, CVE-2011-0411). */
    evc__chat_drop_input(c);
    if (t->plain_left == 0)
        start_handshake(c, t);
    else if (t->handshake_timeout > 0)
        evc__dispatcher_set_deadline(c->disp, t->handshake_timeout);
    if (c->dispatching == 0)
        evc__dispatcher_schedule_write(c->disp);
    evc_dispatcher_update(c->disp);
    return 0;
}

void evc_chat_set_tls_handshake_timeout(evc_chat *c, double seconds)
{
    c->tls_handshake_timeout = seconds > 0 ? seconds : 0;
    c->tls_timeout_set = true;
    evc_tls *t = c->tls;
    if (!t)
        return;
    t->handshake_timeout = c->tls_handshake_timeout;
    /* A handshake under way gets the new deadline from now. */
    if (t->phase == TLS_PLAIN_FIRST || t->phase == TLS_HANDSHAKE) {
        if (t->handshake_timeout > 0)
            evc__dispatcher_set_deadline(c->disp, t->handshake_timeout);
        else
            end_deadline(c, t);
    }
}

bool evc_chat_tls_established(const evc_chat *c)
{
    return c->tls && c->tls->phase == TLS_OPEN;
}

const struct x509_st *evc_chat_tls_peer_certificate(const evc_chat *c)
{
    if (!c->tls || c->tls->phase != TLS_OPEN)
        return NULL;
    return SSL_get0_peer_certificate(c->tls->ssl);
}

struct ssl_st *evc_chat_tls_ssl(evc_chat *c)
{
    return c->tls ? c->tls->ssl : NULL;
}

bool evc_chat_tls_truncated(const evc_chat *c)
{
    return c->tls && c->tls->truncated;
}

int evc_chat_tls_error(const evc_chat *c, char *buf, size_t cap)
{
    const char *r = c->tls ? c->tls->reason : "";
    if (cap == 0)
        return -ENOSPC;
    int n = snprintf(buf, cap, "%s", r);
    if ((size_t)n >= cap) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return n;
}
