/*
 * Tests of the server layer: listening on IPv4, IPv6 and unix addresses given
 * as text, handing accepted fds over, failing cleanly (bind conflicts, bad
 * text), unix socket path hygiene (stale files replaced, live ones never
 * stolen, paths unlinked on close), lifetime, and a server + chat round trip.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#define MAX_ACCEPTED 8

typedef struct srv_rec {
    evc_server *server;
    int fds[MAX_ACCEPTED];
    int families[MAX_ACCEPTED];
    bool nonblocking[MAX_ACCEPTED];
    int n_accepted;
    int n_error;
    int n_destroy;
    bool close_in_accept;
    bool destroyed;
} srv_rec;

static void srv_accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    srv_rec *r = data;
    assert_ptr_equal(s, r->server);
    assert_false(r->destroyed);
    assert_true(fd >= 0);
    assert_true(len >= sizeof(sa_family_t));
    assert_true(r->n_accepted < MAX_ACCEPTED);
    r->fds[r->n_accepted] = fd;
    r->families[r->n_accepted] = sa->sa_family;
    r->nonblocking[r->n_accepted] = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
    r->n_accepted++;
    if (r->close_in_accept) {
        evc_server_close(s);
        evc_server_close(s);
    }
}

static void srv_error(evc_server *s, int err, void *data)
{
    srv_rec *r = data;
    (void)s;
    (void)err;
    r->n_error++;
}

static void srv_destroy(evc_server *s, void *data)
{
    srv_rec *r = data;
    assert_ptr_equal(s, r->server);
    assert_false(r->destroyed);
    r->destroyed = true;
    r->n_destroy++;
}

static const struct evc_server_ops srv_ops = {
    .handle_accepted = srv_accepted,
    .handle_error = srv_error,
    .on_destroy = srv_destroy,
};

static void srv_rec_close_fds(srv_rec *r)
{
    for (int i = 0; i < r->n_accepted; i++)
        close(r->fds[i]);
    assert_int_equal(r->n_error, 0);
}

static struct ev_loop *new_loop(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    return loop;
}

static void finish_loop(struct ev_loop *loop)
{
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void unix_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/evc-test-server-%d-%s", (int)getpid(), tag);
    unlink(buf);
}

static bool path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A blocking client connected to the server's address text. */
static int connect_text(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    return fd;
}

/* Listens on text, checks the address it reports, accepts one client. */
static void listen_and_accept(const char *text, const char *want_prefix, int family)
{
    struct ev_loop *loop = new_loop();
    srv_rec r = {0};
    r.server = evc_server_new(loop, text, 16, &srv_ops, &r);
    if (!r.server && family == AF_INET6 &&
        (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
        finish_loop(loop);
        skip();   /* no IPv6 loopback here */
    }
    assert_non_null(r.server);
    assert_non_null(evc_server_dispatcher(r.server));
    assert_true(evc_dispatcher_fd(evc_server_dispatcher(r.server)) >= 0);

    char addr[EVC_ADDRSTRLEN];
    int n = evc_server_address(r.server, addr, sizeof addr);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(addr));
    assert_memory_equal(addr, want_prefix, strlen(want_prefix));
    if (family != AF_UNIX) {
        /* Port 0 picked a real port. */
        int port = atoi(addr + strlen(want_prefix));
        assert_true(port > 0 && port < 65536);
    } else {
        assert_string_equal(addr, text);
    }
    /* Too small a buffer is an error, not a truncation. */
    char tiny[4];
    assert_int_equal(evc_server_address(r.server, tiny, sizeof tiny), -ENOSPC);
    assert_string_equal(tiny, "");

    int c1 = connect_text(addr);
    int c2 = connect_text(addr);
    assert_true(evt_run_until_count(loop, &r.n_accepted, 2, 5.0));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r.families[i], family);
        assert_true(r.nonblocking[i]);
        /* The fd is the user's and works. */
        assert_int_equal(send(r.fds[i], "hi", 2, MSG_NOSIGNAL), 2);
    }
    char buf[2];
    assert_int_equal(recv(c1, buf, 2, MSG_WAITALL), 2);
    assert_int_equal(recv(c2, buf, 2, MSG_WAITALL), 2);

    evc_server_close(r.server);
    if (family == AF_UNIX)
        assert_false(path_exists(text + strlen("unix:")));
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    close(c1);
    close(c2);
    srv_rec_close_fds(&r);
}

