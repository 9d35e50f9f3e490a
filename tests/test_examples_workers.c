/*
 * The example servers with worker loops: -w 2 (threads) on echo_server,
 * time_server, http_server and resp_server, and -W 2 (processes) on
 * echo_server and time_server, each answers several connections, really runs
 * its workers (threads in the process, or child processes), and exits 0 on
 * SIGTERM leaving no worker process behind.
 */
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A field ("Threads:") of /proc/PID/status, or -1. */
static int proc_status_field(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int value = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            value = atoi(line + strlen(field));
    fclose(f);
    return value;
}

/* The children of pid, from /proc (up to cap); -1 when the kernel does not say. */
static int children_of(pid_t pid, pid_t *out, int cap)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    long child;
    while (n < cap && fscanf(f, "%ld", &child) == 1)
        out[n++] = (pid_t)child;
    fclose(f);
    return n;
}

/* Sends request on a fresh connection and reads until the reply ends with `until`
 * (or the server closes); the reply must start with `expect`. */
static void round_trip(const evt_proc *p, const char *request, const char *expect,
                       const char *until)
{
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, request, strlen(request));
    char reply[4096];
    size_t n = until ? evt_recv_until(fd, reply, sizeof reply - 1, until)
                     : evt_recv_all(fd, reply, sizeof reply - 1);
    reply[n] = '\0';
    close(fd);
    if (strncmp(reply, expect, strlen(expect)) != 0)
        fail_msg("expected '%s', got '%s'", expect, reply);
}

/* The server under test, stopped by the teardown if an assertion left it running. */
static evt_proc server;

static int stop_leftover(void **state)
{
    (void)state;
    if (server.pid > 0)
        evt_stop_server(&server, SIGKILL);
    server.pid = 0;
    return 0;
}

static void serve_with_workers(const char *name, const char *option, const char *request,
                               const char *expect, const char *until)
{
    const char *args[] = {option, "2", NULL};
    evt_proc *p = &server;
    evt_spawn_server(p, name, args);
    for (int i = 0; i < 8; i++)
        round_trip(p, request, expect, until);
    pid_t kids[8];
    int nkids = children_of(p->pid, kids, 8);
    if (strcmp(option, "-w") == 0 || strcmp(option, "--workers") == 0) {
        /* main + 2 workers (a sanitizer may add a thread of its own) */
        int threads = proc_status_field(p->pid, "Threads:");
        assert_true(threads >= 3 && threads <= 4);
        assert_true(nkids <= 0);
    } else if (nkids >= 0) {
        assert_int_equal(nkids, 2);
    }
    int status = evt_stop_server(p, SIGTERM);
    p->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int i = 0; i < nkids; i++)
        assert_int_equal(kill(kids[i], 0), -1);
}

static void echo_server_threads(void **state)
{
    (void)state;
    serve_with_workers("echo_server", "-w", "hello\nbye\n", "hello\n", NULL);
}

static void echo_server_processes(void **state)
{
    (void)state;
    serve_with_workers("echo_server", "-W", "hello\nbye\n", "hello\n", NULL);
}

static void time_server_threads(void **state)
{
    (void)state;
    serve_with_workers("time_server", "-w", "hi\r\n\r\n", "", "\r\n");
}

static void time_server_processes(void **state)
{
    (void)state;
    serve_with_workers("time_server", "--fork", "hi\r\n\r\n", "", "\r\n");
}

static void http_server_threads(void **state)
{
    (void)state;
    serve_with_workers("http_server", "-w",
                       "GET /no-such-file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                       "HTTP/1.1 404", NULL);
}

static void resp_server_threads(void **state)
{
    (void)state;
    serve_with_workers("resp_server", "--workers", "PING\r\n", "+PONG\r\n", "\r\n");
}

static void bad_worker_count_exits_2(void **state)
{
    (void)state;
    const char *args[] = {"-w", "lots", NULL};
    int status = evt_run_example("time_server", args, NULL, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
}

/* The programs that serve from one loop (or are clients) refuse -w and -W rather
 * than ignore them; and --backend does not go with workers, which pick their own. */
static void one_loop_programs_refuse_workers(void **state)
{
    (void)state;
    static const char *const programs[] = {
        "upper_server", "chat_room", "file_server", "writable_time_server", "udp_echo",
        "blocking_echo", "echo_client", "time_client",
    };
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        for (int fork_them = 0; fork_them < 2; fork_them++) {
            char out[1024];
            const char *args[] = {fork_them ? "-W" : "-w", "2", "-p", "1", NULL};
            int status = evt_run_example(programs[i], args, out, sizeof out);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || !strstr(out, "serves from one loop"))
                fail_msg("%s %s 2: status %d, said: %s", programs[i], args[0], status, out);
        }
    }
    char out[1024];
    const char *args[] = {"-w", "2", "--backend", "poll", "-p", "0", NULL};
    int status = evt_run_example("time_server", args, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(out, "--backend"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_loop_programs_refuse_workers),
        cmocka_unit_test_teardown(echo_server_threads, stop_leftover),
        cmocka_unit_test_teardown(echo_server_processes, stop_leftover),
        cmocka_unit_test_teardown(time_server_threads, stop_leftover),
        cmocka_unit_test_teardown(time_server_processes, stop_leftover),
        cmocka_unit_test_teardown(http_server_threads, stop_leftover),
        cmocka_unit_test_teardown(resp_server_threads, stop_leftover),
        cmocka_unit_test(bad_worker_count_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
