/*
 * Tests of worker loops (evc_workers): connections really spread over the
 * workers, with either distribution; setup and teardown run once per worker on
 * that worker's own thread; a stop (from a signal handler too) while clients
 * hold connections with unsent output closes every chat before teardown and
 * joins; a failing setup stops everything; the process variant restarts a
 * worker that was killed, but a worker that keeps dying only once a second,
 * and stops all of them on SIGTERM.
 *
 * The test server answers each line with "INDEX PID\n" (which worker, in which
 * process) and keeps the connection; "q" closes it.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 4

/* What the workers report to the test; guarded by lock. */
typedef struct report {
    pthread_mutex_t lock;
    int setups, teardowns;
    pthread_t setup_thread[MAX_WORKERS];
    pthread_t teardown_thread[MAX_WORKERS];
    int open_at_teardown[MAX_WORKERS];   /* chats still alive when teardown ran */
    unsigned fail_setup_of;             /* index whose setup fails, or MAX_WORKERS */
    int teardown_pipe;                  /* processes: "T<index>\n" per teardown, or -1 */
} report;

typedef struct worker_state {
    report *rep;
    unsigned index;
    int open_chats;     /* touched only on the worker's thread */
} worker_state;

typedef struct conn {
    worker_state *ws;
} conn;

static void on_line(evc_chat *c, void *data)
{
    conn *k = data;
    size_t len;
    const char *line = evc_chat_incoming(c, &len);
    if (len == 1 && line[0] == 'q') {
        evc_chat_close_when_done(c);
        return;
    }
    evc_chat_pushf(c, "%u %ld\n", k->ws->index, (long)getpid());
}

static void on_conn_destroy(evc_chat *c, void *data)
{
    (void)c;
    conn *k = data;
    k->ws->open_chats--;
    free(k);
}

static const struct evc_chat_ops who_ops = {
    .found_terminator = on_line,
    .on_destroy = on_conn_destroy,
};

static int who_setup(struct ev_loop *loop, unsigned index, void *data, void **worker_data)
{
    (void)loop;
    report *rep = data;
    assert_ptr_equal(*worker_data, data);   /* preset to the user's data */
    if (index == rep->fail_setup_of)
        return -EIO;
    worker_state *ws = calloc(1, sizeof *ws);
    assert_non_null(ws);
    ws->rep = rep;
    ws->index = index;
    pthread_mutex_lock(&rep->lock);
    rep->setups++;
    rep->setup_thread[index] = pthread_self();
    pthread_mutex_unlock(&rep->lock);
    *worker_data = ws;
    return 0;
}

static void who_accepted(struct ev_loop *loop, int fd, const struct sockaddr *sa, socklen_t len,
                         void *worker_data)
{
    (void)sa, (void)len;
    worker_state *ws = worker_data;
    conn *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->ws = ws;
    evc_chat *c = evc_chat_new(loop, fd, &who_ops, k);
    assert_non_null(c);
    ws->open_chats++;
    evc_chat_set_terminator(c, "\n");
}

static void who_teardown(struct ev_loop *loop, unsigned index, void *worker_data, void *data)
{
    (void)loop;
    report *rep = data;
    worker_state *ws = worker_data;
    assert_int_equal(ws->index, index);
    pthread_mutex_lock(&rep->lock);
    rep->teardowns++;
    rep->teardown_thread[index] = pthread_self();
    rep->open_at_teardown[index] = ws->open_chats;
    pthread_mutex_unlock(&rep->lock);
    if (rep->teardown_pipe >= 0) {
        char line[16];
        int n = snprintf(line, sizeof line, "T%u\n", index);
        assert_int_equal(write(rep->teardown_pipe, line, (size_t)n), n);
    }
    free(ws);
}

static const struct evc_worker_ops who_worker_ops = {
    .setup = who_setup,
    .handle_accepted = who_accepted,
    .teardown = who_teardown,
};

static void report_init(report *rep)
{
    memset(rep, 0, sizeof *rep);
    pthread_mutex_init(&rep->lock, NULL);
    rep->fail_setup_of = MAX_WORKERS;
    rep->teardown_pipe = -1;
}

