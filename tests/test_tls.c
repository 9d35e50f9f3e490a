/*
 * Tests of TLS on chats (evc_tls(3)): handshakes as server and client, the
 * certificate and host-name checks, a plaintext client at a TLS server,
 * STARTTLS with plaintext pipelined after the command (dropped, never
 * delivered), every framing over TLS with records split at random, a file
 * through the producer path byte-exact, close_notify both ways and a truncated
 * close, the handshake deadline.  Certificates are made at test time with the
 * openssl command in a temporary directory.
 *
 * Built without OpenSSL, the program checks that the TLS calls answer -ENOTSUP.
 */
#include "support.h"
#include "evchat.h"
#include "chat_internal.h"
#include "wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef EVC_HAVE_OPENSSL

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ------------------------------------------------------------------ */
/* Certificates and contexts                                           */
/* ------------------------------------------------------------------ */

static char cert_dir[256];

/* A test CA; a server certificate for localhost and 127.0.0.1 signed by it; the
 * same names expired; and one for another name. */
static int make_certificates(void **state)
{
    (void)state;
    snprintf(cert_dir, sizeof cert_dir, "/tmp/evc-tls-XXXXXX");
    if (!mkdtemp(cert_dir))
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && "
             "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.crt -subj /CN=evchat-test-ca -days 2 && "
             "openssl req $K -keyout srv.key -out srv.csr -subj /CN=localhost && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out srv.crt -days 2 -extfile san && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out expired.crt -days -1 -extfile san && "
             "printf 'subjectAltName=DNS:other.example\\n' > other && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out other.crt -days 2 -extfile other",
             cert_dir);
    char quiet[2200];
    snprintf(quiet, sizeof quiet, "(%s) >/dev/null 2>&1", cmd);
    return system(quiet) == 0 ? 0 : -1;
}

static int remove_certificates(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cert_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static SSL_CTX *server_ctx(const char *cert)
{
    char crt[400], key[400];
    snprintf(crt, sizeof crt, "%s/%s", cert_dir, cert);
    snprintf(key, sizeof key, "%s/srv.key", cert_dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    return ctx;
}

/* A client context trusting the test CA (or nothing, when trust_ca is false). */
static SSL_CTX *client_ctx(bool trust_ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    if (trust_ca) {
        char ca[400];
        snprintf(ca, sizeof ca, "%s/ca.crt", cert_dir);
        assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    }
    return ctx;
}

/* ------------------------------------------------------------------ */
/* A chat end that records what happens to it                          */
/* ------------------------------------------------------------------ */

typedef struct end end;
typedef void (*end_hook)(end *, const char *frame, size_t len);

struct end {
    evc_chat *chat;
    evt_bytes framed;      /* every frame as "<len>:<bytes>|" */
    evt_bytes stream;      /* collected bytes, when `streaming` */
    int n_frames, n_ready, n_close, n_error, n_destroy, n_timeout;
    int last_err;
    bool truncated_at_close;
    bool echo;             /* each frame goes back followed by "\n" */
    bool streaming;        /* no frames: count bytes into `stream` */
    size_t stream_bytes;
    uint32_t stream_sum;
    bool keep_stream;
    char reason[256];
    end_hook on_frame;
    void *arg;
};

static void end_collect(evc_chat *c, const char *p, size_t n, void *data)
{
    end *e = data;
    (void)c;
    if (e->streaming) {
        for (size_t i = 0; i < n; i++)
            e->stream_sum = e->stream_sum * 31u + (unsigned char)p[i];
        e->stream_bytes += n;
        if (e->keep_stream)
            evt_bytes_add(&e->stream, p, n);
        return;
    }
    evc_chat_collect(c, p, n);
}

static void end_found(evc_chat *c, void *data)
{
    end *e = data;
    size_t len;
    const char *f = evc_chat_incoming(c, &len);
    evt_bytes_add_frame(&e->framed, f ? f : "", len);
    e->n_frames++;
    if (e->echo) {
        evc_chat_push(c, f ? f : "", len);
        evc_chat_push(c, "\n", 1);
    }
    if (e->on_frame)
        e->on_frame(e, f ? f : "", len);
}

static void end_ready(evc_chat *c, void *data)
{
    end *e = data;
    (void)c;
    e->n_ready++;
}

static void end_close(evc_chat *c, void *data)
{
    end *e = data;
    e->n_close++;
    e->truncated_at_close = evc_chat_tls_truncated(c);
    evc_chat_close(c);
}

static void end_error(evc_chat *c, int err, void *data)
{
    end *e = data;
    e->n_error++;
    e->last_err = err;
    evc_chat_tls_error(c, e->reason, sizeof e->reason);
    evc_chat_close(c);
}

static void end_timeout(evc_chat *c, void *data)
{
    end *e = data;
    e->n_timeout++;
    evc_chat_close(c);
}

static void end_destroy(evc_chat *c, void *data)
{
    end *e = data;
    (void)c;
    e->n_destroy++;
    e->chat = NULL;
}

static const struct evc_chat_ops end_ops = {
    .collect_incoming_data = end_collect,
    .found_terminator = end_found,
    .handle_close = end_close,
    .handle_error = end_error,
    .handle_timeout = end_timeout,
    .on_destroy = end_destroy,
    .handle_tls_ready = end_ready,
};

static void end_open(end *e, struct ev_loop *loop, int fd)
{
    memset(e, 0, sizeof *e);
    e->chat = evc_chat_new(loop, fd, &end_ops, e);
    assert_non_null(e->chat);
}

static void end_free(end *e)
{
    evt_bytes_free(&e->framed);
    evt_bytes_free(&e->stream);
}

/* A loop and a connected pair of sockets (TCP loopback, or a unix socketpair
 * when one send must arrive as one read). */
static struct ev_loop *pair_loop(int fds[2], bool unix_pair)
{
    if (unix_pair)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    else
        evt_tcp_pair(fds);
    return evt_loop_new();
}

/* Closes what is left and checks the loop is empty. */
static void finish(struct ev_loop *loop, end *a, end *b)
{
    if (a && a->chat)
        evc_chat_close(a->chat);
    if (b && b->chat)
        evc_chat_close(b->chat);
    evt_loop_finish(loop);
    if (a) {
        assert_int_equal(a->n_destroy, 1);
        end_free(a);
    }
    if (b) {
        assert_int_equal(b->n_destroy, 1);
        end_free(b);
    }
}

/* ------------------------------------------------------------------ */
/* Handshakes, verification, close_notify                              */
/* ------------------------------------------------------------------ */

/* Both ends evchat: the client's line, pushed before the handshake, is echoed
 * back over TLS 1.3; the client sees the server's certificate. */
static void test_handshake_both_ends(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    srv.echo = true;
    evc_chat_set_terminator(srv.chat, "\n");
    evc_chat_set_terminator(cli.chat, "\n");
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    /* The session keeps its own reference to the context. */
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), -EALREADY);
    assert_false(evc_chat_tls_established(cli.chat));
    assert_int_equal(evc_chat_push_str(cli.chat, "hello over tls\n"), 0);
    assert_true(evt_run_until_count(loop, &cli.n_frames, 1, 10.0));
    assert_string_equal(cli.framed.p, "14:hello over tls|");
    /* Idle, neither end keeps a ciphertext buffer. */
    assert_int_equal(evc__tls_buffer_size(srv.chat), 0);
    assert_int_equal(evc__tls_buffer_size(cli.chat), 0);
    assert_int_equal(srv.n_ready, 1);
    assert_int_equal(cli.n_ready, 1);
    assert_true(evc_chat_tls_established(cli.chat));
    assert_string_equal(SSL_get_version(evc_chat_tls_ssl(cli.chat)), "TLSv1.3");
    const X509 *peer = (const X509 *)evc_chat_tls_peer_certificate(cli.chat);
    assert_non_null(peer);
    char cn[64];
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "localhost");
    /* close_when_done sends close_notify: the server sees a clean end. */
    evc_chat_close_when_done(cli.chat);
    assert_true(evt_run_until_count(loop, &srv.n_close, 1, 10.0));
    assert_false(srv.truncated_at_close);
    assert_int_equal(srv.n_error + cli.n_error, 0);
    finish(loop, &srv, &cli);
}

