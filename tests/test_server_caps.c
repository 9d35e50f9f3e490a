/*
 * evc_server's connection caps: at the total cap the server stops accepting
 * (newcomers wait in the backlog, nothing spins) and takes the next one as
 * soon as a connection ends, however it ends; over the per-peer cap that
 * peer's connection is closed at once while other addresses are served; the
 * counts follow chats and dispatchers that took the fd, not raw fds; and
 * connections may outlive their server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support.h"

#define MAX_CHATS 16

typedef struct srv {
    evc_server *s;
    struct ev_loop *loop;
    struct sockaddr_in sin;
    evc_chat *chats[MAX_CHATS];
    int accepted, destroyed, server_destroyed;
    bool keep_raw;           /* handle_accepted keeps the fd without a chat */
    int raw[MAX_CHATS];
} srv;

static void echo_line(evc_chat *c, void *data)
{
    (void)data;
    size_t len;
    const char *p = evc_chat_incoming(c, &len);
    evc_chat_push(c, p, len);
    evc_chat_push(c, "\n", 1);
}

static void chat_gone(evc_chat *c, void *data)
{
    srv *v = data;
    v->destroyed++;
    for (int i = 0; i < MAX_CHATS; i++)
        if (v->chats[i] == c)
            v->chats[i] = NULL;
}

static const struct evc_chat_ops echo_ops = {
    .found_terminator = echo_line,
    .on_destroy = chat_gone,
};

static void accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    srv *v = data;
    (void)s, (void)sa, (void)len;
    if (v->keep_raw) {
        v->raw[v->accepted++] = fd;
        return;
    }
    evc_chat *c = evc_chat_new(v->loop, fd, &echo_ops, v);
    assert_non_null(c);
    evc_chat_set_terminator(c, "\n");
    v->chats[v->accepted++] = c;
}

static void server_gone(evc_server *s, void *data)
{
    srv *v = data;
    (void)s;
    v->server_destroyed++;
}

static const struct evc_server_ops ops = {
    .handle_accepted = accepted,
    .on_destroy = server_gone,
};

static void srv_open(srv *v, struct ev_loop *loop)
{
    memset(v, 0, sizeof *v);
    v->loop = loop;
    v->s = evc_server_new(loop, "127.0.0.1:0", 64, &ops, v);
    assert_non_null(v->s);
    socklen_t len = sizeof v->sin;
    assert_int_equal(getsockname(evc_dispatcher_fd(evc_server_dispatcher(v->s)),
                                 (struct sockaddr *)&v->sin, &len), 0);
}

/* A client from source address `from` (127.0.0.x), blocking, 2 s receive timeout. */
static int client_from(const srv *v, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &src.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&v->sin, sizeof v->sin), 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int client(const srv *v)
{
    return client_from(v, "127.0.0.1");
}

/* Sends a line and runs the loop until its echo, and those of `earlier` lines
 * sent before, come back: true if they did. */
static bool echoed_after(srv *v, int fd, int earlier, double seconds)
{
    assert_int_equal(send(fd, "ping\n", 5, MSG_NOSIGNAL), 5);
    char buf[64];
    size_t got = 0, want = 5 * (size_t)(earlier + 1);
    ev_tstamp until = ev_time() + seconds;
    while (got < want && ev_time() < until) {
        evt_run_for(v->loop, 0.01);
        ssize_t n = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n == 0)
            return false;
        if (n > 0)
            got += (size_t)n;
    }
    return got == want && memcmp(buf, "ping\n", 5) == 0;
}

static bool echoed(srv *v, int fd, double seconds)
{
    return echoed_after(v, fd, 0, seconds);
}

