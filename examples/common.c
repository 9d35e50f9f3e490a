/* Shared plumbing of the example programs: see common.h. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void example_parse(example_opts *opts, int argc, char **argv, const char *defhost, int defport,
                   const char *usage)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'},
        EXAMPLE_LOOP_LONGOPTS,
        EXAMPLE_WORKERS_LONGOPTS,
        EXAMPLE_TLS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    *opts = (example_opts){0};
    opts->host = defhost;
    opts->port = defport;
    opts->workers_set = opts->fork_workers = opts->acceptor = false;
    opts->workers = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hb:p:k" EXAMPLE_LOOP_SHORTOPTS EXAMPLE_WORKERS_OPTSTRING,
                            longopts, NULL)) != -1) {
        if (example_tls_option(c == 'k' ? EXAMPLE_OPT_INSECURE : c, optarg) ||
            example_loop_option(opts, c, optarg, argv[0]) ||
            example_parse_workers(opts, c, optarg, argv[0]))
            continue;
        switch (c) {
        case 'h':
            printf("usage: %s [-b ADDR] [-p PORT]%s\n"
                   "  -b, --bind ADDR   address (host, IP or unix:/path; default %s)\n"
                   "  -p, --port PORT   port (default %d; 0 picks a free one)\n"
                   EXAMPLE_LOOP_HELP
                   EXAMPLE_WORKERS_USAGE
                   "  -h, --help        this text\n",
                   argv[0], usage, defhost, defport);
            if (example_tls_offered())
                printf(EXAMPLE_TLS_USAGE);
            exit(0);
        case 'b':
            opts->host = optarg;
            break;
        case 'p': {
            char *end;
            long port = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], optarg);
                exit(2);
            }
            opts->port = (int)port;
            break;
        }
        default:
            fprintf(stderr, "try '%s --help'\n", argv[0]);
            exit(2);
        }
    }
    opts->argc = argc - optind;
    opts->argv = argv + optind;
    example_loop_start(opts, argv[0]);
    example_tls_ready(argv[0]);
}

void example_address(const example_opts *opts, char *buf, size_t cap)
{
    if (strncmp(opts->host, "unix:", 5) == 0)
        snprintf(buf, cap, "%s", opts->host);
    else if (strchr(opts->host, ':') && opts->host[0] != '[')   /* "[::1]" is bracketed already */
        snprintf(buf, cap, "[%s]:%d", opts->host, opts->port);
    else
        snprintf(buf, cap, "%s:%d", opts->host, opts->port);
}

void example_announce(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char text[EVC_ADDRSTRLEN];
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0 ||
        evc_addr_format((struct sockaddr *)&ss, len, text, sizeof text) < 0)
        snprintf(text, sizeof text, "?");
    printf("listening on %s\n", text);
    fflush(stdout);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

void example_stop_on_signals(struct ev_loop *loop, ev_signal watchers[2])
{
    ev_signal_init(&watchers[0], on_stop_signal, SIGINT);
    ev_signal_init(&watchers[1], on_stop_signal, SIGTERM);
    ev_signal_start(loop, &watchers[0]);
    ev_signal_start(loop, &watchers[1]);
    /* Signal watchers must not keep the loop alive once the servers are closed. */
    ev_unref(loop);
    ev_unref(loop);
}

void example_refuse_workers(const example_opts *opts, const char *prog)
{
    if (opts->workers_set) {
        fprintf(stderr, "%s: serves from one loop; -w, -W and --acceptor are options of "
                        "echo_server, time_server, http_server and resp_server\n", prog);
        exit(2);
    }
}

int example_serve(const example_opts *opts, const struct evc_server_ops *ops, void *data)
{
    example_refuse_workers(opts, program_invocation_short_name);
    struct ev_loop *loop = ev_default_loop(0);
    char address[EVC_ADDRSTRLEN + 16];
    example_address(opts, address, sizeof address);
    evc_server *server = evc_server_new(loop, address, 0, ops, data);
    if (!server) {
        perror(address);
        return 1;
    }
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);   /* before the line that says we are up */
    example_announce(evc_dispatcher_fd(evc_server_dispatcher(server)));
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);   /* runs the deferred destroys: every on_destroy frees its state */
    ev_loop_destroy(loop);
    example_tls_cleanup();
    return 0;
}