/* A request and its answer over TLS cost each end one read, as without TLS:
 * no second read that could only answer EAGAIN. */
static void ping_pong(end *e, const char *f, size_t len)
{
    (void)f, (void)len;
    if (e->n_frames < 50)
        evc_chat_push_str(e->chat, "ping\n");
}

static void test_one_read_per_message(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    srv.echo = true;
    cli.on_frame = ping_pong;
    evc_chat_set_terminator(srv.chat, "\n");
    evc_chat_set_terminator(cli.chat, "\n");
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    assert_true(evt_run_until_count(loop, &cli.n_ready, 1, 5.0));
    evt_run_for(loop, 0.05);   /* the tickets, read */
    evw_reset();
    assert_int_equal(evc_chat_push_str(cli.chat, "ping\n"), 0);
    assert_true(evt_run_until_count(loop, &cli.n_frames, 50, 10.0));
    /* 50 messages each way: 100 reads, and a few spurious wake-ups at most. */
    assert_true(evw_count(EVW_READ) <= 110);
    finish(loop, &srv, &cli);
}

/* The server ends with close_when_done: the client's handle_close sees no
 * truncation; an EOF without close_notify is reported as one. */
static void test_close_notify_from_server_and_truncation(void **state)
{
    (void)state;
    for (int truncate = 0; truncate < 2; truncate++) {
        int fds[2];
        struct ev_loop *loop = pair_loop(fds, false);
        SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
        end srv, cli;
        end_open(&srv, loop, fds[0]);
        end_open(&cli, loop, fds[1]);
        evc_chat_set_terminator(cli.chat, "\n");
        assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
        assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
        assert_int_equal(evc_chat_push_str(srv.chat, "bye\n"), 0);
        assert_true(evt_run_until_count(loop, &cli.n_frames, 1, 10.0));
        if (truncate)
            shutdown(evc_dispatcher_fd(evc_chat_dispatcher(srv.chat)), SHUT_WR);
        else
            evc_chat_close_when_done(srv.chat);
        assert_true(evt_run_until_count(loop, &cli.n_close, 1, 10.0));
        assert_int_equal(cli.truncated_at_close, truncate == 1);
        assert_string_equal(cli.framed.p, "3:bye|");
        finish(loop, &srv, &cli);
    }
}

/* The client refuses a certificate it cannot trust, an expired one and one for
 * another name, with -EPROTO and a reason; EVC_TLS_NO_VERIFY accepts them. */
