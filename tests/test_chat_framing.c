/*
 * The framings as a protocol author meets them on a chat: each one over a real
 * socket pair, the frame limit and framing errors that let the server answer,
 * a count of 0, discard_buffers while a delimiter is half read, pausing and
 * resuming delivery, peeking, and the library's collector called from a custom
 * one.  The peer end is a plain blocking socket the test writes to and, once
 * the loop has run, reads from.
 */
#include "evchat.h"
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* A recording server chat                                             */
/* ------------------------------------------------------------------ */

typedef struct srv srv;
/* Runs in found_terminator with the frame (from evc_chat_incoming or the custom collector). */
typedef void (*frame_hook)(srv *, const char *frame, size_t len);

/* A recording chat (tests/support.h) that answers as a server would: handle_error
 * and frame_too_long push a reply and close once it is written, or leave the chat
 * open.  The recorder comes first, so the hooks find the rest from it. */
struct srv {
    evt_recorder rec;
    evt_bytes frames;     /* "<frame>|" per found_terminator */
    evt_bytes matched;    /* evc_chat_terminator_matched per frame, as digits */
    int errors[4];        /* the first errors handle_error got */
    bool body_mode;       /* collect_delegating: stream a body instead of delegating */
    frame_hook hook;
    const char *error_reply;   /* pushed by handle_error, if set */
    const char *too_long_reply;
};

static void srv_frame(evt_recorder *r, const char *p, size_t n)
{
    srv *s = (srv *)r;
    char digit = (char)('0' + evc_chat_terminator_matched(r->chat));
    evt_bytes_add(&s->matched, &digit, 1);
    evt_bytes_add(&s->frames, p, n);
    evt_bytes_adds(&s->frames, "|");
    if (s->hook)
        s->hook(s, p, n);
}

static void srv_error(evt_recorder *r, int err)
{
    srv *s = (srv *)r;
    if (r->n_error <= 4)
        s->errors[r->n_error - 1] = err;
    if (s->error_reply) {
        assert_int_equal(evc_chat_push_str(r->chat, s->error_reply), 0);
        evc_chat_close_when_done(r->chat);
    }
}

static void srv_too_long(evt_recorder *r)
{
    srv *s = (srv *)r;
    if (s->too_long_reply) {
        assert_int_equal(evc_chat_push_str(r->chat, s->too_long_reply), 0);
        evc_chat_close_when_done(r->chat);
    }
}

/* The library's collector, with handle_error and frame_too_long. */
#define SRV_INCOMING (EVT_REC_ERROR | EVT_REC_TOO_LONG)
/* No handle_error, no frame_too_long: the defaults. */
#define SRV_DEFAULTS 0
/* Its own collector, with handle_error. */
#define SRV_STREAM (EVT_REC_COLLECT | EVT_REC_ERROR)

typedef struct world {
    struct ev_loop *loop;
    int peer;             /* the test's blocking end */
    srv s;
} world;

/* A server chat with the callbacks `which` (SRV_*), and collector if not NULL. */
static evc_chat *world_start(world *w, unsigned which, evt_collect_hook collector)
{
    memset(w, 0, sizeof *w);
    w->loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    w->peer = fds[0];
    w->s.rec.keep_open = true;
    w->s.rec.on_frame = srv_frame;
    w->s.rec.on_error = srv_error;
    w->s.rec.on_too_long = srv_too_long;
    w->s.rec.collector = collector;
    return evt_recorder_new(&w->s.rec, w->loop, fds[1], which);
}

static void world_send(world *w, const char *p, size_t n)
{
    evt_send_all(w->peer, p, n);
}

/* Runs the loop until the chat is gone and returns what the peer got. */
static size_t world_drain(world *w, char *buf, size_t cap)
{
    assert_true(evt_run_until(w->loop, &w->s.rec.destroyed, 5.0));
    size_t n = evt_recv_all(w->peer, buf, cap - 1);
    buf[n] = '\0';
    return n;
}

static void world_end(world *w)
{
    if (!w->s.rec.destroyed) {
        evc_chat_close(w->s.rec.chat);
        assert_true(evt_run_until(w->loop, &w->s.rec.destroyed, 5.0));
    }
    close(w->peer);
    evt_loop_finish(w->loop);
    evt_recorder_free(&w->s.rec);
    evt_bytes_free(&w->s.frames);
    evt_bytes_free(&w->s.matched);
}

