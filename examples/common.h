/*
 * What every example program shares: the command line (-b ADDR -p PORT,
 * --help), the "listening on HOST:PORT" line, and a clean exit on SIGINT and
 * SIGTERM; and, for the file servers, opening a name inside a directory.  Not
 * part of the library.
 */
#ifndef EVC_EXAMPLE_COMMON_H
#define EVC_EXAMPLE_COMMON_H

#include <ev.h>
#include <stdbool.h>
#include <sys/socket.h>
#include "evchat.h"

typedef struct example_opts {
    const char *host;    /* -b ADDR: a host name, an IP literal or "unix:/path" */
    int port;            /* -p PORT; 0 picks a free port */
    int argc;            /* operands left after the options */
    char **argv;
} example_opts;

/* Parses -b ADDR, -p PORT and --help/-h (printing usage, which names the program's
 * purpose and its extra operands, then exiting).  Exits 2 on a bad option. */
void example_parse(example_opts *opts, int argc, char **argv, const char *defhost, int defport,
                   const char *usage);
/* The "host:port" text of opts, for evc_server_new ("unix:/path" passes through). */
void example_address(const example_opts *opts, char *buf, size_t cap);
/* Prints "listening on HOST:PORT" for the address listen_fd is bound to, flushes stdout. */
void example_announce(int listen_fd);
/* Makes SIGINT and SIGTERM stop the loop (ev_break), so main can clean up and exit 0. */
void example_stop_on_signals(struct ev_loop *loop, ev_signal watchers[2]);
/* The whole life of a server example: listens on opts with ops/data, prints the
 * "listening on" line, runs the default loop until SIGINT/SIGTERM, then closes
 * everything and runs the deferred destroys.  Returns the exit status: 0, or 1
 * (with a message) when it cannot listen. */
int example_serve(const example_opts *opts, const struct evc_server_ops *ops, void *data);
/* Resolves opts into a socket address (for clients).  Exits 1 with a message on failure. */
void example_resolve(const example_opts *opts, struct sockaddr_storage *ss, socklen_t *len);
/* Opens path ('/'-separated; leading and doubled slashes are ignored) under the
 * directory root_fd without leaving it, one component at a time: an fd or -errno,
 * -EACCES for ".." and for any symlink on the way.  Cuts path up (strtok_r). */
int example_open_beneath(int root_fd, char *path);

/* ---- TLS (example_tls.c): --cert FILE --key FILE make a server speak TLS;
 * --tls, --ca FILE and -k (no verification) make a client speak it. */
enum { EXAMPLE_OPT_CERT = 0x1000, EXAMPLE_OPT_KEY, EXAMPLE_OPT_TLS, EXAMPLE_OPT_CA,
       EXAMPLE_OPT_INSECURE };
#define EXAMPLE_TLS_LONGOPTS \
    {"cert", required_argument, NULL, EXAMPLE_OPT_CERT}, \
    {"key", required_argument, NULL, EXAMPLE_OPT_KEY}, \
    {"tls", no_argument, NULL, EXAMPLE_OPT_TLS}, \
    {"ca", required_argument, NULL, EXAMPLE_OPT_CA}, \
    {"insecure", no_argument, NULL, EXAMPLE_OPT_INSECURE}
#define EXAMPLE_TLS_USAGE \
    "  --cert FILE --key FILE  serve TLS with this certificate (chain) and key\n" \
    "  --tls [--ca FILE] [-k]  connect with TLS, trusting FILE (default: the system's);\n" \
    "                          -k, --insecure: no certificate check\n"
/* Called before parsing by a program that speaks TLS: only such programs take
 * (and list in --help) the TLS options; the others reject them. */
void example_tls_offer(void);
bool example_tls_offered(void);
/* A getopt result that is one of the TLS options: noted, true.  A parser that
 * offers -k passes it as EXAMPLE_OPT_INSECURE. */
bool example_tls_option(int opt, const char *arg);
/* After the options: builds the TLS context they ask for.  Exits 1 (2 for bad
 * options) with a message when it cannot. */
void example_tls_ready(const char *prog);
/* True when the options asked for TLS. */
bool example_tls_enabled(void);
/* Starts TLS on c as the options say (hostname: what a client checks); 0 when TLS is off. */
int example_tls_start(evc_chat *c, const char *hostname);
/* Frees the context. */
void example_tls_cleanup(void);

#endif