static void test_client_refuses_bad_certificates(void **state)
{
    (void)state;
    static const struct {
        const char *cert;
        bool trust;
        const char *host;
        unsigned flags;
        const char *reason;     /* NULL: the handshake succeeds */
    } cases[] = {
        {"srv.crt", true, "localhost", 0, NULL},
        {"srv.crt", true, "127.0.0.1", 0, NULL},
        {"srv.crt", false, "localhost", 0, "unable to get local issuer certificate"},
        {"expired.crt", true, "localhost", 0, "certificate has expired"},
        {"other.crt", true, "localhost", 0, "hostname mismatch"},
        {"srv.crt", true, "other.example", 0, "hostname mismatch"},
        {"srv.crt", true, "10.1.2.3", 0, "IP address mismatch"},
        {"expired.crt", false, "wrong.example", EVC_TLS_NO_VERIFY, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fds[2];
        struct ev_loop *loop = pair_loop(fds, false);
        SSL_CTX *sctx = server_ctx(cases[i].cert), *cctx = client_ctx(cases[i].trust);
        end srv, cli;
        end_open(&srv, loop, fds[0]);
        end_open(&cli, loop, fds[1]);
        assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
        assert_int_equal(evc_chat_start_tls(cli.chat, cctx, cases[i].flags, cases[i].host), 0);
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
        if (cases[i].reason) {
            assert_true(evt_run_until_count(loop, &cli.n_error, 1, 10.0));
            assert_int_equal(cli.last_err, -EPROTO);
            assert_non_null(strstr(cli.reason, cases[i].reason));
            assert_int_equal(cli.n_ready, 0);
            /* The server hears of it too (an alert, or the close). */
            evt_run_until_count(loop, &srv.n_destroy, 1, 5.0);
            assert_int_equal(srv.n_ready, 0);
        } else {
            assert_true(evt_run_until_count(loop, &cli.n_ready, 1, 10.0));
            assert_int_equal(cli.n_error, 0);
        }
        finish(loop, &srv, &cli);
    }
}

/* Argument checks: a client needs a host name unless it verifies nothing. */
static void test_start_tls_arguments(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *cctx = client_ctx(true);
    end cli;
    end_open(&cli, loop, fds[1]);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, NULL), -EINVAL);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, ""), -EINVAL);
    assert_int_equal(evc_chat_start_tls(cli.chat, NULL, EVC_TLS_SERVER, NULL), -EINVAL);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0x80, "localhost"), -EINVAL);
    assert_null(evc_chat_tls_ssl(cli.chat));
    char buf[8];
    assert_int_equal(evc_chat_tls_error(cli.chat, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    evc_chat_close_when_done(cli.chat);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, EVC_TLS_NO_VERIFY, NULL), -EPIPE);
    SSL_CTX_free(cctx);
    close(fds[0]);
    finish(loop, &cli, NULL);
}

/* An idle timeout set while the handshake runs applies once it is done (the
 * handshake's deadline governs until then). */
static void test_idle_timeout_set_during_the_handshake(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    evc_chat_set_timeout(srv.chat, 0.2);
    assert_true(evt_run_until_count(loop, &srv.n_ready, 1, 5.0));
    assert_true(evt_run_until_count(loop, &srv.n_timeout, 1, 3.0));
    assert_int_equal(srv.n_error, 0);
    finish(loop, &srv, &cli);
}

/* A peer that connects and leaves before the handshake (a port check) is a
 * close, as a reset is elsewhere, not a TLS failure. */
static void test_peer_leaving_before_the_handshake_is_a_close(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt");
    end srv;
    end_open(&srv, loop, fds[0]);
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    SSL_CTX_free(sctx);
    close(fds[1]);
    assert_true(evt_run_until_count(loop, &srv.n_destroy, 1, 5.0));
    assert_int_equal(srv.n_close, 1);
    assert_int_equal(srv.n_error, 0);
    assert_true(srv.truncated_at_close);
    finish(loop, &srv, NULL);
}

/* A server whose peer never speaks fails with -ETIMEDOUT at the deadline. */
static void test_handshake_deadline(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt");
    end srv;
    end_open(&srv, loop, fds[0]);
    evc_chat_set_timeout(srv.chat, 60);
    evc_chat_set_tls_handshake_timeout(srv.chat, 30);
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    SSL_CTX_free(sctx);
    /* Shortened while the handshake waits: the new deadline counts from now. */
    evt_run_for(loop, 0.05);
    evc_chat_set_tls_handshake_timeout(srv.chat, 0.2);
    assert_true(evt_run_until_count(loop, &srv.n_error, 1, 3.0));
    assert_int_equal(srv.last_err, -ETIMEDOUT);
    assert_string_equal(srv.reason, "handshake timed out");
    close(fds[1]);
    finish(loop, &srv, NULL);
}

/* A plaintext HTTP client at a TLS server: the server's chat fails cleanly with
 * -EPROTO, the client sees the connection end, and the same server then
 * completes a handshake with a TLS client. */
typedef struct tls_server {
    struct ev_loop *loop;
    SSL_CTX *ctx;
    end ends[4];
    int n;
} tls_server;

static void tls_server_accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len,
                                void *data)
{
    tls_server *ts = data;
    (void)s, (void)sa, (void)len;
    assert_true(ts->n < 4);
    end *e = &ts->ends[ts->n++];
    end_open(e, ts->loop, fd);
    e->echo = true;
    evc_chat_set_terminator(e->chat, "\n");
    assert_int_equal(evc_chat_start_tls(e->chat, ts->ctx, EVC_TLS_SERVER, NULL), 0);
}

