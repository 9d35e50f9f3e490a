/*
 * The chat's push FIFO, over real loopback sockets and a real loop: copies,
 * references and producers written in the order they were pushed, a producer
 * that is not ready yet (and one that resumes itself), references released
 * once written or discarded, pushes before a client connects, and pushes made
 * from inside callbacks (counted at once, ordered, every size intact) or from
 * outside them (a timer).
 *
 * Every chat is a recording chat (tests/support.h) over one end of a TCP
 * pair; the test's end reads what it writes.  Every test ends with the loop
 * empty.  (Producers at the head of the queue, drained and low-water
 * callbacks and half-close are in tests/test_chat_output.c.)
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

/* ------------------------------------------------------------------ */
/* The push FIFO                                                       */
/* ------------------------------------------------------------------ */

/* A producer that answers EVC_NOT_YET until the test makes it ready. */
typedef struct slow_prod {
    bool ready;
    int asked;          /* more() calls */
    int not_yet;        /* EVC_NOT_YET answers */
    int handed;         /* chunks handed out */
    int destroyed;
    const char *text;
} slow_prod;

static ssize_t slow_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    slow_prod *s = data;
    (void)p;
    s->asked++;
    if (!s->ready) {
        s->not_yet++;
        return EVC_NOT_YET;
    }
    if (s->handed > 0)
        return 0;
    size_t n = strlen(s->text);
    assert_true(cap >= n);
    memcpy(buf, s->text, n);
    s->handed++;
    return (ssize_t)n;
}

static void slow_destroy(evc_producer *p, void *data)
{
    slow_prod *s = data;
    (void)p;
    s->destroyed++;
}

static const struct evc_producer_ops slow_ops = {
    .more = slow_more,
    .on_destroy = slow_destroy,
};

/* A producer that says "not yet" once, but resumes itself before answering. */
typedef struct self_resuming {
    evc_chat *chat;
    int asked;
} self_resuming;

static ssize_t self_resuming_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    self_resuming *s = data;
    (void)p;
    s->asked++;
    if (s->asked == 1) {
        evc_chat_resume(s->chat);   /* "I will have more at once" */
        return EVC_NOT_YET;
    }
    if (s->asked == 2) {
        assert_true(cap >= 5);
        memcpy(buf, "ready", 5);
        return 5;
    }
    return 0;
}

static const struct evc_producer_ops self_resuming_ops = {.more = self_resuming_more};

