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
    /* The event loop (--backend NAME, -v): see example_loop_start. */
    unsigned backend;    /* EVBACKEND_SELECT, _POLL or _EPOLL; 0 lets libev choose */
    bool verbose;        /* -v: say on stderr which backend runs the loop */
    /* Worker loops (-w N threads, -W N processes; see example_serve_workers). */
    bool workers_set;    /* -w or -W was given */
    unsigned workers;    /* how many (0: one per CPU) */
    bool fork_workers;   /* -W: processes instead of threads */
    bool acceptor;       /* --acceptor: one acceptor deals the fds (EVC_WORKERS_ACCEPTOR) */
} example_opts;

/* Parses -b ADDR, -p PORT and --help/-h (printing usage, which names the program's
 * purpose and its extra operands, then exiting).  Exits 2 on a bad option. */
void example_parse(example_opts *opts, int argc, char **argv, const char *defhost, int defport,
                   const char *usage);
/* The "host:port" text of opts, for evc_server_new ("unix:/path" passes through). */
void example_address(const example_opts *opts, char *buf, size_t cap);
/* Prints "listening on HOST:PORT" for the address listen_fd is bound to, flushes stdout. */
void example_announce(int listen_fd);
/* Makes SIGINT and SIGTERM stop the loop (ev_break), so main can clean up and exit 0.
 * Call it before example_announce: whoever reads "listening on" may signal at once. */
void example_stop_on_signals(struct ev_loop *loop, ev_signal watchers[2]);
/* The whole life of a server example: listens on opts with ops/data, prints the
 * "listening on" line, runs the default loop until SIGINT/SIGTERM, then closes
 * everything and runs the deferred destroys.  Returns the exit status: 0, or 1
 * (with a message) when it cannot listen. */
/* Exits 2 with a message if -w, -W or --acceptor was given: for the programs that
 * serve from one loop (example_serve and example_resolve call it themselves). */
void example_refuse_workers(const example_opts *opts, const char *prog);
int example_serve(const example_opts *opts, const struct evc_server_ops *ops, void *data);
/* Resolves opts into a socket address (for clients).  Exits 1 with a message on failure. */
void example_resolve(const example_opts *opts, struct sockaddr_storage *ss, socklen_t *len);
/* Opens path ('/'-separated; leading and doubled slashes are ignored) under the
 * directory root_fd without leaving it, one component at a time: an fd or -errno,
 * -EACCES for ".." and for any symlink on the way, -ENOTDIR for a trailing slash
 * after a name that is not a directory (as open(2)).  Cuts path up (strtok_r). */
int example_open_beneath(int root_fd, char *path);

/* --- The event loop's backend: --backend select|poll|epoll and -v ---------
 * The Python tutorials pick select(), poll() or epoll() by hand; libev picks
 * for us, and these options let the user pick.  example_parse takes them; a
 * program with its own getopt_long table adds EXAMPLE_LOOP_SHORTOPTS and
 * EXAMPLE_LOOP_LONGOPTS to it, EXAMPLE_LOOP_HELP to its --help, passes each
 * option to example_loop_option first and calls example_loop_start after the
 * options. */
#define EXAMPLE_OPT_BACKEND 0x10B0   /* getopt_long's value for --backend (no short form); other
                                      * long-only options must pick other values */
#define EXAMPLE_LOOP_SHORTOPTS "v"
#define EXAMPLE_LOOP_LONGOPTS                                    \
    {"backend", required_argument, NULL, EXAMPLE_OPT_BACKEND}, \
    {"verbose", no_argument, NULL, 'v'}
#define EXAMPLE_LOOP_HELP                                                     \
    "      --backend NAME  select, poll or epoll (default: libev's choice)\n" \
    "  -v, --verbose       print the loop's backend on stderr\n"
/* Takes getopt_long's c (with its optarg) if it is --backend or -v and returns true;
 * false for any other option.  An unknown or unavailable backend exits 2 with a message. */
bool example_loop_option(example_opts *opts, int c, const char *arg, const char *prog);
/* Creates the default loop with opts->backend, so that every later ev_default_loop()
 * returns that loop, and with -v prints "PROG: backend NAME" (what ev_backend reports)
 * on stderr.  Exits 1 with a message if libev cannot create it. */
void example_loop_start(const example_opts *opts, const char *prog);
/* The name of a libev backend ("select", "poll", "epoll", ...). */
const char *example_backend_name(unsigned backend);

/* A number of seconds given on the command line (what: its name in the message):
 * a finite decimal >= 0, 0 meaning off.  Exits 2 with a message on anything else
 * (empty, "abc", "nan", "inf", negative, trailing bytes). */
double example_parse_seconds(const char *prog, const char *what, const char *text);
/* -- Worker loops: -w N (threads) and -W N (processes), socketserver's
 *    ThreadingTCPServer and ForkingTCPServer rows. -- */

/* The usage lines of -w and -W, for a program's own --help. */
#define EXAMPLE_WORKERS_USAGE \
    "  -w, --workers N   serve on N event loops on N threads (0: one per CPU)\n" \
    "  -W, --fork N      serve from N worker processes (0: one per CPU)\n" \
    "      --acceptor    with -w: one thread accepts and deals connections round\n" \
    "                    robin (default: a SO_REUSEPORT listener per worker)\n"
/* The short options of -w and -W, for a program's own getopt string. */
#define EXAMPLE_WORKERS_OPTSTRING "w:W:"
/* Their long options, for a program's own table. */
#define EXAMPLE_WORKERS_LONGOPTS \
    {"workers", required_argument, NULL, 'w'}, {"fork", required_argument, NULL, 'W'}, \
    {"acceptor", no_argument, NULL, EXAMPLE_OPT_ACCEPTOR}
/* getopt's value for --acceptor (long only: no letter to collide with). */
#define EXAMPLE_OPT_ACCEPTOR 0x10A0   /* apart from EXAMPLE_OPT_CERT... (0x1000 on) */
/* Handles option c ('w', 'W', --acceptor) with its argument: true if it was one of them.
 * Exits 2 on a bad count. */
bool example_parse_workers(example_opts *opts, int c, const char *arg, const char *prog);
/* The whole life of a server example written with worker ops: without -w/-W, one
 * loop (the default one) with setup and teardown called once around it; with
 * them, evc_workers.  Prints "listening on HOST:PORT", stops cleanly (exit 0) on
 * SIGINT/SIGTERM.  Returns the exit status: 0, or 1 (with a message). */
int example_serve_workers(const example_opts *opts, const struct evc_worker_ops *ops, void *data);

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