/* evc_workers_run on a thread of its own, so the test can be the client. */
typedef struct runner {
    evc_workers *w;
    pthread_t thread;
    int rc;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->rc = evc_workers_run(r->w);
    return NULL;
}

static void runner_start(runner *r, evc_workers *w)
{
    r->w = w;
    r->rc = 1;
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static int runner_join(runner *r)
{
    assert_int_equal(pthread_join(r->thread, NULL), 0);
    return r->rc;
}

static int address_port(evc_workers *w)
{
    char text[EVC_ADDRSTRLEN];
    assert_true(evc_workers_address(w, text, sizeof text) > 0);
    const char *colon = strrchr(text, ':');
    assert_non_null(colon);
    return atoi(colon + 1);
}

/* One request on a fresh connection: which worker (and process) served it, or
 * UINT_MAX when no answer came (in 10 s). */
static unsigned ask_who(int port, long *pid)
{
    int fd = evt_connect("127.0.0.1", port);
    evt_send_all(fd, "who\n", 4);
    char reply[64];
    size_t n = evt_recv_until(fd, reply, sizeof reply - 1, "\n");
    reply[n] = '\0';
    unsigned index;
    long p;
    if (sscanf(reply, "%u %ld", &index, &p) != 2) {
        close(fd);
        return UINT_MAX;
    }
    evt_send_all(fd, "q\n", 2);
    close(fd);
    if (pid)
        *pid = p;
    return index;
}

static void check_threads(report *rep, unsigned n, pthread_t runner_thread)
{
    assert_int_equal(rep->setups, (int)n);
    assert_int_equal(rep->teardowns, (int)n);
    for (unsigned i = 0; i < n; i++) {
        assert_true(pthread_equal(rep->setup_thread[i], rep->teardown_thread[i]));
        assert_false(pthread_equal(rep->setup_thread[i], pthread_self()));
        assert_false(pthread_equal(rep->setup_thread[i], runner_thread));
        for (unsigned j = 0; j < i; j++)
            assert_false(pthread_equal(rep->setup_thread[i], rep->setup_thread[j]));
        assert_int_equal(rep->open_at_teardown[i], 0);
    }
}

/* 32 connections one after another reach both of 2 workers; with the acceptor
 * exactly alternately. */
static void spread(unsigned flags)
{
    report rep;
    report_init(&rep);
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, flags, &who_worker_ops, &rep);
    assert_non_null(w);
    assert_int_equal(evc_workers_count(w), 2);
    runner r;
    runner_start(&r, w);
    int port = address_port(w);
    int served[2] = {0, 0};
    for (int i = 0; i < 32; i++) {
        unsigned index = ask_who(port, NULL);
        assert_true(index < 2);
        served[index]++;
    }
    evc_workers_stop(w);
    assert_int_equal(runner_join(&r), 0);
    assert_true(served[0] > 0);
    assert_true(served[1] > 0);
    if (flags == EVC_WORKERS_ACCEPTOR)
        assert_int_equal(served[0], served[1]);
    check_threads(&rep, 2, r.thread);
    evc_workers_free(w);
    pthread_mutex_destroy(&rep.lock);
}

static void test_reuseport_spreads(void **state)
{
    (void)state;
    spread(EVC_WORKERS_REUSEPORT);
}

static void test_acceptor_spreads(void **state)
{
    (void)state;
    spread(EVC_WORKERS_ACCEPTOR);
}

static void test_default_spreads(void **state)
{
    (void)state;
    spread(0);
}

static evc_workers *signalled;

/* Open file descriptors of this process. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* Connects and closes, again and again, until told to stop: new connections
 * arriving while the workers stop. */
typedef struct hammer {
    int port;
    int stop;
    pthread_t thread;
} hammer;