static void test_resume_inside_more_is_not_lost(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    self_resuming sr = {.chat = c};
    evc_producer *p = evc_producer_new(&self_resuming_ops, &sr);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    assert_int_equal(evc_chat_push_str(c, "!"), 0);

    evt_sink k;
    evt_sink_start(&k, loop, fds[0], 6);
    evt_sink_wait(&k, 6);
    assert_memory_equal(k.got.p, "ready!", 6);
    evt_sink_stop(&k);

    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_push_flavours_in_one_fifo(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nonblock(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);

    char longtext[301];
    for (size_t i = 0; i < 300; i++)
        longtext[i] = (char)('a' + i % 26);
    longtext[300] = '\0';
    static const char refbytes[] = "[by reference]";
    static const char simple[] = "simple producer text, longer than eight";
    int released = 0;
    slow_prod slow = {.text = "<slow>"};

    evt_bytes want = {0};
    assert_int_equal(evc_chat_push(c, S("push;")), 0);
    evt_bytes_adds(&want, "push;");
    assert_int_equal(evc_chat_push_str(c, "str;"), 0);
    evt_bytes_adds(&want, "str;");
    assert_int_equal(evc_chat_pushf(c, "%d-%s;", 42, longtext), 0);
    evt_bytes_adds(&want, "42-");
    evt_bytes_adds(&want, longtext);
    evt_bytes_adds(&want, ";");
    assert_int_equal(evc_chat_push_ref(c, S(refbytes), evt_count_release, &released), 0);
    evt_bytes_adds(&want, refbytes);
    evc_producer *sp = evc_simple_producer_new(S(simple), 8);
    assert_non_null(sp);
    assert_int_equal(evc_chat_push_with_producer(c, sp), 0);
    evt_bytes_adds(&want, simple);
    size_t before_slow = want.len;
    evc_producer *slp = evc_producer_new(&slow_ops, &slow);
    assert_non_null(slp);
    assert_int_equal(evc_chat_push_with_producer(c, slp), 0);
    evt_bytes_adds(&want, slow.text);
    assert_int_equal(evc_chat_push_str(c, ";tail"), 0);
    evt_bytes_adds(&want, ";tail");
    assert_true(evc_chat_output_pending(c) > 0);
    assert_int_equal(released, 0);   /* nothing is sent before the loop runs */

    /* Pushed from outside any callback: written before the loop sleeps. */
    evt_sink s;
    evt_sink_start(&s, loop, fds[0], before_slow);
    evt_sink_wait(&s, before_slow);
    evt_run_for(loop, 0.05);
    /* The stalled producer holds back everything behind it. */
    assert_int_equal(s.got.len, before_slow);
    assert_memory_equal(s.got.p, want.p, before_slow);
    assert_int_equal(released, 1);
    assert_true(slow.not_yet >= 1);
    /* Waiting on a producer must not spin: a handful of asks, not thousands. */
    assert_true(slow.asked < 10);

    slow.ready = true;
    evc_chat_resume(c);
    evt_sink_wait(&s, want.len);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, want.len);
    assert_memory_equal(s.got.p, want.p, want.len);
    assert_int_equal(slow.destroyed, 1);
    assert_int_equal(released, 1);
    assert_int_equal(evc_chat_output_pending(c), 0);

    evt_sink_stop(&s);
    evt_bytes_free(&want);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    assert_int_equal(released, 1);
    assert_int_equal(slow.destroyed, 1);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

static void test_ref_release_on_close_and_discard(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    int fds2[2];
    evt_tcp_pair(fds2);
    evt_recorder r = {0}, r2 = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    evc_chat *c2 = evt_recorder_new(&r2, loop, fds2[1], EVT_REC_ALL);
    int released = 0, released2 = 0;
    slow_prod p1 = {.text = "x"}, p2 = {.text = "y"};

    /* Closed before anything was written: released and destroyed exactly once. */
    assert_int_equal(evc_chat_push_ref(c, S("never sent"), evt_count_release, &released), 0);
    assert_int_equal(evc_chat_push_with_producer(c, evc_producer_new(&slow_ops, &p1)), 0);
    evc_chat_close(c);
    evc_chat_close(c);
    /* Pushes into a closed chat fail, and the caller keeps what it offered. */
    int late = 0;
    assert_int_equal(evc_chat_push_ref(c, S("late"), evt_count_release, &late), -EPIPE);
    assert_int_equal(evc_chat_push(c, S("late")), -EPIPE);
    evc_producer *kept = evc_producer_new(&slow_ops, &p2);
    assert_int_equal(evc_chat_push_with_producer(c, kept), -EPIPE);
    evc_producer_free(kept);
    assert_int_equal(p2.destroyed, 1);
    assert_int_equal(late, 0);

    /* Discarded: released and destroyed, nothing reaches the peer, the chat lives on. */
    assert_int_equal(evc_chat_push(c2, S("dropped copy;")), 0);
    assert_int_equal(evc_chat_push_ref(c2, S("dropped ref;"), evt_count_release, &released2), 0);
    assert_int_equal(evc_chat_push_with_producer(c2, evc_producer_new(&slow_ops, &p1)), 0);
    evc_chat_discard_buffers(c2);
    assert_int_equal(released2, 1);
    assert_int_equal(evc_chat_output_pending(c2), 0);
    assert_int_equal(evc_chat_push_str(c2, "after discard"), 0);

    evt_set_nonblock(fds2[0]);
    evt_sink s;
    evt_sink_start(&s, loop, fds2[0], 13);
    evt_sink_wait(&s, 13);
    evt_run_for(loop, 0.01);
    assert_int_equal(s.got.len, 13);
    assert_memory_equal(s.got.p, "after discard", 13);
    evt_sink_stop(&s);

    evc_chat_close(c2);
    evt_loop_finish(loop);
    assert_int_equal(released, 1);
    assert_int_equal(released2, 1);
    assert_int_equal(p1.destroyed, 2);
    assert_int_equal(r.n_destroy, 1);
    assert_int_equal(r2.n_destroy, 1);
    /* The peer of the closed chat saw the end, and none of the dropped bytes. */
    char buf[16];
    assert_true(evt_fd_readable(fds[0]));
    assert_int_equal(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT), 0);
    close(fds[0]);
    close(fds2[0]);
    evt_recorder_free(&r);
    evt_recorder_free(&r2);
}

/* ------------------------------------------------------------------ */
/* Client mode                                                         */
/* ------------------------------------------------------------------ */