static const struct evc_server_ops tls_server_ops = {.handle_accepted = tls_server_accepted};

static void test_plaintext_client_at_tls_server(void **state)
{
    (void)state;
    tls_server ts;
    memset(&ts, 0, sizeof ts);
    ts.loop = evt_loop_new();
    ts.ctx = server_ctx("srv.crt");
    evc_server *s = evc_server_new(ts.loop, "127.0.0.1:0", 16, &tls_server_ops, &ts);
    assert_non_null(s);
    char addr[64];
    assert_true(evc_server_address(s, addr, sizeof addr) > 0);
    int port = atoi(strrchr(addr, ':') + 1);

    int plain = evt_connect("127.0.0.1", port);
    evt_send_all(plain, "GET / HTTP/1.0\r\n\r\n", 18);
    assert_true(evt_run_until_count(ts.loop, &ts.ends[0].n_error, 1, 10.0));
    assert_int_equal(ts.ends[0].last_err, -EPROTO);
    assert_true(strlen(ts.ends[0].reason) > 0);
    evt_run_for(ts.loop, 0.05);
    char buf[512];
    size_t n = evt_recv_all(plain, buf, sizeof buf);   /* maybe an alert, then EOF */
    assert_true(n < sizeof buf);
    close(plain);

    /* The server goes on: a TLS client connects and is answered. */
    SSL_CTX *cctx = client_ctx(true);
    end cli;
    memset(&cli, 0, sizeof cli);
    cli.chat = evc_chat_new(ts.loop, -1, &end_ops, &cli);
    assert_non_null(cli.chat);
    evc_chat_set_terminator(cli.chat, "\n");
    assert_int_equal(evc_chat_connect_addr(cli.chat, addr), 0);
    /* Started before the connect completes: the hello follows it. */
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "127.0.0.1"), 0);
    SSL_CTX_free(cctx);
    assert_int_equal(evc_chat_push_str(cli.chat, "ping\n"), 0);
    assert_true(evt_run_until_count(ts.loop, &cli.n_frames, 1, 10.0));
    assert_string_equal(cli.framed.p, "4:ping|");
    evc_chat_close(cli.chat);
    for (int i = 0; i < ts.n; i++)
        if (ts.ends[i].chat)
            evc_chat_close(ts.ends[i].chat);
    evc_server_close(s);
    evt_loop_finish(ts.loop);
    for (int i = 0; i < ts.n; i++)
        end_free(&ts.ends[i]);
    end_free(&cli);
    SSL_CTX_free(ts.ctx);
}

/* ------------------------------------------------------------------ */
/* STARTTLS                                                            */
/* ------------------------------------------------------------------ */

static SSL_CTX *starttls_ctx;

/* The server's line handler: STARTTLS gets its "go ahead" in the clear, then TLS. */
static void server_starttls_frame(end *e, const char *f, size_t len)
{
    if (len == 8 && memcmp(f, "STARTTLS", 8) == 0) {
        assert_int_equal(evc_chat_push_str(e->chat, "220 go ahead\r\n"), 0);
        assert_int_equal(evc_chat_start_tls(e->chat, starttls_ctx, EVC_TLS_SERVER, NULL), 0);
    } else {
        evc_chat_pushf(e->chat, "250 got %.*s\r\n", (int)len, f);
    }
}

/* The client's: after "220", TLS, then a command over it. */
static void client_starttls_frame(end *e, const char *f, size_t len)
{
    if (len >= 3 && memcmp(f, "220", 3) == 0) {
        assert_int_equal(evc_chat_start_tls(e->chat, e->arg, 0, "localhost"), 0);
        assert_int_equal(evc_chat_push_str(e->chat, "HELLO\r\n"), 0);
    }
}

/* Plaintext the client sent after STARTTLS, in the same segment (the command
 * injection of CVE-2011-0411), is dropped: the server's frames are the command
 * and then only what came over TLS. */
static void test_starttls_drops_pipelined_plaintext(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, true);
    starttls_ctx = server_ctx("srv.crt");
    SSL_CTX *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    evc_chat_set_terminator(srv.chat, "\r\n");
    evc_chat_set_terminator(cli.chat, "\r\n");
    srv.on_frame = server_starttls_frame;
    cli.on_frame = client_starttls_frame;
    cli.arg = cctx;
    assert_int_equal(evc_chat_push_str(cli.chat, "NOOP\r\nSTARTTLS\r\nRCPT TO:<evil>\r\nX\r\n"), 0);
    assert_true(evt_run_until_count(loop, &cli.n_frames, 3, 10.0));
    assert_string_equal(srv.framed.p, "4:NOOP|8:STARTTLS|5:HELLO|");
    assert_string_equal(cli.framed.p, "12:250 got NOOP|12:220 go ahead|13:250 got HELLO|");
    assert_int_equal(srv.n_ready, 1);
    assert_int_equal(cli.n_ready, 1);
    finish(loop, &srv, &cli);
    SSL_CTX_free(starttls_ctx);
    SSL_CTX_free(cctx);
}

/* A client whose clear bytes are still queued when it starts TLS sends its
 * hello right after them (a preface, a proxy header): the peer reads the clear
 * line byte by byte, then accepts the handshake. */
typedef struct raw_server {
    int fd;
    SSL_CTX *ctx;
    char line[64];
    int result;          /* 0: the line read, the handshake done, "ok\n" sent */
} raw_server;

