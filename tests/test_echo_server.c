/*
 * Integration tests of examples/echo_server and examples/echo_client: real
 * processes over loopback and unix sockets.  Every server test ends with
 * SIGTERM and requires exit status 0, so each also proves the server survived
 * (and, under ASan, freed everything after) what the test did to it.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NCLIENTS 20
#define ROUNDS 10
#define MIB (1024 * 1024)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static int setup_server(void **state)
{
    evt_proc *p = calloc(1, sizeof *p);
    evt_spawn_server(p, "echo_server", NULL);
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

/* A server a test starts itself (with its own arguments or signal): the teardown
 * stops it, and removes its unix socket file, if an assertion ended the test first. */
typedef struct own_server {
    evt_proc p;
    char path[108];      /* a unix socket path to remove, or "" */
} own_server;

static int setup_own_server(void **state)
{
    own_server *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    o->p.pid = -1;
    o->p.out_fd = -1;
    *state = o;
    return 0;
}

static int teardown_own_server(void **state)
{
    own_server *o = *state;
    if (o->p.pid > 0)
        evt_stop_server(&o->p, SIGKILL);
    if (o->path[0] != '\0')
        unlink(o->path);
    free(o);
    return 0;
}

/* Receives exactly len bytes (the socket timeout bounds it) and compares them. */
static void expect_bytes(int fd, const void *want, size_t len)
{
    char *got = malloc(len ? len : 1);
    assert_non_null(got);
    size_t n = 0;
    while (n < len) {
        ssize_t r = recv(fd, got + n, len - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    if (n != len)
        fail_msg("received %zu bytes, wanted %zu", n, len);
    assert_memory_equal(got, want, len);
    free(got);
}

static void round_trip(int fd, const char *text)
{
    evt_send_all(fd, text, strlen(text));
    expect_bytes(fd, text, strlen(text));
}

/* Reads to EOF and expects exactly `want` before it. */
static void expect_then_eof(int fd, const char *want)
{
    char got[256];
    size_t n = evt_recv_all(fd, got, sizeof got);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(got, want, n);
    /* evt_recv_all stops at EOF or the timeout: tell them apart. */
    char extra;
    assert_int_equal(recv(fd, &extra, 1, MSG_DONTWAIT), 0);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* echo_server                                                         */
/* ------------------------------------------------------------------ */

static void one_client_round_trip(void **state)
{
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    round_trip(fd, "hello, echo\n");
    round_trip(fd, "no newline, any bytes: \x01\x02\xff");
    close(fd);
}

static void message_for(char *buf, size_t cap, int client, int round)
{
    /* Lengths differ per client and round, so a swapped reply cannot match. */
    snprintf(buf, cap, "client %d round %d %.*s\n", client, round, (client * 7 + round) % 40,
             "........................................");
}

static void concurrent_clients_get_their_own_bytes(void **state)
{
    const evt_proc *p = *state;
    int fds[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        fds[i] = evt_connect(p->host, p->port);
    /* Every client sends every round before anyone reads: the server sees
     * their bytes interleaved. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NCLIENTS; i++) {
            int k = (i * 7 + r * 3) % NCLIENTS;   /* a different order each round */
            char msg[128];
            message_for(msg, sizeof msg, k, r);
            evt_send_all(fds[k], msg, strlen(msg));
        }
    }
    for (int i = NCLIENTS - 1; i >= 0; i--) {
        char want[ROUNDS * 128] = "";
        for (int r = 0; r < ROUNDS; r++) {
            char msg[128];
            message_for(msg, sizeof msg, i, r);
            strcat(want, msg);
        }
        expect_bytes(fds[i], want, strlen(want));
    }
    for (int i = 0; i < NCLIENTS; i++)
        close(fds[i]);
}

static void bye_closes_only_that_client(void **state)
{
    const evt_proc *p = *state;
    int a = evt_connect(p->host, p->port);
    int b = evt_connect(p->host, p->port);
    int c = evt_connect(p->host, p->port);
    round_trip(a, "a1\n");
    round_trip(b, "b1\n");
    /* What comes before BYE is echoed, BYE is not, then the server closes;
     * bytes after it are dropped. */
    const char *bye = "last words\nBYE\r\nignored\n";
    evt_send_all(b, bye, strlen(bye));
    expect_then_eof(b, "last words\n");
    /* Any case, and a whole message without a newline counts too. */
    evt_send_all(c, "bye", 3);
    expect_then_eof(c, "");
    /* Not BYE: longer lines, or BYE inside a line. */
    round_trip(a, "byebye\nBYE!\n BYE\nsay BYE\n");
    round_trip(a, "a2\n");
    int d = evt_connect(p->host, p->port);
    round_trip(d, "d1\n");
    close(a);
    close(b);
    close(c);
    close(d);
}

/* True when nothing arrives on fd within 200 ms: the server is holding bytes back. */
static bool nothing_arrives(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 200) == 0;
}

static void bye_split_across_reads_is_never_echoed(void **state)
{
    const evt_proc *p = *state;
    /* The start of a line that may become BYE waits for the rest of its line. */
    int a = evt_connect(p->host, p->port);
    evt_send_all(a, "hi\nBY", 5);
    expect_bytes(a, "hi\n", 3);
    assert_true(nothing_arrives(a));
    evt_send_all(a, "e\r\n", 3);
    expect_then_eof(a, "");
    close(a);
    /* A line that turns out not to be BYE is echoed whole. */
    int b = evt_connect(p->host, p->port);
    evt_send_all(b, "by", 2);
    assert_true(nothing_arrives(b));
    evt_send_all(b, "e!\n", 3);
    expect_bytes(b, "bye!\n", 5);
    /* At the client's EOF a held line start can no longer become BYE: it is sent. */
    evt_send_all(b, "x\nBYE", 5);
    expect_bytes(b, "x\n", 2);
    assert_true(nothing_arrives(b));
    shutdown(b, SHUT_WR);
    expect_then_eof(b, "BYE");
    close(b);
}

static void reset_client_does_not_disturb_the_others(void **state)
{
    const evt_proc *p = *state;
    int a = evt_connect(p->host, p->port);
    int b = evt_connect(p->host, p->port);
    round_trip(b, "before\n");
    /* a leaves echoes pending (it never reads), then resets. */
    static char junk[200 * 1024];
    memset(junk, 'j', sizeof junk);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    (void)send(a, junk, sizeof junk, MSG_NOSIGNAL);
    evt_close_reset(a);
    round_trip(b, "after\n");
    int c = evt_connect(p->host, p->port);
    round_trip(c, "new client\n");
    close(b);
    close(c);
}

/* Sends len bytes of a pattern while reading the echo; returns bytes echoed
 * correctly before the deadline. */
static size_t pump_pattern(int fd, size_t len, double seconds)
{
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    size_t sent = 0, got = 0;
    double deadline = now_seconds() + seconds;
    char chunk[65536];
    while (got < len && now_seconds() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && sent < len) {
            size_t k = len - sent < sizeof chunk ? len - sent : sizeof chunk;
            for (size_t i = 0; i < k; i++)
                chunk[i] = (char)((sent + i) * 31 % 251);
            ssize_t n = send(fd, chunk, k, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break;
            for (ssize_t i = 0; i < n; i++, got++)
                if (chunk[i] != (char)(got * 31 % 251))
                    fail_msg("echo differs at byte %zu", got);
        }
    }
    fcntl(fd, F_SETFL, flags);
    return got;
}

static void one_mib_is_echoed_whole(void **state)
{
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    assert_int_equal(pump_pattern(fd, MIB, 20.0), MIB);
    round_trip(fd, "still there\n");
    close(fd);
}

/* A client that sends and never reads: the server stops reading it, so the
 * client soon cannot send more, and the server's memory does not grow. */
static void client_that_never_reads_is_bounded(void **state)
{
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char junk[65536];
    memset(junk, 'x', sizeof junk);
    size_t sent = 0;
    const size_t limit = 64u * MIB;
    double deadline = now_seconds() + 10.0;
    while (sent < limit && now_seconds() < deadline) {
        ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 500) == 0)
            break;   /* stuck for half a second: the server stopped reading */
    }
    /* Kernel socket buffers hold some megabytes; the server must not hold the rest. */
    if (sent >= limit)
        fail_msg("the server read %zu bytes from a client that never reads", sent);
    int other = evt_connect(p->host, p->port);
    round_trip(other, "unaffected\n");
    close(other);
    evt_close_reset(fd);
}