static void *hammer_thread(void *arg)
{
    hammer *h = arg;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (!__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
            (void)!send(fd, "who\n", 4, MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

static void stop_on_signal(int sig)
{
    (void)sig;
    evc_workers_stop(signalled);
}

/*
 * 16 clients each send 2 MiB of requests without reading the answers, so
 * every worker holds open chats with output queued, and another thread keeps
 * connecting; SIGTERM (whose handler calls evc_workers_stop) must close every
 * chat before each teardown, run must return, and no fd may be left open.
 */
static void stop_under_load(unsigned flags)
{
    int fds_before = open_fds();
    report rep;
    report_init(&rep);
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, flags, &who_worker_ops, &rep);
    assert_non_null(w);
    runner r;
    runner_start(&r, w);
    int port = address_port(w);
    enum { CLIENTS = 16 };
    int fds[CLIENTS];
    static char requests[64 * 1024];
    for (size_t i = 0; i < sizeof requests; i += 4)
        memcpy(requests + i, "who\n", 4);
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = evt_connect("127.0.0.1", port);
        evt_set_nonblock(fds[i]);
    }
    /* Feed until the server's answers back up (the sockets stop taking requests). */
    for (int round = 0; round < 32; round++)
        for (int i = 0; i < CLIENTS; i++)
            (void)!send(fds[i], requests, sizeof requests, MSG_NOSIGNAL);

    hammer h = {.port = port};
    assert_int_equal(pthread_create(&h.thread, NULL, hammer_thread, &h), 0);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);

    signalled = w;
    struct sigaction sa = {.sa_handler = stop_on_signal}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGTERM, &sa, &old), 0);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(runner_join(&r), 0);
    sigaction(SIGTERM, &old, NULL);
    signalled = NULL;
    __atomic_store_n(&h.stop, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(pthread_join(h.thread, NULL), 0);

    check_threads(&rep, 2, r.thread);
    for (int i = 0; i < CLIENTS; i++) {
        /* Closed by the server: reading drains what was sent, then EOF or a reset. */
        evt_fd_readable(fds[i]);
        char sink[65536];
        ssize_t n;
        while ((n = recv(fds[i], sink, sizeof sink, 0)) > 0 || (n < 0 && errno == EINTR))
            continue;
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
        close(fds[i]);
    }
    evc_workers_free(w);
    pthread_mutex_destroy(&rep.lock);
    /* Every connection accepted, queued for a worker or served was closed. */
    assert_int_equal(open_fds(), fds_before);
}

static void test_stop_under_load_reuseport(void **state)
{
    (void)state;
    stop_under_load(EVC_WORKERS_REUSEPORT);
}

static void test_stop_under_load_acceptor(void **state)
{
    (void)state;
    stop_under_load(EVC_WORKERS_ACCEPTOR);
}

/* A setup that fails stops every worker; run returns its error; teardown only
 * for the workers that were set up. */
static void test_failed_setup_stops_all(void **state)
{
    (void)state;
    report rep;
    report_init(&rep);
    rep.fail_setup_of = 1;
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 3, 0, &who_worker_ops, &rep);
    assert_non_null(w);
    assert_int_equal(evc_workers_run(w), -EIO);
    assert_int_equal(rep.setups, rep.teardowns);
    assert_true(rep.setups <= 2);
    assert_int_equal(evc_workers_run(w), -EBUSY);
    evc_workers_free(w);
    pthread_mutex_destroy(&rep.lock);
}

