/*
 * The frame deadline (evc_chat_set_frame_deadline): a frame trickled in byte by
 * byte is cut off on time although every byte resets the idle timeout; frames
 * that each finish in time are never cut off, however reads split them; what
 * "a frame's first byte" is for a count and for no terminator; the default
 * handler chain (handle_frame_timeout, then handle_timeout, then close); a
 * 408-style answer; and off by default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "evchat.h"
#include "support.h"

typedef struct rec {
    evc_chat *chat;
    struct ev_loop *loop;
    int frames, frame_timeouts, timeouts, destroys;
    double started, frame_timeout_at;
    bool answer_408;     /* handle_frame_timeout pushes a reply and close_when_done */
} rec;

static void found(evc_chat *c, void *data)
{
    rec *r = data;
    (void)c;
    r->frames++;
}

static void frame_timeout(evc_chat *c, void *data)
{
    rec *r = data;
    r->frame_timeouts++;
    r->frame_timeout_at = ev_now(r->loop);
    if (r->answer_408) {
        evc_chat_push_str(c, "408 too slow\n");
        evc_chat_close_when_done(c);
    }
}

static void timeout(evc_chat *c, void *data)
{
    rec *r = data;
    (void)c;
    r->timeouts++;
}

static void destroyed(evc_chat *c, void *data)
{
    rec *r = data;
    (void)c;
    r->destroys++;
    r->chat = NULL;
}

static const struct evc_chat_ops full_ops = {
    .found_terminator = found,
    .handle_frame_timeout = frame_timeout,
    .handle_timeout = timeout,
    .on_destroy = destroyed,
};

/* No handle_frame_timeout: handle_timeout hears of it. */
static const struct evc_chat_ops timeout_only_ops = {
    .found_terminator = found,
    .handle_timeout = timeout,
    .on_destroy = destroyed,
};

/* Neither: the chat closes. */
static const struct evc_chat_ops bare_ops = {
    .found_terminator = found,
    .on_destroy = destroyed,
};

/* Sends the pieces of `script`, one every `pause` seconds, from the loop. */
typedef struct trickle {
    ev_timer tick;
    int fd;
    const char *const *pieces;
    int n, next;
    bool repeat;
} trickle;

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    trickle *t = w->data;
    (void)loop, (void)revents;
    if (t->next == t->n) {
        if (!t->repeat) {
            ev_timer_stop(loop, w);
            return;
        }
        t->next = 0;
    }
    const char *p = t->pieces[t->next++];
    if (send(t->fd, p, strlen(p), MSG_NOSIGNAL) < 0)
        ev_timer_stop(loop, w);
}

static void trickle_start(trickle *t, struct ev_loop *loop, int fd, const char *const *pieces,
                          int n, double pause, bool repeat)
{
    memset(t, 0, sizeof *t);
    t->fd = fd;
    t->pieces = pieces;
    t->n = n;
    t->repeat = repeat;
    ev_timer_init(&t->tick, tick_cb, pause, pause);
    t->tick.data = t;
    ev_timer_start(loop, &t->tick);
}

static void trickle_stop(trickle *t, struct ev_loop *loop)
{
    ev_timer_stop(loop, &t->tick);
}

typedef struct fixture {
    evt_pair p;
    rec r;
    trickle t;
} fixture;

static void open_chat(fixture *f, const struct evc_chat_ops *ops)
{
    evt_pair_open(&f->p);
    f->r.loop = f->p.loop;
    f->r.chat = evc_chat_new(f->p.loop, f->p.fd, ops, &f->r);
    assert_non_null(f->r.chat);
    ev_now_update(f->p.loop);
    f->r.started = ev_now(f->p.loop);
}

static void finish(fixture *f)
{
    trickle_stop(&f->t, f->p.loop);
    if (f->r.chat)
        evc_chat_close(f->r.chat);
    close(f->p.peer);
    evt_loop_finish(f->p.loop);
    assert_int_equal(f->r.destroys, 1);
}

static const char *const one_byte[] = {"x"};

/* One byte every 0.1 s, never a newline: the idle timeout (0.25 s) never fires,
 * the frame deadline (0.4 s) does, on time, and again a period later. */
static void test_trickle_cut_off(void **state)
{
    (void)state;
    fixture f = {0};
    open_chat(&f, &full_ops);
    evc_chat_set_terminator(f.r.chat, "\n");
    evc_chat_set_timeout(f.r.chat, 0.25);
    evc_chat_set_frame_deadline(f.r.chat, 0.4);
    trickle_start(&f.t, f.p.loop, f.p.peer, one_byte, 1, 0.1, true);
    assert_true(evt_run_until_count(f.p.loop, &f.r.frame_timeouts, 1, 2.));
    double took = f.r.frame_timeout_at - f.r.started;
    if (took < 0.4 || took > 0.75)
        fail_msg("frame deadline of 0.4 s fired after %.3f s", took);
    assert_int_equal(f.r.timeouts, 0);
    /* Still open and still trickling: another period. */
    assert_true(evt_run_until_count(f.p.loop, &f.r.frame_timeouts, 2, 2.));
    assert_int_equal(f.r.frames, 0);
    finish(&f);
}

/* Each frame takes 0.2 s of a 0.3 s deadline, and every read but the first ends
 * one frame and begins the next: never cut off. */
