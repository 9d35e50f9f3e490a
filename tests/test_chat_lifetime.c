/*
 * A chat's lifetime, over real loopback sockets, pipes and a real loop:
 * construction that fails calls nothing, close and close_when_done (output
 * written first, even after a failed write), no callback after a close made
 * from any callback, close_all, idle timeouts, the default handle_close at
 * EOF, and on_destroy once, as the very last callback.
 *
 * Every chat is a recording chat (tests/support.h), which counts callbacks
 * made after close; every test ends with the loop empty.
 */
#include "support.h"
#include "evchat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

static void test_new_rejects_bad_fds(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_recorder r = {0};
    errno = 0;
    assert_null(evc_chat_new(loop, -2, evt_recorder_ops(&r, EVT_REC_ALL), &r));
    assert_int_equal(errno, EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    errno = 0;
    assert_null(evc_chat_new(loop, p[0], &r.ops, &r));
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_null(evc_chat_new(NULL, -1, &r.ops, &r));
    assert_int_equal(errno, EINVAL);
    evt_loop_finish(loop);
    /* A failed constructor calls nothing. */
    assert_int_equal(r.n_destroy, 0);
}

static void test_client_connect_refused_reports_error(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    struct sockaddr_in sin;
    evt_closed_port(&sin);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, -1, EVT_REC_ALL);
    assert_int_equal(evc_chat_push_str(c, "never\n"), 0);
    int rc = evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin);
    if (rc == 0) {
        assert_true(evt_run_until_count(loop, &r.n_error, 1, 5.0));
        assert_int_equal(r.last_err, -ECONNREFUSED);
        assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    } else {
        /* A synchronous failure: no callback follows. */
        assert_int_equal(rc, -ECONNREFUSED);
        evt_run_for(loop, 0.05);
        assert_int_equal(r.n_error, 0);
        evc_chat_close(c);
    }
    assert_int_equal(r.n_connect, 0);
    assert_int_equal(r.n_close, 0);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

static void test_close_when_done_flushes_then_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);

    size_t big_len = 200000;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('A' + i % 23);
    evt_bytes want = {0};
    assert_int_equal(evc_chat_push_str(c, "head;"), 0);
    evt_bytes_adds(&want, "head;");
    evc_producer *p = evc_simple_producer_new(big, big_len, 100);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    evt_bytes_add(&want, big, big_len);
    int released = 0;
    assert_int_equal(evc_chat_push_ref(c, S(";ref"), evt_count_release, &released), 0);
    evt_bytes_adds(&want, ";ref");
    evc_chat_close_when_done(c);

    /* Nothing can be queued behind the close. */
    int late = 0;
    assert_int_equal(evc_chat_push(c, S("x")), -EPIPE);
    assert_int_equal(evc_chat_push_str(c, "x"), -EPIPE);
    assert_int_equal(evc_chat_pushf(c, "%s", "x"), -EPIPE);
    assert_int_equal(evc_chat_push_ref(c, S("x"), evt_count_release, &late), -EPIPE);
    evc_producer *kept = evc_simple_producer_new(S("x"), 0);
    assert_int_equal(evc_chat_push_with_producer(c, kept), -EPIPE);
    evc_producer_free(kept);
    evc_chat_close_when_done(c);   /* twice is once */

    evt_sink s;
    evt_sink_start(&s, loop, fds[0], SIZE_MAX);
    assert_true(evt_run_until(loop, &s.eof, 10.0));
    assert_int_equal(s.got.len, want.len);
    assert_memory_equal(s.got.p, want.p, want.len);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(released, 1);
    assert_int_equal(late, 0);
    assert_int_equal(r.n_close + r.n_error, 0);

    evt_sink_stop(&s);
    evt_bytes_free(&want);
    free(big);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* No callback after a close made from any callback                    */
/* ------------------------------------------------------------------ */

