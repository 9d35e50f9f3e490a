/* Test helpers: see support.h for the contract of each. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(bool *)w->data = true;
    ev_break(loop, EVBREAK_ONE);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
}

/*
 * The condition is checked between loop passes.  Work done in an ev_prepare
 * (writes made just before the loop sleeps, and the closes they cause) can meet
 * the condition and still leave that pass asleep in poll; a ticking timer bounds
 * every pass so waits end promptly.
 */
static bool run_until_pred(struct ev_loop *loop, bool (*done)(const void *), const void *arg,
                           double seconds)
{
    bool expired = false;
    ev_timer deadline, tick;
    ev_timer_init(&deadline, on_deadline, seconds, 0.);
    deadline.data = &expired;
    ev_timer_init(&tick, on_tick, 0.002, 0.002);
    ev_timer_start(loop, &deadline);
    ev_timer_start(loop, &tick);
    while (!done(arg) && !expired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    ev_timer_stop(loop, &deadline);
    return done(arg);
}

struct count_goal {
    const int *counter;
    int target;
};

static bool count_reached(const void *arg)
{
    const struct count_goal *g = arg;
    return *g->counter >= g->target;
}

static bool flag_set(const void *arg)
{
    return *(const bool *)arg;
}

bool evt_run_until_count(struct ev_loop *loop, const int *counter, int target, double seconds)
{
    struct count_goal goal = {counter, target};
    return run_until_pred(loop, count_reached, &goal, seconds);
}

bool evt_run_until(struct ev_loop *loop, const bool *flag, double seconds)
{
    return run_until_pred(loop, flag_set, flag, seconds);
}

void evt_run_for(struct ev_loop *loop, double seconds)
{
    bool expired = false;
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, seconds, 0.);
    deadline.data = &expired;
    ev_timer_start(loop, &deadline);
    while (!expired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &deadline);
}

void evt_assert_loop_empty(struct ev_loop *loop)
{
    /* Deferred destroys are fed events: a few non-blocking passes run them. */
    for (int i = 0; i < 4; i++)
        ev_run(loop, EVRUN_NOWAIT);
    /* An unreferenced timer does not keep ev_run going, so ev_run returns at once
     * when nothing else is active, and only the timer firing means "left over". */
    bool leftover = false;
    ev_timer guard;
    ev_timer_init(&guard, on_deadline, 2., 0.);
    guard.data = &leftover;
    ev_timer_start(loop, &guard);
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
    assert_false(leftover);
    assert_int_equal(ev_pending_count(loop), 0);
}

const char *evt_example_path(const char *name, char *buf, size_t cap)
{
    const char *dir = getenv("EVC_EXAMPLES");
    snprintf(buf, cap, "%s/%s", dir ? dir : "./examples", name);
    return buf;
}

/* Reads one line from fd (blocking, with a deadline) into line. */
static bool read_line(int fd, char *line, size_t cap, int timeout_ms)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return false;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return false;
        if (c == '\n')
            break;
        line[n++] = c;
    }
    line[n] = '\0';
    return true;
}

void evt_spawn_server(evt_proc *p, const char *name, const char *const *args)
{
    char path[512];
    evt_example_path(name, path, sizeof path);
    const char *argv[64];
    const size_t max_args = sizeof argv / sizeof argv[0];
    size_t argc = 0;
    bool has_port = false;
    argv[argc++] = path;
    for (size_t i = 0; args && args[i] && argc + 3 < max_args; i++) {
        if (strcmp(args[i], "-p") == 0)
            has_port = true;
        argv[argc++] = args[i];
    }
    if (!has_port) {
        argv[argc++] = "-p";
        argv[argc++] = "0";
    }
    argv[argc] = NULL;

    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        /* A test may ignore SIGPIPE for itself; the server must be run as users run
         * it, with SIGPIPE fatal, so a library write that raises it fails the test. */
        signal(SIGPIPE, SIG_DFL);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    p->pid = pid;
    p->out_fd = pipefd[0];
    char line[200];
    if (!read_line(p->out_fd, line, sizeof line, 10000)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s printed no 'listening on' line", path);
    }
    const char *prefix = "listening on ";
    assert_memory_equal(line, prefix, strlen(prefix));
    char *hostport = line + strlen(prefix);
    char *colon = strrchr(hostport, ':');
    assert_non_null(colon);
    *colon = '\0';
    p->port = atoi(colon + 1);
    if (hostport[0] == '[') {
        hostport++;
        hostport[strlen(hostport) - 1] = '\0';
    }
    snprintf(p->host, sizeof p->host, "%s", hostport);
}