/* The raw peers write with OpenSSL's socket BIO, which can raise SIGPIPE when
 * a test has gone wrong: that SIGPIPE stays blocked in their thread, so the
 * test fails instead of the program dying. */
static void block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *raw_server_run(void *arg)
{
    raw_server *rs = arg;
    rs->result = -1;
    block_sigpipe();
    size_t n = 0;
    while (n + 1 < sizeof rs->line && read(rs->fd, rs->line + n, 1) == 1)
        if (rs->line[n++] == '\n')
            break;
    rs->line[n] = '\0';
    SSL *ssl = SSL_new(rs->ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, rs->fd);
    size_t w;
    if (SSL_accept(ssl) == 1 && SSL_write_ex(ssl, "ok\n", 3, &w) == 1)
        rs->result = 0;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

static void test_client_hello_follows_clear_bytes(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *cctx = client_ctx(true);
    raw_server rs = {.fd = fds[0], .ctx = server_ctx("srv.crt")};
    end cli;
    end_open(&cli, loop, fds[1]);
    evc_chat_set_terminator(cli.chat, "\n");
    assert_int_equal(evc_chat_push_str(cli.chat, "PREFACE\n"), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(cctx);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_server_run, &rs), 0);
    bool got = evt_run_until_count(loop, &cli.n_frames, 1, 5.0);
    shutdown(fds[0], SHUT_RDWR);
    pthread_join(th, NULL);
    assert_true(got);
    assert_string_equal(rs.line, "PREFACE\n");
    assert_int_equal(rs.result, 0);
    assert_string_equal(cli.framed.p, "2:ok|");
    close(fds[0]);
    finish(loop, &cli, NULL);
    SSL_CTX_free(rs.ctx);
}

/* A TLS 1.2 client asking to renegotiate is refused; the process never gets
 * SIGPIPE when it writes to a peer that is gone. */
typedef struct renegotiator {
    int fd;
    SSL_CTX *ctx;
    int first_read;      /* 1: the echo of the first line came back */
    int renegotiated;    /* 1: the second handshake succeeded */
} renegotiator;

static void *renegotiator_run(void *arg)
{
    renegotiator *rn = arg;
    block_sigpipe();
    SSL *ssl = SSL_new(rn->ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, rn->fd);
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    char buf[64];
    size_t n;
    if (SSL_connect(ssl) == 1 && SSL_write_ex(ssl, "one\n", 4, &n) == 1 &&
        SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) {
        rn->first_read = 1;
        if (SSL_renegotiate(ssl) == 1 && SSL_do_handshake(ssl) == 1 &&
            SSL_write_ex(ssl, "two\n", 4, &n) == 1 && SSL_read_ex(ssl, buf, sizeof buf, &n) == 1 &&
            SSL_renegotiate_pending(ssl) == 0)
            rn->renegotiated = 1;
    }
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

static void test_renegotiation_refused(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt");
    /* Even a context that would allow it (OpenSSL 3 refuses by default). */
    SSL_CTX_set_options(sctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    end srv;
    end_open(&srv, loop, fds[0]);
    srv.echo = true;
    evc_chat_set_terminator(srv.chat, "\n");
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    SSL_CTX_free(sctx);
    renegotiator rn = {.fd = fds[1], .ctx = client_ctx(false)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, renegotiator_run, &rn), 0);
    evt_run_until_count(loop, &srv.n_destroy, 1, 5.0);
    shutdown(fds[1], SHUT_RDWR);
    pthread_join(th, NULL);
    assert_int_equal(rn.first_read, 1);
    assert_int_equal(rn.renegotiated, 0);
    assert_int_equal(srv.n_frames, 1);
    close(fds[1]);
    finish(loop, &srv, NULL);
    SSL_CTX_free(rn.ctx);
}

/* A TLS 1.2 server asking our client to renegotiate is refused too. */
static void *renegotiating_server_run(void *arg)
{
    renegotiator *rn = arg;
    block_sigpipe();
    SSL *ssl = SSL_new(rn->ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, rn->fd);
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
    char buf[64];
    size_t n;
    /* The HelloRequest, then a line; the read that follows runs the second
     * handshake if the client answers, until the test shuts the socket. */
    if (SSL_accept(ssl) == 1 && SSL_renegotiate(ssl) == 1 && SSL_do_handshake(ssl) == 1 &&
        SSL_write_ex(ssl, "one\n", 4, &n) == 1) {
        rn->first_read = 1;
        (void)SSL_read_ex(ssl, buf, sizeof buf, &n);
        rn->renegotiated = SSL_renegotiate_pending(ssl) == 0;
    }
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

static void test_renegotiation_refused_as_client(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *cctx = client_ctx(true);
    end cli;
    end_open(&cli, loop, fds[1]);
    evc_chat_set_terminator(cli.chat, "\n");
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(cctx);
    renegotiator rn = {.fd = fds[0], .ctx = server_ctx("srv.crt")};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, renegotiating_server_run, &rn), 0);
    evt_run_until_count(loop, &cli.n_frames, 1, 5.0);
    evt_run_for(loop, 0.3);   /* time for a second handshake, were it allowed */
    shutdown(fds[0], SHUT_RDWR);
    pthread_join(th, NULL);
    assert_int_equal(rn.first_read, 1);
    assert_int_equal(rn.renegotiated, 0);
    assert_int_equal(cli.n_frames, 1);
    close(fds[0]);
    finish(loop, &cli, NULL);
    SSL_CTX_free(rn.ctx);
}