static void test_close_in_found_stops_buffered_frames(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.close_in = EVT_CLOSE_IN_FOUND};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    /* Sent before the loop runs, so all three frames arrive in one read. */
    evt_send_all(fds[0], S("one\ntwo\nthree\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_found, 1);
    assert_int_equal(r.n_collect, 1);
    assert_string_equal(r.frames[0], "one");
    assert_int_equal(r.n_close + r.n_error + r.n_timeout, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_close_in_collect_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.close_in = EVT_CLOSE_IN_COLLECT};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evt_send_all(fds[0], S("one\ntwo\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_collect, 1);
    assert_int_equal(r.n_found + r.n_close + r.n_error, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_close_in_error_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.close_in = EVT_CLOSE_IN_ERROR, .keep_open = true};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evc_chat_set_max_frame(c, 4);
    evt_send_all(fds[0], S("0123456789\nok\n"));
    shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_error, 1);
    assert_int_equal(r.last_err, -EMSGSIZE);
    assert_int_equal(r.n_found + r.n_close, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_close_in_connect_stops_everything(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    struct sockaddr_in sin;
    int lfd = evt_listener(&sin);
    evt_recorder r = {.close_in = EVT_CLOSE_IN_CONNECT};
    evc_chat *c = evt_recorder_new(&r, loop, -1, EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_push_str(c, "queued\n"), 0);
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    /* The peer speaks first and hangs up before the chat hears of its connect. */
    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    evt_send_all(peer, S("hello\n"));
    shutdown(peer, SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_connect, 1);
    assert_int_equal(r.n_collect + r.n_found + r.n_close + r.n_error, 0);
    /* Closed inside handle_connect: the queued push was dropped, not sent (the
     * unread "hello" makes the close a reset). */
    char buf[16];
    assert_true(evt_fd_readable(peer));
    assert_true(recv(peer, buf, sizeof buf, MSG_DONTWAIT) <= 0);
    close(peer);
    close(lfd);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_default_close_on_eof_writes_pending_replies(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {.echo = true};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_COLLECT);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    /* The peer sends a request and half-closes: the reply still arrives, then EOF. */
    evt_send_all(fds[0], S("ping\n"));
    shutdown(fds[0], SHUT_WR);
    evt_sink s;
    evt_sink_start(&s, loop, fds[0], SIZE_MAX);
    assert_true(evt_run_until(loop, &s.eof, 5.0));
    assert_int_equal(s.got.len, 5);
    assert_memory_equal(s.got.p, "ping\n", 5);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    evt_sink_stop(&s);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_close_is_idempotent_and_destroy_once(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.close_in = EVT_CLOSE_IN_FOUND};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_false(evc_chat_closed(c));
    evt_send_all(fds[0], S("x\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    /* Closed inside found_terminator; the handle stays valid until on_destroy. */
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_destroy, 1);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);

    /* From outside: close, close again, destroy once, from the loop. */
    loop = evt_loop_new();
    evt_recorder r2 = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    c = evt_recorder_new(&r2, loop, p[0], EVT_REC_ALL);
    evc_chat_close(c);
    assert_true(evc_chat_closed(c));
    evc_chat_close(c);
    assert_int_equal(r2.n_destroy, 0);   /* never inside close itself */
    evc_chat_discard_buffers(c);
    evc_chat_close_when_done(c);
    evt_loop_finish(loop);
    assert_int_equal(r2.n_destroy, 1);
    assert_int_equal(r2.n_close + r2.n_error, 0);
    close(p[1]);
    close(fds[0]);
    evt_recorder_free(&r);
    evt_recorder_free(&r2);
}

static void test_idle_timeout_default_closes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_COLLECT);
    evc_chat_set_timeout(c, 0.05);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    char buf[4];
    assert_true(evt_fd_readable(fds[0]));
    assert_int_equal(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_idle_timeout_handler_and_activity(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nodelay(fds[0]);
    evt_recorder r = {.want_all = 10};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);

    /* Activity more often than the timeout keeps it from firing. */
    evc_chat_set_timeout(c, 0.3);
    evt_feeder f;
    evt_feeder_start(&f, loop, fds[0], "0123456789", 10, 1, 0.05);   /* 0.5 s in all */
    assert_true(evt_run_until(loop, &f.done, 5.0));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    assert_int_equal(r.n_timeout, 0);
    evc_chat_set_timeout(c, 0.05);

    /* Idle: the handler runs, every idle period, and the chat stays open. */
    assert_true(evt_run_until_count(loop, &r.n_timeout, 2, 5.0));
    assert_false(evc_chat_closed(c));
    evt_set_nonblock(fds[0]);
    evt_sink s;
    evt_sink_start(&s, loop, fds[0], 6);
    assert_int_equal(evc_chat_push_str(c, "alive\n"), 0);
    evt_sink_wait(&s, 6);
    assert_memory_equal(s.got.p, "alive\n", 6);

    /* 0 turns it off. */
    evc_chat_set_timeout(c, 0);
    int seen = r.n_timeout;
    evt_run_for(loop, 0.3);
    assert_int_equal(r.n_timeout, seen);

    /* A handler that closes: no callback after it. */
    r.close_in = EVT_CLOSE_IN_TIMEOUT;
    evc_chat_set_timeout(c, 0.02);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(r.n_timeout, seen + 1);

    evt_sink_stop(&s);
    evt_feeder_stop(&f);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* Records, at each release and producer destroy, whether on_destroy already ran. */
typedef struct order_probe {
    evt_recorder *r;
    int released, released_after_destroy;
} order_probe;

static void probe_release(void *arg)
{
    order_probe *o = arg;
    o->released++;
    if (o->r->destroyed)
        o->released_after_destroy++;
}

static ssize_t probe_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    (void)p;
    (void)buf;
    (void)cap;
    (void)data;
    return EVC_NOT_YET;
}

static void probe_destroy(evc_producer *p, void *data)
{
    (void)p;
    probe_release(data);
}

static const struct evc_producer_ops probe_ops = {
    .more = probe_more,
    .on_destroy = probe_destroy,
};

static void test_on_destroy_is_the_last_callback(void **state)
{
    (void)state;
    /* Closed by evc_close_all, by evc_chat_close, and by the peer. */
    for (int how = 0; how < 3; how++) {
        struct ev_loop *loop = evt_loop_new();
        int fds[2];
        evt_tcp_pair(fds);
        evt_recorder r = {0};
        order_probe o = {.r = &r};
        evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
        /* The producer stalls, so the ref behind it is still queued at the close. */
        assert_int_equal(evc_chat_push_with_producer(c, evc_producer_new(&probe_ops, &o)), 0);
        assert_int_equal(evc_chat_push_ref(c, S("queued"), probe_release, &o), 0);
        evt_run_for(loop, 0.01);
        if (how == 0)
            evc_close_all(loop);
        else if (how == 1)
            evc_chat_close(c);
        else
            close(fds[0]);
        assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
        /* on_destroy may free what release callbacks and producers use. */
        assert_int_equal(o.released, 2);
        assert_int_equal(o.released_after_destroy, 0);
        if (how != 2)
            close(fds[0]);
        evt_loop_finish(loop);
        evt_recorder_free(&r);
    }
}

static void test_close_all_closes_chats(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int a[2], b[2];
    evt_tcp_pair(a);
    evt_tcp_pair(b);
    evt_recorder ra = {0}, rb = {0};
    evc_chat *ca = evt_recorder_new(&ra, loop, a[1], EVT_REC_ALL);
    evc_chat *cb = evt_recorder_new(&rb, loop, b[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_push_str(cb, "unsent"), 0);
    evc_close_all(loop);
    assert_true(evc_chat_closed(ca));
    assert_true(evc_chat_closed(cb));
    /* Pushes into a chat closed by close_all fail. */
    assert_int_equal(evc_chat_push_str(ca, "late"), -EPIPE);
    evt_loop_finish(loop);
    assert_int_equal(ra.n_destroy, 1);
    assert_int_equal(rb.n_destroy, 1);
    assert_int_equal(ra.n_close + rb.n_close + ra.n_error + rb.n_error, 0);
    char buf[8];
    assert_true(evt_fd_readable(a[0]));
    assert_int_equal(recv(a[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    assert_true(evt_fd_readable(b[0]));
    assert_true(recv(b[0], buf, sizeof buf, MSG_DONTWAIT) <= 0);
    close(a[0]);
    close(b[0]);
    evt_recorder_free(&ra);
    evt_recorder_free(&rb);
}

static void test_chat_over_pipes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    evt_recorder rin = {0}, rout = {0};
    evc_chat *reader = evt_recorder_new(&rin, loop, in[0], EVT_REC_ALL);
    evc_chat *writer = evt_recorder_new(&rout, loop, out[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(reader, "\n"), 0);

    assert_int_equal(write(in[1], "a\nbc\nd", 6), 6);
    assert_true(evt_run_until_count(loop, &rin.n_found, 2, 5.0));
    close(in[1]);
    assert_true(evt_run_until_count(loop, &rin.n_close, 1, 5.0));
    static const char *const want[] = {"a", "bc"};
    evt_recorder_assert_frames(&rin, want, 2);
    /* Collected bytes (terminators dropped), the unterminated "d" included. */
    assert_string_equal(rin.at_close.p, "abcd");
    assert_true(evt_run_until_count(loop, &rin.n_destroy, 1, 5.0));

    /* Writes to a pipe, then close_when_done: the reader gets it all, then EOF. */
    assert_int_equal(evc_chat_push_str(writer, "to the pipe\n"), 0);
    evc_chat_close_when_done(writer);
    assert_true(evt_run_until_count(loop, &rout.n_destroy, 1, 5.0));
    char buf[32];
    ssize_t n = read(out[0], buf, sizeof buf);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, "to the pipe\n", 12);
    assert_int_equal(read(out[0], buf, sizeof buf), 0);
    close(out[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&rin);
    evt_recorder_free(&rout);
}

static void test_write_failure_honours_close_when_done(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.keep_open = true};      /* handle_close does not close */
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    evt_close_reset(fds[0]);          /* the peer is gone: the write fails */
    /* handle_close for the reset proves the kernel has it: from now on every
     * write on the socket fails (EPIPE), so the close marker can never be
     * reached by writing the bytes in front of it. */
    assert_true(evt_run_until_count(loop, &r.n_close, 1, 5.0));
    assert_false(evc_chat_closed(c));
    assert_int_equal(evc_chat_push_str(c, "nobody will read this"), 0);
    assert_int_equal(evc_chat_output_pending(c), strlen("nobody will read this"));
    evc_chat_close_when_done(c);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    /* Closed by the failed write, with no second handle_close and no error. */
    assert_int_equal(r.n_close, 1);
    assert_int_equal(r.n_error, 0);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void close_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 2)
        evc_chat_close(r->chat);
}

static void test_close_inside_found_stops_at_once(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = close_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evt_send_all(p.peer, "1\n2\n3\n4\n5\n6\n", 12);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.n_found, 2);
    evt_pair_close(&p, &r);
}

static void close_all_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1) {
        /* The first push opens the queue's reserve; the close must shut it too. */
        r->results[1] = evc_chat_push(r->chat, "early", 5);
        evc_close_all(r->loop);
        r->results[0] = evc_chat_push(r->chat, "late", 4);
        r->results[2] = evc_chat_push(r->chat, "", 0);
    }
}

static void test_close_all_inside_found_stops_and_refuses_pushes(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = close_all_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evt_send_all(p.peer, "1\n2\n3\n", 6);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.n_found, 1);
    assert_int_equal(r.results[1], 0);
    assert_int_equal(r.results[0], -EPIPE);
    assert_int_equal(r.results[2], -EPIPE);
    evt_pair_close(&p, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_fds),
        cmocka_unit_test(test_client_connect_refused_reports_error),
        cmocka_unit_test(test_close_when_done_flushes_then_closes),
        cmocka_unit_test(test_close_in_found_stops_buffered_frames),
        cmocka_unit_test(test_close_in_collect_stops_everything),
        cmocka_unit_test(test_close_in_error_stops_everything),
        cmocka_unit_test(test_close_in_connect_stops_everything),
        cmocka_unit_test(test_default_close_on_eof_writes_pending_replies),
        cmocka_unit_test(test_close_is_idempotent_and_destroy_once),
        cmocka_unit_test(test_idle_timeout_default_closes),
        cmocka_unit_test(test_idle_timeout_handler_and_activity),
        cmocka_unit_test(test_on_destroy_is_the_last_callback),
        cmocka_unit_test(test_close_all_closes_chats),
        cmocka_unit_test(test_chat_over_pipes),
        cmocka_unit_test(test_write_failure_honours_close_when_done),
        cmocka_unit_test(test_close_inside_found_stops_at_once),
        cmocka_unit_test(test_close_all_inside_found_stops_and_refuses_pushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