static void test_listen_ipv4(void **state)
{
    (void)state;
    listen_and_accept("127.0.0.1:0", "127.0.0.1:", AF_INET);
}

static void test_listen_ipv6(void **state)
{
    (void)state;
    listen_and_accept("[::1]:0", "[::1]:", AF_INET6);
}

static void test_listen_unix(void **state)
{
    (void)state;
    char path[108], text[120];
    unix_path(path, sizeof path, "listen");
    snprintf(text, sizeof text, "unix:%s", path);
    listen_and_accept(text, "unix:", AF_UNIX);
    assert_false(path_exists(path));
}

static void test_bind_conflict(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    srv_rec a = {0}, b = {0};
    a.server = evc_server_new(loop, "127.0.0.1:0", 0, &srv_ops, &a);
    assert_non_null(a.server);
    char addr[EVC_ADDRSTRLEN];
    assert_true(evc_server_address(a.server, addr, sizeof addr) > 0);

    errno = 0;
    assert_null(evc_server_new(loop, addr, 0, &srv_ops, &b));
    assert_int_equal(errno, EADDRINUSE);
    /* The failed server leaves nothing behind and calls nothing. */
    evt_run_for(loop, 0.01);
    assert_int_equal(b.n_destroy, 0);

    /* The first keeps serving. */
    int c = connect_text(addr);
    assert_true(evt_run_until_count(loop, &a.n_accepted, 1, 5.0));
    evc_server_close(a.server);
    finish_loop(loop);
    assert_int_equal(a.n_destroy, 1);
    assert_int_equal(b.n_destroy, 0);
    close(c);
    srv_rec_close_fds(&a);
}

static void test_bad_address_text(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    static const char *const bad[] = {
        "", "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1",
        "127.0.0.1:80x", "[::1:0", "::1:0", "unix:",
    };
    srv_rec r = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        evc_server *s = evc_server_new(loop, bad[i], 0, &srv_ops, &r);
        if (s)
            fail_msg("\"%s\" was accepted", bad[i]);
        if (errno != EINVAL)
            fail_msg("\"%s\": errno %d (%s), want EINVAL", bad[i], errno, strerror(errno));
    }
    errno = 0;
    assert_null(evc_server_new(loop, NULL, 0, &srv_ops, &r));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_server_new(NULL, "127.0.0.1:0", 0, &srv_ops, &r));
    assert_int_equal(errno, EINVAL);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 0);
}