/* A record that fails to decrypt right behind good ones, read together: the
 * good data is delivered, then handle_error(-EPROTO). */
typedef struct corrupter {
    int fd;
    SSL_CTX *ctx;
    volatile int go, written;
} corrupter;

static void *corrupter_run(void *arg)
{
    corrupter *cr = arg;
    block_sigpipe();
    SSL *ssl = SSL_new(cr->ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, cr->fd);
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    if (SSL_connect(ssl) == 1) {
        for (int i = 0; i < 500 && !cr->go; i++)
            usleep(10000);
        size_t n;
        /* A good record, then a record header and bytes no key decrypts. */
        static const char bad[] = "\x17\x03\x03\x00\x20 0123456789abcdef0123456789abcdef";
        if (SSL_write_ex(ssl, "good\n", 5, &n) == 1 && write(cr->fd, bad, sizeof bad - 1) > 0)
            cr->written = 1;
    }
    for (int i = 0; i < 300 && cr->go != 2; i++)
        usleep(10000);
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

static void test_bad_record_after_data(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, true);
    SSL_CTX *sctx = server_ctx("srv.crt");
    end srv;
    end_open(&srv, loop, fds[0]);
    evc_chat_set_terminator(srv.chat, "\n");
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    SSL_CTX_free(sctx);
    corrupter cr = {.fd = fds[1], .ctx = client_ctx(false)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, corrupter_run, &cr), 0);
    assert_true(evt_run_until_count(loop, &srv.n_ready, 1, 5.0));
    evt_run_for(loop, 0.05);
    /* The loop waits while both are written, so that one read takes them. */
    cr.go = 1;
    for (int i = 0; i < 500 && !cr.written; i++)
        usleep(10000);
    assert_int_equal(cr.written, 1);
    bool erred = evt_run_until_count(loop, &srv.n_error, 1, 5.0);
    assert_true(erred);
    cr.go = 2;
    pthread_join(th, NULL);
    assert_string_equal(srv.framed.p, "4:good|");
    assert_int_equal(srv.last_err, -EPROTO);
    close(fds[1]);
    finish(loop, &srv, NULL);
    SSL_CTX_free(cr.ctx);
}

static void test_no_sigpipe_writing_to_a_gone_peer(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    cli.streaming = true;
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    assert_true(evt_run_until_count(loop, &srv.n_ready, 1, 5.0));
    /* The client vanishes with a reset; the server keeps writing. */
    struct linger reset = {1, 0};
    assert_int_equal(setsockopt(evc_dispatcher_fd(evc_chat_dispatcher(cli.chat)), SOL_SOCKET,
                                SO_LINGER, &reset, sizeof reset), 0);
    evc_chat_close(cli.chat);
    struct sigaction old, dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, &old);
    static char block[1 << 16];
    for (int i = 0; i < 64 && srv.chat && !evc_chat_closed(srv.chat); i++) {
        evc_chat_push(srv.chat, block, sizeof block);
        evt_run_for(loop, 0.002);
    }
    sigaction(SIGPIPE, &old, NULL);
    assert_true(srv.n_close + srv.n_error == 1);
    finish(loop, &srv, &cli);
}

/* ------------------------------------------------------------------ */
/* Framings over TLS, records split at random                          */
/* ------------------------------------------------------------------ */

/* A blocking OpenSSL client in a thread: writes `out` in records of random
 * sizes, then reads until the server's close_notify. */
typedef struct raw_client {
    int fd;
    SSL_CTX *ctx;
    const char *out;
    size_t out_len;
    unsigned seed;
    size_t max_piece;
    evt_bytes got;
    int result;          /* 0: all written and a clean close_notify read */
} raw_client;

