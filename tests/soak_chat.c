/*
 * soak_chat: a bounded soak of the chat layer.  A chat echo server runs in a
 * child process; CLIENTS clients each send LINES random lines, cut into
 * random-sized writes, and check that every byte comes back, in order.  The
 * server's resident memory is read from /proc at the end: it must stay small
 * (a chat holds about one read block while busy and nothing while idle),
 * whatever the traffic was.  The server has a memory budget too, which honest
 * traffic must never trip.
 *
 *     soak_chat [CLIENTS [LINES [SEED]]]      (200 2000 1 by default)
 *
 * Prints its result as TAP (one case, the summary on its line) and exits 0
 * when every byte matched and the memory stayed within bounds; 1 otherwise.
 * Loopback only; gives up after 120 s.
 */
#include "evchat.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 300                    /* bytes in a line, the "\n" included */
#define MAX_SPLIT 5000                  /* most bytes per write */
#define SERVER_BUDGET ((size_t)64 << 20)
#define SERVER_RSS_MAX_KB (48 * 1024)   /* the server's resident memory at the end */
#define DEADLINE_SECONDS 120

/* ------------------------------------------------------------------ */
/* The server (child process): echo every line                         */
/* ------------------------------------------------------------------ */

static void echo_line(evc_chat *c, void *data)
{
    (void)data;
    size_t len;
    const char *line = evc_chat_incoming(c, &len);
    if (len > 0)
        evc_chat_push(c, line, len);
    evc_chat_push(c, "\n", 1);
}

static void budget_close(evc_chat *c, int err, void *data)
{
    (void)data;
    fprintf(stderr, "soak_chat: server closed a client: %s\n", evc_strerror(err));
    evc_chat_close(c);
}

static const struct evc_chat_ops echo_ops = {
    .found_terminator = echo_line,
    .handle_error = budget_close,
};

static void accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    (void)sa, (void)len, (void)data;
    evc_chat *c = evc_chat_new(evc_server_loop(s), fd, &echo_ops, NULL);
    if (!c) {
        close(fd);
        return;
    }
    evc_chat_set_terminator(c, "\n");
}

static const struct evc_server_ops server_ops = {.handle_accepted = accepted};

static void stop_server(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w, (void)revents;
    evc_close_all(loop);
}

static int run_server(int port_pipe)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evc_server *s = loop ? evc_server_new(loop, "127.0.0.1:0", 1024, &server_ops, NULL) : NULL;
    if (!s)
        return 1;
    evc_loop_set_memory_budget(loop, SERVER_BUDGET);
    char addr[64];
    evc_server_address(s, addr, sizeof addr);
    const char *colon = strrchr(addr, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (write(port_pipe, &port, sizeof port) != (ssize_t)sizeof port)
        return 1;
    close(port_pipe);
    ev_signal term;
    ev_signal_init(&term, stop_server, SIGTERM);
    ev_signal_start(loop, &term);
    ev_unref(loop);   /* the signal watcher alone does not keep the loop running */
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The clients (parent process)                                        */
/* ------------------------------------------------------------------ */

typedef struct client {
    int fd;
    char *out;            /* every line it sends, which is also what must come back */
    size_t len, sent, got;
} client;

static uint32_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift32: the soak is reproducible from its seed. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* LINES random lines of 0 to MAX_LINE - 1 bytes of anything but "\n". */
static void make_lines(client *c, int lines)
{
    c->out = malloc((size_t)lines * MAX_LINE);
    if (!c->out) {
        perror("soak_chat");
        exit(1);
    }
    size_t n = 0;
    for (int i = 0; i < lines; i++) {
        size_t len = rnd() % 8 == 0 ? rnd() % MAX_LINE : rnd() % 40;
        for (size_t k = 0; k < len; k++) {
            char b = (char)(rnd() & 0xff);
            c->out[n++] = b == '\n' ? '.' : b;
        }
        c->out[n++] = '\n';
    }
    c->len = n;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS)) {
        perror("soak_chat: connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A line of /proc/PID/status ("VmRSS", "VmHWM"), in KiB; -1 when missing. */
static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            kb = strtol(line + klen + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int nclients = argc > 1 ? atoi(argv[1]) : 200;
    int lines = argc > 2 ? atoi(argv[2]) : 2000;
    rng_state = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1;
    if (nclients <= 0 || lines <= 0 || rng_state == 0) {
        fprintf(stderr, "usage: soak_chat [CLIENTS [LINES [SEED]]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        _exit(run_server(pipefd[1]));
    }
    close(pipefd[1]);
    int port = 0;
    if (pid < 0 || read(pipefd[0], &port, sizeof port) != (ssize_t)sizeof port || port <= 0) {
        fprintf(stderr, "soak_chat: the server did not start\n");
        return 1;
    }
    close(pipefd[0]);

    client *cl = calloc((size_t)nclients, sizeof *cl);
    struct pollfd *pfd = calloc((size_t)nclients, sizeof *pfd);
    size_t total = 0;
    for (int i = 0; i < nclients; i++) {
        make_lines(&cl[i], lines);
        cl[i].fd = connect_to(port);
        total += cl[i].len;
    }
    long rss_idle = proc_kb(pid, "VmRSS");

    double start = now();
    size_t mismatches = 0, done = 0;
    char buf[65536];
    while (done < (size_t)nclients && now() - start < DEADLINE_SECONDS && mismatches == 0) {
        for (int i = 0; i < nclients; i++) {
            pfd[i].fd = cl[i].got < cl[i].len ? cl[i].fd : -1;
            pfd[i].events = POLLIN | (cl[i].sent < cl[i].len ? POLLOUT : 0);
        }
        if (poll(pfd, (nfds_t)nclients, 1000) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < nclients; i++) {
            client *c = &cl[i];
            if (pfd[i].revents & POLLOUT) {
                size_t want = 1 + rnd() % MAX_SPLIT;
                if (want > c->len - c->sent)
                    want = c->len - c->sent;
                ssize_t n = send(c->fd, c->out + c->sent, want, MSG_NOSIGNAL);
                if (n > 0)
                    c->sent += (size_t)n;
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = recv(c->fd, buf, sizeof buf, 0);
                if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
                    fprintf(stderr, "soak_chat: client %d: connection ended after %zu of %zu bytes\n",
                            i, c->got, c->len);
                    mismatches++;
                    continue;
                }
                if (n > 0) {
                    if ((size_t)n > c->len - c->got || memcmp(buf, c->out + c->got, (size_t)n) != 0) {
                        fprintf(stderr, "soak_chat: client %d: bytes differ after %zu\n", i, c->got);
                        mismatches++;
                    }
                    c->got += (size_t)n;
                    if (c->got == c->len)
                        done++;
                }
            }
        }
    }
    double seconds = now() - start;
    long rss_end = proc_kb(pid, "VmRSS");
    long hwm = proc_kb(pid, "VmHWM");
    for (int i = 0; i < nclients; i++) {
        close(cl[i].fd);
        free(cl[i].out);
    }
    free(cl);
    free(pfd);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);

    bool ok = mismatches == 0 && done == (size_t)nclients && rss_end > 0 &&
              rss_end < SERVER_RSS_MAX_KB && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("1..1\n%s 1 - soak_chat: %d clients x %d lines, %zu bytes each way in %.1f s, %zu mismatches, "
           "%zu of %d clients complete; server RSS idle %ld KiB, end %ld KiB, peak %ld KiB: %s\n",
           ok ? "ok" : "not ok", nclients, lines, total, seconds, mismatches, done, nclients, rss_idle, rss_end, hwm,
           ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