static void test_stale_unix_socket_is_replaced(void **state)
{
    (void)state;
    char path[108], text[120];
    unix_path(path, sizeof path, "stale");
    snprintf(text, sizeof text, "unix:%s", path);

    /* A server that died without cleaning up leaves its socket file behind. */
    int dead = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(dead >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    assert_int_equal(bind(dead, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(dead, 1), 0);
    close(dead);
    assert_true(path_exists(path));

    struct ev_loop *loop = new_loop();
    srv_rec r = {0};
    r.server = evc_server_new(loop, text, 0, &srv_ops, &r);
    assert_non_null(r.server);
    int c = connect_text(text);
    assert_true(evt_run_until_count(loop, &r.n_accepted, 1, 5.0));
    evc_server_close(r.server);
    assert_false(path_exists(path));
    finish_loop(loop);
    close(c);
    srv_rec_close_fds(&r);
}

static void test_live_unix_path_is_not_stolen(void **state)
{
    (void)state;
    char path[108], text[120];
    unix_path(path, sizeof path, "live");
    snprintf(text, sizeof text, "unix:%s", path);

    struct ev_loop *loop = new_loop();
    srv_rec a = {0}, b = {0};
    a.server = evc_server_new(loop, text, 0, &srv_ops, &a);
    assert_non_null(a.server);
    errno = 0;
    assert_null(evc_server_new(loop, text, 0, &srv_ops, &b));
    assert_int_equal(errno, EADDRINUSE);
    /* The failure did not unlink the live server's path: clients still reach it. */
    assert_true(path_exists(path));
    int c = connect_text(text);
    assert_true(evt_run_until_count(loop, &a.n_accepted, 1, 5.0));

    /* Nor is a path that is not a socket at all touched. */
    char fpath[108], ftext[120];
    unix_path(fpath, sizeof fpath, "file");
    snprintf(ftext, sizeof ftext, "unix:%s", fpath);
    int f = open(fpath, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(f >= 0);
    close(f);
    errno = 0;
    assert_null(evc_server_new(loop, ftext, 0, &srv_ops, &b));
    assert_int_equal(errno, EADDRINUSE);
    assert_true(path_exists(fpath));
    unlink(fpath);

    evc_server_close(a.server);
    assert_false(path_exists(path));
    finish_loop(loop);
    assert_int_equal(b.n_destroy, 0);
    close(c);
    srv_rec_close_fds(&a);
}

/*
 * A live server whose backlog is full must still be recognised as live, and
 * promptly: a blocking probe would wait for it to accept.  A one-second alarm
 * (without SA_RESTART) interrupts such a wait, so a hang shows as slowness.
 */
static void on_alarm(int sig)
{
    (void)sig;
}

static void test_busy_live_unix_path_fails_promptly(void **state)
{
    (void)state;
    char path[108], text[120];
    unix_path(path, sizeof path, "busy");
    snprintf(text, sizeof text, "unix:%s", path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* Fill the backlog: connect until the listener refuses more for now. */
    int clients[16];
    int n = 0;
    while (n < 16) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(c >= 0);
        if (connect(c, (struct sockaddr *)&sun, sizeof sun) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(c);
            break;
        }
        clients[n++] = c;
    }
    assert_true(n < 16);

    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    struct ev_loop *loop = new_loop();
    srv_rec r = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    alarm(1);
    errno = 0;
    evc_server *s = evc_server_new(loop, text, 0, &srv_ops, &r);
    int err = errno;
    alarm(0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sigaction(SIGALRM, &old, NULL);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    assert_null(s);
    assert_int_equal(err, EADDRINUSE);
    if (took > 0.5)
        fail_msg("evc_server_new took %.2f s on a live server with a full backlog", took);
    finish_loop(loop);
    for (int i = 0; i < n; i++)
        close(clients[i]);
    close(lfd);
    assert_true(path_exists(path));
    unlink(path);
}

static void test_close_all_unlinks_unix_path(void **state)
{
    (void)state;
    char path[108], text[120];
    unix_path(path, sizeof path, "closeall");
    snprintf(text, sizeof text, "unix:%s", path);
    struct ev_loop *loop = new_loop();
    srv_rec r = {0};
    r.server = evc_server_new(loop, text, 0, &srv_ops, &r);
    assert_non_null(r.server);
    evc_close_all(loop);
    finish_loop(loop);
    assert_int_equal(r.n_destroy, 1);
    assert_false(path_exists(path));
}

static void test_close_idempotent_destroy_once(void **state)
{
    (void)state;
    struct ev_loop *loop = new_loop();
    srv_rec r = {.close_in_accept = true};
    r.server = evc_server_new(loop, "127.0.0.1:0", 0, &srv_ops, &r);
    assert_non_null(r.server);
    char addr[EVC_ADDRSTRLEN];
    assert_true(evc_server_address(r.server, addr, sizeof addr) > 0);
    /* Two clients wait; the server closes inside the first accept: no second. */
    int c1 = connect_text(addr);
    int c2 = connect_text(addr);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_accepted, 1);
    assert_int_equal(r.n_destroy, 1);
    finish_loop(loop);

    /* From outside, twice; on_destroy runs once, from the loop. */
    loop = new_loop();
    srv_rec r2 = {0};
    r2.server = evc_server_new(loop, "127.0.0.1:0", 0, &srv_ops, &r2);
    assert_non_null(r2.server);
    evc_server_close(r2.server);
    evc_server_close(r2.server);
    assert_int_equal(r2.n_destroy, 0);
    finish_loop(loop);
    assert_int_equal(r2.n_destroy, 1);

    /* A server without ops closes what it accepts. */
    loop = new_loop();
    evc_server *bare = evc_server_new(loop, "127.0.0.1:0", 0, NULL, NULL);
    assert_non_null(bare);
    assert_true(evc_server_address(bare, addr, sizeof addr) > 0);
    int c3 = connect_text(addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c3, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    evt_run_for(loop, 0.05);
    char buf[1];
    assert_int_equal(recv(c3, buf, 1, 0), 0);
    evc_server_close(bare);
    finish_loop(loop);

    close(c1);
    close(c2);
    close(c3);
    srv_rec_close_fds(&r);
    srv_rec_close_fds(&r2);
}

/* ------------------------------------------------------------------ */
/* A server + chat round trip                                          */
/* ------------------------------------------------------------------ */

typedef struct echo_world {
    struct ev_loop *loop;
    int sessions;
    int destroyed;
} echo_world;

static void echo_found(evc_chat *c, void *data)
{
    (void)data;
    size_t len;
    const char *p = evc_chat_incoming(c, &len);
    if (!p)
        p = "";
    assert_int_equal(evc_chat_pushf(c, "echo:%.*s\n", (int)len, p), 0);
}

static void echo_destroy(evc_chat *c, void *data)
{
    echo_world *w = data;
    (void)c;
    w->destroyed++;
}

static const struct evc_chat_ops echo_ops = {
    .found_terminator = echo_found,
    .on_destroy = echo_destroy,
};

static void echo_accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len,
                          void *data)
{
    echo_world *w = data;
    (void)s;
    (void)sa;
    (void)len;
    evc_chat *c = evc_chat_new(w->loop, fd, &echo_ops, w);
    assert_non_null(c);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    w->sessions++;
}

static const struct evc_server_ops echo_server_ops = {
    .handle_accepted = echo_accepted,
};

static void round_trip(const char *listen_text)
{
    struct ev_loop *loop = new_loop();
    echo_world w = {.loop = loop};
    evc_server *s = evc_server_new(loop, listen_text, 0, &echo_server_ops, &w);
    assert_non_null(s);
    char addr[EVC_ADDRSTRLEN];
    assert_true(evc_server_address(s, addr, sizeof addr) > 0);

    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse(addr, &ss, &len), 0);
    /* The client records the reply and closes once it has it. */
    evt_recorder rec = {.close_in = EVT_CLOSE_IN_FOUND};
    evc_chat *client = evt_recorder_new(&rec, loop, -1, 0);
    assert_int_equal(evc_chat_set_terminator(client, "\n"), 0);
    assert_int_equal(evc_chat_push_str(client, "hello\n"), 0);
    assert_int_equal(evc_chat_connect(client, (struct sockaddr *)&ss, len), 0);

    /* The client closes after the reply; the server's chat then sees EOF and closes. */
    assert_true(evt_run_until(loop, &rec.destroyed, 5.0));
    assert_true(evt_run_until_count(loop, &w.destroyed, 1, 5.0));
    assert_int_equal(rec.n_found, 1);
    assert_int_equal(w.sessions, 1);
    static const char *const want[] = {"echo:hello"};
    evt_recorder_assert_frames(&rec, want, 1);

    evc_server_close(s);
    finish_loop(loop);
    evt_recorder_free(&rec);
}

static void test_server_chat_round_trip(void **state)
{
    (void)state;
    round_trip("127.0.0.1:0");
    char path[108], text[120];
    unix_path(path, sizeof path, "echo");
    snprintf(text, sizeof text, "unix:%s", path);
    round_trip(text);
    assert_false(path_exists(path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_ipv4),
        cmocka_unit_test(test_listen_ipv6),
        cmocka_unit_test(test_listen_unix),
        cmocka_unit_test(test_bind_conflict),
        cmocka_unit_test(test_bad_address_text),
        cmocka_unit_test(test_stale_unix_socket_is_replaced),
        cmocka_unit_test(test_live_unix_path_is_not_stolen),
        cmocka_unit_test(test_busy_live_unix_path_fails_promptly),
        cmocka_unit_test(test_close_all_unlinks_unix_path),
        cmocka_unit_test(test_close_idempotent_destroy_once),
        cmocka_unit_test(test_server_chat_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
