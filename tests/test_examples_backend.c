/*
 * Integration tests of the examples' --backend select|poll|epoll and -v: the
 * loop really runs on the backend asked for (a server and a client each do a
 * round trip on it, and -v names it), and every example program refuses a
 * backend it does not know with exit status 2.
 */
#include "support.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every example program: each one runs a loop, so each takes --backend. */
static const char *const programs[] = {
    "chat_client", "chat_room", "echo_client", "echo_server", "file_client", "file_server",
    "http_get", "http_server", "resp_server", "smtp_sink", "time_client", "time_server",
    "udp_echo", "udp_echo_client", "upper_server", "writable_time_server",
};

/* Reads the child's output until it holds a whole line starting with prefix
 * (10 s at most); NUL-terminated.  Returns that line, or NULL. */
static const char *read_line_with(evt_child *c, char *buf, size_t cap, const char *prefix)
{
    size_t n = 0;
    buf[0] = '\0';
    for (;;) {
        const char *line = strstr(buf, prefix);
        if (line && strchr(line, '\n'))
            return line;
        struct pollfd pfd = {.fd = c->from_stdout, .events = POLLIN};
        if (n + 1 >= cap || poll(&pfd, 1, 10000) <= 0)
            return NULL;
        ssize_t r = read(c->from_stdout, buf + n, cap - 1 - n);
        if (r <= 0)
            return NULL;
        n += (size_t)r;
        buf[n] = '\0';
    }
}

/* echo_server and echo_client both on `backend`, with -v: each names it on
 * stderr, and a line goes there and back through both loops. */
static void round_trip_on(const char *backend)
{
    char want[64];
    evt_child server;
    const char *server_args[] = {"--backend", backend, "-v", "-p", "0", NULL};
    evt_spawn_client(&server, "echo_server", server_args, true);
    char out[512];
    const char *listening = read_line_with(&server, out, sizeof out, "listening on ");
    assert_non_null(listening);
    snprintf(want, sizeof want, "echo_server: backend %s\n", backend);
    assert_non_null(strstr(out, want));   /* -v speaks before the loop starts */
    const char *colon = strchr(listening, '\n');
    while (colon > listening && *colon != ':')
        colon--;
    assert_true(*colon == ':');
    char port[16];
    snprintf(port, sizeof port, "%d", atoi(colon + 1));

    evt_child client;
    const char *client_args[] = {"--backend", backend, "-v", "-p", port, NULL};
    evt_spawn_client(&client, "echo_client", client_args, true);
    evt_type(&client, "over the loop\n");
    close(client.to_stdin);
    client.to_stdin = -1;
    char got[512];
    evt_read_child(&client, got, sizeof got);
    snprintf(want, sizeof want, "echo_client: backend %s\n", backend);
    assert_non_null(strstr(got, want));
    assert_non_null(strstr(got, "over the loop\n"));
    int status = evt_wait_child(&client);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    kill(server.pid, SIGTERM);
    status = evt_wait_child(&server);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void select_backend(void **state)
{
    (void)state;
    round_trip_on("select");
}

static void poll_backend(void **state)
{
    (void)state;
    round_trip_on("poll");
}

static void epoll_backend(void **state)
{
    (void)state;
    round_trip_on("epoll");
}

/* Without --backend, -v still says what libev chose. */
static void verbose_names_the_default_backend(void **state)
{
    (void)state;
    char out[512];
    const char *args[] = {"-v", "-p", "1", NULL};   /* nobody listens on port 1 */
    evt_run_example("time_client", args, out, sizeof out);
    assert_non_null(strstr(out, "time_client: backend epoll\n"));
}

static void every_example_refuses_an_unknown_backend(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        char path[4096];
        if (access(evt_example_path(programs[i], path, sizeof path), X_OK) != 0)
            fail_msg("%s is not built", programs[i]);
        char out[1024];
        const char *args[] = {"--backend", "kqueue9", NULL};
        int status = evt_run_example(programs[i], args, out, sizeof out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
            fail_msg("%s --backend kqueue9: status %d", programs[i], status);
        if (!strstr(out, "unknown backend 'kqueue9'"))
            fail_msg("%s --backend kqueue9 said: %s", programs[i], out);

        const char *help[] = {"--help", NULL};
        status = evt_run_example(programs[i], help, out, sizeof out);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!strstr(out, "--backend NAME"))
            fail_msg("%s --help does not name --backend", programs[i]);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(select_backend),
        cmocka_unit_test(poll_backend),
        cmocka_unit_test(epoll_backend),
        cmocka_unit_test(verbose_names_the_default_backend),
        cmocka_unit_test(every_example_refuses_an_unknown_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
