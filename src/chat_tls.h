/*
 * What the two TLS files share (chat_tls.c: the session and its hooks into
 * the chat; chat_tls_bio.c: the socket BIO and the ciphertext buffer).  Only
 * these two files and the OpenSSL build see it.  Never installed.
 */
#ifndef EVC_CHAT_TLS_H
#define EVC_CHAT_TLS_H

#include "chat_internal.h"

#include <openssl/ssl.h>

/* Plaintext per SSL_write: one full record. */
#define RECORD_PLAIN 16384
/* Application data is encrypted only while less ciphertext than this waits. */
#define CIPHER_HIGH ((size_t)65536)
/* The first size of the ciphertext buffer: a handshake flight or a few small
 * replies.  It grows (doubling) up to CIPHER_HIGH plus a record for bulk
 * output; a connection that answers one request never pays for that. */
#define CIPHER_INITIAL ((size_t)8192)

typedef enum tls_phase {
    TLS_PLAIN_FIRST = 0,   /* bytes queued before start_tls are written in the clear */
    TLS_HANDSHAKE,         /* the handshake runs; application data waits in the queue */
    TLS_OPEN,              /* application data flows */
    TLS_FAILED             /* the handshake or a record failed: nothing more is read or sent */
} tls_phase;

struct evc_tls {
    SSL *ssl;
    evc_chat *chat;
    tls_phase phase;
    bool server;
    bool hello_sent;       /* client: the handshake was started (its hello queued) */
    bool truncated;        /* the peer's EOF came without close_notify */
    bool notify_sent;      /* our close_notify is queued in `cipher` */
    bool eof;              /* the socket read returned EOF */
    bool drained;          /* the last socket read returned less than asked: nothing more
                            * is waiting, and asking again would only cost an EAGAIN */
    bool read_full;        /* the last read stopped with the buffer full, not at WANT_READ:
                            * OpenSSL may hold plaintext no socket event will announce */
    int io_err;            /* the last errno the socket read met, as -errno (0: none) */
    int read_end;          /* EVC_IO_GONE or -errno found after some bytes: the next read's */
    size_t plain_left;     /* TLS_PLAIN_FIRST: clear bytes still to write */
    double handshake_timeout;
    double idle_timeout;   /* the chat's idle timeout, put back after the handshake */
    char *cipher;          /* ciphertext [coff, coff + clen) waiting for the socket */
    size_t coff, clen, ccap;
    char reason[200];      /* evc_chat_tls_error */
};

/* A BIO over the chat's fd for t (reads: read(2); writes: into `cipher`), or
 * NULL when out of memory. */
BIO *evc__tls_bio_new(evc_tls *t);
/* Sends what waits in `cipher`.  0 when it is all sent, -EAGAIN when the socket
 * is full, EVC_IO_GONE or another -errno when the socket failed. */
ssize_t evc__tls_send_cipher(evc_chat *c, evc_tls *t);

#endif /* EVC_CHAT_TLS_H */
