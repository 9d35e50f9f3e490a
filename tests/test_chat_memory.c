/*
 * The loop's memory account: evc_loop_stats counts exactly what the chats
 * hold (partial frames, held-back terminator bytes, queued copies, queued
 * references) at any moment; past evc_loop_set_memory_budget the chat holding
 * the most is closed with handle_error(-ENOBUFS) while the others go on; and
 * evc_shared queues one buffer on many chats without a copy each.
 *
 * Chats are recording chats (tests/support.h) over loopback TCP pairs.  Every
 * test ends with the loop empty.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static struct evc_loop_stats stats(struct ev_loop *loop)
{
    struct evc_loop_stats st;
    assert_int_equal(evc_loop_stats(loop, &st), 0);
    return st;
}

/* Runs the loop until the chats hold `want` input bytes (at most 10 s); asserts. */
static void run_until_input(struct ev_loop *loop, size_t want)
{
    for (int i = 0; i < 10000 && stats(loop).input_bytes != want; i++)
        evt_run_for(loop, 0.001);
    assert_int_equal(stats(loop).input_bytes, want);
}

static void test_stats_count_partial_frames_and_queued_output(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_open(&r, &p, 0, "\r\n");

    struct evc_loop_stats st = stats(p.loop);
    assert_int_equal(st.input_bytes, 0);
    assert_int_equal(st.output_bytes, 0);
    assert_int_equal(st.chats, 1);
    assert_int_equal(st.dispatchers, 1);
    assert_int_equal(st.budget, 0);

    /* A frame spanning reads, and a possible terminator held back. */
    evt_pair_feed(&p, S("hello"), NULL, 0);
    run_until_input(p.loop, 5);
    evt_pair_feed(&p, S(" world\r"), NULL, 0);
    run_until_input(p.loop, 12);
    evt_pair_feed(&p, S("\n"), NULL, 0);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 1, 5.0));
    assert_int_equal(stats(p.loop).input_bytes, 0);

    /* Pushes from outside a callback are counted before they are written. */
    char big[100];
    memset(big, 'x', sizeof big);
    assert_int_equal(evc_chat_push(c, big, sizeof big), 0);
    int released = 0;
    assert_int_equal(evc_chat_push_ref(c, big, 50, evt_count_release, &released), 0);
    st = stats(p.loop);
    assert_int_equal(st.output_bytes, 100);
    assert_int_equal(st.referenced_bytes, 50);

    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 150);
    evt_bytes_free(&got);
    st = stats(p.loop);
    assert_int_equal(st.output_bytes, 0);
    assert_int_equal(st.referenced_bytes, 0);
    assert_int_equal(released, 1);

    /* A closed chat holds nothing, even before it is destroyed. */
    evt_pair_feed(&p, S("partial"), NULL, 0);
    run_until_input(p.loop, 7);
    evc_chat_close(c);
    st = stats(p.loop);
    assert_int_equal(st.input_bytes, 0);
    assert_int_equal(st.chats, 0);
    evt_pair_close(&p, &r);
}

/* Three chats on one loop, each holding a partial frame of its own size. */
typedef struct trio {
    struct ev_loop *loop;
    int peer[3];
    evt_recorder r[3];
} trio;

static void trio_open(trio *t, bool keep_open)
{
    t->loop = evt_loop_new();
    for (int i = 0; i < 3; i++) {
        int fds[2];
        evt_tcp_pair(fds);
        t->peer[i] = fds[0];
        evt_set_nonblock(fds[0]);
        memset(&t->r[i], 0, sizeof t->r[i]);
        t->r[i].keep_open = keep_open;
        evt_recorder_new(&t->r[i], t->loop, fds[1], EVT_REC_ERROR | EVT_REC_CLOSE);
        assert_int_equal(evc_chat_set_terminator(t->r[i].chat, "\n"), 0);
    }
}

static void trio_feed(trio *t, int i, const char *data, size_t len)
{
    evt_feeder f;
    evt_feeder_flood(&f, t->loop, t->peer[i], data, len, NULL, 0);
    assert_true(evt_run_until(t->loop, &f.done, 20.0));
    evt_feeder_stop(&f);
}

static void trio_close(trio *t)
{
    for (int i = 0; i < 3; i++) {
        if (!t->r[i].destroyed)
            evc_chat_close(t->r[i].chat);
        close(t->peer[i]);
    }
    evt_loop_finish(t->loop);
    for (int i = 0; i < 3; i++)
        evt_recorder_free(&t->r[i]);
}

static void budget_closes_biggest(bool keep_open)
{
    trio t;
    trio_open(&t, keep_open);
    char *body = evt_random_body(300000, 7);
    trio_feed(&t, 1, body, 100000);
    trio_feed(&t, 2, body, 10000);
    run_until_input(t.loop, 110000);
    assert_int_equal(evc_loop_set_memory_budget(t.loop, 350000), 0);

    /* Chat 0 takes the loop past the budget: it holds the most and goes. */
    trio_feed(&t, 0, body, 300000);
    assert_true(evt_run_until(t.loop, &t.r[0].destroyed, 10.0));
    assert_int_equal(t.r[0].n_error, 1);
    assert_int_equal(t.r[0].last_err, -ENOBUFS);
    struct evc_loop_stats st = stats(t.loop);
    assert_int_equal(st.budget_closes, 1);
    assert_int_equal(st.input_bytes, 110000);
    assert_int_equal(st.chats, 2);

    /* The others go on, their partial frames whole. */
    trio_feed(&t, 1, S("\n"));
    trio_feed(&t, 2, S("\n"));
    assert_true(evt_run_until_count(t.loop, &t.r[1].n_found, 1, 5.0));
    assert_true(evt_run_until_count(t.loop, &t.r[2].n_found, 1, 5.0));
    assert_int_equal(t.r[1].frame_len[0], 100000);
    assert_memory_equal(t.r[1].frames[0], body, 100000);
    assert_int_equal(t.r[2].frame_len[0], 10000);
    assert_int_equal(t.r[1].n_error + t.r[2].n_error, 0);
    assert_int_equal(stats(t.loop).input_bytes, 0);
    free(body);
    trio_close(&t);
}

