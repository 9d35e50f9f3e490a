/*
 * Integration tests of the demo: examples/time_server and examples/time_client
 * run as real processes and are talked to over loopback sockets.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <arpa/inet.h>

/* A reply is one ctime() line ending in CRLF, then the server closes. */
static void assert_time_reply(const char *reply, size_t len)
{
    assert_int_equal(len, 26);
    assert_memory_equal(reply + 24, "\r\n", 2);
    char text[32];
    memcpy(text, reply, 24);
    text[24] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(text, "%a %b %d %H:%M:%S %Y", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
}

static int setup_server(void **state)
{
    evt_proc *p = calloc(1, sizeof *p);
    const char *args[] = {"2", NULL};   /* idle timeout: 2 s */
    evt_spawn_server(p, "time_server", args);
    *state = p;
    return 0;
}

static int teardown_server(void **state)
{
    evt_proc *p = *state;
    int status = evt_stop_server(p, SIGTERM);
    free(p);
    /* Every test also proves the server survived what the test did to it. */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void ask_time(const evt_proc *p, const char *request)
{
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, request, strlen(request));
    char reply[128];
    size_t n = evt_recv_all(fd, reply, sizeof reply);
    assert_time_reply(reply, n);
    close(fd);
}

static void one_client(void **state)
{
    ask_time(*state, "hi\r\n\r\n");
}

static void data_before_the_blank_line(void **state)
{
    ask_time(*state, "GET /time HTTP/1.0\r\nHost: example\r\nX-Long: aaaaaaaaaaaaaaaa\r\n\r\n");
}

static void request_split_across_writes_with_pauses(void **state)
{
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    const char *request = "hello\r\nworld\r\n\r\n";
    for (const char *c = request; *c; c++) {
        evt_send_all(fd, c, 1);
        usleep(5000);
    }
    char reply[128];
    assert_time_reply(reply, evt_recv_all(fd, reply, sizeof reply));
    close(fd);
}

static void two_hundred_concurrent_clients(void **state)
{
    const evt_proc *p = *state;
    enum { CLIENTS = 200 };
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = evt_connect(p->host, p->port);
    /* Everybody's request is in before anybody reads a reply. */
    for (int i = 0; i < CLIENTS; i++)
        evt_send_all(fds[i], "time?\r\n\r\n", 9);
    for (int i = 0; i < CLIENTS; i++) {
        char reply[128];
        assert_time_reply(reply, evt_recv_all(fds[i], reply, sizeof reply));
        close(fds[i]);
    }
}

static void pipelined_requests_get_one_reply(void **state)
{
    /* close_when_done: the first request is answered, then the channel closes,
     * and the second request in the same read gets no callback. */
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, "a\r\n\r\nb\r\n\r\n", 10);
    char reply[128];
    assert_time_reply(reply, evt_recv_all(fd, reply, sizeof reply));
    close(fd);
}