static void sigint_also_exits_zero_with_clients_connected(void **state)
{
    own_server *o = *state;
    evt_proc *p = &o->p;
    evt_spawn_server(p, "echo_server", NULL);
    int idle = evt_connect(p->host, p->port);
    int busy = evt_connect(p->host, p->port);
    round_trip(busy, "x\n");
    evt_send_all(busy, "pending\n", 8);
    int status = evt_stop_server(p, SIGINT);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(idle);
    close(busy);
}

static void unix_socket(void **state)
{
    own_server *o = *state;
    char *path = o->path, bind_arg[120];
    snprintf(path, sizeof o->path, "/tmp/evc-echo-test-%d.sock", (int)getpid());
    snprintf(bind_arg, sizeof bind_arg, "unix:%s", path);
    unlink(path);
    const char *args[] = {"-b", bind_arg, NULL};
    evt_proc *p = &o->p;
    evt_spawn_server(p, "echo_server", args);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    round_trip(fd, "over a unix socket\n");
    evt_send_all(fd, "BYE\n", 4);
    expect_then_eof(fd, "");
    close(fd);

    int status = evt_stop_server(p, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The server removes the socket file it created. */
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
}

/* A script or test that reads "listening on" may stop the server at once:
 * the signal must already be caught then, never fatal.  Every server that
 * prints the line, a few times each, since the window is short. */
static void sigterm_right_after_listening_exits_zero(void **state)
{
    (void)state;
    static const char *const servers[] = {"echo_server", "time_server", "udp_echo",
                                          "writable_time_server", "file_server"};
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
        for (int round = 0; round < 20; round++) {
            evt_proc p;
            evt_spawn_server(&p, servers[i], NULL);
            int status = evt_stop_server(&p, SIGTERM);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("%s: status %#x after SIGTERM in round %d", servers[i], status, round);
        }
    }
}