static void test_client_connect_flushes_early_pushes(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    struct sockaddr_in sin;
    int lfd = evt_listener(&sin);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, -1, EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    assert_int_equal(evc_chat_push_str(c, "early\n"), 0);
    evt_run_for(loop, 0.01);   /* no fd yet: the push waits, nothing breaks */
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(evc_chat_connect(c, (struct sockaddr *)&sin, sizeof sin) < 0, 1);
    assert_int_equal(evc_chat_pushf(c, "%s\n", "second"), 0);
    assert_true(evt_run_until_count(loop, &r.n_connect, 1, 5.0));

    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    evt_set_nonblock(peer);
    evt_sink s;
    evt_sink_start(&s, loop, peer, 13);
    evt_sink_wait(&s, 13);
    assert_int_equal(s.got.len, 13);
    assert_memory_equal(s.got.p, "early\nsecond\n", 13);

    struct sockaddr_storage ss;
    socklen_t sslen;
    assert_int_equal(evc_chat_peer_address(c, &ss, &sslen), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, sin.sin_port);

    evt_send_all(peer, S("reply\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    assert_string_equal(r.frames[0], "reply");
    assert_int_equal(r.n_connect, 1);
    assert_int_equal(r.n_error, 0);

    evt_sink_stop(&s);
    evc_chat_close(c);
    close(peer);
    close(lfd);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

typedef struct ticker {
    ev_timer w;
    evc_chat *chat;
    int ticks;
} ticker;

static void ticker_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ticker *t = w->data;
    (void)revents;
    assert_int_equal(evc_chat_pushf(t->chat, "tick %d\n", t->ticks), 0);
    t->ticks++;
    if (t->ticks == 3)
        ev_timer_stop(loop, w);
}

static void test_push_from_timer_is_written(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    ticker t = {.chat = c};
    ev_timer_init(&t.w, ticker_cb, 0.01, 0.01);
    t.w.data = &t;
    ev_timer_start(loop, &t.w);
    /* The peer only blocks in recv: the loop runs between the ticks. */
    assert_true(evt_run_until_count(loop, &t.ticks, 1, 5.0));
    /* Written before the loop slept again: one non-blocking pass suffices. */
    ev_run(loop, EVRUN_NOWAIT);
    char buf[64];
    assert_true(evt_fd_readable(fds[0]));
    ssize_t n = recv(fds[0], buf, sizeof buf, MSG_DONTWAIT);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "tick 0\n", 7);
    assert_true(evt_run_until_count(loop, &t.ticks, 3, 5.0));
    ev_run(loop, EVRUN_NOWAIT);
    size_t got = evt_recv_until(fds[0], buf, sizeof buf, "tick 2\n");
    assert_int_equal(got, 14);
    assert_memory_equal(buf, "tick 1\ntick 2\n", 14);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* Pushes from inside callbacks                                        */
/* ------------------------------------------------------------------ */

static void triple_echo_hook(evt_recorder *r, const char *frame, size_t len)
{
    size_t before = evc_chat_output_pending(r->chat);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evc_chat_push(r->chat, frame, len), 0);
    size_t after = evc_chat_output_pending(r->chat);
    if (after - before != 3 * len)
        r->results[0]++;   /* counted as a failure below */
}

static void test_pending_counts_pushes_inside_callback(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = triple_echo_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evc_chat_set_keep_terminator(c, true);
    evt_bytes msg = {0};
    unsigned seed = 5;
    evt_random_lines(&msg, 20000, &seed);
    int lines = 0;
    for (size_t i = 0; i < msg.len; i++)
        lines += msg.p[i] == '\n';
    evt_send_all(p.peer, msg.p, msg.len);
    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 3 * msg.len);
    assert_int_equal(r.n_found, lines);
    assert_int_equal(r.results[0], 0);
    /* Each line comes back three times, in order. */
    size_t at = 0, from = 0;
    for (size_t i = 0; i < msg.len; i++) {
        if (msg.p[i] != '\n')
            continue;
        size_t n = i + 1 - from;
        for (int k = 0; k < 3; k++) {
            assert_memory_equal(got.p + at, msg.p + from, n);
            at += n;
        }
        from = i + 1;
    }
    assert_int_equal(evc_chat_output_pending(c), 0);
    evt_bytes_free(&got);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void flavours_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    evc_chat *c = r->chat;
    r->results[0] = evc_chat_push(c, "a", 1);
    r->results[1] = evc_chat_push_ref(c, "bb", 2, evt_count_release, &r->results[6]);
    r->results[2] = evc_chat_pushf(c, "c%d", 42);
    evc_producer *prod = evc_simple_producer_new("ddddd", 5, 2);
    assert_non_null(prod);
    r->results[3] = evc_chat_push_with_producer(c, prod);
    r->results[4] = evc_chat_push(c, "eeeeeeeeeeeeeeeeeeee", 20);
    evc_chat_close_when_done(c);
    r->results[5] = evc_chat_push(c, "x", 1);
}

static void test_push_flavours_keep_fifo_order_inside_callback(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = flavours_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evt_send_all(p.peer, "go\n", 3);
    evt_bytes got = {0};
    evt_pair_drain_to_eof(&p, &got);
    assert_string_equal(got.p, "abbc42ddddd" "eeeeeeeeee" "eeeeeeeeee");
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.results[i], 0);
    assert_int_equal(r.results[5], -EPIPE);
    assert_true(evt_run_until(p.loop, &r.destroyed, 5.0));
    assert_int_equal(r.results[6], 1);   /* the ref's release ran once */
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