/* Waits up to 10 s for pid to exit; its waitpid status, or -1 after killing it. */
static int wait_bounded(pid_t pid)
{
    int status = -1;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int evt_stop_server(evt_proc *p, int sig)
{
    kill(p->pid, sig);
    int status = wait_bounded(p->pid);
    close(p->out_fd);
    p->pid = -1;
    return status;
}

/* argv for examples/name: path, then args; asserts they fit. */
static void example_argv(const char *argv[], size_t max, char *path, size_t cap, const char *name,
                         const char *const *args)
{
    evt_example_path(name, path, cap);
    size_t argc = 0;
    argv[argc++] = path;
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(argc + 1 < max);
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
}

void evt_spawn_client(evt_child *c, const char *name, const char *const *args, bool with_stderr)
{
    char path[512];
    const char *argv[32];
    example_argv(argv, 32, path, sizeof path, name, args);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        if (with_stderr)
            dup2(out[1], STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->to_stdin = in[1];
    c->from_stdout = out[0];
}

void evt_type(evt_child *c, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(write(c->to_stdin, text, len), (ssize_t)len);
}

size_t evt_read_child(evt_child *c, char *buf, size_t cap)
{
    size_t n = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n + 1 >= cap || now.tv_sec - start.tv_sec >= 10)
            break;
        struct pollfd pfd = {.fd = c->from_stdout, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(c->from_stdout, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

int evt_wait_child(evt_child *c)
{
    int status = wait_bounded(c->pid);
    close(c->from_stdout);
    if (c->to_stdin >= 0)
        close(c->to_stdin);
    c->to_stdin = -1;
    return status;
}

int evt_run_example(const char *name, const char *const *args, char *out, size_t cap)
{
    evt_child c;
    evt_spawn_client(&c, name, args, true);
    close(c.to_stdin);          /* stdin: end of input at once */
    c.to_stdin = -1;
    char discard[4096];
    if (out)
        evt_read_child(&c, out, cap);
    else
        while (evt_read_child(&c, discard, sizeof discard) > 0)
            ;
    return evt_wait_child(&c);
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int evt_connect(const char *host, int port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    assert_int_equal(getaddrinfo(host, service, &hints, &res), 0);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    set_timeouts(fd);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    assert_int_equal(rc, 0);
    return fd;
}

void evt_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

size_t evt_recv_all(int fd, void *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = recv(fd, (char *)buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

size_t evt_recv_until(int fd, void *buf, size_t cap, const char *needle)
{
    size_t got = 0, nlen = strlen(needle);
    while (got < cap) {
        ssize_t n = recv(fd, (char *)buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got >= nlen && memcmp((char *)buf + got - nlen, needle, nlen) == 0)
            break;
    }
    return got;
}

void evt_tcp_pair(int fds[2])
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fds[0] >= 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *)&sin, sizeof sin), 0);
    fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fds[1] >= 0);
    close(lfd);
    set_timeouts(fds[0]);
    set_timeouts(fds[1]);
}

void evt_close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

void evt_bytes_add(evt_bytes *b, const void *d, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void evt_bytes_adds(evt_bytes *b, const char *z)
{
    evt_bytes_add(b, z, strlen(z));
}

void evt_bytes_reset(evt_bytes *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void evt_bytes_free(evt_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ */
/* A loopback peer that sends a body and collects what comes back      */
/* ------------------------------------------------------------------ */

void evt_peer_update(evt_peer *p)
{
    int ev = 0;
    if (p->sent < p->out_len)
        ev |= EV_WRITE;
    if (p->reading && p->got.len < p->want)
        ev |= EV_READ;
    ev_io_stop(p->loop, &p->io);
    if (ev) {
        ev_io_set(&p->io, p->fd, ev);
        ev_io_start(p->loop, &p->io);
    }
}

static void peer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    evt_peer *p = w->data;
    (void)loop;
    if ((revents & EV_WRITE) && p->sent < p->out_len) {
        size_t n = p->out_len - p->sent;
        if (n > p->chunk)
            n = p->chunk;
        ssize_t k = send(p->fd, p->out + p->sent, n, MSG_NOSIGNAL);
        if (k > 0)
            p->sent += (size_t)k;
        else
            assert_true(k < 0 && errno == EAGAIN);
        if (p->sent == p->out_len && p->shut_when_sent)
            shutdown(p->fd, SHUT_WR);
    }
    if (revents & EV_READ) {
        char buf[65536];
        ssize_t k = recv(p->fd, buf, sizeof buf, 0);
        if (k > 0)
            evt_bytes_add(&p->got, buf, (size_t)k);
        else if (k == 0)
            p->want = p->got.len;     /* EOF: nothing more will come */
        else
            assert_true(errno == EAGAIN);
    }
    evt_peer_update(p);
}

static void peer_start_reading(struct ev_loop *loop, ev_timer *w, int revents)
{
    evt_peer *p = w->data;
    (void)loop;
    (void)revents;
    p->reading = true;
    evt_peer_update(p);
}

void evt_peer_start(evt_peer *p, struct ev_loop *loop, int fd, const char *out, size_t out_len,
                       size_t want, double read_delay)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->fd = fd;
    p->out = out;
    p->out_len = out_len;
    p->chunk = 40000;
    p->want = want;
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    ev_io_init(&p->io, peer_cb, fd, 0);
    p->io.data = p;
    ev_timer_init(&p->start_reading, peer_start_reading, read_delay, 0.);
    p->start_reading.data = p;
    ev_timer_start(loop, &p->start_reading);
    evt_peer_update(p);
}

static bool peer_done(const evt_peer *p)
{
    return p->sent == p->out_len && p->got.len >= p->want;
}

void evt_peer_stop(evt_peer *p)
{
    ev_io_stop(p->loop, &p->io);
    ev_timer_stop(p->loop, &p->start_reading);
    close(p->fd);
    evt_bytes_free(&p->got);
}

static void peer_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

void evt_run_peers(struct ev_loop *loop, evt_peer **peers, int n)
{
    /* A short repeating timer bounds each pass when nothing else is ready. */
    ev_timer guard;
    ev_timer_init(&guard, peer_tick, 0.01, 0.01);
    ev_timer_start(loop, &guard);
    double deadline = ev_time() + 20.;
    bool done = false;
    while (!done && ev_time() < deadline) {
        done = true;
        for (int i = 0; i < n; i++)
            done = done && peer_done(peers[i]);
        if (!done)
            ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &guard);
    assert_true(done);
}

void evt_small_buffer(int fd, int opt, int size)
{
    assert_int_equal(setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size), 0);
}

/* An LCG mapped to letters: no short period, so a piece moved elsewhere shows. */
char *evt_random_body(size_t n, uint32_t seed)
{
    char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        b[i] = (char)('a' + (seed >> 24) % 26);
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* Memory that ends at a PROT_NONE page                                */
/* ------------------------------------------------------------------ */

void evt_guarded_init(evt_guarded *g, size_t min_room)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->room = (min_room + g->page - 1) / g->page * g->page;
    if (g->room == 0)
        g->room = g->page;
    g->map = mmap(NULL, g->room + g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect(g->map + g->room, g->page, PROT_NONE), 0);
}

char *evt_guarded_end(const evt_guarded *g)
{
    return g->map + g->room;
}

char *evt_guarded_place(evt_guarded *g, const void *bytes, size_t n)
{
    assert_true(n <= g->room);
    char *p = evt_guarded_end(g) - n;
    if (n > 0)
        memmove(p, bytes, n);
    return p;
}

void evt_guarded_free(evt_guarded *g)
{
    munmap(g->map, g->room + g->page);
    g->map = NULL;
}