void example_resolve(const example_opts *opts, struct sockaddr_storage *ss, socklen_t *len)
{
    example_refuse_workers(opts, program_invocation_short_name);
    int rc = evc_addr_from_host_port(opts->host, opts->port, ss, len);
    if (rc < 0) {
        fprintf(stderr, "cannot resolve %s:%d: %s\n", opts->host, opts->port, evc_strerror(rc));
        exit(1);
    }
}

int example_open_beneath(int root_fd, char *path)
{
    /* A trailing slash names a directory, as for open(2): "file/" is ENOTDIR.
     * Noted before strtok_r, which drops it. */
    size_t path_len = strlen(path);
    bool want_dir = path_len > 0 && path[path_len - 1] == '/';
    int dir = dup(root_fd);
    if (dir < 0)
        return -errno;
    char *save = NULL;
    char *part = strtok_r(path, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        int fd;
        if (strcmp(part, "..") == 0) {
            close(dir);
            return -EACCES;
        }
        if (strcmp(part, ".") == 0)
            fd = dup(dir);
        else if (next)
            fd = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else  /* O_NONBLOCK: opening a FIFO must not hang the server */
            fd = openat(dir, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        int err = errno;
        struct stat st;
        /* O_NOFOLLOW met a symlink: ELOOP, or ENOTDIR along with O_DIRECTORY. */
        if (fd < 0 && (err == ELOOP || (err == ENOTDIR &&
                       fstatat(dir, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))))
            err = EACCES;
        close(dir);
        if (fd < 0)
            return -err;
        dir = fd;
        part = next;
    }
    struct stat st;
    if (want_dir && (fstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        close(dir);
        return -ENOTDIR;
    }
    return dir;
}

/* --- The event loop's backend ------------------------------------------- */

static const struct {
    const char *name;
    unsigned flag;
} backends[] = {
    {"select", EVBACKEND_SELECT},
    {"poll", EVBACKEND_POLL},
    {"epoll", EVBACKEND_EPOLL},
};

const char *example_backend_name(unsigned backend)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i].flag == backend)
            return backends[i].name;
    switch (backend) {   /* the ones libev may choose by itself elsewhere */
    case EVBACKEND_KQUEUE:
        return "kqueue";
    case EVBACKEND_DEVPOLL:
        return "devpoll";
    case EVBACKEND_PORT:
        return "port";
    default:
        return "other";
    }
}

bool example_loop_option(example_opts *opts, int c, const char *arg, const char *prog)
{
    if (c == 'v') {
        opts->verbose = true;
        return true;
    }
    if (c != EXAMPLE_OPT_BACKEND)
        return false;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(arg, backends[i].name) != 0)
            continue;
        /* A libev built without it would silently fall back: refuse instead,
         * since the user asked for this one by name. */
        if (!(ev_supported_backends() & backends[i].flag)) {
            fprintf(stderr, "%s: backend '%s' is not available in this libev\n", prog, arg);
            exit(2);
        }
        opts->backend = backends[i].flag;
        return true;
    }
    fprintf(stderr, "%s: unknown backend '%s' (select, poll or epoll)\n", prog, arg);
    exit(2);
}

void example_loop_start(const example_opts *opts, const char *prog)
{
    /* The default loop, whatever the backend: only it can watch signals
     * (ev_signal), and the examples stop cleanly on SIGINT and SIGTERM.  Made
     * here, once, so that the programs' own ev_default_loop() calls get it. */
    struct ev_loop *loop = ev_default_loop(opts->backend);
    if (!loop) {
        fprintf(stderr, "%s: cannot create the event loop (backend %s)\n", prog,
                opts->backend ? example_backend_name(opts->backend) : "default");
        exit(1);
    }
    if (opts->verbose) {
        fprintf(stderr, "%s: backend %s\n", prog, example_backend_name(ev_backend(loop)));
        fflush(stderr);
    }
}

double example_parse_seconds(const char *prog, const char *what, const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* strtod takes "nan", "inf" and hex floats; a timeout is a plain decimal. */
    bool plain = text[strspn(text, "0123456789.")] == '\0';
    if (*text == '\0' || *end != '\0' || errno != 0 || !plain || !isfinite(v) || v < 0) {
        fprintf(stderr, "%s: bad %s '%s' (seconds, a number >= 0)\ntry '%s --help'\n", prog,
                what, text, prog);
        exit(2);
    }
    return v;
}

/* ---------------------------------------------------------------- worker loops */

