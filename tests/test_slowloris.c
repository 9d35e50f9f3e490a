/*
 * Slowloris, bounded and on loopback: tricklers that send one byte every
 * 150 ms and never finish a line, against a line-echo server on evc_server.
 * With a frame deadline they are closed on time while a normal client is
 * served throughout; with a connection cap as well, tricklers that reconnect
 * as soon as they are closed still cannot lock a new client out: it waits in
 * the backlog for at most a deadline or two.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support.h"

#define TRICKLERS 40
#define TRICKLE_PAUSE 0.15   /* seconds between a trickler's bytes */
#define DEADLINE 0.5         /* the server's frame deadline */
#define IDLE 5.0             /* the idle timeout: never reached by a trickler */

/* ------------------------------------------------------------------ */
/* The server: echo lines                                              */
/* ------------------------------------------------------------------ */

typedef struct server {
    evc_server *s;
    struct ev_loop *loop;
    struct sockaddr_in sin;
    int chats;               /* open now */
    int frame_timeouts;
} server;

static void echo_line(evc_chat *c, void *data)
{
    (void)data;
    size_t len;
    const char *p = evc_chat_incoming(c, &len);
    evc_chat_push(c, p, len);
    evc_chat_push(c, "\n", 1);
}

static void too_slow(evc_chat *c, void *data)
{
    server *v = data;
    v->frame_timeouts++;
    evc_chat_close(c);
}

static void chat_gone(evc_chat *c, void *data)
{
    server *v = data;
    (void)c;
    v->chats--;
}

static const struct evc_chat_ops echo_ops = {
    .found_terminator = echo_line,
    .handle_frame_timeout = too_slow,
    .on_destroy = chat_gone,
};

static void accepted(evc_server *s, int fd, const struct sockaddr *sa, socklen_t len, void *data)
{
    server *v = data;
    (void)s, (void)sa, (void)len;
    evc_chat *c = evc_chat_new(v->loop, fd, &echo_ops, v);
    assert_non_null(c);
    v->chats++;
    evc_chat_set_terminator(c, "\n");
    evc_chat_set_timeout(c, IDLE);
    evc_chat_set_frame_deadline(c, DEADLINE);
}

static const struct evc_server_ops server_ops = {.handle_accepted = accepted};

static void server_open(server *v, struct ev_loop *loop, unsigned cap)
{
    memset(v, 0, sizeof *v);
    v->loop = loop;
    v->s = evc_server_new(loop, "127.0.0.1:0", 128, &server_ops, v);
    assert_non_null(v->s);
    if (cap)
        assert_int_equal(evc_server_set_max_connections(v->s, cap), 0);
    socklen_t len = sizeof v->sin;
    assert_int_equal(getsockname(evc_dispatcher_fd(evc_server_dispatcher(v->s)),
                                 (struct sockaddr *)&v->sin, &len), 0);
}

/* A non-blocking connect: on loopback it completes in the backlog at once. */
static int connect_to(const server *v)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int rc = connect(fd, (const struct sockaddr *)&v->sin, sizeof v->sin);
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* True when the server closed fd (EOF or reset). */
static bool peer_closed(int fd)
{
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN);
}

/* ------------------------------------------------------------------ */
/* The tricklers                                                       */
/* ------------------------------------------------------------------ */

typedef struct trickler {
    int fd;
    double first_byte;       /* when its first byte went out (0: not yet) */
    double closed_at;        /* when it saw the server close (0: not yet) */
} trickler;

typedef struct swarm {
    ev_timer tick;
    const server *v;
    trickler t[TRICKLERS];
    bool reconnect;          /* a closed trickler connects again at once */
    int closes;
    double worst;            /* longest time from first byte to close */
} swarm;

static void swarm_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    swarm *sw = w->data;
    (void)revents;
    double now = ev_time();
    for (int i = 0; i < TRICKLERS; i++) {
        trickler *t = &sw->t[i];
        if (t->fd < 0)
            continue;
        if (t->first_byte > 0 && peer_closed(t->fd)) {
            t->closed_at = now;
            sw->closes++;
            if (now - t->first_byte > sw->worst)
                sw->worst = now - t->first_byte;
            close(t->fd);
            t->fd = sw->reconnect ? connect_to(sw->v) : -1;
            t->first_byte = t->closed_at = 0;
            continue;
        }
        if (send(t->fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 && t->first_byte == 0)
            t->first_byte = now;
    }
    (void)loop;
}

