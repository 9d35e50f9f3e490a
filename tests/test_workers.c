/*
 * Tests of worker loops on threads (evc_workers): connections really spread
 * over the workers, with either distribution; setup and teardown run once per
 * worker on that worker's own thread; a stop (from a signal handler too) while
 * clients hold connections with unsent output and others keep connecting
 * closes every chat before teardown, joins, and leaves no fd open; a failing
 * setup stops everything.  The processes are in test_workers_fork.c.
 */
#include "workers_who.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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

/* Each worker was set up and torn down once, on a thread of its own (neither
 * the test's nor run's), with its chats all gone by its teardown. */
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
    who_report_init(&rep);
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, flags, &who_worker_ops, &rep);
    assert_non_null(w);
    assert_int_equal(evc_workers_count(w), 2);
    runner r;
    runner_start(&r, w);
    int port = who_address_port(w);
    int served[2] = {0, 0};
    for (int i = 0; i < 32; i++) {
        unsigned index = who_ask(port, NULL);
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
    who_report_init(&rep);
    evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, flags, &who_worker_ops, &rep);
    assert_non_null(w);
    runner r;
    runner_start(&r, w);
    int port = who_address_port(w);
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

    who_signalled = w;
    struct sigaction sa = {.sa_handler = who_stop_on_signal}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGTERM, &sa, &old), 0);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(runner_join(&r), 0);
    sigaction(SIGTERM, &old, NULL);
    who_signalled = NULL;
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
    who_report_init(&rep);
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
    who_report_init(&rep);
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
    who_report_init(&rep);
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
    who_report_init(&rep);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
