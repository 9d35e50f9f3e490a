/*
 * Tests of worker processes (evc_workers with EVC_WORKERS_FORK): the
 * supervisor restarts a worker that was killed, but a worker that keeps dying
 * only once a second, and stops all of them on SIGTERM, each running its
 * teardown, leaving no process behind.
 */
#include "workers_who.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
        who_report_init(&rep);
        rep.teardown_pipe = teardown_pipe[1];
        evc_workers *w = evc_workers_new("127.0.0.1:0", 0, 2, EVC_WORKERS_FORK,
                                         &who_worker_ops, &rep);
        if (!w)
            _exit(3);
        who_signalled = w;
        struct sigaction sa = {.sa_handler = who_stop_on_signal};
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
        unsigned index = who_ask(port, &pid);
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
        if (who_ask(port, &pid) == 0 && pid != pids[0])
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
        who_signalled = w;
        struct sigaction sa = {.sa_handler = who_stop_on_signal};
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
        cmocka_unit_test_teardown(test_fork_restarts_and_stops, kill_supervisor),
        cmocka_unit_test_teardown(test_fork_restart_is_rate_limited, kill_supervisor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