static void swarm_start(swarm *sw, struct ev_loop *loop, const server *v, bool reconnect)
{
    memset(sw, 0, sizeof *sw);
    sw->v = v;
    sw->reconnect = reconnect;
    for (int i = 0; i < TRICKLERS; i++)
        sw->t[i].fd = connect_to(v);
    ev_timer_init(&sw->tick, swarm_tick, 0.01, TRICKLE_PAUSE);
    sw->tick.data = sw;
    ev_timer_start(loop, &sw->tick);
}

static void swarm_stop(swarm *sw, struct ev_loop *loop)
{
    ev_timer_stop(loop, &sw->tick);
    for (int i = 0; i < TRICKLERS; i++)
        if (sw->t[i].fd >= 0)
            close(sw->t[i].fd);
}

/* A normal client: one line, and the time its echo came back (<0: never). */
static double served_within(server *v, int fd, double seconds)
{
    static const char line[] = "hello\n";
    double t0 = ev_time();
    size_t sent = 0;
    char got[16];
    size_t have = 0;
    while (ev_time() - t0 < seconds) {
        evt_run_for(v->loop, 0.02);
        if (sent < 6) {
            ssize_t n = send(fd, line + sent, 6 - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        ssize_t n = recv(fd, got + have, sizeof got - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        if (have == 6) {
            assert_memory_equal(got, "hello\n", 6);
            return ev_time() - t0;
        }
        if (n == 0)
            return -1;
    }
    return -1;
}

static void finish(server *v)
{
    evc_close_all(v->loop);
    evt_run_for(v->loop, 0.01);
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

/* Every trickler is closed within the deadline and a tick or two of it, none
 * by the idle timeout, and a normal client is served meanwhile, promptly. */
static void test_tricklers_closed_on_time(void **state)
{
    server v;
    server_open(&v, *state, 0);
    swarm sw;
    swarm_start(&sw, v.loop, &v, false);
    evt_run_for(v.loop, 0.2);
    for (int round = 0; round < 3; round++) {
        int fd = connect_to(&v);
        double took = served_within(&v, fd, 1.0);
        close(fd);
        if (took < 0 || took > 0.3)
            fail_msg("a normal client waited %.3f s among tricklers", took);
    }
    ev_tstamp until = ev_time() + DEADLINE + 1.5;
    while (sw.closes < TRICKLERS && ev_time() < until)
        evt_run_for(v.loop, 0.05);
    if (sw.closes < TRICKLERS)
        fail_msg("%d of %d tricklers still open", TRICKLERS - sw.closes, TRICKLERS);
    if (sw.worst < DEADLINE - 0.05 || sw.worst > DEADLINE + 2 * TRICKLE_PAUSE + 0.2)
        fail_msg("tricklers closed up to %.3f s after their first byte (deadline %.1f s)",
                 sw.worst, DEADLINE);
    assert_int_equal(v.frame_timeouts, TRICKLERS);
    swarm_stop(&sw, v.loop);
    finish(&v);
}

/* A cap below the number of tricklers, and tricklers that reconnect at once:
 * a new client still gets in, after a deadline or two in the backlog, and the
 * server never holds more than the cap. */
static void test_capped_tricklers_cannot_lock_out(void **state)
{
    server v;
    server_open(&v, *state, TRICKLERS / 2);
    swarm sw;
    swarm_start(&sw, v.loop, &v, true);
    evt_run_for(v.loop, 0.3);
    assert_int_equal(v.chats, TRICKLERS / 2);   /* the cap is full of tricklers */
    for (int round = 0; round < 2; round++) {
        int fd = connect_to(&v);
        double took = served_within(&v, fd, 4 * DEADLINE + 1.0);
        close(fd);
        if (took < 0)
            fail_msg("round %d: a new client was locked out by tricklers", round);
        assert_true(v.chats <= TRICKLERS / 2);
    }
    assert_true(sw.closes >= TRICKLERS / 2);
    swarm_stop(&sw, v.loop);
    finish(&v);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_tricklers_closed_on_time),
        T(test_capped_tricklers_cannot_lock_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