/* Stopped before it runs: run sets every worker up, tears it down, returns 0. */
static void test_stop_before_run(void **state)
{
    (void)state;
    report rep;
    report_init(&rep);
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, EVC_WORKERS_ACCEPTOR,
                                     &who_worker_ops, &rep);
    assert_non_null(w);
    evc_workers_stop(w);
    evc_workers_stop(w);
    assert_int_equal(evc_workers_run(w), 0);
    assert_int_equal(rep.setups, 2);
    assert_int_equal(rep.teardowns, 2);
    evc_workers_free(w);
    pthread_mutex_destroy(&rep.lock);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    report rep;
    report_init(&rep);
    const unsigned bad[] = {EVC_WORKERS_REUSEPORT | EVC_WORKERS_ACCEPTOR,
                            EVC_WORKERS_FORK | EVC_WORKERS_ACCEPTOR, 0x100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_null(evc_workers_new("127.0.0.1:0", 0, 2, bad[i], &who_worker_ops, &rep));
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_null(evc_workers_new(NULL, 0, 2, 0, &who_worker_ops, &rep));
    assert_int_equal(errno, EINVAL);
    assert_null(evc_workers_new("no port here", 0, 2, 0, &who_worker_ops, &rep));
    /* The port is taken: the listener fails, nothing is left behind. */
    struct sockaddr_in sin;
    int busy = evt_listener(&sin);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
    errno = 0;
    assert_null(evc_workers_new(addr, 0, 2, EVC_WORKERS_ACCEPTOR, &who_worker_ops, &rep));
    assert_int_equal(errno, EADDRINUSE);
    close(busy);
    /* n 0: one per online CPU. */
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 0, 0, &who_worker_ops, &rep);
    assert_non_null(w);
    assert_int_equal(evc_workers_count(w), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    evc_workers_free(w);
    pthread_mutex_destroy(&rep.lock);
}

/* A unix socket cannot be shared with SO_REUSEPORT: the workers share one
 * listener; it serves, and the path goes with evc_workers_free. */
static void test_unix_socket(void **state)
{
    (void)state;
    report rep;
    report_init(&rep);
    char path[64], addr[80];
    snprintf(path, sizeof path, "/tmp/evc-workers-%ld.sock", (long)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    evc_workers *w = evc_workers_new(addr, 0, 2, 0, &who_worker_ops, &rep);
    assert_non_null(w);
    runner r;
    runner_start(&r, w);
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
        assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
        evt_send_all(fd, "who\n", 4);
        char reply[64];
        size_t n = evt_recv_until(fd, reply, sizeof reply - 1, "\n");
        assert_true(n >= 2 && reply[n - 1] == '\n');
        close(fd);
    }
    evc_workers_stop(w);
    assert_int_equal(runner_join(&r), 0);
    assert_int_equal(rep.teardowns, 2);
    evc_workers_free(w);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    pthread_mutex_destroy(&rep.lock);
}

/* ---------------------------------------------------------------- processes */

/* The supervisor a failed assertion may leave running; its workers follow it
 * (they asked for SIGTERM when it dies). */
static pid_t test_supervisor;

static int kill_supervisor(void **state)
{
    (void)state;
    if (test_supervisor > 0) {
        kill(test_supervisor, SIGKILL);
        waitpid(test_supervisor, NULL, 0);
        test_supervisor = 0;
    }
    return 0;
}

static bool alive(long pid)
{
    return kill((pid_t)pid, 0) == 0;
}

/*
 * A supervisor with 2 worker processes, in a child of the test: both serve;
 * SIGKILL to one makes the supervisor fork a replacement for that slot;
 * SIGTERM to the supervisor stops both workers (each runs its teardown) and it
 * exits 0, leaving no process behind.
 */
