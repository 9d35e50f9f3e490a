/*
 * TLS for the example programs (see common.h): the command-line options, the
 * OpenSSL context they describe, and starting TLS on a chat.  The library does
 * the TLS (evc_tls(3)); this file only builds the SSL_CTX a program hands it.
 * Built without OpenSSL, the options are refused with a message.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef EVC_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

/* The program's one TLS setting: examples are single programs, not a library. */
static struct {
    const char *cert, *key, *ca;
    bool client, insecure;
    struct ssl_ctx_st *ctx;
    unsigned flags;
} tls;

/* Only the programs that speak TLS take its options. */
static bool offered;

void example_tls_offer(void)
{
    offered = true;
}

bool example_tls_offered(void)
{
    return offered;
}

bool example_tls_option(int opt, const char *arg)
{
    if (!offered)
        return false;
    switch (opt) {
    case EXAMPLE_OPT_CERT: tls.cert = arg; return true;
    case EXAMPLE_OPT_KEY: tls.key = arg; return true;
    case EXAMPLE_OPT_TLS: tls.client = true; return true;
    case EXAMPLE_OPT_CA: tls.ca = arg; tls.client = true; return true;
    case EXAMPLE_OPT_INSECURE: tls.insecure = true; tls.client = true; return true;
    default: return false;
    }
}

#ifdef EVC_HAVE_OPENSSL
static void fail(const char *prog, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    fprintf(stderr, "%s: %s%s%s: %s\n", prog, what, file ? " " : "", file ? file : "",
            e ? ERR_reason_error_string(e) : "failed");
    exit(1);
}

void example_tls_ready(const char *prog)
{
    if (!tls.cert && !tls.key && !tls.client)
        return;
    if (tls.cert || tls.key) {
        if (!tls.cert || !tls.key) {
            fprintf(stderr, "%s: --cert and --key go together\n", prog);
            exit(2);
        }
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
            fail(prog, "TLS", NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert) != 1)
            fail(prog, "cannot use certificate", tls.cert);
        if (SSL_CTX_use_PrivateKey_file(ctx, tls.key, SSL_FILETYPE_PEM) != 1)
            fail(prog, "cannot use key", tls.key);
        if (SSL_CTX_check_private_key(ctx) != 1)
            fail(prog, "the key does not match", tls.cert);
        /* No session store: clients resume with tickets, which need none, and a
         * store costs every handshake a lookup and a periodic sweep. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        tls.ctx = ctx;
        tls.flags = EVC_TLS_SERVER;
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        fail(prog, "TLS", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls.ca ? SSL_CTX_load_verify_locations(ctx, tls.ca, NULL) != 1
               : SSL_CTX_set_default_verify_paths(ctx) != 1)
        fail(prog, "cannot load CA certificates", tls.ca);
    tls.ctx = ctx;
    tls.flags = tls.insecure ? EVC_TLS_NO_VERIFY : 0;
}

void example_tls_cleanup(void)
{
    SSL_CTX_free(tls.ctx);
    tls.ctx = NULL;
}
#else
void example_tls_ready(const char *prog)
{
    if (tls.cert || tls.key || tls.client) {
        fprintf(stderr, "%s: built without TLS (OpenSSL)\n", prog);
        exit(2);
    }
}

void example_tls_cleanup(void)
{
}
#endif

bool example_tls_enabled(void)
{
    return tls.ctx != NULL;
}

int example_tls_start(evc_chat *c, const char *hostname)
{
    if (!tls.ctx)
        return 0;
    return evc_chat_start_tls(c, tls.ctx, tls.flags, hostname);
}