static void silent_client_is_timed_out_while_others_are_served(void **state)
{
    const evt_proc *p = *state;
    int silent = evt_connect(p->host, p->port);
    evt_send_all(silent, "no blank line\r\n", 15);
    ask_time(p, "meanwhile\r\n\r\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char reply[128];
    size_t n = evt_recv_all(silent, reply, sizeof reply);   /* EOF after the idle timeout */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(n, 0);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(waited > 1.0 && waited < 6.0);
    close(silent);
}

static void client_that_disconnects_mid_request(void **state)
{
    const evt_proc *p = *state;
    int quitter = evt_connect(p->host, p->port);
    evt_send_all(quitter, "half a req", 10);
    close(quitter);
    int resetter = evt_connect(p->host, p->port);
    evt_send_all(resetter, "half\r\n", 6);
    evt_close_reset(resetter);
    ask_time(p, "still there?\r\n\r\n");
}

static void time_client_prints_the_time(void **state)
{
    const evt_proc *p = *state;
    char path[512], port[16];
    evt_example_path("time_client", path, sizeof path);
    snprintf(port, sizeof port, "%d", p->port);
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execl(path, path, "-b", p->host, "-p", port, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[128];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof line && (r = read(out[0], line + n, sizeof line - n)) > 0)
        n += (size_t)r;
    close(out[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(n, 25);            /* the ctime text and a newline */
    line[24] = '\r';
    line[25] = '\n';
    assert_time_reply(line, 26);
}

/* The exit code of an example run to completion (it must exit, not die). */
static int run_program(const char *name, const char *const *args)
{
    int status = evt_run_example(name, args, NULL, 0);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void time_client_fails_cleanly_when_nobody_listens(void **state)
{
    (void)state;
    /* A port that was just free: bind, read it back, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sin.sin_port));
    const char *args[] = {"-p", port, NULL};
    assert_int_equal(run_program("time_client", args), 1);
}

static void help_and_bad_options(void **state)
{
    (void)state;
    const char *help[] = {"--help", NULL};
    assert_int_equal(run_program("time_server", help), 0);
    assert_int_equal(run_program("time_client", help), 0);
    const char *bad_port[] = {"-p", "70000", NULL};
    assert_int_equal(run_program("time_server", bad_port), 2);
    const char *bad_option[] = {"--nonsense", NULL};
    assert_int_equal(run_program("time_server", bad_option), 2);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The timeout operand is a plain number of seconds; anything else is a usage error. */
static void timeout_operand_is_strict(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "nan", "inf", "-1", "", "2x", "0x10", "1e3", " 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"-p", "0", bad[i], NULL};
        if (run_program("time_server", args) != 2)
            fail_msg("time_server accepted the timeout '%s'", bad[i]);
    }
}

/* With a timeout of 2 s, a client sending one byte a second (which keeps pushing
 * the idle timeout back) is closed about 2 s after its first byte, by the frame
 * deadline; a client that talks normally meanwhile is still answered. */
static void trickler_is_closed_by_the_frame_deadline(void **state)
{
    evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    double start = now_seconds();
    double closed_after = -1;
    for (int i = 0; i < 8 && closed_after < 0; i++) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
            closed_after = now_seconds() - start;
            break;
        }
        if (i == 1)
            ask_time(p, "hi\r\n\r\n");
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        double until = start + i + 1;
        int ms;
        while (closed_after < 0 && (ms = (int)((until - now_seconds()) * 1000)) > 0) {
            if (poll(&pfd, 1, ms) == 1) {
                char c;
                if (recv(fd, &c, 1, 0) <= 0)
                    closed_after = now_seconds() - start;
            }
        }
    }
    close(fd);
    if (closed_after < 0)
        fail_msg("a trickling client was still open after 8 s");
    if (closed_after < 1.5 || closed_after > 3.2)
        fail_msg("a trickling client was closed after %.2f s, not about 2 s", closed_after);
}

static void sigint_exits_cleanly(void **state)
{
    (void)state;
    evt_proc p;
    evt_spawn_server(&p, "time_server", NULL);
    ask_time(&p, "x\r\n\r\n");
    int status = evt_stop_server(&p, SIGINT);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void serves_a_unix_socket(void **state)
{
    (void)state;
    char path[108], bind_arg[120];
    snprintf(path, sizeof path, "/tmp/evc-time-%d.sock", (int)getpid());
    snprintf(bind_arg, sizeof bind_arg, "unix:%s", path);
    const char *args[] = {"-b", bind_arg, NULL};
    evt_proc p;
    evt_spawn_server(&p, "time_server", args);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    evt_send_all(fd, "hi\r\n\r\n", 6);
    char reply[128];
    assert_time_reply(reply, evt_recv_all(fd, reply, sizeof reply));
    close(fd);
    int status = evt_stop_server(&p, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(access(path, F_OK), -1);   /* the socket file is removed */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_client, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(data_before_the_blank_line, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(request_split_across_writes_with_pauses, setup_server,
                                        teardown_server),
        cmocka_unit_test_setup_teardown(two_hundred_concurrent_clients, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(pipelined_requests_get_one_reply, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(silent_client_is_timed_out_while_others_are_served,
                                        setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(client_that_disconnects_mid_request, setup_server,
                                        teardown_server),
        cmocka_unit_test_setup_teardown(time_client_prints_the_time, setup_server, teardown_server),
        cmocka_unit_test(time_client_fails_cleanly_when_nobody_listens),
        cmocka_unit_test(help_and_bad_options),
        cmocka_unit_test(timeout_operand_is_strict),
        cmocka_unit_test_setup_teardown(trickler_is_closed_by_the_frame_deadline, setup_server,
                                        teardown_server),
        cmocka_unit_test(sigint_exits_cleanly),
        cmocka_unit_test(serves_a_unix_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