static void test_budget_closes_the_biggest_holder_first(void **state)
{
    (void)state;
    budget_closes_biggest(false);
}

/* A handle_error that keeps the chat open does not keep the memory. */
static void test_budget_closes_even_if_handle_error_keeps_open(void **state)
{
    (void)state;
    budget_closes_biggest(true);
}

/* Queued output counts too, and a budget lowered below what is held acts at once. */
static void test_lowered_budget_closes_the_biggest_output(void **state)
{
    (void)state;
    trio t;
    trio_open(&t, false);
    char *body = evt_random_body(200000, 3);
    /* Nobody reads: what the kernel does not take stays queued. */
    for (int i = 0; i < 3; i++) {
        evt_small_buffer(t.peer[i], SO_RCVBUF, 4096);
        evc_chat_set_watermarks(t.r[i].chat, 0, 0);
    }
    evt_small_buffer(evc_dispatcher_fd(evc_chat_dispatcher(t.r[1].chat)), SO_SNDBUF, 4096);
    assert_int_equal(evc_chat_push(t.r[1].chat, body, 200000), 0);
    assert_int_equal(evc_chat_push(t.r[2].chat, body, 1000), 0);
    evt_run_for(t.loop, 0.05);
    struct evc_loop_stats st = stats(t.loop);
    assert_true(st.output_bytes > 100000);
    assert_int_equal(evc_loop_set_memory_budget(t.loop, 50000), 0);
    assert_true(evt_run_until(t.loop, &t.r[1].destroyed, 5.0));
    assert_int_equal(t.r[1].last_err, -ENOBUFS);
    assert_false(t.r[0].destroyed);
    assert_false(t.r[2].destroyed);
    assert_true(stats(t.loop).output_bytes <= 1000);
    free(body);
    trio_close(&t);
}

static void test_budget_needs_a_dispatcher(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    assert_int_equal(evc_loop_set_memory_budget(loop, 1000), -ENOENT);
    assert_int_equal(evc_loop_set_memory_budget(NULL, 1000), -EINVAL);
    struct evc_loop_stats st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(evc_loop_stats(loop, &st), 0);
    assert_int_equal(st.chats + st.dispatchers + st.input_bytes + st.output_bytes, 0);
    evt_loop_finish(loop);
}

#define MEMBERS 20

/* One buffer queued on many chats that do not read: the queues hold no copy. */
static void test_shared_bytes_are_queued_without_a_copy(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int peer[MEMBERS];
    evt_recorder r[MEMBERS];
    const size_t len = 300000;
    char *body = evt_random_body(len, 11);
    evc_shared *sh = evc_shared_new(body, len);
    assert_non_null(sh);
    size_t got_len;
    assert_memory_equal(evc_shared_bytes(sh, &got_len), body, len);
    assert_int_equal(got_len, len);
    for (int i = 0; i < MEMBERS; i++) {
        int fds[2];
        evt_tcp_pair(fds);
        peer[i] = fds[0];
        memset(&r[i], 0, sizeof r[i]);
        evt_recorder_new(&r[i], loop, fds[1], 0);
        assert_int_equal(evc_chat_push_shared(r[i].chat, sh), 0);
    }
    struct evc_loop_stats st = stats(loop);
    assert_int_equal(st.output_bytes, 0);
    assert_int_equal(st.referenced_bytes, MEMBERS * len);
    evc_shared_release(sh);   /* the queues keep it */

    /* A closed chat refuses it and takes no reference. */
    evc_chat_close(r[0].chat);
    evc_shared *small = evc_shared_new(S("x"));
    assert_int_equal(evc_chat_push_shared(r[0].chat, small), -EPIPE);
    evc_shared_release(small);

    /* Every member gets every byte. */
    for (int i = 1; i < MEMBERS; i++) {
        evt_bytes got = {0};
        evt_pair p = {loop, peer[i], -1};
        evt_pair_drain_exact(&p, &got, len);
        assert_memory_equal(got.p, body, len);
        evt_bytes_free(&got);
    }
    st = stats(loop);
    assert_int_equal(st.referenced_bytes, 0);
    for (int i = 1; i < MEMBERS; i++)
        evc_chat_close(r[i].chat);
    for (int i = 0; i < MEMBERS; i++)
        close(peer[i]);
    evt_loop_finish(loop);
    for (int i = 0; i < MEMBERS; i++)
        evt_recorder_free(&r[i]);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_count_partial_frames_and_queued_output),
        cmocka_unit_test(test_budget_closes_the_biggest_holder_first),
        cmocka_unit_test(test_budget_closes_even_if_handle_error_keeps_open),
        cmocka_unit_test(test_lowered_budget_closes_the_biggest_output),
        cmocka_unit_test(test_budget_needs_a_dispatcher),
        cmocka_unit_test(test_shared_bytes_are_queued_without_a_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