bool example_parse_workers(example_opts *opts, int c, const char *arg, const char *prog)
{
    if (c == EXAMPLE_OPT_ACCEPTOR) {
        opts->acceptor = true;
        return true;
    }
    if (c != 'w' && c != 'W')
        return false;
    char *end;
    unsigned long n = strtoul(arg, &end, 10);
    if (*arg == '\0' || *arg == '-' || *end != '\0' || n > 1024) {
        fprintf(stderr, "%s: bad number of workers '%s'\n", prog, arg);
        exit(2);
    }
    opts->workers_set = true;
    opts->workers = (unsigned)n;
    opts->fork_workers = c == 'W';
    return true;
}

/* One loop, no threads: what the examples do without -w. */
typedef struct single_loop {
    const struct evc_worker_ops *ops;
    void *worker_data;
} single_loop;

static void single_accepted(evc_server *server, int fd, const struct sockaddr *sa, socklen_t len,
                            void *data)
{
    single_loop *one = data;
    if (one->ops->handle_accepted)
        one->ops->handle_accepted(evc_server_loop(server), fd, sa, len, one->worker_data);
    else
        close(fd);
}

static int serve_one_loop(const example_opts *opts, const struct evc_worker_ops *ops, void *data)
{
    struct ev_loop *loop = ev_default_loop(0);
    single_loop one = {.ops = ops, .worker_data = data};
    int rc = ops->setup ? ops->setup(loop, 0, data, &one.worker_data) : 0;
    if (rc < 0) {
        fprintf(stderr, "%s\n", evc_strerror(rc));
        return 1;
    }
    static const struct evc_server_ops single_ops = {.handle_accepted = single_accepted};
    char address[EVC_ADDRSTRLEN + 16];
    example_address(opts, address, sizeof address);
    evc_server *server = evc_server_new(loop, address, 0, &single_ops, &one);
    int status = 0;
    if (!server) {
        perror(address);
        status = 1;
    } else {
        ev_signal stop[2];
        example_stop_on_signals(loop, stop);   /* before the line that says we are up */
        example_announce(evc_dispatcher_fd(evc_server_dispatcher(server)));
        ev_run(loop, 0);
        for (int i = 0; i < 2; i++) {
            ev_ref(loop);   /* example_stop_on_signals unref'd them */
            ev_signal_stop(loop, &stop[i]);
        }
    }
    evc_close_all(loop);
    ev_run(loop, 0);   /* runs the deferred destroys */
    if (ops->teardown)
        ops->teardown(loop, 0, one.worker_data, data);
    ev_loop_destroy(loop);
    return status;
}

/* The workers a signal handler stops: a program serves one set at a time. */
static evc_workers *running_workers;

static void stop_workers(int sig)
{
    (void)sig;
    evc_workers_stop(running_workers);
}

int example_serve_workers(const example_opts *opts, const struct evc_worker_ops *ops, void *data)
{
    if (!opts->workers_set)
        return serve_one_loop(opts, ops, data);
    if (opts->backend) {
        /* Each worker makes its own loop with libev's choice of backend. */
        fprintf(stderr, "--backend picks the backend of one loop; it does not go with -w or -W\n");
        return 2;
    }
    char address[EVC_ADDRSTRLEN + 16];
    example_address(opts, address, sizeof address);
    unsigned flags = opts->fork_workers ? EVC_WORKERS_FORK
                     : opts->acceptor   ? EVC_WORKERS_ACCEPTOR : 0;
    evc_workers *workers = evc_workers_new(address, 0, opts->workers, flags, ops, data);
    if (!workers) {
        perror(address);
        return 1;
    }
    /* Stoppable before anyone can know where to connect. */
    running_workers = workers;
    struct sigaction stop = {.sa_handler = stop_workers}, old_int, old_term;
    sigemptyset(&stop.sa_mask);
    sigaction(SIGINT, &stop, &old_int);
    sigaction(SIGTERM, &stop, &old_term);
    char bound[EVC_ADDRSTRLEN];
    if (evc_workers_address(workers, bound, sizeof bound) < 0)
        snprintf(bound, sizeof bound, "?");
    printf("listening on %s\n", bound);
    fflush(stdout);

    int rc = evc_workers_run(workers);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    running_workers = NULL;
    evc_workers_free(workers);
    if (rc < 0) {
        fprintf(stderr, "workers: %s\n", evc_strerror(rc));
        return 1;
    }
    return 0;
}