static void assert_frames(const srv *s, const char *want)
{
    const char *got = s->frames.p ? s->frames.p : "";
    if (strlen(want) != s->frames.len || memcmp(got, want, s->frames.len) != 0)
        fail_msg("frames \"%.*s\", want \"%s\"", (int)s->frames.len, got, want);
}

/* ------------------------------------------------------------------ */
/* Line styles, delimiter sets, count-then, length prefixes            */
/* ------------------------------------------------------------------ */

static void answer_blank_line(srv *s, const char *p, size_t n)
{
    (void)p;
    if (n == 0)
        assert_int_equal(evc_chat_push_str(s->rec.chat, "HTTP/1.1 200 OK\r\n\r\n"), 0);
}

/* A request whose lines end in a bare LF is answered, not left hanging. */
static void test_bare_lf_request_is_answered(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = answer_blank_line;
    assert_int_equal(evc_chat_set_terminator_line(c, EVC_EOL_CRLF_OR_LF), 0);
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_LINE);
    assert_int_equal(t.eol, EVC_EOL_CRLF_OR_LF);
    world_send(&w, S("GET / HTTP/1.1\nHost: a\r\n\nGET /2 HTTP/1.1\r\n\r\n"));
    evt_run_until_count(w.loop, &w.s.rec.n_found, 6, 5.0);
    assert_frames(&w.s, "GET / HTTP/1.1|Host: a||GET /2 HTTP/1.1||");
    evt_run_for(w.loop, 0.01);
    char buf[256];
    shutdown(w.peer, SHUT_WR);
    evc_chat_close_when_done(c);
    world_drain(&w, buf, sizeof buf);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
    world_end(&w);
}