static void sizes_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4096};
    char buf[4096];
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        for (size_t k = 0; k < sizes[i]; k++)
            buf[k] = (char)('A' + (i + k) % 26);
        r->results[i] = evc_chat_push(r->chat, buf, sizes[i]);
    }
}

static void test_pushes_of_every_size_arrive_intact(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4096};
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = sizes_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    /* Twice: the first line's pushes start the chunks, the second's land in open windows. */
    evt_send_all(p.peer, "1\n2\n", 4);
    evt_bytes want = {0};
    for (int twice = 0; twice < 2; twice++) {
        for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
            for (size_t k = 0; k < sizes[i]; k++) {
                char ch = (char)('A' + (i + k) % 26);
                evt_bytes_add(&want, &ch, 1);
            }
        }
    }
    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        assert_int_equal(r.results[i], 0);
    evt_bytes_free(&got);
    evt_bytes_free(&want);
    evt_pair_close(&p, &r);
}

/* Pushes from outside the chat's own callbacks (a timer, another chat's callback) are
 * counted at once and written before the loop sleeps. */
typedef struct timer_push {
    ev_timer w;
    evc_chat *chat;
    size_t pending;
    int rc;
    bool fired;
} timer_push;

static void timer_push_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    timer_push *t = (timer_push *)w;
    (void)loop, (void)revents;
    static const size_t sizes[] = {1, 16, 17, 64, 65, 4096};
    char buf[4096];
    size_t total = 0;
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        memset(buf, '0' + (int)i, sizes[i]);
        t->rc |= evc_chat_push(t->chat, buf, sizes[i]);
        total += sizes[i];
    }
    t->rc |= evc_chat_pushf(t->chat, "<%d>", 7);
    total += 3;
    t->pending = evc_chat_output_pending(t->chat) == total ? total : 0;
    t->fired = true;
}

static void relay_hook(evt_recorder *r, const char *frame, size_t len)
{
    /* A push into this chat first opens its own window; the relay must not land in it. */
    r->results[0] |= evc_chat_push(r->chat, "+", 1);
    r->results[1] |= evc_chat_push(r->other, frame, len);
    r->results[1] |= evc_chat_push(r->other, "\n", 1);
}

static void test_pushes_from_outside_callbacks_are_written(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = relay_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");

    /* A second chat on the same loop, written to only from the first one's callbacks
     * and from a timer. */
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder other = {.loop = p.loop};
    evt_recorder_new(&other, p.loop, fds[1], EVT_REC_ERROR);
    assert_non_null(other.chat);
    r.other = other.chat;

    timer_push t = {.chat = other.chat};
    ev_timer_init(&t.w, timer_push_cb, 0.01, 0.0);
    ev_timer_start(p.loop, &t.w);
    assert_true(evt_run_until(p.loop, &t.fired, 5.0));
    assert_int_equal(t.rc, 0);
    assert_int_equal(t.pending, 1 + 16 + 17 + 64 + 65 + 4096 + 3);

    evt_send_all(p.peer, "one\ntwo\nthree\n", 14);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));

    evt_bytes want = {0};
    static const size_t sizes[] = {1, 16, 17, 64, 65, 4096};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        for (size_t k = 0; k < sizes[i]; k++)
            evt_bytes_add(&want, &(char){(char)('0' + i)}, 1);
    evt_bytes_adds(&want, "<7>one\ntwo\nthree\n");
    evt_bytes got = {0};
    char buf[8192];
    for (int spins = 0; got.len < want.len && spins < 5000; spins++) {
        ssize_t k = recv(fds[0], buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0)
            evt_bytes_add(&got, buf, (size_t)k);
        else
            evt_run_for(p.loop, 0.001);
    }
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    evt_bytes reply = {0};
    evt_pair_drain_exact(&p, &reply, 3);
    assert_memory_equal(reply.p, "+++", 3);
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);

    evc_chat_close(other.chat);
    close(fds[0]);
    evt_bytes_free(&got);
    evt_bytes_free(&want);
    evt_bytes_free(&reply);
    evt_pair_close(&p, &r);
    assert_true(other.destroyed);
    evt_recorder_free(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_inside_more_is_not_lost),
        cmocka_unit_test(test_push_flavours_in_one_fifo),
        cmocka_unit_test(test_ref_release_on_close_and_discard),
        cmocka_unit_test(test_client_connect_flushes_early_pushes),
        cmocka_unit_test(test_push_from_timer_is_written),
        cmocka_unit_test(test_pending_counts_pushes_inside_callback),
        cmocka_unit_test(test_push_flavours_keep_fifo_order_inside_callback),
        cmocka_unit_test(test_pushes_of_every_size_arrive_intact),
        cmocka_unit_test(test_pushes_from_outside_callbacks_are_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
