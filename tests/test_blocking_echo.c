/*
 * Integration tests of examples/blocking_echo: a client whose handler blocks
 * ("sleep N" on the pool) does not stall another client, which is answered
 * meanwhile; one client's lines are answered in order; a client that leaves
 * while its handler sleeps costs the server nothing; SIGTERM exits 0.
 */
#include "support.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup_server(void **state)
{
    evt_proc *p = calloc(1, sizeof *p);
    evt_spawn_server(p, "blocking_echo", NULL);
    *state = p;
    return 0;
}

static int teardown_server(void **state)
{
    evt_proc *p = *state;
    int status = evt_stop_server(p, SIGTERM);
    free(p);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* While one client's handler sleeps 2 s, another client is echoed at once. */
static void test_other_client_served_while_one_blocks(void **state)
{
    evt_proc *p = *state;
    int sleeper = evt_connect(p->host, p->port);
    double start = now();
    evt_send_all(sleeper, "sleep 2\n", 8);
    usleep(100 * 1000);     /* the sleeper's handler is blocking now */
    int other = evt_connect(p->host, p->port);
    evt_send_all(other, "hello\n", 6);
    char buf[64];
    size_t n = evt_recv_until(other, buf, sizeof buf, "\n");
    double other_answered = now() - start;
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "hello\n", 6);
    assert_true(other_answered < 1.5);
    n = evt_recv_until(sleeper, buf, sizeof buf, "\n");
    double sleeper_answered = now() - start;
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "slept 2\n", 8);
    assert_true(sleeper_answered >= 1.9);
    close(other);
    close(sleeper);
}

/* A client's lines are handled one at a time, in order, like one handler thread. */
static void test_lines_answered_in_order(void **state)
{
    evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    const char *lines = "first\r\nsleep 1\nlast\nsleep 0x\n";
    evt_send_all(fd, lines, strlen(lines));
    const char *want = "first\nslept 1\nlast\nsleep 0x\n";
    char buf[128];
    size_t n = evt_recv_until(fd, buf, sizeof buf, "0x\n");
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    close(fd);
}

/* A client that leaves while its handler sleeps: the answer is dropped, the server goes on. */
static void test_client_leaves_while_handler_blocks(void **state)
{
    evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, "sleep 1\n", 8);
    usleep(100 * 1000);
    evt_close_reset(fd);
    usleep(1200 * 1000);
    int again = evt_connect(p->host, p->port);
    evt_send_all(again, "still here\n", 11);
    char buf[32];
    size_t n = evt_recv_until(again, buf, sizeof buf, "\n");
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "still here\n", 11);
    close(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_client_served_while_one_blocks, setup_server,
                                        teardown_server),
        cmocka_unit_test_setup_teardown(test_lines_answered_in_order, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_client_leaves_while_handler_blocks, setup_server,
                                        teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