static void *raw_client_run(void *arg)
{
    raw_client *rc = arg;
    rc->result = -1;
    block_sigpipe();
    SSL *ssl = SSL_new(rc->ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, rc->fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1)
        goto out;
    for (size_t pos = 0; pos < rc->out_len;) {
        size_t piece = 1 + (size_t)rand_r(&rc->seed) % rc->max_piece;
        if (piece > rc->out_len - pos)
            piece = rc->out_len - pos;
        size_t w;
        if (SSL_write_ex(ssl, rc->out + pos, piece, &w) != 1)
            goto out;
        pos += w;
    }
    char buf[16384];
    for (;;) {
        size_t n;
        if (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) {
            evt_bytes_add(&rc->got, buf, n);
            continue;
        }
        if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
            rc->result = 0;
        break;
    }
    SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

typedef enum framing { F_BYTES, F_LINE, F_ANY, F_COUNT, F_COUNT_THEN, F_PREFIX, F_NETSTRING } framing;

static void set_framing(evc_chat *c, framing f)
{
    static const char *const delims[] = {";", "\r\n"};
    static const size_t lens[] = {1, 2};
    switch (f) {
    case F_BYTES: evc_chat_set_terminator(c, "<>"); break;
    case F_LINE: evc_chat_set_terminator_line(c, EVC_EOL_CRLF_OR_LF); break;
    case F_ANY: evc_chat_set_terminator_any(c, delims, lens, 2); break;
    case F_COUNT: evc_chat_set_terminator_count(c, 7); break;
    case F_COUNT_THEN: evc_chat_set_terminator_count_then(c, 5, "\r\n", 2); break;
    case F_PREFIX: evc_chat_set_terminator_prefix(c, 2, true, 0); break;
    case F_NETSTRING: evc_chat_set_terminator_netstring(c, 0); break;
    }
}

static framing current_framing;

/* The server echoes each frame as "<len>:<bytes>|" and re-arms one-shot framings;
 * after the last frame ("END" or a frame ending in it) it closes when done. */
static void framing_frame(end *e, const char *f, size_t len)
{
    evc_chat_pushf(e->chat, "%zu:", len);
    evc_chat_push(e->chat, f, len);
    evc_chat_push(e->chat, "|", 1);
    if (current_framing == F_COUNT || current_framing == F_COUNT_THEN)
        set_framing(e->chat, current_framing);
    if (len >= 3 && memcmp(f + len - 3, "END", 3) == 0)
        evc_chat_close_when_done(e->chat);
}

/* Builds n frames of random letters in framing f, and what the server echoes. */
static void build_stream(framing f, int n, unsigned *seed, evt_bytes *in, evt_bytes *want)
{
    for (int i = 0; i <= n; i++) {
        char body[300];
        size_t len;
        if (f == F_COUNT)
            len = 7;
        else if (f == F_COUNT_THEN)
            len = 5;
        else
            len = (size_t)rand_r(seed) % 200;
        for (size_t k = 0; k < len; k++)
            body[k] = (char)('a' + rand_r(seed) % 26);
        if (i == n && len >= 3)
            memcpy(body + len - 3, "END", 3);
        else if (i == n)
            continue;
        char hdr[32];
        switch (f) {
        case F_BYTES: evt_bytes_add(in, body, len); evt_bytes_adds(in, "<>"); break;
        case F_LINE:
            evt_bytes_add(in, body, len);
            evt_bytes_adds(in, i % 2 ? "\r\n" : "\n");
            break;
        case F_ANY:
            evt_bytes_add(in, body, len);
            evt_bytes_adds(in, i % 2 ? ";" : "\r\n");
            break;
        case F_COUNT: evt_bytes_add(in, body, len); break;
        case F_COUNT_THEN: evt_bytes_add(in, body, len); evt_bytes_adds(in, "\r\n"); break;
        case F_PREFIX:
            hdr[0] = (char)(len >> 8);
            hdr[1] = (char)(len & 0xff);
            evt_bytes_add(in, hdr, 2);
            evt_bytes_add(in, body, len);
            break;
        case F_NETSTRING:
            snprintf(hdr, sizeof hdr, "%zu:", len);
            evt_bytes_adds(in, hdr);
            evt_bytes_add(in, body, len);
            evt_bytes_adds(in, ",");
            break;
        }
        evt_bytes_add_frame(want, body, len);
    }
}

static void test_every_framing_over_tls_random_records(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    unsigned seed = 1234;
    for (framing f = F_BYTES; f <= F_NETSTRING; f++) {
        for (int round = 0; round < 2; round++) {
            int fds[2];
            struct ev_loop *loop = pair_loop(fds, false);
            current_framing = f;
            end srv;
            end_open(&srv, loop, fds[0]);
            set_framing(srv.chat, f);
            srv.on_frame = framing_frame;
            assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
            raw_client rc;
            memset(&rc, 0, sizeof rc);
            rc.fd = fds[1];
            rc.ctx = cctx;
            rc.seed = seed++;
            rc.max_piece = round == 0 ? 7 : 3000;
            evt_bytes in = {0}, want = {0};
            build_stream(f, 300, &rc.seed, &in, &want);
            rc.out = in.p;
            rc.out_len = in.len;
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, raw_client_run, &rc), 0);
            assert_true(evt_run_until_count(loop, &srv.n_destroy, 1, 20.0));
            pthread_join(th, NULL);
            assert_int_equal(rc.result, 0);
            assert_int_equal(rc.got.len, want.len);
            assert_memory_equal(rc.got.p, want.p, want.len);
            assert_int_equal(srv.n_error, 0);
            close(fds[1]);
            finish(loop, &srv, NULL);
            evt_bytes_free(&in);
            evt_bytes_free(&want);
            evt_bytes_free(&rc.got);
        }
    }
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* ------------------------------------------------------------------ */
/* Producers, watermarks and memory                                    */
/* ------------------------------------------------------------------ */

/* A file producer over TLS (no sendfile: read and encrypted) arrives byte-exact
 * with the queue and the ciphertext bounded, however slowly the peer reads. */
static void test_file_over_tls_byte_exact(void **state)
{
    (void)state;
    const size_t size = 8u << 20;
    char path[300];
    snprintf(path, sizeof path, "%s/file.bin", cert_dir);
    int wfd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(wfd >= 0);
    uint32_t want_sum = 0;
    char *chunk = evt_random_body(1u << 20, 77);
    for (size_t off = 0; off < size; off += 1u << 20) {
        assert_int_equal(write(wfd, chunk, 1u << 20), 1 << 20);
        for (size_t i = 0; i < 1u << 20; i++)
            want_sum = want_sum * 31u + (unsigned char)chunk[i];
    }
    free(chunk);
    close(wfd);

    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    evt_small_buffer(fds[0], SO_SNDBUF, 65536);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    cli.streaming = true;
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(rfd >= 0);
    evc_producer *p = evc_file_producer_new(rfd, 0, UINT64_MAX);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(srv.chat, p), 0);
    evc_chat_close_when_done(srv.chat);
    size_t max_pending = 0;
    for (int spins = 0; spins < 200000 && cli.n_close == 0; spins++) {
        ev_run(loop, EVRUN_ONCE);
        if (srv.chat && evc_chat_output_pending(srv.chat) > max_pending)
            max_pending = evc_chat_output_pending(srv.chat);
    }
    assert_int_equal(cli.n_close, 1);
    assert_false(cli.truncated_at_close);
    assert_int_equal(cli.stream_bytes, size);
    assert_int_equal(cli.stream_sum, want_sum);
    /* The producer hands out what the queue asks for, not the file. */
    assert_true(max_pending <= (size_t)1 << 20);
    finish(loop, &srv, &cli);
    unlink(path);
}