static void test_any_reports_the_delimiter(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    static const char *const d[] = {"\r\n", "\n", ";"};
    static const size_t l[] = {2, 1, 1};
    assert_int_equal(evc_chat_set_terminator_any(c, d, l, 3), 0);
    assert_int_equal(evc_chat_set_terminator_any(c, d, l, 0), -EINVAL);
    world_send(&w, S("a;b\nc\r\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 3, 5.0));
    assert_frames(&w.s, "a|b|c|");
    assert_memory_equal(w.s.matched.p, "210", 3);
    world_end(&w);
}

/* RESP: "$<n>" arms n bytes then "\r\n"; anything else there is -EPROTO. */
static void resp_hook(srv *s, const char *p, size_t n)
{
    char line[32];
    snprintf(line, sizeof line, "%.*s", (int)n, p);   /* frames are not NUL-terminated */
    if (n > 1 && line[0] == '$')
        assert_int_equal(evc_chat_set_terminator_count_then(s->rec.chat, strtoull(line + 1, NULL, 10),
                                                            "\r\n", 2), 0);
    else
        assert_int_equal(evc_chat_set_terminator_line(s->rec.chat, EVC_EOL_CRLF), 0);
    assert_int_equal(evc_chat_push_str(s->rec.chat, "+OK\r\n"), 0);
}

static void test_count_then_and_its_protocol_error(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = resp_hook;
    w.s.error_reply = "-ERR protocol\r\n";
    assert_int_equal(evc_chat_set_terminator_line(c, EVC_EOL_CRLF), 0);
    world_send(&w, S("$3\r\nf\r\n\r\n$0\r\n\r\n$3\r\nfooXbar\r\n"));
    char buf[256];
    world_drain(&w, buf, sizeof buf);
    assert_frames(&w.s, "$3|f\r\n|$0||$3|");
    assert_int_equal(w.s.rec.n_error, 1);
    assert_int_equal(w.s.errors[0], -EPROTO);
    /* Replies queued before the error are written, then the handler's answer. */
    assert_string_equal(buf, "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n-ERR protocol\r\n");
    world_end(&w);
}

static void netstring_then_prefix(srv *s, const char *p, size_t n)
{
    (void)p;
    (void)n;
    assert_int_equal(evc_chat_set_terminator_prefix(s->rec.chat, 4, true, 100), 0);
}

/* The push helpers' frames, read back by the matching terminators. */
static void test_push_helpers_round_trip(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    srv rx = {.rec.on_frame = srv_frame, .rec.keep_open = true, .hook = netstring_then_prefix};
    srv tx = {.rec.on_frame = srv_frame, .rec.keep_open = true};
    evt_recorder_new(&rx.rec, loop, fds[1], SRV_INCOMING);
    evt_recorder_new(&tx.rec, loop, fds[0], SRV_INCOMING);
    assert_int_equal(evc_chat_set_terminator_netstring(rx.rec.chat, 0), 0);
    assert_int_equal(evc_chat_push_netstring(tx.rec.chat, S("hello world!")), 0);
    assert_int_equal(evc_chat_push_prefixed(tx.rec.chat, 4, true, S("framed")), 0);
    assert_int_equal(evc_chat_push_prefixed(tx.rec.chat, 4, true, "", 0), 0);
    char big[300];
    memset(big, 'x', sizeof big);
    assert_int_equal(evc_chat_push_prefixed(tx.rec.chat, 1, true, big, sizeof big), -EMSGSIZE);
    assert_int_equal(evc_chat_push_prefixed(tx.rec.chat, 3, true, big, 1), -EINVAL);
    assert_true(evt_run_until_count(loop, &rx.rec.n_found, 3, 5.0));
    assert_frames(&rx, "hello world!|framed||");
    evc_chat_close(rx.rec.chat);
    evc_chat_close(tx.rec.chat);
    assert_true(evt_run_until(loop, &rx.rec.destroyed, 5.0));
    assert_true(evt_run_until(loop, &tx.rec.destroyed, 5.0));
    evt_loop_finish(loop);
    evt_recorder_free(&rx.rec);
    evt_recorder_free(&tx.rec);
    evt_bytes_free(&rx.frames);
    evt_bytes_free(&rx.matched);
    evt_bytes_free(&tx.frames);
    evt_bytes_free(&tx.matched);
}

/* ------------------------------------------------------------------ */
/* A count of 0                                                        */
/* ------------------------------------------------------------------ */

static void length_hook(srv *s, const char *p, size_t n)
{
    char line[32];
    unsigned len;
    snprintf(line, sizeof line, "%.*s", (int)n, p);   /* frames are not NUL-terminated */
    if (sscanf(line, "LEN %u", &len) == 1)
        evc_chat_set_terminator_count(s->rec.chat, len);
    else
        evc_chat_set_terminator(s->rec.chat, "\r\n");
}

/* "Content-Length: 0" gives an empty body at once instead of swallowing the
 * requests that follow. */
static void test_count_zero_does_not_swallow_input(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = length_hook;
    assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);
    world_send(&w, S("LEN 0\r\nLEN 2\r\nhiNEXT\r\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 5, 5.0));
    assert_frames(&w.s, "LEN 0||LEN 2|hi|NEXT|");
    world_end(&w);
}

static void set_count_zero(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    evc_chat_set_terminator_count(t->data, 0);
}

/* Set from outside any callback, the empty frame still comes without more input. */
static void test_count_zero_from_a_timer(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    ev_timer t;
    ev_timer_init(&t, set_count_zero, 0.01, 0);
    t.data = c;
    ev_timer_start(w.loop, &t);
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 1, 5.0));
    assert_frames(&w.s, "|");
    world_end(&w);
}

/* ------------------------------------------------------------------ */
/* The frame limit and framing errors let the server answer            */
/* ------------------------------------------------------------------ */

static void echo_ok(srv *s, const char *p, size_t n)
{
    assert_int_equal(evc_chat_pushf(s->rec.chat, "ok:%.*s\n", (int)n, p), 0);
}

static void test_overflow_keeps_queued_replies_and_the_answer(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = echo_ok;
    w.s.too_long_reply = "ERR too long\n";
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evc_chat_set_max_frame(c, 8);
    world_send(&w, S("a\nb\n0123456789abc\nc\n"));
    char buf[256];
    world_drain(&w, buf, sizeof buf);
    assert_string_equal(buf, "ok:a\nok:b\nERR too long\n");
    assert_frames(&w.s, "a|b|");   /* nothing after the oversized frame */
    assert_int_equal(w.s.rec.n_too_long, 1);
    assert_int_equal(w.s.rec.n_error, 0);
    world_end(&w);
}

/* Without frame_too_long, handle_error(-EMSGSIZE) may answer the same way. */
static void test_overflow_through_handle_error(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, EVT_REC_ERROR, NULL);
    w.s.hook = echo_ok;
    w.s.error_reply = "431\n";
    assert_int_equal(evc_chat_set_terminator(c, "\r\n\r\n"), 0);
    evc_chat_set_max_frame(c, 6);
    world_send(&w, S("a\r\n\r\n"));
    evt_run_for(w.loop, 0.02);
    world_send(&w, S("0123456"));
    evt_run_for(w.loop, 0.02);
    world_send(&w, S("more\r\n\r\n"));
    char buf[256];
    world_drain(&w, buf, sizeof buf);
    assert_string_equal(buf, "ok:a\n431\n");
    assert_int_equal(w.s.rec.n_error, 1);
    assert_int_equal(w.s.errors[0], -EMSGSIZE);
    world_end(&w);
}