static void help_exits_zero(void **state)
{
    (void)state;
    const char *names[] = {"echo_server", "echo_client"};
    for (size_t i = 0; i < 2; i++) {
        char out[2048];
        const char *args[] = {"--help", NULL};
        int status = evt_run_example(names[i], args, out, sizeof out);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_non_null(strstr(out, "usage:"));
        assert_non_null(strstr(out, "-p"));
    }
}

static void bad_port_exits_2(void **state)
{
    (void)state;
    const char *bad[] = {"70000", "-1", "abc", "80x"};
    for (size_t i = 0; i < 4; i++) {
        char out[1024];
        const char *args[] = {"-p", bad[i], NULL};
        int status = evt_run_example("echo_server", args, out, sizeof out);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
        assert_null(strstr(out, "listening on"));
    }
}

/* ------------------------------------------------------------------ */
/* echo_client                                                         */
/* ------------------------------------------------------------------ */

/* Reads until the output holds want (or 10 s pass); asserts it then equals want. */
static void expect_output(evt_child *c, const char *want)
{
    char buf[1024];
    size_t n = 0, len = strlen(want);
    double deadline = now_seconds() + 10.0;
    while (n < len && now_seconds() < deadline) {
        struct pollfd pfd = {.fd = c->from_stdout, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(c->from_stdout, buf + n, len - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void spawn_echo_client(evt_child *c, const char *host, int port)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    const char *args[] = {"-b", host, "-p", port_text, NULL};
    evt_spawn_client(c, "echo_client", args, true);
}

static void echo_client_prints_replies_and_ends_after_bye(void **state)
{
    const evt_proc *p = *state;
    evt_child c;
    spawn_echo_client(&c, p->host, p->port);
    evt_type(&c, "hello\n");
    expect_output(&c, "hello\n");
    evt_type(&c, "two\nlines\n");
    expect_output(&c, "two\nlines\n");
    /* BYE goes out, the server closes without echoing it, and the client
     * ends without its stdin being closed. */
    evt_type(&c, "Bye\n");
    char rest[256];
    evt_read_child(&c, rest, sizeof rest);
    assert_string_equal(rest, "");
    int status = evt_wait_child(&c);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void echo_client_ends_after_the_replies_at_end_of_input(void **state)
{
    const evt_proc *p = *state;
    evt_child c;
    spawn_echo_client(&c, p->host, p->port);
    evt_type(&c, "first\nsecond\nno newline at the end");
    close(c.to_stdin);
    c.to_stdin = -1;
    char out[256];
    evt_read_child(&c, out, sizeof out);
    assert_string_equal(out, "first\nsecond\nno newline at the end");
    int status = evt_wait_child(&c);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void echo_client_fails_when_it_cannot_connect(void **state)
{
    (void)state;
    /* A port that was free a moment ago: nobody listens there. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(probe, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&sin, &len), 0);
    close(probe);

    evt_child c;
    spawn_echo_client(&c, "127.0.0.1", ntohs(sin.sin_port));
    char out[512];
    evt_read_child(&c, out, sizeof out);
    int status = evt_wait_child(&c);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(out, "cannot connect"));
}

int main(void)
{
    /* Writing to a client that has already exited must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
#define WITH_SERVER(t) cmocka_unit_test_setup_teardown(t, setup_server, teardown_server)
    const struct CMUnitTest tests[] = {
        WITH_SERVER(one_client_round_trip),
        WITH_SERVER(concurrent_clients_get_their_own_bytes),
        WITH_SERVER(bye_closes_only_that_client),
        WITH_SERVER(bye_split_across_reads_is_never_echoed),
        WITH_SERVER(reset_client_does_not_disturb_the_others),
        WITH_SERVER(one_mib_is_echoed_whole),
        WITH_SERVER(client_that_never_reads_is_bounded),
        cmocka_unit_test_setup_teardown(sigint_also_exits_zero_with_clients_connected,
                                        setup_own_server, teardown_own_server),
        cmocka_unit_test_setup_teardown(unix_socket, setup_own_server, teardown_own_server),
        cmocka_unit_test(sigterm_right_after_listening_exits_zero),
        cmocka_unit_test(help_exits_zero),
        cmocka_unit_test(bad_port_exits_2),
        WITH_SERVER(echo_client_prints_replies_and_ends_after_bye),
        WITH_SERVER(echo_client_ends_after_the_replies_at_end_of_input),
        cmocka_unit_test(echo_client_fails_when_it_cannot_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