/* Watermarks count plaintext: a chat that pushes past its high mark stops
 * delivering frames until the TLS writes bring the queue below the low mark. */
static void big_reply(end *e, const char *f, size_t len)
{
    (void)f, (void)len;
    static char block[256 * 1024];
    memset(block, 'x', sizeof block);
    evc_chat_push(e->chat, block, sizeof block);
    size_t pending = evc_chat_output_pending(e->chat);
    if (pending > e->stream_bytes)
        e->stream_bytes = pending;
}

static void test_watermarks_over_tls(void **state)
{
    (void)state;
    int fds[2];
    struct ev_loop *loop = pair_loop(fds, false);
    evt_small_buffer(fds[0], SO_SNDBUF, 65536);
    evt_small_buffer(fds[1], SO_RCVBUF, 65536);
    SSL_CTX *sctx = server_ctx("srv.crt"), *cctx = client_ctx(true);
    end srv, cli;
    end_open(&srv, loop, fds[0]);
    end_open(&cli, loop, fds[1]);
    cli.streaming = true;
    evc_chat_set_terminator(srv.chat, "\n");
    assert_int_equal(evc_chat_set_watermarks(srv.chat, 128 * 1024, 512 * 1024), 0);
    srv.on_frame = big_reply;
    assert_int_equal(evc_chat_start_tls(srv.chat, sctx, EVC_TLS_SERVER, NULL), 0);
    assert_int_equal(evc_chat_start_tls(cli.chat, cctx, 0, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    /* 20 requests in one go: 5 MB of replies. */
    char reqs[40];
    memset(reqs, '\n', sizeof reqs);
    for (int i = 0; i < 20; i++)
        reqs[2 * i] = 'r';
    assert_int_equal(evc_chat_push(cli.chat, reqs, sizeof reqs), 0);
    for (int spins = 0; spins < 100000 && cli.stream_bytes < 20u * 256 * 1024; spins++)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(cli.stream_bytes, 20u * 256 * 1024);
    assert_int_equal(srv.n_frames, 20);
    /* Never more than the high mark plus one reply queued. */
    assert_true(srv.stream_bytes <= 512 * 1024 + 256 * 1024);
    finish(loop, &srv, &cli);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_both_ends),
        cmocka_unit_test(test_close_notify_from_server_and_truncation),
        cmocka_unit_test(test_one_read_per_message),
        cmocka_unit_test(test_client_refuses_bad_certificates),
        cmocka_unit_test(test_start_tls_arguments),
        cmocka_unit_test(test_handshake_deadline),
        cmocka_unit_test(test_peer_leaving_before_the_handshake_is_a_close),
        cmocka_unit_test(test_idle_timeout_set_during_the_handshake),
        cmocka_unit_test(test_plaintext_client_at_tls_server),
        cmocka_unit_test(test_starttls_drops_pipelined_plaintext),
        cmocka_unit_test(test_client_hello_follows_clear_bytes),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_renegotiation_refused_as_client),
        cmocka_unit_test(test_bad_record_after_data),
        cmocka_unit_test(test_no_sigpipe_writing_to_a_gone_peer),
        cmocka_unit_test(test_every_framing_over_tls_random_records),
        cmocka_unit_test(test_file_over_tls_byte_exact),
        cmocka_unit_test(test_watermarks_over_tls),
    };
    return cmocka_run_group_tests(tests, make_certificates, remove_certificates);
}

#else /* !EVC_HAVE_OPENSSL */

/* Built without OpenSSL: every TLS call says so, and the chat is untouched. */
static void test_tls_calls_are_not_supported(void **state)
{
    (void)state;
    int fds[2];
    evt_tcp_pair(fds);
    struct ev_loop *loop = evt_loop_new();
    evc_chat *c = evc_chat_new(loop, fds[0], NULL, NULL);
    assert_non_null(c);
    assert_int_equal(evc_chat_start_tls(c, NULL, EVC_TLS_SERVER, NULL), -ENOTSUP);
    assert_int_equal(evc_chat_start_tls(c, NULL, 0, "localhost"), -ENOTSUP);
    assert_false(evc_chat_tls_established(c));
    assert_null(evc_chat_tls_ssl(c));
    assert_null(evc_chat_tls_peer_certificate(c));
    assert_false(evc_chat_tls_truncated(c));
    char buf[16];
    assert_int_equal(evc_chat_tls_error(c, buf, sizeof buf), -ENOTSUP);
    evc_chat_set_tls_handshake_timeout(c, 1.0);
    assert_int_equal(evc_chat_push_str(c, "plain\n"), 0);
    evt_run_for(loop, 0.05);
    char got[16];
    assert_int_equal(read(fds[1], got, sizeof got), 6);
    evc_chat_close(c);
    close(fds[1]);
    evt_loop_finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_calls_are_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif /* EVC_HAVE_OPENSSL */