/* A handler that does nothing: replies already queued are written, then the close. */
static void test_overflow_default_closes_after_queued_output(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_DEFAULTS, NULL);
    w.s.hook = echo_ok;
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evc_chat_set_max_frame(c, 4);
    world_send(&w, S("a\nb\n0123456789\nc\n"));
    char buf[256];
    world_drain(&w, buf, sizeof buf);
    assert_string_equal(buf, "ok:a\nok:b\n");
    assert_frames(&w.s, "a|b|");
    world_end(&w);
}

/* A count the user streams is never capped by the frame limit. */
static void test_streamed_count_is_not_capped(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_STREAM, NULL);
    evc_chat_set_max_frame(c, 4);
    assert_int_equal(evc_chat_set_terminator_count(c, 10), 0);
    world_send(&w, S("0123456789"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 1, 5.0));
    assert_frames(&w.s, "0123456789|");
    assert_int_equal(w.s.rec.n_error, 0);
    world_end(&w);
}

/* ------------------------------------------------------------------ */
/* discard_buffers while a delimiter is half read                      */
/* ------------------------------------------------------------------ */

static void collect_discarding(evt_recorder *r, const char *p, size_t n)
{
    evt_recorder_keep(r, p, n);
    if (n >= 7 && memcmp(p, "DISCARD", 7) == 0) {
        evc_chat_discard_buffers(r->chat);
        evt_bytes_reset(&r->cur);
    }
}

/* From the collector: "\r\n\r" is held when the collector gets "DISCARD";
 * what follows must frame as a fresh stream would. */
