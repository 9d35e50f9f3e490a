/* Shared plumbing of the example programs: see common.h. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
        EXAMPLE_TLS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    opts->host = defhost;
    opts->port = defport;
    int c;
    while ((c = getopt_long(argc, argv, "hb:p:k", longopts, NULL)) != -1) {
        if (example_tls_option(c == 'k' ? EXAMPLE_OPT_INSECURE : c, optarg))
            continue;
        switch (c) {
        case 'h':
            printf("usage: %s [-b ADDR] [-p PORT]%s\n"
                   "  -b, --bind ADDR   address (host, IP or unix:/path; default %s)\n"
                   "  -p, --port PORT   port (default %d; 0 picks a free one)\n"
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

int example_serve(const example_opts *opts, const struct evc_server_ops *ops, void *data)
{
    struct ev_loop *loop = ev_default_loop(0);
    char address[EVC_ADDRSTRLEN + 16];
    example_address(opts, address, sizeof address);
    evc_server *server = evc_server_new(loop, address, 0, ops, data);
    if (!server) {
        perror(address);
        return 1;
    }
    /* The handlers first: a test may send SIGTERM as soon as it reads the line. */
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
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
    int rc = evc_addr_from_host_port(opts->host, opts->port, ss, len);
    if (rc < 0) {
        fprintf(stderr, "cannot resolve %s:%d: %s\n", opts->host, opts->port, evc_strerror(rc));
        exit(1);
    }
}

int example_open_beneath(int root_fd, char *path)
{
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
    return dir;
}