static void test_fork_restarts_and_stops(void **state)
{
    (void)state;
    int addr_pipe[2], teardown_pipe[2];
    assert_int_equal(pipe(addr_pipe), 0);
    assert_int_equal(pipe(teardown_pipe), 0);
    fflush(NULL);
    pid_t supervisor = fork();
    assert_true(supervisor >= 0);
    test_supervisor = supervisor;
    if (supervisor == 0) {
        close(addr_pipe[0]);
        close(teardown_pipe[0]);
        report rep;
        report_init(&rep);
        rep.teardown_pipe = teardown_pipe[1];
        evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, EVC_WORKERS_FORK,
                                         &who_worker_ops, &rep);
        if (!w)
            _exit(3);
        signalled = w;
        struct sigaction sa = {.sa_handler = stop_on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        char text[EVC_ADDRSTRLEN];
        evc_workers_address(w, text, sizeof text);
        (void)!write(addr_pipe[1], text, strlen(text) + 1);
        close(addr_pipe[1]);
        int rc = evc_workers_run(w);
        evc_workers_free(w);
        _exit(rc == 0 ? 0 : 4);
    }
    close(addr_pipe[1]);
    close(teardown_pipe[1]);
    char text[EVC_ADDRSTRLEN] = "";
    assert_true(read(addr_pipe[0], text, sizeof text - 1) > 0);
    close(addr_pipe[0]);
    int port = atoi(strrchr(text, ':') + 1);

    long pids[2] = {0, 0};
    for (int i = 0; i < 200 && (!pids[0] || !pids[1]); i++) {
        long pid;
        unsigned index = ask_who(port, &pid);
        assert_true(index < 2);
        assert_true(pid != (long)getpid() && pid != (long)supervisor);
        pids[index] = pid;
    }
    assert_true(pids[0] && pids[1] && pids[0] != pids[1]);

    assert_int_equal(kill((pid_t)pids[0], SIGKILL), 0);
    long replacement = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        long pid;
        if (ask_who(port, &pid) == 0 && pid != pids[0])
            replacement = pid;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!replacement && now.tv_sec - start.tv_sec < 10);
    assert_true(replacement != 0);
    assert_false(alive(pids[0]));

    assert_int_equal(kill(supervisor, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(supervisor, &status, 0), supervisor);
    test_supervisor = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(alive(pids[1]));
    assert_false(alive(replacement));

    /* The two workers alive at the end each tore down; the killed one could not. */
    char log[64] = "";
    size_t got = 0;
    ssize_t n;
    while ((n = read(teardown_pipe[0], log + got, sizeof log - 1 - got)) > 0)
        got += (size_t)n;
    close(teardown_pipe[0]);
    log[got] = '\0';
    assert_non_null(strstr(log, "T0\n"));
    assert_non_null(strstr(log, "T1\n"));
    assert_int_equal(got, 6);
}

static int failing_setup(struct ev_loop *loop, unsigned index, void *data, void **worker_data)
{
    (void)loop, (void)index, (void)worker_data;
    const int *log_fd = data;
    (void)!write(*log_fd, "S", 1);
    return -EIO;
}

static const struct evc_worker_ops crashing_ops = {
    .setup = failing_setup,
};

/* A worker process that dies at once is restarted at most once a second:
 * in the 1.5 s after its first start one slot starts once more (twice at the
 * most on a slow machine), not hundreds of times. */
static void test_fork_restart_is_rate_limited(void **state)
{
    (void)state;
    int log[2];
    assert_int_equal(pipe(log), 0);
    fflush(NULL);
    pid_t supervisor = fork();
    assert_true(supervisor >= 0);
    test_supervisor = supervisor;
    if (supervisor == 0) {
        close(log[0]);
        evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 1, EVC_WORKERS_FORK, &crashing_ops,
                                         &log[1]);
        if (!w)
            _exit(3);
        signalled = w;
        struct sigaction sa = {.sa_handler = stop_on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        int rc = evc_workers_run(w);
        evc_workers_free(w);
        _exit(rc == 0 ? 0 : 4);
    }
    close(log[1]);
    /* From the first start on: the second follows a second later. */
    char first;
    assert_int_equal(read(log[0], &first, 1), 1);
    struct timespec wait = {1, 500000000};
    while (nanosleep(&wait, &wait) < 0 && errno == EINTR)
        continue;
    assert_int_equal(kill(supervisor, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(supervisor, &status, 0), supervisor);
    test_supervisor = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char starts[256];
    size_t got = 1;
    ssize_t n;
    while ((n = read(log[0], starts + got, sizeof starts - got)) > 0)
        got += (size_t)n;
    close(log[0]);
    assert_true(got >= 2);
    assert_true(got <= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuseport_spreads),
        cmocka_unit_test(test_acceptor_spreads),
        cmocka_unit_test(test_default_spreads),
        cmocka_unit_test(test_stop_under_load_reuseport),
        cmocka_unit_test(test_stop_under_load_acceptor),
        cmocka_unit_test(test_failed_setup_stops_all),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test_teardown(test_fork_restarts_and_stops, kill_supervisor),
        cmocka_unit_test_teardown(test_fork_restart_is_rate_limited, kill_supervisor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