static void test_frames_in_time_never_cut(void **state)
{
    (void)state;
    fixture f = {0};
    static const char *const halves[] = {"abc", "def\nabc", "def\nabc", "def\nabc", "def\nabc",
                                         "def\nabc", "def\nabc", "def\n"};
    open_chat(&f, &full_ops);
    evc_chat_set_terminator(f.r.chat, "\n");
    evc_chat_set_frame_deadline(f.r.chat, 0.3);
    trickle_start(&f.t, f.p.loop, f.p.peer, halves, 8, 0.15, false);
    assert_true(evt_run_until_count(f.p.loop, &f.r.frames, 7, 3.));
    evt_run_for(f.p.loop, 0.4);   /* nothing is in progress now: nothing fires */
    assert_int_equal(f.r.frame_timeouts, 0);
    finish(&f);
}

/* A count: setting it starts nothing; the first byte of the body does. */
static void count_set(evc_chat *c, void *data)
{
    (void)data;
    evc_chat_set_terminator_count(c, 10);
}

static void test_count_first_byte(void **state)
{
    (void)state;
    static const struct evc_chat_ops count_ops = {
        .found_terminator = count_set,
        .handle_frame_timeout = frame_timeout,
        .on_destroy = destroyed,
    };
    fixture f = {0};
    open_chat(&f, &count_ops);
    evc_chat_set_terminator_count(f.r.chat, 10);
    evc_chat_set_frame_deadline(f.r.chat, 0.2);
    evt_run_for(f.p.loop, 0.4);
    assert_int_equal(f.r.frame_timeouts, 0);
    ev_now_update(f.p.loop);
    double t0 = ev_now(f.p.loop);
    assert_int_equal(send(f.p.peer, "abc", 3, 0), 3);
    assert_true(evt_run_until_count(f.p.loop, &f.r.frame_timeouts, 1, 2.));
    double took = f.r.frame_timeout_at - t0;
    if (took < 0.2 || took > 0.45)
        fail_msg("count frame cut off after %.3f s", took);
    finish(&f);
}

/* No terminator: no frames, so no frame deadline (the idle timeout is the bound). */
static void test_none_has_no_frames(void **state)
{
    (void)state;
    fixture f = {0};
    open_chat(&f, &full_ops);
    evc_chat_set_frame_deadline(f.r.chat, 0.2);
    trickle_start(&f.t, f.p.loop, f.p.peer, one_byte, 1, 0.05, true);
    evt_run_for(f.p.loop, 0.5);
    assert_int_equal(f.r.frame_timeouts, 0);
    finish(&f);
}

/* Off by default: a trickler is kept. */
static void test_off_by_default(void **state)
{
    (void)state;
    fixture f = {0};
    open_chat(&f, &full_ops);
    evc_chat_set_terminator(f.r.chat, "\n");
    trickle_start(&f.t, f.p.loop, f.p.peer, one_byte, 1, 0.05, true);
    evt_run_for(f.p.loop, 0.5);
    assert_int_equal(f.r.frame_timeouts + f.r.timeouts, 0);
    /* ... and 0 turns it off again. */
    evc_chat_set_frame_deadline(f.r.chat, 0.1);
    evc_chat_set_frame_deadline(f.r.chat, 0);
    evt_run_for(f.p.loop, 0.3);
    assert_int_equal(f.r.frame_timeouts + f.r.timeouts, 0);
    finish(&f);
}

/* NULL handle_frame_timeout: handle_timeout runs; both NULL: the chat closes. */
static void test_defaults_chain(void **state)
{
    (void)state;
    fixture f = {0};
    open_chat(&f, &timeout_only_ops);
    evc_chat_set_terminator(f.r.chat, "\r\n\r\n");
    evc_chat_set_frame_deadline(f.r.chat, 0.2);
    assert_int_equal(send(f.p.peer, "GET / HTTP/1.1\r\n", 16, 0), 16);
    assert_true(evt_run_until_count(f.p.loop, &f.r.timeouts, 1, 2.));
    assert_non_null(f.r.chat);
    finish(&f);

    fixture g = {0};
    open_chat(&g, &bare_ops);
    evc_chat_set_terminator(g.r.chat, "\n");
    evc_chat_set_frame_deadline(g.r.chat, 0.2);
    assert_int_equal(send(g.p.peer, "abc", 3, 0), 3);
    assert_true(evt_run_until_count(g.p.loop, &g.r.destroys, 1, 2.));
    char buf[8];
    assert_int_equal(recv(g.p.peer, buf, sizeof buf, 0), 0);   /* closed */
    close(g.p.peer);
    evt_loop_finish(g.p.loop);
}

/* The one-line 408: the reply reaches the peer, then the connection ends. */
static void test_answer_then_close(void **state)
{
    (void)state;
    fixture f = {0};
    open_chat(&f, &full_ops);
    f.r.answer_408 = true;
    evc_chat_set_terminator(f.r.chat, "\n");
    evc_chat_set_frame_deadline(f.r.chat, 0.2);
    assert_int_equal(send(f.p.peer, "ab", 2, 0), 2);
    evt_bytes got = {0};
    evt_pair_drain_to_eof(&f.p, &got);
    assert_string_equal(got.p, "408 too slow\n");
    evt_bytes_free(&got);
    assert_int_equal(f.r.frame_timeouts, 1);
    finish(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trickle_cut_off),
        cmocka_unit_test(test_frames_in_time_never_cut),
        cmocka_unit_test(test_count_first_byte),
        cmocka_unit_test(test_none_has_no_frames),
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_defaults_chain),
        cmocka_unit_test(test_answer_then_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
