/*
 * examples/echo_server, a server written on the dispatcher alone, under
 * accept(2) errors: tests/echo_server_faulty is the same program linked with
 * the wrappers, whose first N accept4 calls fail (EVW_ACCEPT4="ERRNO:N",
 * tests/wrap_env.c).  Each error of accept(2)'s list, once and lasting a
 * while, must leave the server serving: the client is answered and the
 * server exits cleanly on SIGTERM afterwards.
 */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int errors[] = {
    ENOBUFS, ENOMEM, EPERM, EPROTO, ENFILE, EMFILE, ECONNABORTED, EINTR,
    ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH,
    ETIMEDOUT, ENOSR, ESOCKTNOSUPPORT, EPROTONOSUPPORT,
};

/* Starts the faulty echo_server with its first n accept calls failing with err,
 * then checks one client is echoed and the server stops cleanly. */
static void survives(int err, unsigned n)
{
    char spec[32];
    snprintf(spec, sizeof spec, "%d:%u", err, n);
    setenv("EVW_ACCEPT4", spec, 1);
    evt_proc p;
    evt_spawn_server(&p, "../tests/echo_server_faulty", NULL);
    unsetenv("EVW_ACCEPT4");
    /* EMFILE and ENFILE shed a waiting connection: the first client may be it. */
    bool echoed = false;
    for (int attempt = 0; attempt < 3 && !echoed; attempt++) {
        int fd = evt_connect(p.host, p.port);
        evt_send_all(fd, "hello\n", 6);
        char buf[16];
        size_t got = evt_recv_until(fd, buf, sizeof buf, "\n");
        echoed = got == 6 && memcmp(buf, "hello\n", 6) == 0;
        close(fd);
    }
    if (!echoed)
        fail_msg("echo_server stopped serving after %u x %s", n, strerror(err));
    int status = evt_stop_server(&p, SIGTERM);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("echo_server did not exit cleanly after %s", strerror(err));
}

static void test_each_error_once(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        survives(errors[i], 1);
}

/* Six in a row: pauses of 10 to 320 ms, then served. */
static void test_lasting_errors(void **state)
{
    (void)state;
    survives(ENOBUFS, 6);
    survives(EMFILE, 6);
    survives(EPERM, 6);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_error_once),
        cmocka_unit_test(test_lasting_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