static void test_discard_with_held_prefix_from_collector(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, EVT_REC_COLLECT, collect_discarding);
    assert_int_equal(evc_chat_set_terminator(c, "\r\n\r\n"), 0);
    world_send(&w, S("DISCARD\r\n\r"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_collect, 1, 5.0));
    evt_run_for(w.loop, 0.01);
    world_send(&w, S("\nA\r\n\r\nB\r\n\r\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 2, 5.0));
    assert_frames(&w.s, "\nA|B|");
    world_end(&w);
}

static void discard_now(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    evc_chat_discard_buffers(t->data);
}

/* From a timer, with the default collector holding a frame begun. */
static void test_discard_with_held_prefix_from_timer(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    assert_int_equal(evc_chat_set_terminator(c, "\r\n\r\n"), 0);
    world_send(&w, S("A\r\n\r"));
    evt_run_for(w.loop, 0.02);
    size_t n;
    const char *rest = evc_chat_peek(c, &n);
    assert_int_equal(n, 3);   /* the held "\r\n\r" */
    assert_memory_equal(rest, "\r\n\r", 3);
    ev_timer t;
    ev_timer_init(&t, discard_now, 0.001, 0);
    t.data = c;
    ev_timer_start(w.loop, &t);
    evt_run_for(w.loop, 0.02);
    assert_null(evc_chat_peek(c, &n));
    assert_int_equal(n, 0);
    world_send(&w, S("\nB\r\n\r\nC\r\n\r\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 2, 5.0));
    assert_frames(&w.s, "\nB|C|");
    world_end(&w);
}

/* ------------------------------------------------------------------ */
/* Pausing, peeking, the library's collector                           */
/* ------------------------------------------------------------------ */

static void pause_on_a(srv *s, const char *p, size_t n)
{
    if (n == 1 && p[0] == 'a') {
        evc_chat_pause_reading(s->rec.chat);
        size_t len;
        const char *rest = evc_chat_peek(s->rec.chat, &len);
        assert_int_equal(len, 4);
        assert_memory_equal(rest, "b\nc\n", 4);
    }
}

static void resume_now(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    evc_chat_resume_reading(t->data);
}

/* No frame while paused, buffered ones included; on resume the buffered ones
 * come first, then what was sent meanwhile. */
static void test_pause_mid_batch_and_resume(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = pause_on_a;
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    world_send(&w, S("a\nb\nc\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 1, 5.0));
    world_send(&w, S("d\n"));
    evt_run_for(w.loop, 0.05);
    assert_frames(&w.s, "a|");
    ev_timer t;
    ev_timer_init(&t, resume_now, 0.001, 0);
    t.data = c;
    ev_timer_start(w.loop, &t);
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 4, 5.0));
    assert_frames(&w.s, "a|b|c|d|");
    world_end(&w);
}

static void quit_pauses(srv *s, const char *p, size_t n)
{
    echo_ok(s, p, n);
    if (n == 4 && memcmp(p, "quit", 4) == 0) {
        evc_chat_close_when_done(s->rec.chat);
        evc_chat_pause_reading(s->rec.chat);
    }
}

/* Pausing after close_when_done keeps later pipelined requests from being delivered. */
static void test_pause_after_close_when_done(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, SRV_INCOMING, NULL);
    w.s.hook = quit_pauses;
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    world_send(&w, S("a\nquit\nb\nc\n"));
    char buf[128];
    world_drain(&w, buf, sizeof buf);
    assert_string_equal(buf, "ok:a\nok:quit\n");
    assert_frames(&w.s, "a|quit|");
    world_end(&w);
}

/* A streamed body with a header collected by the library (asynchat's
 * _collect_incoming_data), and evc_chat_incoming NULL when it collected nothing. */
static void collect_delegating(evt_recorder *r, const char *p, size_t n)
{
    srv *s = (srv *)r;
    if (s->body_mode)
        evt_recorder_keep(r, p, n);
    else
        assert_int_equal(evc_chat_collect(r->chat, p, n), 0);
}

/* The recorder took the frame from the body collected or, for a header, from
 * evc_chat_incoming; the body's end switches back to header lines. */
static void found_delegating(srv *s, const char *p, size_t n)
{
    evc_chat *c = s->rec.chat;
    size_t in_len;
    const char *in = evc_chat_incoming(c, &in_len);
    if (s->body_mode) {
        assert_null(in);
        assert_int_equal(in_len, 0);
        s->body_mode = false;
        evc_chat_set_terminator(c, "\r\n");
        return;
    }
    assert_non_null(in);
    char line[32];
    unsigned len;
    snprintf(line, sizeof line, "%.*s", (int)n, p);   /* frames are not NUL-terminated */
    if (sscanf(line, "BODY %u", &len) == 1) {
        s->body_mode = true;
        evc_chat_set_terminator_count(c, len);
    }
}

static void test_custom_collector_delegates_headers(void **state)
{
    (void)state;
    world w;
    evc_chat *c = world_start(&w, EVT_REC_COLLECT, collect_delegating);
    w.s.hook = found_delegating;
    assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);
    world_send(&w, S("BODY 5\r\nhelloEND\r\n"));
    assert_true(evt_run_until_count(w.loop, &w.s.rec.n_found, 3, 5.0));
    assert_frames(&w.s, "BODY 5|hello|END|");
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_lf_request_is_answered),
        cmocka_unit_test(test_any_reports_the_delimiter),
        cmocka_unit_test(test_count_then_and_its_protocol_error),
        cmocka_unit_test(test_push_helpers_round_trip),
        cmocka_unit_test(test_count_zero_does_not_swallow_input),
        cmocka_unit_test(test_count_zero_from_a_timer),
        cmocka_unit_test(test_overflow_keeps_queued_replies_and_the_answer),
        cmocka_unit_test(test_overflow_through_handle_error),
        cmocka_unit_test(test_overflow_default_closes_after_queued_output),
        cmocka_unit_test(test_streamed_count_is_not_capped),
        cmocka_unit_test(test_discard_with_held_prefix_from_collector),
        cmocka_unit_test(test_discard_with_held_prefix_from_timer),
        cmocka_unit_test(test_pause_mid_batch_and_resume),
        cmocka_unit_test(test_pause_after_close_when_done),
        cmocka_unit_test(test_custom_collector_delegates_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