/* True when the server closed fd (EOF or reset) within the loop's next second. */
static bool closed_by_server(srv *v, int fd)
{
    ev_tstamp until = ev_time() + 1.;
    while (ev_time() < until) {
        evt_run_for(v->loop, 0.01);
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

static void srv_finish(srv *v, int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    evc_close_all(v->loop);
    evt_run_for(v->loop, 0.01);
    assert_int_equal(v->server_destroyed, 1);
}

static int setup(void **state)
{
    *state = evt_loop_new();
    return 0;
}

static int teardown(void **state)
{
    evt_loop_finish(*state);
    return 0;
}

/* At the cap a newcomer waits, unserved and without spinning the loop; when a
 * connection ends (the peer leaves) it is taken at once. */
static void test_total_cap_waits_in_the_backlog(void **state)
{
    srv v;
    srv_open(&v, *state);
    assert_int_equal(evc_server_set_max_connections(v.s, 2), 0);
    int fds[3] = {client(&v), client(&v), -1};
    assert_true(echoed(&v, fds[0], 2.));
    assert_true(echoed(&v, fds[1], 2.));
    assert_int_equal(evc_server_connections(v.s), 2);
    fds[2] = client(&v);   /* the kernel completes it into the backlog */
    unsigned before = ev_iteration(v.loop);
    evt_run_for(v.loop, 0.3);
    assert_true(ev_iteration(v.loop) - before < 10);   /* not watching the listener */
    assert_int_equal(v.accepted, 2);
    assert_false(echoed(&v, fds[2], 0.2));
    close(fds[0]);
    fds[0] = -1;
    assert_true(evt_run_until_count(v.loop, &v.accepted, 3, 2.));
    assert_true(echoed_after(&v, fds[2], 1, 2.));   /* its early line was kept too */
    assert_int_equal(evc_server_connections(v.s), 2);
    srv_finish(&v, fds, 3);
}

/* Connections that arrive together are not all taken in one wake-up past the cap. */
static void test_total_cap_holds_in_a_burst(void **state)
{
    srv v;
    srv_open(&v, *state);
    evc_server_set_max_connections(v.s, 2);
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = client(&v);
    evt_run_for(v.loop, 0.2);
    assert_int_equal(v.accepted, 2);
    assert_int_equal(evc_server_connections(v.s), 2);
    srv_finish(&v, fds, 4);
}

/* A connection the server ends itself frees its place too. */
static void test_server_side_close_frees_a_place(void **state)
{
    srv v;
    srv_open(&v, *state);
    evc_server_set_max_connections(v.s, 1);
    int fds[2] = {client(&v), -1};
    assert_true(echoed(&v, fds[0], 2.));
    fds[1] = client(&v);
    evt_run_for(v.loop, 0.1);
    assert_int_equal(v.accepted, 1);
    evc_chat_close_when_done(v.chats[0]);
    assert_true(evt_run_until_count(v.loop, &v.accepted, 2, 2.));
    assert_true(echoed(&v, fds[1], 2.));
    assert_int_equal(evc_server_connections(v.s), 1);
    srv_finish(&v, fds, 2);
}

/* Over the per-peer cap that peer's connection ends at once; another address
 * is served; once one of the peer's connections ends it may connect again. */
static void test_per_peer_cap(void **state)
{
    srv v;
    srv_open(&v, *state);
    assert_int_equal(evc_server_set_max_per_peer(v.s, 2), 0);
    int fds[5] = {client(&v), client(&v), -1, -1, -1};
    assert_true(echoed(&v, fds[0], 2.));
    assert_true(echoed(&v, fds[1], 2.));
    fds[2] = client(&v);
    assert_true(closed_by_server(&v, fds[2]));
    fds[3] = client_from(&v, "127.0.0.2");
    assert_true(echoed(&v, fds[3], 2.));
    assert_int_equal(evc_server_connections(v.s), 3);
    close(fds[0]);
    fds[0] = -1;
    assert_true(evt_run_until_count(v.loop, &v.destroyed, 1, 2.));
    fds[4] = client(&v);
    assert_true(echoed(&v, fds[4], 2.));
    srv_finish(&v, fds, 5);
}

/* An fd the user keeps raw is not counted (the server cannot see it end). */
static void test_raw_fds_are_not_counted(void **state)
{
    srv v;
    srv_open(&v, *state);
    v.keep_raw = true;
    evc_server_set_max_connections(v.s, 1);
    int fds[2] = {client(&v), client(&v)};
    assert_true(evt_run_until_count(v.loop, &v.accepted, 2, 2.));
    assert_int_equal(evc_server_connections(v.s), 0);
    close(v.raw[0]);
    close(v.raw[1]);
    srv_finish(&v, fds, 2);
}

/* Connections may outlive their server; their ends touch nothing freed. */
static void test_connections_outlive_the_server(void **state)
{
    srv v;
    srv_open(&v, *state);
    evc_server_set_max_connections(v.s, 4);
    evc_server_set_max_per_peer(v.s, 4);
    int fds[2] = {client(&v), client(&v)};
    assert_true(echoed(&v, fds[0], 2.));
    assert_true(echoed(&v, fds[1], 2.));
    evc_server_close(v.s);
    assert_true(evt_run_until_count(v.loop, &v.server_destroyed, 1, 1.));
    assert_true(echoed(&v, fds[0], 2.));
    close(fds[0]);
    fds[0] = -1;
    assert_true(evt_run_until_count(v.loop, &v.destroyed, 1, 2.));
    srv_finish(&v, fds, 2);
    assert_int_equal(v.destroyed, 2);
}

/* Many peers: the table grows and shrinks back (every count returns to 0). */
static void test_many_peers(void **state)
{
    srv v;
    srv_open(&v, *state);
    evc_server_set_max_per_peer(v.s, 1);
    for (int round = 0; round < 2; round++) {
        int fds[MAX_CHATS];
        memset(v.chats, 0, sizeof v.chats);
        v.accepted = 0;
        for (int i = 0; i < MAX_CHATS; i++) {
            char from[32];
            snprintf(from, sizeof from, "127.0.%d.%d", round + 1, i + 1);
            fds[i] = client_from(&v, from);
        }
        assert_true(evt_run_until_count(v.loop, &v.accepted, MAX_CHATS, 2.));
        assert_int_equal(evc_server_connections(v.s), MAX_CHATS);
        for (int i = 0; i < MAX_CHATS; i++)
            close(fds[i]);
        int want = v.destroyed + MAX_CHATS;
        assert_true(evt_run_until_count(v.loop, &v.destroyed, want, 2.));
        assert_int_equal(evc_server_connections(v.s), 0);
    }
    srv_finish(&v, NULL, 0);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_total_cap_waits_in_the_backlog),
        T(test_total_cap_holds_in_a_burst),
        T(test_server_side_close_frees_a_place),
        T(test_per_peer_cap),
        T(test_raw_fds_are_not_counted),
        T(test_connections_outlive_the_server),
        T(test_many_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
